"""Building ``project_details`` and the per-layer records (reference 2.2/2.3).

:func:`layer_record` returns the 22 keys of the reference layer record plus
qfjobs extras (``provider``, ``geometry_type``, ``feature_count``,
``fields``, ``read_only_reason``). :func:`build_project_details` returns the
7 project keys. Three reference bugs are fixed on purpose (section 7):
``ordered_layer_ids`` follows the layer tree (14), ``datasource`` is
redacted (16), and attachment folders match by path component
(:func:`qfjobs.qgis.attachments.is_attachment`, 15).

The reference's ``filename`` is an absolute path in the worker's temporary
folder; here it is the file's path in the project, ``/``-separated and
relative to the folder the project's files are laid out in (the name
``files/`` lists, e.g. ``sub/data.gpkg``), or the path as the project
writes it for a file outside the project. No text of a record names the
worker's folder.

Works from QGIS 2.16 to 3.44 files: QGIS 2 keeps the project CRS in
``properties/SpatialRefSys/ProjectCrs`` and the legend in ``<legend>``.
"""

import re
from pathlib import Path
from typing import Any

from lxml import etree

from qfjobs.qgis.attachments import DEFAULT_ATTACHMENT_DIRS
from qfjobs.qgis.checkresult import SourceCheck
from qfjobs.qgis.maplayers import MapLayerXml, layer_tree_order
from qfjobs.qgis.primarykey import READ_ONLY_REASON, source_pk_name
from qfjobs.qgis.projectfile import ProjectFile
from qfjobs.qgis.redaction import redact, redact_values, secret_values
from qfjobs.qgis.sourcemodel import DataSource, SourceKind
from qfjobs.qgis.wkbtypes import wkb_type_code

LayerRecord = dict[str, Any]

QFS_PROPERTIES = {
    "qfs_action": "QFieldSync/action",
    "qfs_cloud_action": "QFieldSync/cloud_action",
    "qfs_is_geometry_locked": "QFieldSync/is_geometry_locked",
    "qfs_photo_naming": "QFieldSync/photo_naming",
    "qfs_unsupported_source_pk": "QFieldSync/unsupported_source_pk",
}


def layer_record(
    layer: MapLayerXml, source: DataSource, check: SourceCheck, files_root: Path
) -> LayerRecord:
    """One ``layers_by_id`` entry, JSON-serialisable.

    ``files_root`` is the absolute, normalised folder the project's files are
    laid out in; paths under it are written relative to it.
    """
    geometry = _geometry_name(layer, check)
    pk_name = source_pk_name(
        check.primary_keys, check.fields, is_vector=layer.is_vector
    )
    props = layer.custom_properties
    record: LayerRecord = {
        "id": layer.layer_id,
        "name": layer.name,
        "crs": layer.crs or check.crs or "",
        "wkb_type": wkb_type_code(geometry) if layer.is_vector else None,
        "qfs_action": props.get(QFS_PROPERTIES["qfs_action"]),
        "qfs_cloud_action": props.get(QFS_PROPERTIES["qfs_cloud_action"]),
        "qfs_is_geometry_locked": props.get(QFS_PROPERTIES["qfs_is_geometry_locked"]),
        "qfs_photo_naming": props.get(QFS_PROPERTIES["qfs_photo_naming"]),
        "qfc_source_data_pk_name": pk_name,
        "qfs_unsupported_source_pk": props.get(
            QFS_PROPERTIES["qfs_unsupported_source_pk"]
        ),
        "is_valid": check.is_valid,
        "is_localized": source.is_localized,
        "datasource": None if source.kind is SourceKind.NONE else redact(source.raw),
        "type": layer.type_code,
        "type_name": layer.type_name,
        "error_code": check.error_code.value,
        "error_summary": check.error_summary,
        "error_message": check.error_message,
        "filename": _filename(source, check, files_root),
        "provider_name": None if check.is_valid else source.provider,
        "provider_error_summary": None
        if check.is_valid
        else check.provider_error_summary,
        "provider_error_message": None
        if check.is_valid
        else check.provider_error_message,
    }
    record.update(_extras(layer, source, check, geometry, pk_name))
    _mask_secrets(record, source)
    _strip_files_root(record, files_root)
    return record


def _mask_secrets(record: LayerRecord, source: DataSource) -> None:
    """Mask the source's secrets in every text built from it.

    A source that is not what its provider expects (a URL with a password
    given to a file provider, a conninfo given to the memory provider) ends
    up in resolved paths, geometry names and errors, where the key or the
    ``user:password@`` shape that marks a secret may be gone; its secret
    values are masked wherever they appear.
    """
    secrets = secret_values(source.raw)
    for key, value in record.items():
        if isinstance(value, str) and key != "datasource":
            record[key] = redact_values(value, secrets) if secrets else value
    for key in ("error_summary", "error_message", "filename"):
        if isinstance(record[key], str):
            record[key] = redact(record[key])


