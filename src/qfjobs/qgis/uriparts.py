"""Tokenizers for the pieces QGIS datasource strings are made of.

QGIS uses three syntaxes for ``<datasource>``:

* the ``QgsDataSourceUri`` "conninfo" form used by postgres, spatialite, WFS
  and ArcGIS: ``key=value key='quoted \\' value' table="schema"."t" (geom)
  sql=...`` (``sql=`` takes the rest of the string);
* ``&``-separated ``key=value`` pairs with percent-encoded values, used by
  WMS/XYZ, vector tiles, memory and virtual layers and delimited text;
* file paths, optionally as ``file:`` URIs and with a ``localized:`` prefix.

These functions only split text; :mod:`qfjobs.qgis.datasource` decides what
the parts mean.
"""

import re
from dataclasses import dataclass
from urllib.parse import unquote

_WINDOWS_DRIVE_URI = re.compile(r"^/[A-Za-z]:[/\\]")
LOCALIZED_PREFIXES = ("file:localized:", "localized:")


@dataclass(frozen=True)
class TableRef:
    """A database table as named in a conninfo datasource.

    ``table`` may be a parenthesised SQL subquery for postgres query layers.
    ``key`` is the ``key=`` attribute (quotes kept as written, e.g.
    ``"a","b"`` for a composite key), ``wkb_type`` the ``type=`` attribute.
    """

    table: str
    schema: str | None = None
    geometry_column: str | None = None
    key: str | None = None
    srid: str | None = None
    wkb_type: str | None = None
    sql: str = ""

    @property
    def is_query(self) -> bool:
        return self.table.lstrip().startswith("(")

    @property
    def qualified_name(self) -> str:
        quoted = '"' + self.table.replace('"', '""') + '"'
        if self.schema:
            return '"' + self.schema.replace('"', '""') + '".' + quoted
        return quoted


@dataclass(frozen=True)
class ConnInfo:
    """The parsed conninfo: plain parameters plus the table reference."""

    params: dict[str, str]
    table: TableRef | None


def parse_conninfo(text: str) -> ConnInfo:
    """Split a ``QgsDataSourceUri`` conninfo string."""
    params: dict[str, str] = {}
    table: tuple[str | None, str] | None = None
    geometry: str | None = None
    sql = ""
    i = 0

    while i < len(text):
        if text[i].isspace():
            i += 1
            continue

        if text.startswith("sql=", i):
            sql = text[i + 4 :]
            break

        key, i = _read_key(text, i)
        if key is None:
            continue

        if key == "table":
            table, i = _read_table(text, i)
            geometry, i = _read_geometry_column(text, i)
        else:
            params[key], i = _read_value(text, i)

    return ConnInfo(params=params, table=_table_ref(table, geometry, params, sql))


def _read_key(text: str, start: int) -> tuple[str | None, int]:
    """Read ``key=``; a stray word without ``=`` is skipped."""
    i = start
    while i < len(text) and not text[i].isspace() and text[i] != "=":
        i += 1

    if i < len(text) and text[i] == "=":
        return text[start:i], i + 1
    return None, i


def _read_value(text: str, start: int) -> tuple[str, int]:
    if start < len(text) and text[start] in "'\"":
        return _read_quoted(text, start)

    i = start
    while i < len(text) and not text[i].isspace():
        i += 1
    return text[start:i], i


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == quote:
            return "".join(out), i + 1
        out.append(char)
        i += 1
    return "".join(out), i


def _read_table(text: str, start: int) -> tuple[tuple[str | None, str], int]:
    if not text.startswith('"', start):
        bare, i = _read_value(text, start)
        schema, dot, name = bare.partition(".")
        return ((schema, name) if dot else (None, bare)), i

    first, i = _read_quoted_identifier(text, start)
    if text.startswith('."', i):
        second, i = _read_quoted_identifier(text, i + 1)
        return (first, second), i
    return (None, first), i


def _read_quoted_identifier(text: str, start: int) -> tuple[str, int]:
    """Read a double-quoted identifier (``""`` escapes a quote) at ``start``."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        if text.startswith('""', i):
            out.append('"')
            i += 2
            continue
        if text[i] == '"':
            return "".join(out), i + 1
        out.append(text[i])
        i += 1
    return "".join(out), i


def _read_geometry_column(text: str, start: int) -> tuple[str | None, int]:
    i = start
    while i < len(text) and text[i] == " ":
        i += 1

    if i < len(text) and text[i] == "(":
        close = text.find(")", i)
        if close < 0:
            return text[i + 1 :].strip() or None, len(text)
        return text[i + 1 : close].strip() or None, close + 1
    return None, start


def _table_ref(
    table: tuple[str | None, str] | None,
    geometry: str | None,
    params: dict[str, str],
    sql: str,
) -> TableRef | None:
    if table is None:
        return None

    schema, name = table
    return TableRef(
        table=name,
        schema=schema or None,
        geometry_column=geometry,
        key=params.get("key") or None,
        srid=params.get("srid") or None,
        wkb_type=params.get("type") or None,
        sql=sql.strip(),
    )


def parse_query_pairs(text: str) -> list[tuple[str, str]]:
    """Split ``a=1&b&c=x%20y`` into decoded pairs, keeping order and repeats.

    ``+`` is kept as is (QGIS percent-encodes spaces), and a key without ``=``
    gets an empty value.
    """
    pairs: list[tuple[str, str]] = []
    for part in text.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def first_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Map each key to its first value."""
    values: dict[str, str] = {}
    for key, value in pairs:
        values.setdefault(key, value)
    return values


def strip_localized(text: str) -> tuple[str, bool]:
    """Remove a ``localized:`` or ``file:localized:`` prefix."""
    for prefix in LOCALIZED_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :], True
    return text, False


def decode_file_uri(text: str) -> str:
    """Turn a ``file:`` URI (or a plain path) into a path string.

    ``file:///home/a%20b.csv`` gives ``/home/a b.csv``, ``file:///C:/x.csv``
    gives ``C:/x.csv`` and ``file:./x.csv`` gives ``./x.csv``.
    """
    if not text.lower().startswith("file:"):
        return text

    rest = text[5:]
    if rest.startswith("//"):
        rest = rest[2:]
        # file://./x is how some QGIS versions write relative local URLs.
        if not rest.startswith(("/", "./", "../")):
            # file://host/path: the host part is dropped (local files only)
            slash = rest.find("/")
            rest = rest[slash:] if slash >= 0 else ""

    path = unquote(rest)
    if _WINDOWS_DRIVE_URI.match(path):
        path = path[1:]
    return path
