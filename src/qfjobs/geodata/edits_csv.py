"""CSV layers (GDAL's CSV driver, as QGIS edits them), rewritten on commit.

The file keeps its format: the header line, the delimiter (``,``, ``;``, tab or
``|``, detected from the header), the line ending, a UTF-8 byte-order mark, and
every row no delta touched, byte for byte. Changed and new rows are written with
the quoting each column already uses: a column whose values are all quoted gets
quoted values (GDAL quotes number-like text, hence ``"1",foo``), other columns
are quoted only where needed. A column with no values yet quotes number-like
text, as GDAL does.

Types come from a ``.csvt`` sidecar when there is one; without it every column
is text, as for GDAL. A geometry is read from and written to a ``WKT`` column
(GDAL's default); X/Y columns are not supported for writing.
"""

import csv
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from qfjobs.geodata.edits_geometry import GeometryColumn, GeometryValueError, GeomType
from qfjobs.geodata.edits_memory import MemoryLayer, MemoryRow, RewriteStore
from qfjobs.geodata.edits_sqlite import format_datetime
from qfjobs.geodata.edits_store import LayerSchema, StoreOpenError, match_pk
from qfjobs.geodata.edits_swap import replace_file
from qfjobs.geodata.edits_target import FileLayer
from qfjobs.geodata.edits_values import FieldInfo, FieldKind
from qfjobs.geodata.edits_wkt import parse_wkt, to_wkt

logger = logging.getLogger(__name__)

_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_DELIMITERS = (",", ";", "\t", "|")
_BOM = "\ufeff"
_NUMBER_LIKE = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*\Z")
_CSVT_KINDS = {
    "INTEGER": FieldKind.INTEGER,
    "INTEGER64": FieldKind.INTEGER,
    "REAL": FieldKind.REAL,
    "STRING": FieldKind.TEXT,
    "DATE": FieldKind.DATE,
    "TIME": FieldKind.TIME,
    "DATETIME": FieldKind.DATETIME,
    "INTEGER(BOOLEAN)": FieldKind.BOOLEAN,
    "JSON": FieldKind.JSON,
}


@dataclass(frozen=True, slots=True)
class _Dialect:
    delimiter: str
    newline: str
    bom: bool
    encoding: str


class CsvStore(RewriteStore):
    def __init__(self, path: Path, encoding: str | None) -> None:
        super().__init__(path)
        self.encoding = encoding or "utf-8"
        self.dialect: _Dialect | None = None
        self.header_raw = ""
        self.columns: list[str] = []
        self.quote_modes: list[str] = []
        self.wkt_column: str | None = None

    def load(self, target: FileLayer) -> MemoryLayer:
        text, bom = self._read_text()
        lines = _LINES.findall(text)
        if not lines:
            raise StoreOpenError(f"{self.path} is empty: it has no header line")

        self.dialect = _Dialect(
            delimiter=_detect_delimiter(self.path, lines[0]),
            newline=_line_ending(lines[0]),
            bom=bom,
            encoding=self.encoding,
        )
        records = _records(lines, self.dialect.delimiter)
        self.header_raw, header = records[0]
        self.columns = header
        kinds = self._column_kinds(header)
        self.wkt_column = self._wkt_column(header, kinds, target.is_spatial)
        rows = [self._row(raw, values, kinds) for raw, values in records[1:]]
        self.quote_modes = _quote_modes(
            records[1:], len(header), self.dialect.delimiter
        )
        return MemoryLayer(self._schema(header, kinds, target), rows)

    def _read_text(self) -> tuple[str, bool]:
        data = self.path.read_bytes()
        try:
            text = data.decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise StoreOpenError(
                f"{self.path} is not {self.encoding} text: {exc}"
            ) from exc

        if text.startswith(_BOM):
            return text[1:], True

        return text, False

    def _column_kinds(self, header: list[str]) -> list[FieldKind]:
        csvt = self.path.with_suffix(".csvt")
        if not csvt.exists():
            return [FieldKind.TEXT] * len(header)

        names = next(csv.reader([csvt.read_text("utf-8").strip()]), [])
        kinds = []
        for i in range(len(header)):
            declared = names[i].strip().upper() if i < len(names) else "STRING"
            kinds.append(
                _CSVT_KINDS.get(
                    re.sub(r"\(\d+(\.\d+)?\)", "", declared), FieldKind.TEXT
                )
            )

        return kinds

    def _wkt_column(
        self, header: list[str], kinds: list[FieldKind], spatial: bool
    ) -> str | None:
        if not spatial:
            return None

        for name in header:
            if name.upper() == "WKT":
                return name

        raise StoreOpenError(
            f"{self.path}: only CSV geometries in a WKT column can be edited"
        )

    def _row(self, raw: str, values: list[str], kinds: list[FieldKind]) -> MemoryRow:
        attributes: dict[str, Any] = {}
        geometry = None
        for i, name in enumerate(self.columns):
            value: str | None = values[i] if i < len(values) else None
            if value == "" and kinds[i] is not FieldKind.TEXT:
                value = None

            if name == self.wkt_column:
                geometry = _read_wkt(value)
            else:
                attributes[name] = value

        return MemoryRow(attributes, geometry, source=raw)

    def _schema(
        self, header: list[str], kinds: list[FieldKind], target: FileLayer
    ) -> LayerSchema:
        fields = {
            name: FieldInfo(name, kind, declared=kind.value)
            for name, kind in zip(header, kinds, strict=True)
            if name != self.wkt_column
        }
        pk = match_pk(fields, target.pk_column, self.path.name)
        geometry = (
            GeometryColumn(self.wkt_column, GeomType.GEOMETRY, 0)
            if self.wkt_column
            else None
        )
        return LayerSchema(fields=fields, pk=pk, geometry=geometry)

    def save(self, layer: MemoryLayer) -> None:
        assert self.dialect is not None
        dialect = self.dialect
        parts = [self.header_raw]
        for row in layer.live_rows():
            text = row.source if not row.changed else self._format(row)
            if not parts[-1].endswith(("\n", "\r")):
                parts[-1] += dialect.newline

            parts.append(text)

        content = (_BOM if dialect.bom else "") + "".join(parts)
        replace_file(self.path, content.encode(dialect.encoding))

    def _format(self, row: MemoryRow) -> str:
        assert self.dialect is not None
        texts = []
        for i, name in enumerate(self.columns):
            if name == self.wkt_column:
                value: Any = None if row.geometry is None else to_wkt(row.geometry)
            else:
                value = row.attributes.get(name)

            texts.append(
                _field_text(_text(value), self.quote_modes[i], self.dialect.delimiter)
            )

        return self.dialect.delimiter.join(texts) + self.dialect.newline


