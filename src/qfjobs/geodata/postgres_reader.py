"""Reading a PostgreSQL (PostGIS) table or view in batches with psycopg.

pyogrio's bundled GDAL has no PostgreSQL driver, so rows come through a
server-side cursor in a read-only transaction, ``batch_size`` rows at a time,
and are turned into Arrow batches here. Geometries are fetched as ISO WKB
(``ST_AsBinary``), so Z, M and curve types arrive unchanged; the declared
type, SRID and primary key come from the catalogs. Column types map as in
:func:`qfjobs.geodata.fieldtypes.postgres_field`.

Date, time and timestamp values Python cannot hold (``infinity``, years past
9999, ``24:00:00``) are written as NULL and counted in
:attr:`OpenedLayer.value_losses`, never dropped silently.

The area-of-interest filter uses the bounding-box operator ``&&`` (index
friendly, and valid for curves, where ``ST_Intersects`` is not).

A layer filter (``where``, the ``sql=`` of a QGIS ``postgres`` layer) is
PostgreSQL SQL from the project, run as QGIS runs it: inside the WHERE
clause of the read, in the read-only transaction, with the layer's own
credentials.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pyarrow as pa  # type: ignore[import-untyped]
from psycopg import sql
from psycopg.types.datetime import (
    DateBinaryLoader,
    TimeBinaryLoader,
    TimestampBinaryLoader,
    TimestamptzBinaryLoader,
)

from qfjobs.errors import DataSourceError
from qfjobs.geodata.fieldtypes import postgres_field
from qfjobs.geodata.geometrytypes import GeometryType, from_postgis
from qfjobs.geodata.sources import (
    BBox,
    OpenedLayer,
    PostgresSource,
    SourceLayer,
    features_per_batch,
    source_label,
)

logger = logging.getLogger(__name__)

_GEOMETRY_TYPES = frozenset({"geometry", "geography"})
_FIRST_FETCH = 500
_WKB_METADATA = {b"ARROW:extension:name": b"geoarrow.wkb"}

_COLUMNS_SQL = """
SELECT a.attname,
       t.typname,
       CASE WHEN declared.typtype = 'd' THEN declared.typtypmod ELSE a.atttypmod END,
       element.typname
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type declared ON declared.oid = a.atttypid
JOIN pg_type t ON t.oid = CASE WHEN declared.typtype = 'd'
                               THEN declared.typbasetype ELSE declared.oid END
LEFT JOIN pg_type element ON element.oid = t.typelem AND t.typcategory = 'A'
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_PRIMARY_KEY_SQL = """
SELECT a.attname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
WHERE n.nspname = %s AND c.relname = %s AND i.indisprimary
"""

_GEOMETRY_SQL = {
    "geometry": "SELECT type, coord_dimension, srid FROM geometry_columns"
    " WHERE f_table_schema = %s AND f_table_name = %s AND f_geometry_column = %s",
    "geography": "SELECT type, coord_dimension, srid FROM geography_columns"
    " WHERE f_table_schema = %s AND f_table_name = %s AND f_geography_column = %s",
}


class _OutOfRange:
    """Marks a value psycopg could not turn into a Python object."""


OUT_OF_RANGE = _OutOfRange()


class _LenientDateLoader(DateBinaryLoader):
    def load(self, data: Any) -> Any:
        try:
            return super().load(data)
        except psycopg.DataError:
            return OUT_OF_RANGE


class _LenientTimeLoader(TimeBinaryLoader):
    def load(self, data: Any) -> Any:
        try:
            return super().load(data)
        except psycopg.DataError:
            return OUT_OF_RANGE


class _LenientTimestampLoader(TimestampBinaryLoader):
    def load(self, data: Any) -> Any:
        try:
            return super().load(data)
        except psycopg.DataError:
            return OUT_OF_RANGE


class _LenientTimestamptzLoader(TimestamptzBinaryLoader):
    def load(self, data: Any) -> Any:
        try:
            return super().load(data)
        except psycopg.DataError:
            return OUT_OF_RANGE


_LENIENT_LOADERS: dict[str, type[psycopg.adapt.Loader]] = {
    "date": _LenientDateLoader,
    "time": _LenientTimeLoader,
    "timestamp": _LenientTimestampLoader,
    "timestamptz": _LenientTimestamptzLoader,
}


@dataclass(frozen=True)
class _Column:
    name: str
    type_name: str
    type_modifier: int
    element_type: str | None


@dataclass(frozen=True)
class _Selection:
    """The SELECT list, the Arrow schema it fills and one converter a column."""

    expressions: list[sql.Composable]
    schema: pa.Schema
    converters: list[Callable[[tuple[Any, ...]], pa.Array]]


