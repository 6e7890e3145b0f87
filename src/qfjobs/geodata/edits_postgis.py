"""PostgreSQL / PostGIS layers, edited in one psycopg transaction per database.

Every delta runs in a savepoint (psycopg's nested ``transaction()``); the job's
changes to the database are committed once at the end, each applied delta with
its row in the database's ledger (``deltas_ledger``). All SQL is parameterised,
and table and column names are always quoted with ``psycopg.sql.Identifier``.
Geometries travel as ISO WKB (``ST_GeomFromWKB`` with the column's SRID) and come
back with ``ST_AsBinary``, so curves and Z/M survive. ``lock_timeout`` stops a
delta from waiting for ever on a row someone else holds.

Errors the database raises because of the data (constraints, bad values, wrong
geometry type or SRID, missing privileges) make the delta ``not_applied``.
"""

import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from qfjobs.geodata.deltas_ledger import (
    LedgerEntry,
    ensure_ledger,
    read_entries,
    write_entry,
)
from qfjobs.geodata.edits_geometry import Geometry, GeometryColumn, GeomType
from qfjobs.geodata.edits_store import (
    UNCHANGED,
    Feature,
    FeatureWriteError,
    GeometryChange,
    LayerSchema,
    StoreOpenError,
    feature_from_rows,
    match_pk,
)
from qfjobs.geodata.edits_target import LayerTarget, PostgresLayer, redacted_conninfo
from qfjobs.geodata.edits_values import FieldInfo, FieldKind
from qfjobs.geodata.edits_wkb import from_wkb, to_wkb

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
LOCK_TIMEOUT = "30s"
_TYPE_KINDS = {
    "int2": FieldKind.INTEGER,
    "int4": FieldKind.INTEGER,
    "int8": FieldKind.INTEGER,
    "float4": FieldKind.REAL,
    "float8": FieldKind.REAL,
    "numeric": FieldKind.REAL,
    "bool": FieldKind.BOOLEAN,
    "text": FieldKind.TEXT,
    "varchar": FieldKind.TEXT,
    "bpchar": FieldKind.TEXT,
    "name": FieldKind.TEXT,
    "citext": FieldKind.TEXT,
    "date": FieldKind.DATE,
    "time": FieldKind.TIME,
    "timetz": FieldKind.TIME,
    "timestamp": FieldKind.DATETIME,
    "timestamptz": FieldKind.DATETIME,
    "bytea": FieldKind.BLOB,
    "json": FieldKind.JSON,
    "jsonb": FieldKind.JSON,
    "uuid": FieldKind.UUID,
}
_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname,
       a.attnotnull, a.atthasdef OR a.attidentity <> ''
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_GEOMETRY_COLUMN_SQL = """
SELECT type, coord_dimension, srid FROM geometry_columns
WHERE f_table_schema = %s AND f_table_name = %s AND f_geometry_column = %s
"""
#: Database errors caused by the delta's data rather than by the server.
_DATA_ERRORS = (
    psycopg.errors.IntegrityError,
    psycopg.errors.DataError,
    psycopg.errors.InsufficientPrivilege,
)


