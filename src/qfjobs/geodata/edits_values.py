"""Attribute values: field kinds, coercion of delta values, type-aware equality.

Deltas carry JSON values; data stores hold typed ones. Every store describes its
columns with a :class:`FieldKind`, and this module does the two conversions the
engine needs:

``coerce(value, field)``
    a delta's ``new`` value as the canonical Python value for that kind (``int``,
    ``float``, ``str``, ``bool``, ``date``, ``time``, ``datetime``, ``bytes``, or
    JSON-like data), or :class:`FieldValueError` when it cannot be one.

``values_equal(current, expected, field)``
    whether the stored value matches the delta's ``old`` value, across the
    representations that mean the same thing:

    * numbers: ``1``, ``1.0`` and ``"1"`` are equal; floats match to 12
      significant digits (a ``numeric`` column returns ``Decimal``);
    * booleans: ``0``/``1``, ``true``/``false`` and their strings;
    * dates, times, datetimes: parsed, compared to the millisecond;
      ``01:23:45`` equals ``01:23:45.000``; a value without timezone is taken
      as UTC, so ``...T01:23:45Z`` equals ``...T01:23:45`` and
      ``...T02:23:45+01:00``;
    * blobs: QField writes a blob as text, so the stored bytes are compared with
      the UTF-8 bytes of the delta's string (``b"foo"`` equals ``"foo"``, as in
      the reference test data); when that differs, the string is also tried as
      base64 (``"Zm9v"`` equals ``b"foo"``), so an encoded blob never raises a
      false conflict. Writing a string into a blob column stores its UTF-8
      bytes, which is what QGIS does with a text value;
    * JSON: compared as parsed data, whatever the spacing of the stored text;
    * text: compared as strings, except that two numeric strings compare as
      numbers.

A JSON ``null`` equals only a stored NULL.
"""

import base64
import binascii
import json
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

logger = logging.getLogger(__name__)

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})
_FLOAT_REL_TOL = 1e-12


class FieldValueError(ValueError):
    """A delta value that a field cannot hold."""


class FieldKind(StrEnum):
    INTEGER = "integer"
    REAL = "real"
    TEXT = "text"
    BOOLEAN = "boolean"
    DATE = "date"
    TIME = "time"
    DATETIME = "datetime"
    BLOB = "blob"
    JSON = "json"
    UUID = "uuid"
    #: No declared type (SQLite without type, schemaless files): stored as given.
    ANY = "any"


@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    kind: FieldKind
    declared: str = ""
    nullable: bool = True
    #: Fixed width (dBASE) or declared length (``TEXT(20)``, ``varchar(20)``).
    width: int | None = None
    #: Decimal places (dBASE ``N`` fields).
    precision: int | None = None
    has_default: bool = False


def kind_from_sqlite_type(declared: str) -> FieldKind:
    """The kind of a SQLite / GeoPackage column from its declared type."""
    name = declared.strip().upper().split("(")[0].strip()
    exact = {
        "BOOLEAN": FieldKind.BOOLEAN,
        "DATE": FieldKind.DATE,
        "DATETIME": FieldKind.DATETIME,
        "TIMESTAMP": FieldKind.DATETIME,
        "TIME": FieldKind.TIME,
        "JSON": FieldKind.JSON,
        "BLOB": FieldKind.BLOB,
        "": FieldKind.ANY,
    }
    if name in exact:
        return exact[name]

    # SQLite's own affinity rules (section 3.1 of its datatype documentation).
    if "INT" in name:
        return FieldKind.INTEGER

    if any(word in name for word in ("CHAR", "CLOB", "TEXT")):
        return FieldKind.TEXT

    if any(word in name for word in ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")):
        return FieldKind.REAL

    return FieldKind.ANY


def coerce(value: Any, field: FieldInfo) -> Any:
    """``value`` (from JSON) as the canonical Python value of ``field``'s kind."""
    if value is None:
        return None

    try:
        return _COERCERS[field.kind](value)
    except (ValueError, TypeError, OverflowError, InvalidOperation) as exc:
        raise FieldValueError(
            f'field "{field.name}" ({field.declared or field.kind.value}) cannot take '
            f"the value {_short(value)}: {exc}"
        ) from exc


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)

    if isinstance(value, int):
        result = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise ValueError("not a whole number")

        result = int(value)
    elif isinstance(value, str):
        result = _int_from_text(value)
    else:
        raise TypeError(f"a {type(value).__name__} is not a number")

    if not _INT64_MIN <= result <= _INT64_MAX:
        raise OverflowError("outside the 64-bit integer range")

    return result


