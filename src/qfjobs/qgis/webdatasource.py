"""Parsers for data sources that are not plain files or databases.

Web services (WMS/WMTS/XYZ, WCS, WFS, OGC API Features, ArcGIS, vector
tiles), memory layers, virtual layers and providers qfjobs does not know.
A web service whose ``url`` is a local file (``type=mbtiles``, ``file:`` URLs)
is reported as a file source; ``url=file:localized:...`` as localized.
"""

import re
from collections.abc import Callable
from urllib.parse import unquote

from qfjobs.qgis.sourcemodel import DataSource, MemoryField, SourceKind
from qfjobs.qgis.uriparts import (
    decode_file_uri,
    first_values,
    parse_conninfo,
    parse_query_pairs,
    strip_localized,
)

QUERY_STYLE_PROVIDERS = frozenset({"wms", "wcs", "vectortile", "xyzvectortiles"})
CONNINFO_STYLE_PROVIDERS = frozenset(
    {"wfs", "oapif", "arcgisfeatureserver", "arcgismapserver", "cesiumtiles"}
)
UNCHECKED_DATABASE_PROVIDERS = frozenset(
    {"oracle", "mssql", "hana", "db2", "sqlanywhere", "mysql"}
)
LOCAL_TILE_TYPES = frozenset({"mbtiles", "vtpk", "pmtiles"})

#: ``parse_datasource`` itself, passed in to parse virtual layers' sources.
NestedParser = Callable[[str, str], DataSource]

_MEMORY_FIELD = re.compile(
    r"^(?P<name>[^:]+):(?P<type>[^(\[]+)"
    r"(?:\((?P<length>-?\d+)(?:,(?P<precision>-?\d+))?\))?(?:\[\])?$"
)


def parse_non_file_source(
    provider: str, text: str, parse_nested: NestedParser
) -> DataSource:
    """Dispatch on ``provider`` for the sources this module owns."""
    if provider == "memory":
        return _parse_memory(provider, text)

    if provider == "virtual":
        return _parse_virtual(provider, text, parse_nested)

    if provider in QUERY_STYLE_PROVIDERS or provider in CONNINFO_STYLE_PROVIDERS:
        return _parse_web(provider, text)

    if provider in UNCHECKED_DATABASE_PROVIDERS:
        info = parse_conninfo(text)
        return DataSource(
            provider=provider,
            raw=text,
            kind=SourceKind.DATABASE,
            params=info.params,
            table=info.table,
        )

    return DataSource(provider=provider, raw=text, kind=SourceKind.UNKNOWN)


def _parse_web(provider: str, text: str) -> DataSource:
    params = _web_params(text)
    url = params.get("url", "")
    local_url, localized = strip_localized(url)
    tile_type = params.get("type", "").lower()

    if localized:
        return DataSource(
            provider=provider,
            raw=text,
            kind=SourceKind.LOCALIZED,
            path=decode_file_uri(local_url),
            params=params,
            is_localized=True,
        )

    if tile_type in LOCAL_TILE_TYPES or url.lower().startswith("file:"):
        return DataSource(
            provider=provider,
            raw=text,
            kind=SourceKind.FILE,
            path=decode_file_uri(url),
            params=params,
        )

    if not url and text.lower().startswith(("http://", "https://")):
        url = text

    return DataSource(
        provider=provider, raw=text, kind=SourceKind.ONLINE, url=url, params=params
    )


def _web_params(text: str) -> dict[str, str]:
    """WFS/ArcGIS use conninfo (``url='...'``); WMS/XYZ use ``&`` pairs."""
    if re.search(r"(?:^|\s)url='", text) or re.match(r"^\w+='", text):
        return parse_conninfo(text).params
    return first_values(parse_query_pairs(text))


def _parse_memory(provider: str, text: str) -> DataSource:
    """``memory?geometry=Point&crs=EPSG:4326&field=name:string(255,0)``.

    QGIS 2 wrote the geometry before the ``?`` (``Point?crs=...``).
    """
    head, _, query = text.partition("?")
    pairs = parse_query_pairs(query)
    params = first_values(pairs)
    geometry = params.get("geometry") or (head if head.lower() != "memory" else "")
    fields = tuple(
        parsed
        for key, value in pairs
        if key == "field" and (parsed := _memory_field(value)) is not None
    )

    return DataSource(
        provider=provider,
        raw=text,
        kind=SourceKind.MEMORY,
        geometry_type=_memory_geometry(geometry),
        params=params,
        memory_fields=fields,
    )


def _memory_geometry(name: str) -> str:
    if not name or name.lower() in ("none", "nogeometry"):
        return "NoGeometry"
    return name


def _memory_field(value: str) -> MemoryField | None:
    match = _MEMORY_FIELD.match(value)
    if match is None:
        return None

    length, precision = match.group("length"), match.group("precision")
    return MemoryField(
        name=unquote(match.group("name")),
        type=match.group("type").strip(),
        length=int(length) if length is not None else None,
        precision=int(precision) if precision is not None else None,
    )


def _parse_virtual(provider: str, text: str, parse_nested: NestedParser) -> DataSource:
    """``?layer_ref=<id>:<name>&layer=<provider>:<source>:<name>:<enc>&query=``."""
    _, _, query = text.partition("?")
    pairs = parse_query_pairs(query)
    references = tuple(
        value.partition(":")[0] for key, value in pairs if key == "layer_ref"
    )
    embedded = tuple(
        source
        for key, value in pairs
        if key == "layer"
        and (source := _embedded_layer(value, parse_nested)) is not None
    )

    return DataSource(
        provider=provider,
        raw=text,
        kind=SourceKind.VIRTUAL,
        geometry_type=_virtual_geometry(pairs),
        params=first_values(pairs),
        referenced_layer_ids=references,
        embedded_sources=embedded,
    )


def _virtual_geometry(pairs: list[tuple[str, str]]) -> str | None:
    keys = {key for key, _ in pairs}
    if "nogeometry" in keys:
        return "NoGeometry"

    for key, value in pairs:
        if key == "geometry":
            parts = value.split(":")
            return parts[1] if len(parts) > 1 and not parts[1].isdigit() else None
    return None


def _embedded_layer(value: str, parse_nested: NestedParser) -> DataSource | None:
    # provider:source:name:encoding; the source may itself contain colons.
    provider, sep, rest = value.partition(":")
    pieces = rest.rsplit(":", 2)
    if not sep or len(pieces) < 3:
        return None
    return parse_nested(provider, unquote(pieces[0]))
