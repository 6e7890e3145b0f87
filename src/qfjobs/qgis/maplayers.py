"""Reading ``<maplayer>`` elements and the layer tree from project XML.

:func:`read_map_layers` gives one :class:`MapLayerXml` per layer of
``<projectlayers>``, with what the XML alone says (id, name, type, provider,
datasource, declared WKB type and CRS, custom properties).
:func:`layer_tree_order` gives the legend order, from ``<layer-tree-group>``
(QGIS >= 2.4) or the QGIS 2 ``<legend>``.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from lxml import etree

from qfjobs.qgis.wkbtypes import from_legacy_geometry, normalise_name

#: ``maplayer/@type`` → (QGIS ``Qgis::LayerType`` integer, QGIS >= 3.30 name)
LAYER_TYPES: dict[str, tuple[int, str]] = {
    "vector": (0, "Vector"),
    "raster": (1, "Raster"),
    "plugin": (2, "Plugin"),
    "mesh": (3, "Mesh"),
    "vector-tile": (4, "VectorTile"),
    "vectortile": (4, "VectorTile"),
    "annotation": (5, "Annotation"),
    "point-cloud": (6, "PointCloud"),
    "pointcloud": (6, "PointCloud"),
    "group": (7, "Group"),
    "tiled-scene": (8, "TiledScene"),
}


@dataclass(frozen=True)
class MapLayerXml:
    """What one ``<maplayer>`` element declares.

    ``declared_wkb_type`` is the QGIS name from ``@wkbType`` (or, for old
    files, from ``@geometry``); ``crs`` is ``srs/spatialrefsys/authid``;
    ``custom_properties`` merges both XML shapes (``Option`` map and legacy
    ``property`` elements). ``element`` is the element itself, for callers
    that rewrite the project (packaging).
    """

    layer_id: str
    name: str
    layer_type: str
    provider: str
    datasource: str
    declared_wkb_type: str | None
    crs: str
    custom_properties: Mapping[str, str] = field(default_factory=dict)
    is_embedded: bool = False
    read_only: bool = False
    element: etree._Element | None = field(default=None, compare=False, repr=False)

    @property
    def type_code(self) -> int:
        return LAYER_TYPES.get(self.layer_type, (2, "Plugin"))[0]

    @property
    def type_name(self) -> str:
        return LAYER_TYPES.get(self.layer_type, (2, "Plugin"))[1]

    @property
    def is_vector(self) -> bool:
        return self.layer_type == "vector"


def read_map_layers(root: etree._Element) -> list[MapLayerXml]:
    """All layers of ``<projectlayers>``, in document order."""
    container = root.find("projectlayers")
    if container is None:
        return []
    return [_read_layer(element) for element in container.iterfind("maplayer")]


def _read_layer(element: etree._Element) -> MapLayerXml:
    provider = element.find("provider")
    return MapLayerXml(
        layer_id=_text(element, "id") or element.get("id", ""),
        name=_text(element, "layername") or element.get("name", ""),
        layer_type=(element.get("type") or "").lower(),
        provider=(provider.text or "").strip() if provider is not None else "",
        datasource=_text(element, "datasource"),
        declared_wkb_type=_declared_wkb_type(element),
        crs=_text(element, "srs/spatialrefsys/authid"),
        custom_properties=read_custom_properties(element),
        is_embedded=element.get("embedded") == "1",
        read_only=element.get("readOnly") == "1",
        element=element,
    )


def _text(element: etree._Element, path: str) -> str:
    found = element.find(path)
    if found is None or found.text is None:
        return ""
    return found.text.strip()


def _declared_wkb_type(element: etree._Element) -> str | None:
    if element.get("type", "vector") != "vector":
        return None

    declared = normalise_name(element.get("wkbType"))
    return declared or from_legacy_geometry(element.get("geometry"))


def read_custom_properties(element: etree._Element) -> dict[str, str]:
    """``customproperties`` of a layer, both XML shapes, values as strings.

    New style: ``customproperties/Option[@type="Map"]/Option[@name][@value]``.
    Old style: ``customproperties/property[@key][@value]`` (or ``<value>``
    children for lists, joined with commas).
    """
    properties: dict[str, str] = {}
    container = element.find("customproperties")
    if container is None:
        return properties

    for option in container.iterfind("Option/Option"):
        name = option.get("name")
        if name is not None and option.get("value") is not None:
            properties[name] = option.get("value", "")

    for prop in container.iterfind("property"):
        key = prop.get("key")
        if key is None:
            continue
        value = prop.get("value")
        if value is None:
            value = ",".join((child.text or "") for child in prop.iterfind("value"))
        properties.setdefault(key, value)

    return properties


def layer_tree_order(root: etree._Element) -> list[str]:
    """Layer ids in legend order (depth first), without duplicates."""
    ids: list[str] = []
    tree = root.find("layer-tree-group")
    if tree is not None:
        ids = [node.get("id", "") for node in tree.iter("layer-tree-layer")]
    else:
        legend = root.find("legend")
        if legend is not None:
            ids = [node.get("layerid", "") for node in legend.iter("legendlayerfile")]

    return list(dict.fromkeys(layer_id for layer_id in ids if layer_id))