class PostgresStore:
    """One database connection and transaction for all layers in it."""

    def __init__(self, conninfo: str) -> None:
        self.label = redacted_conninfo(conninfo)
        extra: dict[str, Any] = {}
        if "connect_timeout" not in conninfo_to_dict(conninfo):
            extra["connect_timeout"] = CONNECT_TIMEOUT_S

        try:
            self.conn = psycopg.connect(conninfo, autocommit=False, **extra)
            self.ledger_missing = ensure_ledger(self.conn)
            self.conn.execute(
                sql.SQL("SET LOCAL lock_timeout = {}").format(LOCK_TIMEOUT)
            )
        except psycopg.Error as exc:
            raise StoreOpenError(f"Cannot connect to {self.label}: {exc}") from exc

        self.changed = False
        self._editors: dict[tuple[str, str, str | None], PostgresLayerEditor] = {}

    def editor(self, target: LayerTarget) -> "PostgresLayerEditor":
        assert isinstance(target, PostgresLayer)
        key = (target.schema, target.table, target.pk_column)
        if key not in self._editors:
            self._editors[key] = PostgresLayerEditor(self, target)

        return self._editors[key]

    def ledger_entries(self, delta_ids: Iterable[str]) -> dict[str, LedgerEntry]:
        if self.ledger_missing is not None:
            return {}

        return read_entries(self.conn, delta_ids)

    def record_delta(self, entry: LedgerEntry) -> None:
        if self.ledger_missing is None:
            write_entry(self.conn, entry)
            self.changed = True

    @contextmanager
    def delta_scope(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def commit(self) -> bool:
        if not self.changed:
            self.conn.rollback()
            return False

        self.conn.commit()
        return True

    def close(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


class PostgresLayerEditor:
    def __init__(self, store: PostgresStore, target: PostgresLayer) -> None:
        self.store = store
        self.conn = store.conn
        self.table = sql.Identifier(target.schema, target.table)
        self.name = f"{target.schema}.{target.table}"
        columns = self.conn.execute(
            _COLUMNS_SQL, (target.schema, target.table)
        ).fetchall()
        if not columns:
            raise StoreOpenError(f'No table "{self.name}" in {store.label}')

        self.geometry = self._geometry_column(target, columns)
        self.schema = self._schema(target, columns)
        self.field_names = list(self.schema.fields)
        self.pk = sql.Identifier(self.schema.pk)
        self._select = self._select_sql()

    def _geometry_column(
        self, target: PostgresLayer, columns: list[tuple[Any, ...]]
    ) -> GeometryColumn | None:
        names = [c[0] for c in columns if c[2] == "geometry"]
        if not target.is_spatial:
            return None

        name = target.geometry_column or (names[0] if len(names) == 1 else None)
        if name is None or name not in names:
            raise StoreOpenError(
                f'Table "{self.name}" has no single geometry column to edit '
                f"(found {', '.join(names) or 'none'})"
            )

        typed = next(c[1] for c in columns if c[0] == name) != "geometry"
        row = self.conn.execute(
            _GEOMETRY_COLUMN_SQL, (target.schema, target.table, name)
        ).fetchone()
        if row is None:
            return GeometryColumn(name, GeomType.GEOMETRY, 0)

        return _geometry_from_catalog(
            name, str(row[0]), int(row[1]), int(row[2]), typed
        )

    def _schema(
        self, target: PostgresLayer, columns: list[tuple[Any, ...]]
    ) -> LayerSchema:
        skipped = {c[0] for c in columns if c[2] in ("geometry", "geography")}
        fields = {
            name: FieldInfo(
                name=name,
                kind=_TYPE_KINDS.get(typname, FieldKind.ANY),
                declared=declared,
                nullable=not notnull,
                has_default=bool(has_default),
            )
            for name, declared, typname, notnull, has_default in columns
            if name not in skipped
        }
        pk = match_pk(fields, target.pk_column, self.name)
        pk_field = fields[pk]
        return LayerSchema(
            fields=fields,
            pk=pk,
            geometry=self.geometry,
            generates_keys=pk_field.has_default,
        )

    def _select_sql(self) -> sql.Composed:
        columns: list[sql.Composable] = [sql.Identifier(n) for n in self.field_names]
        if self.geometry is not None:
            columns.append(
                sql.SQL("ST_AsBinary({})").format(sql.Identifier(self.geometry.name))
            )

        return sql.SQL("SELECT {} FROM {} WHERE {} = %s LIMIT 2").format(
            sql.SQL(", ").join(columns), self.table, self.pk
        )

    def key_from_text(self, text: str) -> Any:
        kind = self.schema.pk_field.kind
        if kind is FieldKind.INTEGER:
            return int(text)

        if kind is FieldKind.UUID:
            return uuid.UUID(text)

        return text

    def read_ahead(self, keys: Sequence[Any]) -> None:
        """Nothing to gain: one query per feature is kept (a round trip each)."""

    def get(self, key: Any) -> Feature | None:
        rows = self._run(self._select, (key,)).fetchall()
        decode = None if self.geometry is None else _decode_wkb
        return feature_from_rows(rows, key, self.name, self.field_names, decode)

    def insert(self, attributes: dict[str, Any], geometry: Geometry | None) -> Any:
        names, values = self._assignments(attributes, geometry, include_geometry=True)
        if names:
            query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
                self.table,
                sql.SQL(", ").join(sql.Identifier(n) for n, _ in names),
                sql.SQL(", ").join(placeholder for _, placeholder in names),
                self.pk,
            )
        else:
            query = sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING {}").format(
                self.table, self.pk
            )

        row = self._run(query, values).fetchone()
        self.store.changed = True
        return None if row is None else row[0]

    def update(
        self, key: Any, attributes: dict[str, Any], geometry: GeometryChange
    ) -> None:
        include = geometry is not UNCHANGED
        names, values = self._assignments(
            attributes,
            None if geometry is UNCHANGED else geometry,
            include_geometry=include,
        )
        if not names:
            return

        query = sql.SQL("UPDATE {} SET {} WHERE {} = %s").format(
            self.table,
            sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(n), placeholder)
                for n, placeholder in names
            ),
            self.pk,
        )
        cursor = self._run(query, (*values, key))
        if cursor.rowcount != 1:
            raise FeatureWriteError(f"Feature {key!r} disappeared while it was updated")

        self.store.changed = True

    def delete(self, key: Any) -> None:
        query = sql.SQL("DELETE FROM {} WHERE {} = %s").format(self.table, self.pk)
        cursor = self._run(query, (key,))
        if cursor.rowcount != 1:
            raise FeatureWriteError(f"Feature {key!r} disappeared while it was deleted")

        self.store.changed = True

    def _assignments(
        self,
        attributes: dict[str, Any],
        geometry: Geometry | None,
        include_geometry: bool,
    ) -> tuple[list[tuple[str, sql.Composable]], list[Any]]:
        names: list[tuple[str, sql.Composable]] = []
        values: list[Any] = []
        for name, value in attributes.items():
            names.append((name, sql.Placeholder()))
            values.append(_to_postgres(value, self.schema.fields[name]))

        if include_geometry and self.geometry is not None:
            if geometry is None:
                names.append((self.geometry.name, sql.SQL("NULL")))
            else:
                names.append((self.geometry.name, sql.SQL("ST_GeomFromWKB(%s, %s)")))
                values.extend([to_wkb(geometry), self.geometry.srid])

        return names, values

    def _run(
        self, query: sql.Composed, params: tuple[Any, ...] | list[Any]
    ) -> psycopg.Cursor[Any]:
        try:
            return self.conn.execute(query, params)
        except _DATA_ERRORS as exc:
            message = (exc.diag.message_primary or str(exc)).strip()
            raise FeatureWriteError(
                f"The database refused the change: {message}"
            ) from exc


def _to_postgres(value: Any, info: FieldInfo) -> Any:
    if value is None:
        return None

    if info.kind is FieldKind.JSON or (
        info.kind is FieldKind.ANY and isinstance(value, dict)
    ):
        return Jsonb(value)

    return value


def _geometry_from_catalog(
    name: str, type_name: str, dimension: int, srid: int, typed: bool
) -> GeometryColumn:
    # geometry_columns says POINTM for XYM, POINT with dimension 3 for XYZ and
    # POINT with dimension 4 for XYZM.
    base = type_name.upper()
    has_m = dimension == 4
    if base.endswith("M") and base[:-1] in GeomType.__members__:
        base, has_m = base[:-1], True

    has_z = dimension == 4 or (dimension == 3 and not has_m)
    geom_type = GeomType.__members__.get(base, GeomType.GEOMETRY)
    if not typed:
        return GeometryColumn(name, geom_type, srid)

    return GeometryColumn(name, geom_type, srid, z=int(has_z), m=int(has_m))


def _decode_wkb(raw: Any) -> Geometry | None:
    return from_wkb(bytes(raw))
