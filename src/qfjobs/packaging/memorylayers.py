"""Memory layers with the ``offline`` action: an empty table with their fields.

A memory layer's features exist only inside a running QGIS; the project
file holds its definition (``memory?geometry=Point&crs=...&field=name:
string(255,0)``). Packaged offline it becomes an empty GeoPackage table with
the same geometry type, CRS and fields, so features collected in the field
are stored and synchronised instead of lost when QField closes.
"""

from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]
import pyogrio

from qfjobs.geodata import gpkg_catalog
from qfjobs.geodata.feature_batches import GEOMETRY_COLUMN
from qfjobs.geodata.geometrytypes import GeometryType
from qfjobs.qgis.sourcemodel import DataSource

FID = "fid"
_WKB_METADATA = {b"ARROW:extension:name": b"geoarrow.wkb"}
_TYPES = {
    "integer": pa.int32(),
    "int": pa.int32(),
    "long": pa.int64(),
    "int8": pa.int64(),
    "longlong": pa.int64(),
    "double": pa.float64(),
    "real": pa.float64(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "datetime": pa.timestamp("ms"),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "binary": pa.binary(),
    "blob": pa.binary(),
}
_NO_GEOMETRY = {"", "none", "nogeometry", "unknown"}


def memory_geometry_type(name: str | None) -> GeometryType | None:
    """The GeoPackage type of a QGIS WKB type name (``PointZ``, ``MultiPolygon``)."""
    text = (name or "").strip()
    if text.lower() in _NO_GEOMETRY:
        return None
    upper = text.upper()
    for suffix, z, m in (("ZM", True, True), ("Z", True, False), ("M", False, True)):
        if upper.endswith(suffix):
            try:
                return GeometryType(upper[: -len(suffix)], z, m)
            except ValueError:
                continue
    try:
        return GeometryType(upper)
    except ValueError:
        return GeometryType("GEOMETRY")


def write_memory_table(
    gpkg: Path, table: str, source: DataSource, layer_crs: str
) -> GeometryType | None:
    """Create the empty table of a memory layer; returns its geometry type."""
    fields = [pa.field(FID, pa.int64())]
    for item in source.memory_fields:
        name = item.name if item.name.lower() != FID else f"{item.name}_1"
        fields.append(pa.field(name, _TYPES.get(item.type.lower(), pa.string())))
    geometry_type = memory_geometry_type(source.geometry_type)
    options = {"FID": FID}
    geometry: dict[str, str | None] = {"geometry_name": None, "geometry_type": None}
    if geometry_type is not None:
        fields.append(pa.field(GEOMETRY_COLUMN, pa.binary(), metadata=_WKB_METADATA))
        options |= {"GEOMETRY_NAME": GEOMETRY_COLUMN, "SPATIAL_INDEX": "YES"}
        geometry = {
            "geometry_name": GEOMETRY_COLUMN,
            "geometry_type": geometry_type.pyogrio_name,
        }
    schema = pa.schema(fields)
    empty = pa.table(
        {field.name: pa.array([], type=field.type) for field in schema}, schema=schema
    )
    crs = source.params.get("crs") or layer_crs or None
    pyogrio.write_arrow(
        empty,
        str(gpkg),
        layer=table,
        driver="GPKG",
        crs=crs if geometry_type is not None else None,
        layer_options=options,
        **geometry,
    )
    if geometry_type is not None:
        gpkg_catalog.set_geometry_type(gpkg, table, GEOMETRY_COLUMN, geometry_type)
    return geometry_type
