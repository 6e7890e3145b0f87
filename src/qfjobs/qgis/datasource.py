"""The typed model of a QGIS layer data source, and its parser.

:func:`parse_datasource` turns a ``<maplayer>``'s ``<provider>`` key and
``<datasource>`` text into a frozen :class:`DataSource`. The raw text is kept
in ``raw`` (it may hold passwords: use :func:`qfjobs.qgis.redaction.redact`
before showing it). The model lives in :mod:`qfjobs.qgis.sourcemodel` and the
writer (``./data.gpkg|layername=x`` for packaging) in
:mod:`qfjobs.qgis.sourcerender`; both are re-exported here.

Nothing here touches the file system or the network; resolving paths against
the project folder is :meth:`DataSource.resolve_path`.
"""

import re
from dataclasses import replace

from qfjobs.qgis.sourcemodel import DataSource, MemoryField, SourceKind
from qfjobs.qgis.sourcerender import (
    SUBDATASET_PREFIXES,
    ogr_datasource,
    relocate,
    render_file_datasource,
)
from qfjobs.qgis.uriparts import (
    TableRef,
    decode_file_uri,
    first_values,
    parse_conninfo,
    parse_query_pairs,
    strip_localized,
)
from qfjobs.qgis.webdatasource import parse_non_file_source

__all__ = [
    "DataSource",
    "MemoryField",
    "SourceKind",
    "TableRef",
    "ogr_datasource",
    "parse_datasource",
    "relocate",
    "render_file_datasource",
    "split_pipe_options",
]

_ONLINE_PREFIX = re.compile(
    r"^(?:https?|ftp)://|^/vsi(?:curl|s3|gs|az|adls|oss|swift|webhdfs)(?:_streaming)?/",
    re.I,
)
_VSI_ARCHIVE = re.compile(r"^(/vsi(?:zip|gzip|tar|7z|rar)/)(.*)$", re.I)
_ARCHIVE_SPLIT = re.compile(
    r"^(.*?\.(?:zip|kmz|tar|tgz|tar\.gz|gz|7z|rar|shz))(?:/(.*))?$", re.I
)
_EMBEDDED_LOCALIZED = "url=file:localized:"
_DRIVER_PREFIX = re.compile(r"^([A-Z][A-Z0-9_]+):(.+)$", re.S)

ONLINE_DRIVER_PREFIXES = frozenset({"WFS", "OAPIF", "WMS", "WMTS", "ESRIJSON", "EEDA"})
DATABASE_DRIVER_PREFIXES = frozenset({"PG", "MSSQL", "OCI", "MYSQL", "ODBC", "PGEO"})


def parse_datasource(provider: str | None, text: str | None) -> DataSource:
    """Parse a layer's provider key and datasource text."""
    key = (provider or "").strip().lower()
    raw = text or ""
    if not key:
        return DataSource(provider="", raw=raw, kind=SourceKind.NONE)

    parser = _FILE_PARSERS.get(key)
    if parser is not None:
        source = parser(key, raw.strip())
    else:
        source = parse_non_file_source(key, raw.strip(), parse_datasource)

    if not source.is_localized and _EMBEDDED_LOCALIZED in raw:
        return replace(source, kind=SourceKind.LOCALIZED, is_localized=True)
    return source


def _parse_ogr(provider: str, text: str) -> DataSource:
    body, localized = strip_localized(text)
    location, options, subset = split_pipe_options(body)
    location, localized_uri = strip_localized(decode_file_uri(location))
    localized = localized or localized_uri
    layer_id = options.pop("layerid", None)

    base = DataSource(
        provider=provider,
        raw=text,
        kind=SourceKind.FILE,
        layer_name=options.pop("layername", None),
        layer_id=int(layer_id) if layer_id and layer_id.isdigit() else None,
        subset=subset,
        geometry_type=options.pop("geometrytype", None),
        params=options,
        is_localized=localized,
    )
    return _with_location(base, location)


def _parse_gdal(provider: str, text: str) -> DataSource:
    return _parse_ogr(provider, text)


def _with_location(base: DataSource, location: str) -> DataSource:
    """Fill path, prefixes and kind from the location part of ogr/gdal text."""
    if base.is_localized:
        return replace(base, kind=SourceKind.LOCALIZED, path=location)

    if _ONLINE_PREFIX.match(location):
        return replace(base, kind=SourceKind.ONLINE, url=location)

    prefixed = _split_driver_prefix(base, location)
    if prefixed is not None:
        return prefixed

    archive = _VSI_ARCHIVE.match(location)
    if archive is not None:
        inner = _ARCHIVE_SPLIT.match(archive.group(2))
        path, member = (
            (inner.group(1), inner.group(2)) if inner else (archive.group(2), None)
        )
        return replace(
            base, path=path, vsi_prefix=archive.group(1), archive_member=member
        )

    return replace(base, path=location)


