"""Hot statements run straight on the database driver's cursor.

Every API request checks its token, and a polled job list answered from
memory does little else. For such a one-row query ``Connection.execute``
(execution context, result object, row processing) costs about 27 us where
SQLite itself takes 4 us: a fifth of a cached list request.

A :class:`DriverStatement` is still written in Core and compiled by
SQLAlchemy, once per dialect, and its bound values still go through their
SQL types' bind processors. Only running it is done here: the compiled SQL
goes to the DBAPI cursor of the connection, and the row comes back as the
driver gives it. That limits it to statements whose result columns need no
conversion: integers, text, and booleans (SQLite gives 0 or 1).

What is given up: SQLAlchemy's statement events (``echo`` logging does not
show these statements) and its handling of driver errors. On a driver error
the statement is run once more through ``Connection.execute``, which raises
SQLAlchemy's error and, if the connection was lost, invalidates it so that it
is not handed on to the next request.
"""

from collections import namedtuple
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional_names: tuple[str, ...] | None
    defaults: dict[str, Any]
    processors: dict[str, Any]
    row_type: Any

    def parameters(self, values: dict[str, Any]) -> Any:
        merged = {**self.defaults, **values}
        for name, process in self.processors.items():
            merged[name] = process(merged[name])
        if self.positional_names is None:
            return merged
        return [merged[name] for name in self.positional_names]


class DriverStatement:
    """A Core ``SELECT`` whose rows are read straight off the driver."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def first(self, bind: Session | Connection, values: dict[str, Any]) -> Any:
        """The first row (a named tuple of the selected columns), or None."""
        connection = bind.connection() if isinstance(bind, Session) else bind
        compiled = self._compiled.get(connection.dialect.name)
        if compiled is None:
            compiled = self._compile(connection.dialect)
        parameters = compiled.parameters(values)

        try:
            cursor = connection.connection.cursor()
            try:
                cursor.execute(compiled.sql, parameters)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except connection.dialect.loaded_dbapi.Error:
            found = connection.execute(self.statement, values).first()
            return None if found is None else compiled.row_type._make(found)
        return None if row is None else compiled.row_type._make(row)

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        if compiled.post_compile_params or compiled.escaped_bind_names:
            raise ValueError("expanding or escaped parameters are not supported")
        processors = {}
        defaults = {}
        for name, parameter in compiled.binds.items():
            process = parameter.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[name] = process
            if not parameter.required:
                defaults[name] = parameter.effective_value
        result = _Compiled(
            sql=compiled.string,
            positional_names=tuple(compiled.positiontup or ())
            if compiled.positional
            else None,
            defaults=defaults,
            processors=processors,
            row_type=namedtuple("DriverRow", self.statement.selected_columns.keys()),
        )
        self._compiled[dialect.name] = result
        return result