def _read_wkt(value: str | None) -> Any:
    if not value:
        return None

    try:
        return parse_wkt(value)
    except GeometryValueError:
        logger.warning(
            "Unreadable WKT in a CSV row is read as no geometry: %.60s", value
        )
        return None


def _detect_delimiter(path: Path, header: str) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"

    counts = {d: _count_outside_quotes(header, d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _count_outside_quotes(line: str, delimiter: str) -> int:
    count, quoted = 0, False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif char == delimiter and not quoted:
            count += 1

    return count


def _line_ending(line: str) -> str:
    for ending in ("\r\n", "\n", "\r"):
        if line.endswith(ending):
            return ending

    return "\n"


def _records(lines: list[str], delimiter: str) -> list[tuple[str, list[str]]]:
    """Parsed records with the raw text each was read from."""
    reader = csv.reader(iter(lines), delimiter=delimiter, quotechar='"', strict=False)
    records: list[tuple[str, list[str]]] = []
    consumed = 0
    for values in reader:
        raw = "".join(lines[consumed : reader.line_num])
        consumed = reader.line_num
        if values or raw.strip():
            records.append((raw, values))

    return records


def _quoted_flags(raw: str, delimiter: str) -> list[bool]:
    """Which fields of one raw record are written in quotes."""
    flags: list[bool] = []
    text = raw.rstrip("\r\n")
    i = 0
    while True:
        if i < len(text) and text[i] == '"':
            flags.append(True)
            i += 1
            while i < len(text):
                if text[i] == '"' and i + 1 < len(text) and text[i + 1] == '"':
                    i += 2
                elif text[i] == '"':
                    i += 1
                    break
                else:
                    i += 1
        else:
            flags.append(False)

        end = text.find(delimiter, i)
        if end < 0:
            return flags

        i = end + 1


def _quote_modes(
    records: list[tuple[str, list[str]]], width: int, delimiter: str
) -> list[str]:
    """How each column quotes its values: always, only when needed, or unknown."""
    quoted = [0] * width
    plain = [0] * width
    for raw, values in records:
        flags = _quoted_flags(raw, delimiter)
        for column in range(min(width, len(flags), len(values))):
            if values[column] == "":
                continue

            if flags[column]:
                quoted[column] += 1
            else:
                plain[column] += 1

    modes = []
    for q, p in zip(quoted, plain, strict=True):
        modes.append("always" if q and not p else "needed" if p else "number-like")

    return modes


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value

    if isinstance(value, bool):
        return "1" if value else "0"

    if isinstance(value, float):
        return repr(value)

    if isinstance(value, datetime):
        return format_datetime(value)

    if isinstance(value, date | time):
        return value.isoformat()

    return str(value)


def _field_text(text: str | None, mode: str, delimiter: str) -> str:
    if text is None:
        return ""

    needs = any(c in text for c in (delimiter, '"', "\n", "\r"))
    wanted = (mode == "always" and text != "") or (
        mode == "number-like" and bool(_NUMBER_LIKE.match(text))
    )
    if needs or wanted:
        return '"' + text.replace('"', '""') + '"'

    return text
