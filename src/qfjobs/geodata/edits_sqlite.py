"""GeoPackage, SpatiaLite and other SQLite files, edited with Python's sqlite3.

One :class:`SqliteStore` per file holds one ``BEGIN IMMEDIATE`` transaction for
the whole job; each delta runs in a ``SAVEPOINT``. The page cache is large and
never spilled, so the data file itself is not written before ``COMMIT``; from
then on SQLite's own journal (or WAL) makes the commit atomic, and a reader that
opens the file after a crash rolls a half-written commit back. A WAL database is
checkpointed after the commit so the single ``.gpkg`` file holds everything.

GeoPackage housekeeping done here: geometry blobs with header and envelope
(``edits_blobs``), the SQL functions the rtree triggers call (``edits_sqlfuncs``)
so the spatial index stays right, ``gpkg_contents.last_change`` and its extent
(grown, never shrunk, like GDAL), and ``gpkg_ogr_contents.feature_count`` when the
file has no triggers maintaining it. SpatiaLite: blobs, ``GeometryConstraints``
and the spatial index via ``RTreeAlign``. SQLite files written by GDAL without
SpatiaLite (``geometry_format`` WKB or WKT) work as well.

Not handled: a SpatiaLite "MbrCache", triggers that call SQL functions not listed
in ``edits_sqlfuncs`` (the delta then fails naming the function), and updating
SpatiaLite's layer statistics tables.
"""

import json
import logging
import sqlite3
import urllib.parse
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from qfjobs.geodata.edits_blobs import (
    decode_gpkg,
    decode_spatialite,
    encode_gpkg,
    encode_spatialite,
)
from qfjobs.geodata.edits_geometry import (
    Envelope,
    Geometry,
    GeometryColumn,
    GeometryValueError,
    GeomType,
)
from qfjobs.geodata.edits_sqlfuncs import (
    RTreeQueue,
    register_gpkg_functions,
    register_spatialite_functions,
)
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
from qfjobs.geodata.edits_target import FileLayer, LayerTarget
from qfjobs.geodata.edits_values import (
    FieldInfo,
    FieldKind,
    coerce,
    kind_from_sqlite_type,
)
from qfjobs.geodata.edits_wkb import from_wkb, to_wkb
from qfjobs.geodata.edits_wkt import parse_wkt, to_wkt

logger = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
_GPKG_APPLICATION_IDS = frozenset({0x47504B47, 0x47503130, 0x47503131})
#: Page cache in KiB (negative ``cache_size``): big enough that a job's changes
#: stay in memory until COMMIT.
_CACHE_KIB = 512 * 1024
#: Value types SQLite stores as they are.
_AS_IS = frozenset({int, float, str, bytes, type(None)})
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: Keys per query when an editor reads features ahead.
_READ_AHEAD_CHUNK = 500
#: Name prefixes of the triggers GeoPackage and GDAL create; none of them
#: writes to a feature table.
_OWN_TRIGGERS = (
    "rtree_",
    "gpkg_",
    "trigger_insert_feature_count_",
    "trigger_delete_feature_count_",
)