def _split_driver_prefix(base: DataSource, location: str) -> DataSource | None:
    match = _DRIVER_PREFIX.match(location)
    if match is None:
        return None

    prefix, rest = match.group(1).upper(), match.group(2)
    if prefix in ONLINE_DRIVER_PREFIXES:
        return replace(base, kind=SourceKind.ONLINE, driver_prefix=prefix, url=rest)

    if prefix in DATABASE_DRIVER_PREFIXES:
        info = parse_conninfo(rest.strip().strip("\"'"))
        return replace(
            base,
            kind=SourceKind.DATABASE,
            driver_prefix=prefix,
            params={**info.params, **base.params},
        )

    if prefix in SUBDATASET_PREFIXES:
        path, subdataset = _split_subdataset(rest)
        layer = base.layer_name or subdataset
        return replace(base, driver_prefix=prefix, path=path, layer_name=layer)

    return None


def _split_subdataset(rest: str) -> tuple[str, str | None]:
    """``"path":sub``, ``path:sub`` or ``path`` (a drive letter is not a split)."""
    if rest.startswith('"'):
        close = rest.find('"', 1)
        if close > 0:
            tail = rest[close + 1 :].lstrip(":")
            return rest[1:close], tail or None

    head, sep, tail = rest.rpartition(":")
    if not sep or len(head) < 2 or re.fullmatch(r"[A-Za-z]", head):
        return rest, None
    return head, tail or None


def split_pipe_options(text: str) -> tuple[str, dict[str, str], str | None]:
    """Split ``path|layername=a|subset=x = 'b|c'`` into path, options, subset.

    ``subset=`` is the last option and keeps any ``|`` it contains.
    """
    location, _, rest = text.partition("|")
    options: dict[str, str] = {}
    subset: str | None = None

    while rest:
        if rest.startswith("subset="):
            subset = rest[len("subset=") :]
            break
        part, _, rest = rest.partition("|")
        key, _, value = part.partition("=")
        options[key.strip().lower() if ":" not in key else key.strip()] = value

    return location, options, subset


def _parse_spatialite(provider: str, text: str) -> DataSource:
    info = parse_conninfo(text)
    dbname, localized = strip_localized(info.params.get("dbname", ""))
    dbname = decode_file_uri(dbname)
    return DataSource(
        provider=provider,
        raw=text,
        kind=SourceKind.LOCALIZED if localized else SourceKind.FILE,
        path=dbname,
        layer_name=info.table.table if info.table else None,
        subset=info.table.sql if info.table and info.table.sql else None,
        params=info.params,
        table=info.table,
        is_localized=localized,
    )


def _parse_postgres(provider: str, text: str) -> DataSource:
    info = parse_conninfo(text)
    return DataSource(
        provider=provider,
        raw=text,
        kind=SourceKind.DATABASE,
        layer_name=info.table.table if info.table else None,
        subset=info.table.sql if info.table and info.table.sql else None,
        geometry_type=info.table.wkb_type if info.table else None,
        params=info.params,
        table=info.table,
    )


def _parse_delimitedtext(provider: str, text: str) -> DataSource:
    body, localized = strip_localized(text)
    location, _, query = body.partition("?")
    location, localized_uri = strip_localized(decode_file_uri(location))
    params = first_values(parse_query_pairs(query))
    has_xy = bool(params.get("xField") and params.get("yField"))
    geometry = "Point" if has_xy else None
    if params.get("geomType", "").lower() == "none":
        geometry = "NoGeometry"

    return DataSource(
        provider=provider,
        raw=text,
        kind=SourceKind.LOCALIZED if localized or localized_uri else SourceKind.FILE,
        path=location,
        subset=params.get("subset") or None,
        geometry_type=geometry,
        params=params,
        is_localized=localized or localized_uri,
    )


def _parse_plain_file(provider: str, text: str) -> DataSource:
    """Providers whose datasource is a path, maybe with ``?`` or ``|`` options."""
    body, localized = strip_localized(text)
    location, options, subset = split_pipe_options(body)
    location = decode_file_uri(location.partition("?")[0])
    if _ONLINE_PREFIX.match(location):
        return DataSource(
            provider=provider, raw=text, kind=SourceKind.ONLINE, url=location
        )

    return DataSource(
        provider=provider,
        raw=text,
        kind=SourceKind.LOCALIZED if localized else SourceKind.FILE,
        path=location.strip('"'),
        subset=subset,
        params=options,
        is_localized=localized,
    )


_FILE_PARSERS = {
    "ogr": _parse_ogr,
    "gdal": _parse_gdal,
    "spatialite": _parse_spatialite,
    "postgres": _parse_postgres,
    "postgresraster": _parse_postgres,
    "delimitedtext": _parse_delimitedtext,
    "mdal": _parse_plain_file,
    "pdal": _parse_plain_file,
    "copc": _parse_plain_file,
    "ept": _parse_plain_file,
    "gpx": _parse_plain_file,
}