def _int_from_text(text: str) -> int:
    stripped = text.strip()
    try:
        return int(stripped)
    except ValueError:
        number = float(stripped)
        if not number.is_integer():
            raise ValueError("not a whole number") from None

        return int(number)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)

    if isinstance(value, int | float | Decimal):
        result = float(value)
    elif isinstance(value, str):
        result = float(value.strip())
    else:
        raise TypeError(f"a {type(value).__name__} is not a number")

    if not math.isfinite(result):
        raise ValueError("not a finite number")

    return result


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value

    if isinstance(value, bool):
        return "true" if value else "false"

    if isinstance(value, int | float | Decimal | uuid.UUID):
        return str(value)

    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)

    if isinstance(value, date | time):
        return value.isoformat()

    if isinstance(value, bytes):
        return value.decode("utf-8")

    raise TypeError(f"a {type(value).__name__} is not text")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value

    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)

    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True

        if word in _FALSE_WORDS:
            return False

    raise ValueError("not a boolean")


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()

    if isinstance(value, date):
        return value

    if not isinstance(value, str):
        raise TypeError(f"a {type(value).__name__} is not a date")

    text = value.strip()
    if len(text) > 10:
        return parse_datetime(text).date()

    return date.fromisoformat(text.replace("/", "-"))


def parse_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value

    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)

    if not isinstance(value, str):
        raise TypeError(f"a {type(value).__name__} is not a datetime")

    text = value.strip()
    if len(text) >= 10 and text[4] == "/" and text[7] == "/":
        text = text[:10].replace("/", "-") + text[10:]

    return datetime.fromisoformat(text)


def parse_time(value: Any) -> time:
    if isinstance(value, time):
        return value

    if isinstance(value, datetime):
        return value.timetz()

    if not isinstance(value, str):
        raise TypeError(f"a {type(value).__name__} is not a time")

    return time.fromisoformat(value.strip())


