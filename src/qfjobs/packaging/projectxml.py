"""Rewriting the original project XML into the packaged project.

The packaged project is the original XML, patched in place with lxml
(reference section 3.7): datasources and providers of converted layers, the
QFieldSync custom properties, ``readOnly`` on layers that cannot be edited
safely, removed layers gone from ``<projectlayers>``, the layer tree, legend
and drawing orders, map themes, snapping settings and relations, and the
project entries a QField client reads. Layer ids never change. Everything
else (styles, forms, widgets, relations, map themes, ``theMapCanvas``) is
kept byte-for-byte in meaning.

``ValueRelation`` widgets and relation records pointing at a converted layer
get that layer's new source and provider.
"""

from collections.abc import Mapping

from lxml import etree

QGIS_DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"
_OPTION_STYLE_SINCE = (3, 18, 0)


def set_custom_property(
    element: etree._Element, key: str, value: str, version: tuple[int, int, int]
) -> None:
    """Set one layer custom property, in the XML shape the file already uses."""
    container = element.find("customproperties")
    if container is None:
        container = etree.SubElement(element, "customproperties")

    option_map = container.find("Option")
    legacy = container.find("property") is not None
    if option_map is None and not legacy and version >= _OPTION_STYLE_SINCE:
        option_map = etree.SubElement(container, "Option", type="Map")
    if option_map is not None:
        for option in option_map.iterfind("Option"):
            if option.get("name") == key:
                option.set("value", value)
                option.set("type", "QString")
                return
        etree.SubElement(option_map, "Option", name=key, type="QString", value=value)
        return

    for prop in container.iterfind("property"):
        if prop.get("key") == key:
            for child in list(prop):
                prop.remove(child)
            prop.set("value", value)
            return
    etree.SubElement(container, "property", key=key, value=value)


def set_datasource(element: etree._Element, datasource: str, provider: str) -> None:
    node = element.find("datasource")
    if node is None:
        node = etree.SubElement(element, "datasource")
    node.text = datasource
    provider_node = element.find("provider")
    if provider_node is None:
        provider_node = etree.SubElement(element, "provider")
    provider_node.text = provider
    if provider_node.get("encoding") is not None:
        provider_node.set("encoding", "UTF-8")


def remove_layers(root: etree._Element, layer_ids: set[str]) -> None:
    """Remove the layers and every reference to them that would dangle."""
    if not layer_ids:
        return
    container = root.find("projectlayers")
    if container is not None:
        for element in list(container.iterfind("maplayer")):
            if (element.findtext("id") or "").strip() in layer_ids:
                container.remove(element)

    for node in list(root.iter("layer-tree-layer", "layer", "layer-setting")):
        if node.get("id") in layer_ids:
            _drop(node)
    for node in list(root.iter("checked-legend-nodes")):
        if node.get("id") in layer_ids:
            _drop(node)
    for node in list(root.iter("item")):
        parent = node.getparent()
        if parent is not None and parent.tag == "custom-order":
            if (node.text or "").strip() in layer_ids:
                _drop(node)
    for node in list(root.iter("legendlayerfile")):
        if node.get("layerid") in layer_ids:
            legend_layer = node.getparent()
            while legend_layer is not None and legend_layer.tag != "legendlayer":
                legend_layer = legend_layer.getparent()
            _drop(legend_layer if legend_layer is not None else node)
    for node in list(root.iter("relation")):
        ends = {node.get("referencingLayer"), node.get("referencedLayer")}
        if ends & layer_ids:
            _drop(node)


def _drop(node: etree._Element | None) -> None:
    if node is None:
        return
    parent = node.getparent()
    if parent is not None:
        parent.remove(node)


def repoint_references(
    root: etree._Element, new_sources: Mapping[str, tuple[str, str]]
) -> int:
    """Point ValueRelation widgets and relation records at converted layers.

    ``new_sources`` maps layer id to ``(datasource, provider)``. Returns how
    many references were changed.
    """
    changed = 0
    for option in root.iter("Option"):
        if option.get("name") != "Layer" or option.get("value") not in new_sources:
            continue
        datasource, provider = new_sources[option.get("value", "")]
        parent = option.getparent()
        if parent is None:
            continue
        for sibling in parent.iterfind("Option"):
            if sibling.get("name") == "LayerSource":
                sibling.set("value", datasource)
                changed += 1
            elif sibling.get("name") == "LayerProviderName":
                sibling.set("value", provider)
    for relation in root.iter("relation"):
        layer_id = relation.get("layerId") or ""
        if layer_id in new_sources and relation.get("dataSource") is not None:
            datasource, provider = new_sources[layer_id]
            relation.set("dataSource", datasource)
            relation.set("providerKey", provider)
            changed += 1
    return changed


def set_project_entry(
    root: etree._Element, scope: str, key: str, value: str, value_type: str
) -> None:
    """Set ``properties/<scope>/<key>`` (e.g. ``qfieldsync/createBaseMap``)."""
    properties = root.find("properties")
    if properties is None:
        properties = etree.SubElement(root, "properties")
    scope_node = properties.find(scope)
    if scope_node is None:
        scope_node = etree.SubElement(properties, scope)
    node = scope_node.find(key)
    if node is None:
        node = etree.SubElement(scope_node, key)
    for child in list(node):
        node.remove(child)
    node.set("type", value_type)
    node.text = value


def project_entry(root: etree._Element, scope: str, key: str) -> str:
    return (root.findtext(f"properties/{scope}/{key}") or "").strip()


def disable_project_automation(root: etree._Element) -> None:
    """Turn off default-value evaluation and automatic transactions."""
    for tag in ("autotransaction", "evaluateDefaultValues"):
        node = root.find(tag)
        if node is not None:
            node.set("active", "0")
    transaction = root.find("transaction")
    if transaction is not None:
        transaction.set("mode", "Disabled")
    for holder, attribute in (
        (root, "projectFlags"),
        (root.find("projectFlags"), "set"),
    ):
        flags = holder.get(attribute) if holder is not None else None
        if holder is not None and flags:
            kept = [
                item for item in flags.split("|") if item != "EvaluateDefaultValues"
            ]
            holder.set(attribute, "|".join(kept))


def serialise(tree: etree._ElementTree) -> bytes:
    """The project as QGIS writes it: the doctype on the first line, UTF-8."""
    body = etree.tostring(tree.getroot(), encoding="utf-8", xml_declaration=False)
    return QGIS_DOCTYPE.encode() + b"\n" + body + b"\n"
