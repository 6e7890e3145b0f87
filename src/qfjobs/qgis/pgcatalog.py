"""Catalog look-ups for a PostgreSQL layer's table.

:func:`read_table_facts` finds the relation (table, view, materialized
view, foreign or partitioned table), its columns with their SQL types, its
primary key from ``pg_index``, the PostGIS geometry type and SRID from
``geometry_columns`` when PostGIS is installed, and the row count (an exact
``count(*)``; the planner's estimate when that hits the statement timeout).

Query layers (``table="(SELECT ...)"``) run the user's query wrapped in
``LIMIT 0`` inside the read-only session: that is the project owner's SQL
on the project owner's database, as QGIS itself would run it.
"""

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql

from qfjobs.qgis.uriparts import TableRef
from qfjobs.qgis.wkbtypes import normalise_name

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[tuple[object, ...]]

_FIND_RELATION = """
SELECT c.oid, n.nspname, c.relname, c.reltuples
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = %(table)s
  AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
  AND (n.nspname = %(schema)s::text
       OR (%(schema)s::text IS NULL AND pg_catalog.pg_table_is_visible(c.oid)))
LIMIT 1
"""
_COLUMNS = """
SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_PRIMARY_KEY = """
SELECT a.attname
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %s AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)
"""
_GEOMETRY = """
SELECT type, srid, coord_dimension FROM geometry_columns
WHERE f_table_schema = %s AND f_table_name = %s AND f_geometry_column = %s
"""


@dataclass(frozen=True)
class TableFacts:
    """What the catalog says about a layer's relation."""

    columns: dict[str, str]
    primary_keys: tuple[str, ...]
    geometry_type: str | None
    srid: int | None
    feature_count: int | None


def read_table_facts(connection: Connection, table: TableRef) -> TableFacts | None:
    """Facts about ``table``, or None when the relation does not exist."""
    if table.is_query:
        return _query_facts(connection, table)

    row = connection.execute(
        _FIND_RELATION, {"table": table.table, "schema": table.schema}
    ).fetchone()
    if row is None:
        return None

    oid, schema, name, estimate = row
    columns = {
        str(c): str(t) for c, t in connection.execute(_COLUMNS, (oid,)).fetchall()
    }
    keys = tuple(str(r[0]) for r in connection.execute(_PRIMARY_KEY, (oid,)).fetchall())
    geometry, srid = _postgis_geometry(connection, str(schema), str(name), table)
    return TableFacts(
        columns=columns,
        primary_keys=keys,
        geometry_type=geometry,
        srid=srid,
        feature_count=_count(connection, str(schema), str(name), estimate),
    )


def _query_facts(connection: Connection, table: TableRef) -> TableFacts:
    subquery = table.table.strip()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {subquery} AS _qfjobs_query LIMIT 0".encode())
        names = [column.name for column in cursor.description or []]
        type_oids = [column.type_code for column in cursor.description or []]

    rows = connection.execute(
        "SELECT oid, pg_catalog.format_type(oid, NULL) FROM pg_catalog.pg_type "
        "WHERE oid = ANY(%s)",
        (type_oids,),
    ).fetchall()
    types = {row[0]: row[1] for row in rows}
    count_row = connection.execute(
        f"SELECT count(*) FROM {subquery} AS _qfjobs_query".encode()
    ).fetchone()
    return TableFacts(
        columns={
            n: str(types.get(o, "unknown"))
            for n, o in zip(names, type_oids, strict=True)
        },
        primary_keys=(),
        geometry_type=None,
        srid=None,
        feature_count=int(str(count_row[0])) if count_row else None,
    )


def _postgis_geometry(
    connection: Connection, schema: str, name: str, table: TableRef
) -> tuple[str | None, int | None]:
    if not table.geometry_column:
        return None, None

    has_postgis = connection.execute(
        "SELECT pg_catalog.to_regclass('geometry_columns') IS NOT NULL"
    ).fetchone()
    if not has_postgis or not has_postgis[0]:
        return None, None

    row = connection.execute(
        _GEOMETRY, (schema, name, table.geometry_column)
    ).fetchone()
    if row is None:
        return None, None

    type_name, srid, dimension = str(row[0]), int(str(row[1])), int(str(row[2]))
    return _geometry_name(type_name, dimension), srid


def _geometry_name(type_name: str, dimension: int) -> str | None:
    upper = type_name.upper()
    if upper == "GEOMETRY":
        return "Unknown"

    # PostGIS spells measured types with a trailing M (POINTM, coord_dimension 3).
    if upper.endswith("M") and not upper.endswith("ZM"):
        return normalise_name(upper[:-1] + ("ZM" if dimension == 4 else "M"))

    suffix = {3: "Z", 4: "ZM"}.get(dimension, "")
    return normalise_name(upper + suffix)


def _count(
    connection: Connection, schema: str, name: str, estimate: object
) -> int | None:
    query = sql.SQL("SELECT count(*) FROM {}.{}").format(
        sql.Identifier(schema), sql.Identifier(name)
    )
    try:
        row = connection.execute(query).fetchone()
    except psycopg.errors.QueryCanceled:
        logger.info(
            "Counting %s.%s timed out; using the planner estimate", schema, name
        )
        rough = int(float(str(estimate)))
        return rough if rough >= 0 else None
    return int(str(row[0])) if row else None