def _to_blob(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value

    if isinstance(value, str):
        return value.encode("utf-8")

    raise TypeError(f"a {type(value).__name__} is not a blob")


def _to_uuid(value: Any) -> str:
    return str(uuid.UUID(str(value)))


def _as_is(value: Any) -> Any:
    return value


_COERCERS: dict[FieldKind, Callable[[Any], Any]] = {
    FieldKind.INTEGER: _to_int,
    FieldKind.REAL: _to_float,
    FieldKind.TEXT: _to_text,
    FieldKind.BOOLEAN: _to_bool,
    FieldKind.DATE: parse_date,
    FieldKind.TIME: parse_time,
    FieldKind.DATETIME: parse_datetime,
    FieldKind.BLOB: _to_blob,
    FieldKind.JSON: _as_is,
    FieldKind.UUID: _to_uuid,
    FieldKind.ANY: _as_is,
}


def values_equal(current: Any, expected: Any, field: FieldInfo) -> bool:
    """Whether the stored ``current`` matches the delta's ``expected`` value."""
    if current is None or expected is None:
        return current is None and expected is None

    if current == expected and type(current) is type(expected):
        return True

    if (
        type(current) is int
        and type(expected) is int
        and field.kind is not FieldKind.BOOLEAN
    ):
        return False  # what every comparer but the boolean one concludes

    if type(current) is str and type(expected) is str and field.kind is FieldKind.TEXT:
        # What _texts_equal concludes for two different texts.
        return (
            _is_number_like(current)
            and _is_number_like(expected)
            and _numbers_equal(current, expected)
        )

    comparer = _COMPARERS.get(field.kind, _loose_equal)
    try:
        return bool(comparer(current, expected))
    except (ValueError, TypeError, OverflowError, InvalidOperation):
        return _text_of(current) == _text_of(expected)


def _numbers_equal(a: Any, b: Any) -> bool:
    if type(a) is int and type(b) is int:
        return a == b

    fa, fb = _to_float(a), _to_float(b)
    return math.isclose(fa, fb, rel_tol=_FLOAT_REL_TOL, abs_tol=0.0)


def _integers_equal(a: Any, b: Any) -> bool:
    try:
        return _to_int(a) == _to_int(b)
    except ValueError:
        return _numbers_equal(a, b)


def _bools_equal(a: Any, b: Any) -> bool:
    return _to_bool(a) == _to_bool(b)


def _dates_equal(a: Any, b: Any) -> bool:
    return parse_date(a) == parse_date(b)


def _datetimes_equal(a: Any, b: Any) -> bool:
    return _utc_ms(parse_datetime(a)) == _utc_ms(parse_datetime(b))


def _utc_ms(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)

    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _times_equal(a: Any, b: Any) -> bool:
    ta, tb = parse_time(a), parse_time(b)
    return _time_ms(ta) == _time_ms(tb)


def _time_ms(value: time) -> timedelta:
    offset = value.utcoffset() or timedelta(0)
    whole = (
        timedelta(hours=value.hour, minutes=value.minute, seconds=value.second) - offset
    )
    return whole + timedelta(milliseconds=value.microsecond // 1000)


def _blobs_equal(current: Any, expected: Any) -> bool:
    stored = (
        _to_blob(current) if not isinstance(current, memoryview) else bytes(current)
    )
    if isinstance(expected, bytes):
        return stored == expected

    if not isinstance(expected, str):
        return False

    if stored == expected.encode("utf-8"):
        return True

    try:
        return bool(stored == base64.b64decode(expected, validate=True))
    except (binascii.Error, ValueError):
        return False


def _json_equal(current: Any, expected: Any) -> bool:
    return bool(_json_value(current) == _json_value(expected))


def _json_value(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value

    return value


def _texts_equal(current: Any, expected: Any) -> bool:
    if _text_of(current) == _text_of(expected):
        return True

    if _is_number_like(current) and _is_number_like(expected):
        return _numbers_equal(current, expected)

    if isinstance(expected, dict | list) or isinstance(current, dict | list):
        return _json_equal(current, expected)

    return False


def _loose_equal(current: Any, expected: Any) -> bool:
    if _is_number_like(current) and _is_number_like(expected):
        return _numbers_equal(current, expected)

    if isinstance(current, bytes) or isinstance(expected, bytes):
        return _blobs_equal(current, expected)

    return _texts_equal(current, expected)


def _uuids_equal(current: Any, expected: Any) -> bool:
    return uuid.UUID(str(current)) == uuid.UUID(str(expected))


def _is_number_like(value: Any) -> bool:
    if isinstance(value, bool):
        return False

    if isinstance(value, int | float | Decimal):
        return True

    if isinstance(value, str):
        # A finite number's text starts, after blanks and a sign, with a
        # digit or a point; most other texts are refused without float().
        text = value.lstrip()
        if text[:1] in ("+", "-"):
            text = text[1:]
        if not text or not (text[0].isdecimal() or text[0] == "."):
            return False
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False

    return False


def _text_of(value: Any) -> str:
    try:
        return _to_text(value)
    except (TypeError, UnicodeDecodeError):
        return repr(value)


_COMPARERS: dict[FieldKind, Callable[[Any, Any], bool]] = {
    FieldKind.INTEGER: _integers_equal,
    FieldKind.REAL: _numbers_equal,
    FieldKind.TEXT: _texts_equal,
    FieldKind.BOOLEAN: _bools_equal,
    FieldKind.DATE: _dates_equal,
    FieldKind.TIME: _times_equal,
    FieldKind.DATETIME: _datetimes_equal,
    FieldKind.BLOB: _blobs_equal,
    FieldKind.JSON: _json_equal,
    FieldKind.UUID: _uuids_equal,
    FieldKind.ANY: _loose_equal,
}


def display(value: Any) -> str:
    """A value as shown in conflict and error messages."""
    if value is None:
        return "NULL"

    if isinstance(value, bytes | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + raw.hex()

    return _text_of(value)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
