"""Column types that read stored values straight into the text JSON shows.

A job list turns a hundred ids and timestamps into JSON. Parsing each into a
``UUID`` or ``datetime`` only to format it back costs more than the query
itself, so these types go from what the database hands over to the final text
in one step. They are for reading only, through ``type_coerce``, and give the
same text as ``str(uuid)`` and ``datetime.isoformat()`` of the values that
:class:`~sqlalchemy.Uuid` and :class:`~qfjobs.models.timestamps.UTCDateTime`
read.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UuidText(TypeDecorator[str]):
    """A ``Uuid`` column read as its dashed text."""

    impl = String(36)
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, uuid.UUID):  # PostgreSQL's native uuid
            return str(value)
        if len(value) == 32:  # SQLite keeps the 32 hex digits
            return (
                f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
            )
        return str(uuid.UUID(value))


class IsoTimestampText(TypeDecorator[str]):
    """A ``UTCDateTime`` column read as its ISO 8601 text, with ``+00:00``."""

    impl = String()
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, datetime):  # PostgreSQL's timestamptz
            return value.astimezone(UTC).isoformat()
        # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" in UTC; isoformat() leaves
        # out a zero fraction.
        text: str = value.removesuffix(".000000")
        return f"{text[:10]}T{text[11:]}+00:00"
