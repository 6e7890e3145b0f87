"""Checking ``delimitedtext`` provider layers (CSV and friends) in Python.

The QGIS delimited-text provider has its own parser and options, which GDAL's
CSV driver only partly matches, so the file is read here with the options of
the URI: ``type`` (``csv``, ``regexp``, ``whitespace``), ``delimiter``,
``quote``, ``escape``, ``skipLines``, ``useHeader``, ``encoding``,
``decimalPoint``. The point and WKT columns (``xField``/``yField``/
``zField``/``mField``, ``wktField``) must exist in the header. Column types
are detected the way the provider does by default (integer, real, else
string) over the whole file, which is also counted for the feature count.
DMS coordinates (``xyDms``) are not validated.
"""

import codecs
import csv
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from qfjobs.qgis.checkresult import FieldInfo, SourceCheck, invalid_provider
from qfjobs.qgis.pathguard import LocatedFile
from qfjobs.qgis.sourcemodel import DataSource
from qfjobs.qgis.wkbtypes import normalise_name

logger = logging.getLogger(__name__)

_WKT_HEAD = re.compile(r"^\s*(?:SRID=\d+;)?\s*([A-Za-z]+)\s*(ZM|Z|M)?\b", re.I)
_INTEGER = re.compile(r"^[+-]?\d+$")
_ESCAPES = {"\\t": "\t", "tab": "\t", "\\s": " ", "space": " "}


@dataclass
class _ColumnStats:
    name: str
    is_integer: bool = True
    is_real: bool = True
    seen: bool = False

    def observe(self, value: str, decimal_point: str) -> None:
        if not value:
            return
        self.seen = True
        if self.is_integer and not _INTEGER.match(value):
            self.is_integer = False
        if self.is_real and not _is_real(value, decimal_point):
            self.is_real = False

    @property
    def type(self) -> str:
        if not self.seen:
            return "String"
        if self.is_integer:
            return "Integer"
        return "Real" if self.is_real else "String"


@dataclass
class _Scan:
    columns: list[_ColumnStats] = field(default_factory=list)
    rows: int = 0
    first_wkt: str | None = None


def check_delimited(source: DataSource, located: LocatedFile) -> SourceCheck:
    """Read the whole file with the URI's options and describe the layer."""
    params = source.params
    filename = str(located.path)
    try:
        scan = _scan(located, params)
    except (OSError, csv.Error, re.error, UnicodeError) as exc:
        return invalid_provider(
            f'Cannot read delimited text file "{located.display}".',
            str(exc),
            filename=filename,
        )

    names = [column.name for column in scan.columns]
    missing = [
        params[key]
        for key in ("xField", "yField", "zField", "mField", "wktField")
        if params.get(key) and params[key] not in names
    ]
    if missing:
        return invalid_provider(
            f'Field "{missing[0]}" not found in "{located.display}".',
            f"the file has the fields: {', '.join(names) or '(none)'}",
            filename=filename,
        )

    return SourceCheck(
        is_valid=True,
        filename=filename,
        geometry_type=_geometry_type(params, scan.first_wkt),
        crs=params.get("crs") or None,
        feature_count=scan.rows,
        fields=tuple(FieldInfo(name=c.name, type=c.type) for c in scan.columns),
        driver="delimitedtext",
    )


def _scan(located: LocatedFile, params: Mapping[str, str]) -> _Scan:
    decimal_point = params.get("decimalPoint") or "."
    use_header = params.get("useHeader", "yes").lower() not in ("no", "false", "0")
    wkt_field = params.get("wktField")
    scan = _Scan()
    wkt_index: int | None = None

    for number, row in enumerate(_rows(located, params)):
        if number == 0:
            names = row if use_header else [f"field_{i + 1}" for i in range(len(row))]
            scan.columns = [
                _ColumnStats(name=_column_name(n, i)) for i, n in enumerate(names)
            ]
            wkt_index = names.index(wkt_field) if wkt_field in names else None
            if use_header:
                continue

        if not any(value.strip() for value in row):
            continue

        scan.rows += 1
        _observe(scan, row, decimal_point)
        if wkt_index is not None and scan.first_wkt is None and wkt_index < len(row):
            scan.first_wkt = row[wkt_index].strip() or None

    return scan


def _observe(scan: _Scan, row: list[str], decimal_point: str) -> None:
    while len(scan.columns) < len(row):
        scan.columns.append(_ColumnStats(name=f"field_{len(scan.columns) + 1}"))
    for column, value in zip(scan.columns, row, strict=False):
        column.observe(value.strip(), decimal_point)


def _column_name(name: str, index: int) -> str:
    return name.strip() or f"field_{index + 1}"


def _rows(located: LocatedFile, params: Mapping[str, str]) -> Iterator[list[str]]:
    encoding = _encoding(params.get("encoding"))
    skip = (
        int(params.get("skipLines") or 0)
        if (params.get("skipLines") or "0").isdigit()
        else 0
    )
    kind = (params.get("type") or "csv").lower()

    with located.path.open(encoding=encoding, errors="replace", newline="") as handle:
        for _ in range(skip):
            handle.readline()

        if kind == "csv":
            yield from _csv_rows(handle, params)
        elif kind == "regexp":
            pattern = re.compile(params.get("delimiter") or ",")
            yield from (pattern.split(line.rstrip("\r\n")) for line in handle)
        else:
            yield from (line.split() for line in handle)


def _csv_rows(handle: Iterator[str], params: Mapping[str, str]) -> Iterator[list[str]]:
    delimiters = _delimiter(params.get("delimiter"))
    quote = params.get("quote", '"')[:1] or None
    escape = params.get("escape", '"')[:1] or None
    if len(delimiters) == 1:
        reader = csv.reader(
            handle,
            delimiter=delimiters,
            quotechar=quote,
            escapechar=escape if escape != quote else None,
            doublequote=escape == quote,
            quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE,
        )
        yield from reader
        return

    # Several delimiter characters: QGIS splits on any of them.
    pattern = re.compile("[" + re.escape(delimiters) + "]")
    yield from (pattern.split(line.rstrip("\r\n")) for line in handle)


def _delimiter(value: str | None) -> str:
    if not value:
        return ","
    return _ESCAPES.get(value.lower(), value.replace("\\t", "\t"))


def _encoding(name: str | None) -> str:
    try:
        return codecs.lookup(name or "utf-8").name
    except LookupError:
        logger.debug("Unknown encoding %s, reading as UTF-8", name)
        return "utf-8"


def _is_real(value: str, decimal_point: str) -> bool:
    try:
        float(value.replace(decimal_point, ".") if decimal_point != "." else value)
    except ValueError:
        return False
    return True


def _geometry_type(params: Mapping[str, str], first_wkt: str | None) -> str:
    if params.get("geomType", "").lower() == "none":
        return "NoGeometry"

    if params.get("xField") and params.get("yField"):
        suffix = ("Z" if params.get("zField") else "") + (
            "M" if params.get("mField") else ""
        )
        return "Point" + suffix

    if params.get("wktField"):
        match = _WKT_HEAD.match(first_wkt or "")
        if match is None:
            return "Unknown"
        return normalise_name(match.group(1) + (match.group(2) or "")) or "Unknown"

    return "NoGeometry"
