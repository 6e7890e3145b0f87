"""SQL expressions that give stored ids and timestamps as the text JSON shows.

A job list turns a hundred ids and timestamps into JSON. Parsing each into a
``UUID`` or ``datetime`` in Python, only to format it back, costs more than
the query itself, so the database writes the final text: the same as
``str(uuid)`` and ``datetime.isoformat()`` of the values that
:class:`~sqlalchemy.Uuid` and :class:`~qfjobs.models.timestamps.UTCDateTime`
read (UTC, ``+00:00``, no fraction when it is zero). One form per database.
"""

from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class UuidText(FunctionElement[str]):
    """A ``Uuid`` column as its dashed lower-case text."""

    type = String()
    inherit_cache = True


class TimestampText(FunctionElement[str]):
    """A ``UTCDateTime`` column as ISO 8601 text."""

    type = String()
    inherit_cache = True


@compiles(UuidText, "sqlite")
def _uuid_text_sqlite(element: UuidText, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps the 32 lower-case hex digits.
    column = compiler.process(element.clauses, **kw)
    parts = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
    return " || '-' || ".join(f"substr({column}, {a}, {n})" for a, n in parts)


@compiles(UuidText, "postgresql")
def _uuid_text_postgresql(element: UuidText, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS TEXT)"


@compiles(TimestampText, "sqlite")
def _timestamp_text_sqlite(
    element: TimestampText, compiler: SQLCompiler, **kw: Any
) -> str:
    # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" in UTC.
    column = compiler.process(element.clauses, **kw)
    return (
        f"substr({column}, 1, 10) || 'T' || CASE WHEN substr({column}, 20)"
        f" = '.000000' THEN substr({column}, 12, 8) ELSE substr({column}, 12) END"
        " || '+00:00'"
    )


@compiles(TimestampText, "postgresql")
def _timestamp_text_postgresql(
    element: TimestampText, compiler: SQLCompiler, **kw: Any
) -> str:
    column = compiler.process(element.clauses, **kw)
    return (
        f"replace(to_char({column} AT TIME ZONE 'UTC',"
        " 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || '+00:00'"
    )