class SqliteFlavour(StrEnum):
    GEOPACKAGE = "GeoPackage"
    SPATIALITE = "SpatiaLite"
    OGR_SQLITE = "SQLite"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def is_sqlite_file(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(16) == SQLITE_MAGIC
    except OSError:
        return False


@dataclass
class _TableChanges:
    envelope: Envelope | None = None
    inserted: int = 0
    deleted: int = 0

    def merge(self, other: "_TableChanges") -> None:
        if other.envelope is not None:
            self.envelope = other.envelope.union(self.envelope)

        self.inserted += other.inserted
        self.deleted += other.deleted


@dataclass
class _GeometryCodec:
    encode: Callable[[Geometry], Any]
    decode: Callable[[Any], Geometry | None]


class SqliteStore:
    """One SQLite-based data file, one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)
        self.conn = _connect(path)
        self.flavour = _detect_flavour(self.conn)
        self.rtree_queue = RTreeQueue()
        self._register_functions()
        self._journal_mode = str(self.conn.execute("PRAGMA journal_mode").fetchone()[0])
        self._editors: dict[str, SqliteLayerEditor] = {}
        self._changes: dict[str, _TableChanges] = {}
        self._pending: dict[str, _TableChanges] | None = None
        self._scope_writes = 0
        #: A delta failed after writing: nothing of this store may be committed.
        self.poisoned = False
        self._savepoints = self.flavour is not SqliteFlavour.GEOPACKAGE
        self._scope = _DeltaScope(self)
        self._begin()

    def _register_functions(self) -> None:
        if self.flavour is SqliteFlavour.GEOPACKAGE:
            register_gpkg_functions(self.conn)
        else:
            register_spatialite_functions(self.conn, self.rtree_queue)

    def _begin(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            self.conn.close()
            raise StoreOpenError(f"Cannot lock {self.path} for writing: {exc}") from exc

    def editor(self, target: LayerTarget) -> "SqliteLayerEditor":
        assert isinstance(target, FileLayer)
        table = target.layer_name or self._only_table()
        key = f"{table.casefold()}|{target.pk_column}"
        if key not in self._editors:
            self._editors[key] = SqliteLayerEditor(self, table, target)

        return self._editors[key]

    def sole_editor(self, editor: "SqliteLayerEditor") -> bool:
        """Whether ``editor`` is the only editor of its table in this store."""
        table = editor.table.casefold()
        return all(
            other is editor or other.table.casefold() != table
            for other in self._editors.values()
        )

    def rows_change_only_when_written(self, table: str) -> bool:
        """Whether rows of ``table`` change only through statements on them.

        False when the database has a trigger that is not one of GeoPackage's
        and GDAL's own (spatial index, feature count, tile matrix checks: they
        never write feature tables), or the table's definition holds a
        ``REPLACE`` conflict clause or a collation. Triggers are told apart by
        name: one someone named like GeoPackage's own (``rtree_...``) is
        trusted.
        """
        triggers = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        ).fetchall()
        if any(not str(name).startswith(_OWN_TRIGGERS) for (name,) in triggers):
            return False

        row = self.conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' "
            "AND lower(name) = lower(?)",
            (table,),
        ).fetchone()
        definition = str(row[0] if row else "").upper()
        return "REPLACE" not in definition and "COLLATE" not in definition

    def _only_table(self) -> str:
        if self.flavour is SqliteFlavour.GEOPACKAGE:
            rows = self.conn.execute(
                "SELECT table_name FROM gpkg_contents "
                "WHERE data_type IN ('features', 'attributes')"
            ).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'idx_%' "
                "AND name NOT IN ('geometry_columns', 'spatial_ref_sys')"
            ).fetchall()

        if len(rows) != 1:
            raise StoreOpenError(
                f"{self.path} has several tables; the layer name is missing"
            )

        return str(rows[0][0])

    def delta_scope(self) -> "_DeltaScope":
        """Undo everything the block wrote if it raises.

        GeoPackage editors write each delta with one statement, and SQLite backs
        out a failed statement by itself, so no savepoint is needed there: the
        scope only counts successful writes. Should a block ever raise after
        one of its writes went through, the whole store is poisoned (rolled
        back at close, every delta of it reported as an error) rather than
        keeping half a delta. Other flavours write more than one statement per
        delta (the SpatiaLite index) and get a real savepoint.
        """
        return self._scope

    def enter_scope(self) -> None:
        self._pending = {}
        self._scope_writes = 0
        if self._savepoints:
            self.conn.execute("SAVEPOINT qfjobs_delta")

    def leave_scope(self, failed: bool) -> None:
        pending, self._pending = self._pending, None
        if failed:
            if self._savepoints:
                self.conn.execute("ROLLBACK TO qfjobs_delta")
                self.conn.execute("RELEASE qfjobs_delta")
            elif self._scope_writes:
                self.poisoned = True
            self.rtree_queue.pending.clear()
            return

        if self._savepoints:
            self.conn.execute("RELEASE qfjobs_delta")
        for table, change in (pending or {}).items():
            self._changes.setdefault(table, _TableChanges()).merge(change)

    def note_write(self) -> None:
        self._scope_writes += 1

    def note_change(self, table: str, change: _TableChanges | None = None) -> None:
        """``table`` changed; ``change`` says how, when it is more than
        attributes of existing rows."""
        pending = self._pending if self._pending is not None else self._changes
        known = pending.get(table)
        if known is None:
            known = pending[table] = _TableChanges()
        if change is not None:
            known.merge(change)

    def flush_rtree_queue(self) -> None:
        queue = self.rtree_queue.pending
        while queue:
            index_name, rowid, env = queue.pop(0)
            self.conn.execute(
                f"INSERT INTO {quote_identifier(index_name)} "
                "(pkid, xmin, xmax, ymin, ymax) VALUES (?, ?, ?, ?, ?)",
                (rowid, env.min_x, env.max_x, env.min_y, env.max_y),
            )

    def commit(self) -> bool:
        if self.poisoned:
            self.conn.execute("ROLLBACK")
            raise RuntimeError(
                "a delta failed after part of it was written; nothing of "
                f"{self.path} was saved"
            )

        if not self._changes:
            self.conn.execute("ROLLBACK")
            return False

        if self.flavour is SqliteFlavour.GEOPACKAGE:
            self._update_gpkg_metadata()

        self.conn.execute("COMMIT")
        if self._journal_mode.lower() == "wal":
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        return True

    def _update_gpkg_metadata(self) -> None:
        for table, change in self._changes.items():
            self.conn.execute(
                "UPDATE gpkg_contents SET last_change = "
                "strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                "WHERE lower(table_name) = lower(?)",
                (table,),
            )
            if change.envelope is not None:
                self._grow_gpkg_extent(table, change.envelope)

            if not self._feature_count_has_triggers(table):
                self._adjust_feature_count(table, change.inserted - change.deleted)

    def _grow_gpkg_extent(self, table: str, env: Envelope) -> None:
        self.conn.execute(
            "UPDATE gpkg_contents SET "
            "min_x = min(coalesce(min_x, :min_x), :min_x), "
            "max_x = max(coalesce(max_x, :max_x), :max_x), "
            "min_y = min(coalesce(min_y, :min_y), :min_y), "
            "max_y = max(coalesce(max_y, :max_y), :max_y) "
            "WHERE lower(table_name) = lower(:table)",
            {
                "min_x": env.min_x,
                "max_x": env.max_x,
                "min_y": env.min_y,
                "max_y": env.max_y,
                "table": table,
            },
        )

    def _feature_count_has_triggers(self, table: str) -> bool:
        row = self.conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
            "AND lower(tbl_name) = lower(?) AND sql LIKE '%gpkg_ogr_contents%'",
            (table,),
        ).fetchone()
        return bool(row[0])

    def _adjust_feature_count(self, table: str, delta: int) -> None:
        exists = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'gpkg_ogr_contents'"
        ).fetchone()
        if exists and delta:
            self.conn.execute(
                "UPDATE gpkg_ogr_contents SET feature_count = feature_count + ? "
                "WHERE lower(table_name) = lower(?) AND feature_count IS NOT NULL",
                (delta, table),
            )

    def close(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

        self.conn.close()


class _DeltaScope(AbstractContextManager[None]):
    """The context of one delta in a :class:`SqliteStore` (see ``delta_scope``);
    a class rather than a generator: it runs once per delta."""

    __slots__ = ("store",)

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        self.store.enter_scope()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.store.leave_scope(failed=exc_type is not None)


def _connect(path: Path) -> sqlite3.Connection:
    if not is_sqlite_file(path):
        raise StoreOpenError(f"{path} is not an SQLite database")

    uri = "file:" + urllib.parse.quote(str(path)) + "?mode=rw"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
    except sqlite3.Error as exc:
        raise StoreOpenError(f"Cannot open {path}: {exc}") from exc

    conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
    conn.execute("PRAGMA cache_spill = OFF")
    return conn


def _detect_flavour(conn: sqlite3.Connection) -> SqliteFlavour:
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = {
        str(row[0]).lower()
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if application_id in _GPKG_APPLICATION_IDS or "gpkg_geometry_columns" in tables:
        return SqliteFlavour.GEOPACKAGE

    if "geometry_columns" in tables:
        columns = {
            row[1].lower()
            for row in conn.execute("PRAGMA table_info(geometry_columns)")
        }
        if "geometry_format" in columns:
            return SqliteFlavour.OGR_SQLITE

    return SqliteFlavour.SPATIALITE


class SqliteLayerEditor:
    """Reads and writes one table of a :class:`SqliteStore`."""

    def __init__(self, store: SqliteStore, table: str, target: FileLayer) -> None:
        self.store = store
        self.conn = store.conn
        self.table = table
        self.qtable = quote_identifier(table)
        columns = self._columns()
        geometry, codec = self._geometry_column(target.is_spatial, columns)
        self.codec = codec
        self.schema = _schema(table, columns, geometry, target.pk_column)
        self.field_names = list(self.schema.fields)
        self.qpk = quote_identifier(self.schema.pk)
        self._select = self._select_sql()
        self._update_sql: dict[tuple[str, ...], str] = {}
        self.needs_rtree_flush = store.flavour is not SqliteFlavour.GEOPACKAGE
        #: Rows read ahead (``read_ahead``), by key; each answers one ``get``.
        self._ahead: dict[Any, list[tuple[Any, ...]]] = {}
        self._ahead_type: type = int
        self._may_read_ahead = store.rows_change_only_when_written(table)

    def _columns(self) -> list[tuple[Any, ...]]:
        columns = self.conn.execute(f"PRAGMA table_info({self.qtable})").fetchall()
        if not columns:
            raise StoreOpenError(f'No table "{self.table}" in {self.store.path}')

        return columns

    def _geometry_column(
        self, spatial: bool, columns: list[tuple[Any, ...]]
    ) -> tuple[GeometryColumn | None, _GeometryCodec | None]:
        column = _read_geometry_column(self.store, self.table)
        if column is None:
            if spatial:
                raise StoreOpenError(
                    f'Table "{self.table}" in {self.store.path} has no geometry column'
                )

            return None, None

        geometry, geometry_format = column
        names = {c[1] for c in columns}
        if geometry.name not in names:
            raise StoreOpenError(f'Geometry column "{geometry.name}" does not exist')

        return geometry, _codec(self.store.flavour, geometry_format, geometry.srid)

    def _select_sql(self) -> str:
        columns = self._columns_sql()
        return f"SELECT {columns} FROM {self.qtable} WHERE {self.qpk} = ? LIMIT 2"

    @property
    def _select_ahead(self) -> str:
        return (
            f"SELECT {self.qpk}, {self._columns_sql()} FROM {self.qtable} "
            f"WHERE {self.qpk} IN"
        )

    def _columns_sql(self) -> str:
        names = [quote_identifier(n) for n in self.field_names]
        if self.schema.geometry is not None:
            names.append(quote_identifier(self.schema.geometry.name))

        return ", ".join(names)

    def key_from_text(self, text: str) -> Any:
        field = self.schema.pk_field
        if field.kind is FieldKind.INTEGER:
            try:
                key = int(text)
            except ValueError:
                return coerce(text, field)
            return key if _INT64_MIN <= key <= _INT64_MAX else coerce(text, field)

        if field.kind is FieldKind.ANY:
            try:
                return int(text)
            except ValueError:
                return text

        return coerce(text, field)

    def get(self, key: Any) -> Feature | None:
        rows = None
        if self._ahead and type(key) is self._ahead_type:
            rows = self._ahead.pop(key, None)
        if rows is None:
            rows = self.conn.execute(self._select, (key,)).fetchall()
        decode = None if self.codec is None else self.codec.decode
        return feature_from_rows(rows, key, self.table, self.field_names, decode)

    def read_ahead(self, keys: Sequence[Any]) -> None:
        """Read the features of ``keys`` now, a few hundred per query.

        A row read ahead answers the next ``get`` of its key only; a second
        ``get`` reads the table again. The engine writes a feature only after
        getting it, so a row read ahead is still what the table holds when it
        is used, provided nothing else changes rows of the table: the store
        allows reading ahead only when no trigger but GeoPackage's own can
        write to it, the table has no ``REPLACE`` conflict clause (which
        deletes other rows) nor a collation (``=`` then differs from Python's)
        and this is the table's only editor. Keys of other types than
        ``int`` and ``str``, and rows whose key is not of the asked type, are
        always read by ``get`` itself.
        """
        self._ahead.clear()
        if not keys or not self._may_read_ahead or not self.store.sole_editor(self):
            return
        key_type = self._ahead_type = type(keys[0])
        if key_type not in (int, str):
            return
        wanted = list(dict.fromkeys(k for k in keys if type(k) is key_type))
        for start in range(0, len(wanted), _READ_AHEAD_CHUNK):
            chunk = wanted[start : start + _READ_AHEAD_CHUNK]
            sql = f"{self._select_ahead} ({', '.join('?' * len(chunk))})"
            for row in self.conn.execute(sql, chunk):
                if type(row[0]) is key_type:
                    self._ahead.setdefault(row[0], []).append(row[1:])

    def insert(self, attributes: dict[str, Any], geometry: Geometry | None) -> Any:
        values = self._storage_values(attributes)
        if self.schema.pk not in values and not self.schema.generates_keys:
            values[self.schema.pk] = self._next_key()

        change = _TableChanges(inserted=1)
        if self.schema.geometry is not None:
            values[self.schema.geometry.name] = self._encode(geometry, change)

        if values:
            names = ", ".join(quote_identifier(n) for n in values)
            marks = ", ".join("?" * len(values))
            sql = f"INSERT INTO {self.qtable} ({names}) VALUES ({marks})"
        else:
            sql = f"INSERT INTO {self.qtable} DEFAULT VALUES"

        cursor = self._run(sql, tuple(values.values()))
        key = values.get(self.schema.pk, cursor.lastrowid)
        self.store.note_change(self.table, change)
        return key

    def _next_key(self) -> int:
        if self.schema.pk_field.kind is not FieldKind.INTEGER:
            raise FeatureWriteError(
                f'The create gives no value for the primary key "{self.schema.pk}"'
            )

        row = self.conn.execute(f"SELECT max({self.qpk}) FROM {self.qtable}").fetchone()
        return int(row[0] or 0) + 1

    def update(
        self, key: Any, attributes: dict[str, Any], geometry: GeometryChange
    ) -> None:
        values = self._storage_values(attributes)
        change = None
        if geometry is not UNCHANGED and self.schema.geometry is not None:
            change = _TableChanges()
            values[self.schema.geometry.name] = self._encode(geometry, change)

        if not values:
            return

        names = tuple(values)
        sql = self._update_sql.get(names)
        if sql is None:
            assignments = ", ".join(f"{quote_identifier(n)} = ?" for n in names)
            sql = f"UPDATE {self.qtable} SET {assignments} WHERE {self.qpk} = ?"
            self._update_sql[names] = sql

        cursor = self._run(sql, (*values.values(), key))
        if cursor.rowcount != 1:
            raise FeatureWriteError(f"Feature {key!r} disappeared while it was updated")

        self.store.note_change(self.table, change)

    def delete(self, key: Any) -> None:
        cursor = self._run(f"DELETE FROM {self.qtable} WHERE {self.qpk} = ?", (key,))
        if cursor.rowcount != 1:
            raise FeatureWriteError(f"Feature {key!r} disappeared while it was deleted")

        self.store.note_change(self.table, _TableChanges(deleted=1))

    def _storage_values(self, attributes: dict[str, Any]) -> dict[str, Any]:
        return {
            name: value if type(value) in _AS_IS else to_sqlite(value)
            for name, value in attributes.items()
        }

    def _encode(self, geometry: Geometry | None, change: _TableChanges) -> Any:
        if geometry is None:
            return None

        assert self.codec is not None
        change.envelope = geometry.envelope()
        try:
            return self.codec.encode(geometry)
        except GeometryValueError as exc:
            raise FeatureWriteError(str(exc)) from exc

    def _run(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        try:
            cursor = self.conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise FeatureWriteError(f"The data file refused the change: {exc}") from exc
        except sqlite3.OperationalError as exc:
            if "no such function" in str(exc):
                raise FeatureWriteError(
                    f"A trigger of {self.table} needs an SQL function that qfjobs "
                    f"does not provide: {exc}"
                ) from exc

            raise
        except OverflowError as exc:
            raise FeatureWriteError(f"A value is too large for SQLite: {exc}") from exc

        if cursor.rowcount != 0:
            self.store.note_write()

        if self.needs_rtree_flush:
            self.store.flush_rtree_queue()

        return cursor


def to_sqlite(value: Any) -> Any:
    """A canonical value as SQLite / GeoPackage stores it."""
    if type(value) in _AS_IS:
        return value

    if isinstance(value, bool):
        return int(value)

    if isinstance(value, datetime):
        return format_datetime(value)

    if isinstance(value, date):
        return value.isoformat()

    if isinstance(value, time):
        return value.isoformat()

    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)

    return value


def format_datetime(value: datetime) -> str:
    """GDAL's GeoPackage datetime text: milliseconds only when set, UTC as ``Z``."""
    suffix = ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
        suffix = "Z"

    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"

    return text + suffix


def _schema(
    table: str,
    columns: list[tuple[Any, ...]],
    geometry: GeometryColumn | None,
    pk_column: str | None,
) -> LayerSchema:
    fields: dict[str, FieldInfo] = {}
    rowid_pk: str | None = None
    pk_count = sum(1 for c in columns if c[5])
    for _, name, declared, notnull, default, pk in columns:
        if geometry is not None and name == geometry.name:
            continue

        fields[name] = FieldInfo(
            name=name,
            kind=kind_from_sqlite_type(declared or ""),
            declared=declared or "",
            nullable=not notnull,
            has_default=default is not None,
        )
        if pk and pk_count == 1 and (declared or "").upper() == "INTEGER":
            rowid_pk = name

    pk = match_pk(fields, pk_column, table)
    return LayerSchema(
        fields=fields,
        pk=pk,
        geometry=geometry,
        generates_keys=pk == rowid_pk or fields[pk].has_default,
    )


def _read_geometry_column(
    store: SqliteStore, table: str
) -> tuple[GeometryColumn, str] | None:
    if store.flavour is SqliteFlavour.GEOPACKAGE:
        row = store.conn.execute(
            "SELECT column_name, geometry_type_name, srs_id, z, m "
            "FROM gpkg_geometry_columns WHERE lower(table_name) = lower(?)",
            (table,),
        ).fetchone()
        if row is None:
            return None

        name, type_name, srid, z, m = row
        return GeometryColumn(
            name, _type_from_name(str(type_name)), int(srid), z, m
        ), "GPKG"

    return _read_spatialite_geometry_column(store, table)


def _read_spatialite_geometry_column(
    store: SqliteStore, table: str
) -> tuple[GeometryColumn, str] | None:
    columns = {
        row[1].lower()
        for row in store.conn.execute("PRAGMA table_info(geometry_columns)")
    }
    if not columns:
        return None

    type_column = "geometry_type" if "geometry_type" in columns else "type"
    format_column = (
        "geometry_format" if "geometry_format" in columns else "'SpatiaLite'"
    )
    row = store.conn.execute(
        f"SELECT f_geometry_column, {type_column}, coord_dimension, srid, "
        f"{format_column} FROM geometry_columns WHERE lower(f_table_name) = lower(?)",
        (table,),
    ).fetchone()
    if row is None:
        return None

    name, type_value, dimension, srid, geometry_format = row
    geom_type, has_z, has_m = _type_and_dims(type_value, dimension)
    column = GeometryColumn(
        str(name), geom_type, int(srid or 0), int(has_z), int(has_m)
    )
    return column, str(geometry_format)


def _type_from_name(name: str) -> GeomType:
    try:
        return GeomType[name.upper()]
    except KeyError:
        raise StoreOpenError(f"Unknown geometry type {name!r}") from None


def _type_and_dims(type_value: Any, dimension: Any) -> tuple[GeomType, bool, bool]:
    if isinstance(type_value, int):
        flags_z = bool(type_value & 0x80000000)
        thousands, base = divmod(type_value & 0x0FFFFFFF, 1000)
        has_z = flags_z or thousands in (1, 3)
        has_m = thousands in (2, 3)
        return GeomType(base), has_z, has_m

    text = str(dimension).upper()
    has_z = text in ("XYZ", "XYZM", "3", "4")
    has_m = text in ("XYM", "XYZM", "4")
    return _type_from_name(str(type_value)), has_z, has_m


def _codec(flavour: SqliteFlavour, geometry_format: str, srid: int) -> _GeometryCodec:
    fmt = geometry_format.upper()
    if flavour is SqliteFlavour.GEOPACKAGE:
        return _GeometryCodec(lambda g: encode_gpkg(g, srid), decode_gpkg)

    if fmt == "WKB":
        return _GeometryCodec(to_wkb, from_wkb)

    if fmt == "WKT":
        return _GeometryCodec(to_wkt, lambda raw: parse_wkt(str(raw)))

    return _GeometryCodec(lambda g: encode_spatialite(g, srid), decode_spatialite)