def _geometry_name(layer: MapLayerXml, check: SourceCheck) -> str | None:
    if not layer.is_vector:
        return None
    return check.geometry_type or layer.declared_wkb_type or "Unknown"


def _filename(source: DataSource, check: SourceCheck, files_root: Path) -> str:
    if source.is_localized:
        return source.path
    if source.kind is not SourceKind.FILE:
        return ""
    return project_path(check.filename, files_root) or source.path


def project_path(path: str, files_root: Path) -> str | None:
    """An absolute ``path`` under ``files_root``, relative to it; else None."""
    if not path or not Path(path).is_absolute():
        return None
    try:
        return Path(path).relative_to(files_root).as_posix()
    except ValueError:
        return None


def _strip_files_root(record: LayerRecord, files_root: Path) -> None:
    """Paths under ``files_root`` in any text (an I/O error...) made relative."""
    roots = {str(files_root), str(files_root.resolve())}
    for key, value in record.items():
        if isinstance(value, str):
            for root in roots:
                value = value.replace(root + "/", "")
                value = re.sub(re.escape(root) + r"(?![\w.-])", ".", value)
            record[key] = value


def _extras(
    layer: MapLayerXml,
    source: DataSource,
    check: SourceCheck,
    geometry: str | None,
    pk_name: str,
) -> dict[str, Any]:
    no_pk = layer.is_vector and check.is_valid and not pk_name
    return {
        "provider": source.provider,
        "geometry_type": geometry,
        "feature_count": check.feature_count,
        "fields": [{"name": f.name, "type": f.type} for f in check.fields],
        "read_only_reason": READ_ONLY_REASON if no_pk else None,
    }


def build_project_details(
    project: ProjectFile, records: dict[str, LayerRecord]
) -> dict[str, Any]:
    """The ``project_details`` dict; ``records`` are the layer records by id."""
    root = project.root
    ordered = ordered_layer_ids(root, list(records))
    return {
        "background_color": background_color(root),
        "extent": canvas_extent_wkt(root),
        "crs": project_crs(root),
        "project_name": project_title(root),
        "layers_by_id": {layer_id: records[layer_id] for layer_id in ordered},
        "ordered_layer_ids": ordered,
        "attachment_dirs": attachment_dirs(root),
    }


def ordered_layer_ids(root: etree._Element, layer_ids: list[str]) -> list[str]:
    """Layer-tree order, then the layers missing from the tree in file order."""
    known = set(layer_ids)
    in_tree = [layer_id for layer_id in layer_tree_order(root) if layer_id in known]
    placed = set(in_tree)
    return in_tree + [layer_id for layer_id in layer_ids if layer_id not in placed]


def background_color(root: etree._Element) -> str:
    """``#rrggbb`` of the canvas; each channel defaults to 255."""
    channels = []
    for part in ("Red", "Green", "Blue"):
        text = root.findtext(f"properties/Gui/CanvasColor{part}Part")
        try:
            value = int(str(text).strip())
        except ValueError:
            value = 255
        channels.append(min(max(value, 0), 255))
    return "#{:02x}{:02x}{:02x}".format(*channels)


def canvas_extent_wkt(root: etree._Element) -> str:
    """``theMapCanvas`` extent as QGIS ``asWktPolygon`` writes it."""
    canvas = root.find("mapcanvas[@name='theMapCanvas']")
    if canvas is None:
        canvas = root.find("mapcanvas")

    values = []
    for name in ("xmin", "ymin", "xmax", "ymax"):
        text = canvas.findtext(f"extent/{name}") if canvas is not None else None
        try:
            values.append(float(str(text)))
        except ValueError:
            values.append(0.0)

    x1, y1, x2, y2 = (qgis_number(v) for v in values)
    return f"POLYGON(({x1} {y1}, {x2} {y1}, {x2} {y2}, {x1} {y2}, {x1} {y1}))"


def qgis_number(value: float) -> str:
    """``qgsDoubleToString``: 17 decimals, trailing zeros removed, no ``-0``."""
    text = f"{value:.17f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def project_crs(root: etree._Element) -> str:
    for path in (
        "projectCrs/spatialrefsys/authid",
        "properties/SpatialRefSys/ProjectCrs",
        "mapcanvas/destinationsrs/spatialrefsys/authid",
    ):
        text = (root.findtext(path) or "").strip()
        if text:
            return text
    return ""


def project_title(root: etree._Element) -> str:
    metadata_title = (root.findtext("projectMetadata/title") or "").strip()
    return metadata_title or (root.findtext("title") or "").strip()


def attachment_dirs(root: etree._Element) -> list[str]:
    values = [
        (value.text or "").strip()
        for value in root.iterfind("properties/QFieldSync/attachmentDirs/value")
    ]
    dirs = [value for value in values if value]
    return dirs or list(DEFAULT_ATTACHMENT_DIRS)
