"""Reading vector layer metadata with GDAL through pyogrio.

:func:`probe_vector` opens a dataset read-only, picks the layer the way the
QGIS ogr provider does (``layername``, else ``layerid``, else the first) and
returns its geometry type, CRS, feature count, fields and FID column.

pyogrio drops M values and linearises curves in the geometry type it reports
(``PointZM`` comes back as ``Point Z`` with a warning, ``CurvePolygon`` as
``Polygon``). The original GDAL name is recovered from that warning, and for
GeoPackages the type is read from ``gpkg_geometry_columns`` instead.
"""

import logging
import re
import sqlite3
import warnings
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyogrio

from qfjobs.qgis.checkresult import FieldInfo
from qfjobs.qgis.wkbtypes import from_gdal_name, from_gpkg, promote_to_multi

logger = logging.getLogger(__name__)

_ORIGINAL_TYPE = re.compile(r"Original type '([^']+)'")
_OGR_TYPES = {
    "OFTInteger": "Integer",
    "OFTInteger64": "Integer64",
    "OFTReal": "Real",
    "OFTString": "String",
    "OFTDate": "Date",
    "OFTTime": "Time",
    "OFTDateTime": "DateTime",
    "OFTBinary": "Binary",
    "OFTIntegerList": "IntegerList",
    "OFTInteger64List": "Integer64List",
    "OFTRealList": "RealList",
    "OFTStringList": "StringList",
}
_OGR_SUBTYPES = {"OFSTBoolean": "Boolean", "OFSTJSON": "JSON", "OFSTInt16": "Integer"}


class ProbeError(Exception):
    """GDAL could not open the dataset or the layer; ``summary`` is user-facing."""

    def __init__(self, summary: str, detail: str = "") -> None:
        super().__init__(summary)
        self.summary = summary
        self.detail = detail


@dataclass(frozen=True)
class VectorInfo:
    """What GDAL says about one vector layer."""

    layer_name: str
    driver: str
    geometry_type: str
    crs: str | None
    feature_count: int | None
    fields: tuple[FieldInfo, ...]
    fid_column: str


def probe_vector(
    open_path: str,
    display: str,
    *,
    layer_name: str | None = None,
    layer_index: int | None = None,
) -> VectorInfo:
    """Open ``open_path`` (a path or ``/vsizip/`` name) and describe one layer."""
    layers = _list_layers(open_path, display)
    chosen = _choose_layer(layers, display, layer_name, layer_index)
    info, original_type = _read_info(open_path, display, chosen)

    driver = str(info.get("driver") or "")
    geometry = from_gdal_name(original_type or info.get("geometry_type"))
    if driver == "GPKG":
        geometry = _gpkg_geometry_type(open_path, chosen) or geometry
    if driver == "ESRI Shapefile":
        geometry = promote_to_multi(geometry)

    count = info.get("features")
    return VectorInfo(
        layer_name=chosen,
        driver=driver,
        geometry_type=geometry,
        crs=_crs_text(info.get("crs")),
        feature_count=int(count) if count is not None and count >= 0 else None,
        fields=_fields(info),
        fid_column=str(info.get("fid_column") or ""),
    )


def _list_layers(open_path: str, display: str) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            listed = pyogrio.list_layers(open_path)
        except (RuntimeError, OSError, ValueError) as exc:
            raise ProbeError(
                f'GDAL cannot open "{display}".', _clean(str(exc), open_path, display)
            ) from exc

    return [str(row[0]) for row in listed]


def _choose_layer(
    layers: list[str], display: str, layer_name: str | None, layer_index: int | None
) -> str:
    if layer_name is not None:
        if layer_name in layers:
            return layer_name
        folded = {name.lower(): name for name in layers}
        if layer_name.lower() in folded:
            return folded[layer_name.lower()]
        raise ProbeError(
            f'Layer "{layer_name}" not found in "{display}".',
            f"available layers: {', '.join(layers) or '(none)'}",
        )

    index = layer_index or 0
    if index >= len(layers):
        raise ProbeError(
            f'Layer #{index} not found in "{display}".',
            f"the dataset has {len(layers)} layer(s)",
        )
    return layers[index]


def _read_info(
    open_path: str, display: str, layer: str
) -> tuple[dict[str, Any], str | None]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            info: dict[str, Any] = pyogrio.read_info(
                open_path, layer=layer, force_feature_count=True
            )
        except (RuntimeError, OSError, ValueError) as exc:
            raise ProbeError(
                f'GDAL cannot read layer "{layer}" of "{display}".',
                _clean(str(exc), open_path, display),
            ) from exc

    original = None
    for warning in caught:
        match = _ORIGINAL_TYPE.search(str(warning.message))
        if match is not None:
            original = match.group(1)
    return info, original


def _gpkg_geometry_type(open_path: str, table: str) -> str | None:
    """Exact type (curves, M) from the GeoPackage's own metadata."""
    if open_path.startswith("/vsi"):
        return None

    uri = Path(open_path).absolute().as_uri() + "?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as connection:
            row = connection.execute(
                "SELECT geometry_type_name, z, m FROM gpkg_geometry_columns "
                "WHERE lower(table_name) = lower(?)",
                (table,),
            ).fetchone()
    except sqlite3.Error as exc:
        logger.debug("No gpkg_geometry_columns in %s: %s", open_path, exc)
        return None

    if row is None:
        return None
    return from_gpkg(str(row[0]), int(row[1] or 0), int(row[2] or 0))


def _crs_text(crs: object) -> str | None:
    if not crs:
        return None
    text = str(crs)
    return text if len(text) < 64 else None


def _fields(info: dict[str, Any]) -> tuple[FieldInfo, ...]:
    names = [str(name) for name in info.get("fields", [])]
    types = list(info.get("ogr_types") or [])
    subtypes = list(info.get("ogr_subtypes") or [])
    fields: list[FieldInfo] = []

    fid = str(info.get("fid_column") or "")
    if fid:
        fields.append(FieldInfo(name=fid, type="Integer64"))

    for index, name in enumerate(names):
        ogr_type = types[index] if index < len(types) else ""
        subtype = subtypes[index] if index < len(subtypes) else ""
        type_name = _OGR_SUBTYPES.get(subtype) or _OGR_TYPES.get(ogr_type, "String")
        fields.append(FieldInfo(name=name, type=type_name))
    return tuple(fields)


def _clean(message: str, open_path: str, display: str) -> str:
    """GDAL messages name the worker path; show the project path instead."""
    return message.replace(open_path, display).strip()
