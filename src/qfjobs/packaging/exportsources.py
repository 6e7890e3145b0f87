"""Turning a valid QGIS layer into a source the GeoPackage exporter reads.

Files go through GDAL (:class:`~qfjobs.geodata.sources.OgrSource`):
GeoPackage, shapefile, GeoJSON, FlatGeobuf, KML/GML, spreadsheets and
SpatiaLite (GDAL's SQLite driver) as they are; QGIS delimited-text layers
through GDAL's CSV driver with the layer's separator, header and X/Y or WKT
columns as open options. PostgreSQL tables are read with psycopg
(:class:`~qfjobs.geodata.sources.PostgresSource`), connecting with the
same parameters the layer check used.

Known shortcomings: delimited-text options GDAL's CSV driver has no
equivalent for (regular-expression separators, ``skipLines``, a decimal
comma) are not applied; such a layer is read with GDAL's defaults.
"""

import warnings
from pathlib import Path

import pyogrio
from psycopg import conninfo

from qfjobs.errors import DataSourceError
from qfjobs.geodata.sources import OgrSource, PostgresSource, Source
from qfjobs.qgis.inspect import LayerReport
from qfjobs.qgis.maplayers import MapLayerXml
from qfjobs.qgis.pgcheck import PgOptions, connection_params

_SEPARATORS = {",": "COMMA", ";": "SEMICOLON", "\t": "TAB", " ": "SPACE", "|": "PIPE"}
_CRS_AUTHORITIES = ("EPSG:", "ESRI:", "IGNF:", "OGC:")


def export_source(
    layer: MapLayerXml, report: LayerReport, pg_options: PgOptions
) -> Source:
    """The exporter source of ``layer``; raises DataSourceError if it has none."""
    source = report.source
    if source.provider == "postgres":
        return _postgres(report, pg_options)

    filename = report.check.filename
    if not filename:
        raise DataSourceError(f'Layer "{layer.name}" has no local file')
    if source.provider == "delimitedtext":
        return _delimited(layer, report, filename)
    if source.provider == "spatialite":
        table = source.table.table if source.table else None
        return OgrSource(Path(filename), layer=table)

    path = filename
    if source.vsi_prefix:
        member = f"/{source.archive_member}" if source.archive_member else ""
        path = f"{source.vsi_prefix}{filename}{member}"
    return OgrSource(
        path, layer=_ogr_layer_name(path, source.layer_name, source.layer_id)
    )


def _ogr_layer_name(path: str, name: str | None, layer_id: int | None) -> str | None:
    """The layer to read, by name (any letter case) or by index."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyogrio's notes about M types
        try:
            listed = [str(row[0]) for row in pyogrio.list_layers(path)]
        except (RuntimeError, OSError, ValueError) as exc:
            raise DataSourceError(f"Cannot open {path}: {exc}") from exc
    if name is not None:
        if name in listed:
            return name
        folded = {item.lower(): item for item in listed}
        return folded.get(name.lower(), name)
    index = layer_id or 0
    if 0 <= index < len(listed):
        return listed[index]
    raise DataSourceError(f"Layer #{index} not found in {path}")


def _delimited(layer: MapLayerXml, report: LayerReport, filename: str) -> OgrSource:
    params = report.source.params
    options: dict[str, str] = {
        "AUTODETECT_TYPE": "NO"
        if params.get("detectTypes", "yes").lower() == "no"
        else "YES",
        "HEADERS": "NO" if params.get("useHeader", "yes").lower() == "no" else "YES",
    }
    delimiter = params.get("delimiter")
    if params.get("type", "csv").lower() == "csv" and delimiter:
        decoded = delimiter.replace("\\t", "\t")
        if decoded in _SEPARATORS:
            options["SEPARATOR"] = _SEPARATORS[decoded]
    elif params.get("type", "").lower() == "whitespace":
        options["SEPARATOR"] = "SPACE"

    geom_none = params.get("geomType", "").lower() == "none"
    if params.get("xField") and params.get("yField") and not geom_none:
        options["X_POSSIBLE_NAMES"] = params["xField"]
        options["Y_POSSIBLE_NAMES"] = params["yField"]
        if params.get("zField"):
            options["Z_POSSIBLE_NAMES"] = params["zField"]
        options["KEEP_GEOM_COLUMNS"] = "YES"
    elif params.get("wktField") and not geom_none:
        options["GEOM_POSSIBLE_NAMES"] = params["wktField"]
        options["KEEP_GEOM_COLUMNS"] = "YES"

    crs = layer.crs or params.get("crs", "")
    has_geometry = any(key.endswith("POSSIBLE_NAMES") for key in options)
    layer_crs = (
        crs if has_geometry and crs.upper().startswith(_CRS_AUTHORITIES) else None
    )
    return OgrSource(f"CSV:{filename}", open_options=options, layer_crs=layer_crs)


def _postgres(report: LayerReport, pg_options: PgOptions) -> PostgresSource:
    table = report.source.table
    if table is None or table.is_query:
        raise DataSourceError("Only PostgreSQL tables and views can be packaged")
    params = connection_params(report.source, pg_options)
    params.setdefault("connect_timeout", str(max(1, int(pg_options.timeout))))
    return PostgresSource(
        conninfo=conninfo.make_conninfo(**params),
        schema=table.schema or "public",
        table=table.table,
        geometry_column=table.geometry_column or None,
    )


def grouping_key(source: Source) -> tuple[object, ...]:
    """Layers with equal keys read the same data and share one table."""
    if isinstance(source, PostgresSource):
        return (
            "pg",
            source.conninfo,
            source.schema,
            source.table,
            source.geometry_column,
        )
    options = tuple(sorted(source.open_options.items()))
    return ("ogr", str(source.path), source.layer, options, source.layer_crs)


def table_base_name(layer: MapLayerXml, source: Source) -> str:
    """A readable table name for a source: its layer or table name."""
    if isinstance(source, PostgresSource):
        return source.table
    if source.layer:
        return source.layer
    name = str(source.path).removeprefix("CSV:")
    return Path(name).stem or layer.name
