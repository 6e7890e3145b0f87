"""dBASE (``.dbf``) tables as shapefiles use them, read and written natively.

Field definitions (names, types, widths, decimals) are kept exactly, which a
rewrite through GDAL would not do. Values follow shapelib's conventions, which
GDAL and QGIS read: text is padded with spaces and an empty text is NULL; a NULL
number is written as ``*``, a NULL date as ``00000000``, a NULL logical as ``?``.
A value that does not fit its field's width raises ``FeatureWriteError``: dBASE
would truncate it, and silent truncation loses data. Memo and other field types
are kept as they are and cannot be edited.
"""

import logging
import struct
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from qfjobs.geodata.edits_store import FeatureWriteError
from qfjobs.geodata.edits_values import FieldInfo, FieldKind

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("<BBBBIHH20s")
_FIELD = struct.Struct("<11sc4xBB14x")
_TERMINATOR = 0x0D
_EOF = 0x1A
#: Language driver ids of common code pages (dBASE byte 29).
LANGUAGE_DRIVERS = {
    0x01: "cp437",
    0x02: "cp850",
    0x03: "cp1252",
    0x57: "cp1252",
    0x58: "cp1252",
    0x59: "cp1252",
    0x64: "cp852",
    0x65: "cp866",
    0x7D: "cp1255",
    0x7E: "cp1256",
    0xC8: "cp1250",
    0xC9: "cp1251",
    0xCA: "cp1254",
    0xCB: "cp1253",
}
_TRUE = b"TtYy"
_FALSE = b"FfNn"


@dataclass(frozen=True, slots=True)
class DbfField:
    name: str
    type: str
    length: int
    decimals: int
    offset: int

    def info(self) -> FieldInfo:
        return FieldInfo(
            name=self.name,
            kind=_kind(self.type, self.decimals),
            declared=f"{self.type}({self.length},{self.decimals})",
            width=self.length,
            precision=self.decimals,
        )


@dataclass(slots=True)
class DbfTable:
    prefix: bytes
    descriptors: bytes
    fields: list[DbfField]
    record_length: int
    language_driver: int
    records: list[bytes]


def _kind(type_char: str, decimals: int) -> FieldKind:
    if type_char == "C":
        return FieldKind.TEXT

    if type_char in "NF":
        return FieldKind.INTEGER if decimals == 0 else FieldKind.REAL

    if type_char == "L":
        return FieldKind.BOOLEAN

    if type_char == "D":
        return FieldKind.DATE

    return FieldKind.ANY


def read_dbf(data: bytes, encoding: str) -> DbfTable:
    if len(data) < 33:
        raise ValueError("the .dbf file is too short")

    _, _, _, _, count, header_length, record_length, _ = _HEADER.unpack_from(data, 0)
    fields: list[DbfField] = []
    offset = 1
    position = 32
    while position + 32 <= header_length and data[position] != _TERMINATOR:
        raw_name, raw_type, length, decimals = _FIELD.unpack_from(data, position)
        name = raw_name.split(b"\x00", 1)[0].decode(encoding, errors="replace").strip()
        fields.append(
            DbfField(name, raw_type.decode("ascii"), length, decimals, offset)
        )
        offset += length
        position += 32

    records = [
        data[
            header_length + i * record_length : header_length + (i + 1) * record_length
        ]
        for i in range(count)
    ]
    if any(len(r) != record_length for r in records):
        raise ValueError("the .dbf file is shorter than its header says")

    return DbfTable(
        prefix=data[:32],
        descriptors=data[32:header_length],
        fields=fields,
        record_length=record_length,
        language_driver=data[29],
        records=records,
    )


def is_deleted(record: bytes) -> bool:
    return record[:1] == b"*"


def decode_record(table: DbfTable, record: bytes, encoding: str) -> dict[str, Any]:
    return {
        f.name: _decode_value(f, record[f.offset : f.offset + f.length], encoding)
        for f in table.fields
    }


def _decode_value(field: DbfField, raw: bytes, encoding: str) -> Any:
    if field.type == "C":
        text = raw.decode(encoding, errors="replace").rstrip(" \x00")
        return text or None

    text = raw.decode("ascii", errors="replace").strip(" \x00")
    if field.type in "NF":
        return _number(text, field.decimals)

    if field.type == "L":
        first = text[:1].encode()
        if first and first in _TRUE:
            return True

        return False if first and first in _FALSE else None

    if field.type == "D":
        if not text.strip("0"):
            return None

        try:
            return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            return None

    return raw


def _number(text: str, decimals: int) -> int | float | None:
    if not text or text.startswith("*"):
        return None

    try:
        if decimals == 0 and "." not in text and "e" not in text.lower():
            return int(text)

        return float(text)
    except ValueError:
        return None


def encode_record(
    table: DbfTable, values: dict[str, Any], encoding: str, original: bytes | None
) -> bytes:
    """One record with its deletion flag; ``FeatureWriteError`` if a value won't fit."""
    parts = [b" "]
    for field in table.fields:
        if field.type not in "CNFLD":
            raw = (
                original[field.offset : field.offset + field.length]
                if original
                else None
            )
            parts.append(raw or b" " * field.length)
            continue

        parts.append(_encode_value(field, values.get(field.name), encoding))

    return b"".join(parts)


def _encode_value(field: DbfField, value: Any, encoding: str) -> bytes:
    if field.type == "C":
        raw = b"" if value is None else str(value).encode(encoding)
        return _fit(field, raw, left_align=True)

    if field.type in "NF":
        if value is None:
            return b"*" * field.length

        return _fit(field, _number_text(value, field).encode("ascii"), left_align=False)

    if field.type == "L":
        return _fit(
            field, b"?" if value is None else b"T" if value else b"F", left_align=True
        )

    if value is None:
        return b"0" * field.length

    day = value.date() if isinstance(value, datetime) else value
    return _fit(field, day.strftime("%Y%m%d").encode("ascii"), left_align=True)


def _number_text(value: Any, field: DbfField) -> str:
    if field.decimals == 0:
        return str(int(value))

    return f"{float(value):.{field.decimals}f}"


def _fit(field: DbfField, raw: bytes, left_align: bool) -> bytes:
    if len(raw) > field.length:
        raise FeatureWriteError(
            f'The value for "{field.name}" needs {len(raw)} characters; the field '
            f"holds {field.length}"
        )

    pad = b" " * (field.length - len(raw))
    return raw + pad if left_align else pad + raw


def write_dbf(table: DbfTable, records: list[bytes], today: date) -> bytes:
    header = bytearray(table.prefix)
    header[1:4] = bytes((today.year - 1900, today.month, today.day))
    struct.pack_into("<I", header, 4, len(records))
    return bytes(header) + table.descriptors + b"".join(records) + bytes([_EOF])