@contextmanager
def open_layer(
    source: PostgresSource,
    bbox: BBox | None,
    batch_size: int | None,
    where: str | None = None,
) -> Iterator[OpenedLayer]:
    """Open ``source`` for streaming in a read-only transaction.

    ``where`` keeps only the rows matching that PostgreSQL filter.
    ``batch_size`` None adapts the rows per fetch to their size.

    Raises :class:`DataSourceError` when the server, the table or the geometry
    column cannot be reached.
    """
    label = source_label(source)
    try:
        connection = psycopg.connect(source.conninfo)
    except psycopg.Error as exc:
        raise DataSourceError(
            f"Cannot connect for {label}: {exc}", source=label
        ) from exc

    with connection:
        connection.read_only = True
        try:
            layer, query, params, selection = _prepare(connection, source, bbox, where)
        except psycopg.Error as exc:
            raise DataSourceError(f"Cannot read {label}: {exc}", source=label) from exc

        with connection.cursor(name="qfjobs_gpkg_export", binary=True) as cursor:
            for type_name, loader in _LENIENT_LOADERS.items():
                cursor.adapters.register_loader(type_name, loader)
            try:
                cursor.execute(query, params)
            except psycopg.Error as exc:
                message = f"Cannot read {label}: {exc}"
                raise DataSourceError(message, source=label) from exc

            opened = OpenedLayer(layer, iter(()))
            opened.batches = _record_batches(
                cursor, batch_size, selection, opened.value_losses
            )
            yield opened


def count_features(source: PostgresSource, bbox: BBox | None, where: str) -> int:
    """How many rows of ``source`` match ``where`` (and ``bbox``).

    Raises :class:`DataSourceError` when the server cannot evaluate it.
    """
    label = source_label(source)
    try:
        with psycopg.connect(source.conninfo) as connection:
            connection.read_only = True
            connection.execute("SET TIME ZONE 'UTC'")
            geometry = _geometry_column(_columns(connection, source), source)
            srid = 0
            if geometry is not None and bbox is not None:
                srid = _geometry_info(connection, source, geometry)[1]
            table = sql.SQL("{}.{}").format(
                sql.Identifier(source.schema), sql.Identifier(source.table)
            )
            query = sql.SQL("SELECT count(*) FROM {}").format(table)
            condition, params = _conditions(geometry, srid, bbox, where)
            row = connection.execute(query + condition, params).fetchone()
    except psycopg.Error as exc:
        message = f"Cannot filter {label} with {where!r}: {exc}"
        raise DataSourceError(message, source=label) from exc
    return int(row[0]) if row else 0


def _prepare(
    connection: psycopg.Connection[Any],
    source: PostgresSource,
    bbox: BBox | None,
    where: str | None,
) -> tuple[SourceLayer, sql.Composed, list[Any], _Selection]:
    """Describe the table and build the query that reads it."""
    connection.execute("SET TIME ZONE 'UTC'")
    columns = _columns(connection, source)
    geometry = _geometry_column(columns, source)
    geometry_type, srid = None, 0
    if geometry is not None:
        geometry_type, srid = _geometry_info(connection, source, geometry)
    primary_key = _primary_key(connection, source)

    selection = _selection(columns, geometry)
    query, params = _query(source, selection, geometry, srid, primary_key, bbox, where)
    layer = SourceLayer(
        label=source_label(source),
        schema=selection.schema,
        geometry_column=geometry.name if geometry else None,
        geometry_type=geometry_type,
        geometry_type_exact=True,
        crs=source.layer_crs or _crs(connection, srid),
        primary_key=primary_key,
    )
    return layer, query, params, selection


def _columns(
    connection: psycopg.Connection[Any], source: PostgresSource
) -> list[_Column]:
    rows = connection.execute(_COLUMNS_SQL, (source.schema, source.table)).fetchall()
    if not rows:
        raise DataSourceError(
            f"Table {source.schema}.{source.table} not found or without columns",
            source=source_label(source),
        )
    return [_Column(str(r[0]), str(r[1]), int(r[2]), r[3]) for r in rows]


def _geometry_column(columns: list[_Column], source: PostgresSource) -> _Column | None:
    spatial = [c for c in columns if c.type_name in _GEOMETRY_TYPES]
    if source.geometry_column is None:
        return spatial[0] if spatial else None

    for column in spatial:
        if column.name == source.geometry_column:
            return column
    raise DataSourceError(
        f"Geometry column {source.geometry_column!r} not found in"
        f" {source.schema}.{source.table}",
        source=source_label(source),
    )


def _geometry_info(
    connection: psycopg.Connection[Any], source: PostgresSource, column: _Column
) -> tuple[GeometryType, int]:
    """Declared type and SRID; an unregistered column counts as any type."""
    row = connection.execute(
        _GEOMETRY_SQL[column.type_name], (source.schema, source.table, column.name)
    ).fetchone()
    if row is None:
        srid = 4326 if column.type_name == "geography" else 0
        return GeometryType("GEOMETRY"), srid
    return from_postgis(str(row[0]), int(row[1])), int(row[2])


def _primary_key(
    connection: psycopg.Connection[Any], source: PostgresSource
) -> str | None:
    """The single-column primary key; a composite key counts as none (3.3)."""
    rows = connection.execute(_PRIMARY_KEY_SQL, (source.schema, source.table))
    names = [str(row[0]) for row in rows.fetchall()]
    return names[0] if len(names) == 1 else None


