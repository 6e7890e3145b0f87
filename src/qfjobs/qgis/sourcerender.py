"""Writing data sources back in QGIS datasource syntax.

Packaging copies files and must point layers at the copies, e.g.
``./data.gpkg|layername=x``. :func:`ogr_datasource` builds that text from
parts; :func:`relocate` gives a copy of a :class:`DataSource` that points at
another path, with its raw text re-rendered.
"""

from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import quote

from qfjobs.qgis.sourcemodel import DataSource
from qfjobs.qgis.uriparts import TableRef, parse_conninfo

SUBDATASET_PREFIXES = frozenset(
    {"GPKG", "NETCDF", "HDF5", "HDF4", "HDF4_SDS", "HDF4_EOS", "GTIFF_DIR", "CSV"}
)


def relocate(source: DataSource, path: str) -> DataSource:
    """A copy of a file-based ``source`` pointing at ``path``."""
    moved = replace(source, path=path)
    return replace(moved, raw=render_file_datasource(moved))


def render_file_datasource(source: DataSource) -> str:
    """Write an ogr/gdal/spatialite/delimitedtext source back in QGIS syntax.

    Only the path-related parts are rebuilt; other options are kept. Raises
    ValueError for sources that are not file based.
    """
    if source.provider in ("ogr", "gdal"):
        return _render_ogr(source)

    if source.provider == "spatialite" and source.table is not None:
        rest = parse_conninfo(source.raw)
        return _render_spatialite(source.path, source.table, rest.params)

    if source.provider == "delimitedtext":
        _, _, query = source.raw.partition("?")
        prefix = "file:" if source.path.startswith((".", "/")) else "file:///"
        return f"{prefix}{_quote_path(source.path)}?{query}"

    raise ValueError(f"cannot render a {source.provider!r} datasource as a file path")


def ogr_datasource(
    path: str,
    layer_name: str | None = None,
    *,
    layer_id: int | None = None,
    geometry_type: str | None = None,
    subset: str | None = None,
) -> str:
    """QGIS ogr syntax: ``./data.gpkg|layername=x|subset=...``."""
    parts = [path]
    if layer_name is not None:
        parts.append(f"layername={layer_name}")
    if layer_id is not None:
        parts.append(f"layerid={layer_id}")
    if geometry_type:
        parts.append(f"geometrytype={geometry_type}")
    if subset:
        parts.append(f"subset={subset}")
    return "|".join(parts)


def _render_ogr(source: DataSource) -> str:
    location = source.path
    if source.vsi_prefix:
        member = f"/{source.archive_member}" if source.archive_member else ""
        location = f"{source.vsi_prefix}{source.path}{member}"

    if source.driver_prefix in SUBDATASET_PREFIXES and source.provider == "gdal":
        return f"{source.driver_prefix}:{location}:{source.layer_name or ''}"

    text = ogr_datasource(
        location,
        source.layer_name,
        layer_id=source.layer_id,
        geometry_type=source.geometry_type,
    )
    extras = "".join(f"|{key}={value}" for key, value in source.params.items())
    subset = f"|subset={source.subset}" if source.subset else ""
    return f"{text}{extras}{subset}"


def _render_spatialite(path: str, table: TableRef, params: Mapping[str, str]) -> str:
    escaped = path.replace("\\", "\\\\").replace("'", "\\'")
    parts = [f"dbname='{escaped}'"]
    parts += [f"{k}='{v}'" for k, v in params.items() if k not in ("dbname",)]
    geometry = f" ({table.geometry_column})" if table.geometry_column else ""
    parts.append(f"table={table.qualified_name}{geometry}")
    if table.sql:
        parts.append(f"sql={table.sql}")
    return " ".join(parts)


def _quote_path(path: str) -> str:
    return quote(path, safe="/:.-_~")