def _crs(connection: psycopg.Connection[Any], srid: int) -> str | None:
    if srid <= 0:
        return None

    row = connection.execute(
        "SELECT auth_name, auth_srid, srtext FROM spatial_ref_sys WHERE srid = %s",
        (srid,),
    ).fetchone()
    if row is None:
        return None
    auth_name, auth_srid, srtext = row
    if auth_name and auth_srid:
        return f"{auth_name}:{auth_srid}"
    return str(srtext) if srtext else None


def _selection(columns: list[_Column], geometry: _Column | None) -> _Selection:
    expressions: list[sql.Composable] = []
    fields = []
    converters = []
    for column in columns:
        name = sql.Identifier(column.name)
        if geometry is not None and column.name == geometry.name:
            cast = sql.SQL("::geometry" if column.type_name == "geography" else "")
            expressions.append(sql.SQL("ST_AsBinary({}{})").format(name, cast))
            field = pa.field(column.name, pa.binary(), metadata=_WKB_METADATA)
        elif column.type_name in _GEOMETRY_TYPES:
            expressions.append(sql.SQL("ST_AsEWKT({})").format(name))
            field = pa.field(column.name, pa.string())
        else:
            mapping = postgres_field(
                column.name, column.type_name, column.type_modifier, column.element_type
            )
            expressions.append(name + sql.SQL(mapping.cast or ""))
            field = mapping.field
        fields.append(field)
        converters.append(_converter(field))
    return _Selection(expressions, pa.schema(fields), converters)


def _converter(field: pa.Field) -> Callable[[tuple[Any, ...]], pa.Array]:
    arrow_type = field.type
    if isinstance(arrow_type, pa.ExtensionType):
        storage_type = arrow_type.storage_type

        def to_extension(values: tuple[Any, ...]) -> pa.Array:
            storage = pa.array(values, type=storage_type)
            return pa.ExtensionArray.from_storage(arrow_type, storage)

        return to_extension

    def to_array(values: tuple[Any, ...]) -> pa.Array:
        return pa.array(values, type=arrow_type)

    return to_array


def _query(
    source: PostgresSource,
    selection: _Selection,
    geometry: _Column | None,
    srid: int,
    primary_key: str | None,
    bbox: BBox | None,
    where: str | None,
) -> tuple[sql.Composed, list[Any]]:
    query = sql.SQL("SELECT {} FROM {}.{}").format(
        sql.SQL(", ").join(selection.expressions),
        sql.Identifier(source.schema),
        sql.Identifier(source.table),
    )
    condition, params = _conditions(geometry, srid, bbox, where)
    query = query + condition
    if primary_key is not None:
        # Key order keeps SQLite's inserts appending, which is much faster.
        query = query + sql.SQL(" ORDER BY {}").format(sql.Identifier(primary_key))
    return query, params


def _conditions(
    geometry: _Column | None, srid: int, bbox: BBox | None, where: str | None
) -> tuple[sql.Composed, list[Any]]:
    """The WHERE clause (or nothing) for the area of interest and the filter.

    The filter is the layer's own SQL; it goes in as written, in parentheses
    and on a line of its own, so that a trailing ``--`` comment ends there.
    Its ``%`` signs are doubled: the query has parameters.
    """
    parts: list[sql.Composable] = []
    params: list[Any] = []
    if bbox is not None and geometry is not None:
        envelope: sql.Composable = sql.SQL("ST_MakeEnvelope(%s, %s, %s, %s, %s)")
        if geometry.type_name == "geography":
            envelope = envelope + sql.SQL("::geography")
        parts.append(sql.SQL("{} && ").format(sql.Identifier(geometry.name)) + envelope)
        params = [*bbox, srid]
    if where and where.strip():
        parts.append(sql.SQL("(\n{}\n)").format(sql.SQL(where.replace("%", "%%"))))
    if not parts:
        return sql.Composed([]), params
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts), params


def _record_batches(
    cursor: psycopg.ServerCursor[Any],
    batch_size: int | None,
    selection: _Selection,
    losses: dict[str, int],
) -> Iterator[pa.RecordBatch]:
    """Fetch rows in batches and turn them into Arrow batches.

    Without a ``batch_size`` each fetch is sized from the bytes per row of the
    previous batch.
    """
    size = batch_size or _FIRST_FETCH
    while rows := cursor.fetchmany(size):
        arrays = []
        for field, convert, values in zip(
            selection.schema, selection.converters, zip(*rows, strict=True), strict=True
        ):
            if pa.types.is_temporal(field.type):
                values = _without_out_of_range(values, field.name, losses)
            arrays.append(convert(values))
        batch = pa.RecordBatch.from_arrays(arrays, schema=selection.schema)
        if batch_size is None:
            size = features_per_batch(batch.nbytes / batch.num_rows)
        yield batch


def _without_out_of_range(
    values: tuple[Any, ...], column: str, losses: dict[str, int]
) -> tuple[Any, ...]:
    lost = sum(1 for value in values if value is OUT_OF_RANGE)
    if not lost:
        return values

    reason = (
        f"column {column!r}: date/time value Python cannot hold (such as"
        " infinity), written as NULL"
    )
    losses[reason] = losses.get(reason, 0) + lost
    return tuple(None if value is OUT_OF_RANGE else value for value in values)
