"""Direct SQLite work on GeoPackage catalogs that pyogrio does not offer.

GDAL writes the tables; this module reads and fixes what is around them:

* the declared geometry type of a source GeoPackage table (pyogrio reports a
  linearised, M-less one);
* setting a written table's exact geometry type, which pyogrio cannot create
  for curve types;
* counting what was written, for the post-write check;
* dropping a table that failed half-way, with its R-tree and catalog rows,
  since pyogrio cannot delete a layer.

Only call these while no GDAL handle on the file is open.
"""

import logging
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from qfjobs.geodata.geometrytypes import (
    NON_LINEAR_BASES,
    GeometryType,
    from_gpkg_catalog,
)

logger = logging.getLogger(__name__)

#: Catalog tables that name a user table in their ``table_name`` column.
_CATALOG_TABLES = (
    "gpkg_contents",
    "gpkg_geometry_columns",
    "gpkg_extensions",
    "gpkg_ogr_contents",
    "gpkg_data_columns",
    "gpkg_metadata_reference",
)

_GEOMETRY_TYPES_EXTENSION = (
    "http://www.geopackage.org/spec120/#extension_geometry_types"
)


def quote(identifier: str) -> str:
    """An SQL identifier in double quotes."""
    return '"' + identifier.replace('"', '""') + '"'


@contextmanager
def _connect(path: Path, *, readonly: bool) -> Iterator[sqlite3.Connection]:
    """A connection without implicit transactions; read-only by URI if asked."""
    if readonly:
        target, uri = Path(path).resolve().as_uri() + "?mode=ro", True
    else:
        target, uri = str(path), False
    with closing(sqlite3.connect(target, uri=uri, isolation_level=None)) as conn:
        yield conn


def table_exists(path: Path, table: str) -> bool:
    """Whether ``path`` holds a table, view or catalog entry named ``table``.

    SQLite names are case-insensitive, so the test is too.
    """
    if not Path(path).exists():
        return False

    with _connect(path, readonly=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE lower(name) = lower(?)", (table,)
        ).fetchone()
        if found is None and _has_table(conn, "gpkg_contents"):
            found = conn.execute(
                "SELECT 1 FROM gpkg_contents WHERE lower(table_name) = lower(?)",
                (table,),
            ).fetchone()
    return found is not None


def declared_geometry_type(path: Path, table: str) -> tuple[str, GeometryType] | None:
    """Geometry column and exact type of a source GeoPackage table, if any."""
    with _connect(path, readonly=True) as conn:
        if not _has_table(conn, "gpkg_geometry_columns"):
            return None
        row = conn.execute(
            "SELECT column_name, geometry_type_name, z, m FROM gpkg_geometry_columns"
            " WHERE lower(table_name) = lower(?)",
            (table,),
        ).fetchone()
    if row is None:
        return None

    column, type_name, z, m = row
    return str(column), from_gpkg_catalog(str(type_name), int(z), int(m))


def declared_column_types(path: Path, table: str) -> dict[str, str]:
    """Lower-cased column name to declared SQL type (``TEXT(80)``)."""
    with _connect(path, readonly=True) as conn:
        rows = conn.execute(
            "SELECT name, type FROM pragma_table_info(?)", (table,)
        ).fetchall()
    return {str(name).lower(): str(kind) for name, kind in rows}


def count_rows(path: Path, table: str, geometry_column: str | None) -> tuple[int, int]:
    """Rows of ``table`` and how many of them have a NULL geometry."""
    geometry = f"count({quote(geometry_column)})" if geometry_column else "count(*)"
    with _connect(path, readonly=True) as conn:
        rows, with_geometry = conn.execute(
            f"SELECT count(*), {geometry} FROM {quote(table)}"
        ).fetchone()
    return int(rows), int(rows) - int(with_geometry)


def spatial_index_table(path: Path, table: str, column: str) -> str | None:
    """Name of the R-tree of ``table.column`` when it is registered and exists."""
    name = f"rtree_{table}_{column}"
    with _connect(path, readonly=True) as conn:
        registered = conn.execute(
            "SELECT 1 FROM gpkg_extensions WHERE lower(table_name) = lower(?)"
            " AND lower(column_name) = lower(?)"
            " AND extension_name = 'gpkg_rtree_index'",
            (table, column),
        ).fetchone()
        exists = _has_table(conn, name)
    return name if registered and exists else None


def set_geometry_type(
    path: Path, table: str, column: str, geometry_type: GeometryType
) -> None:
    """Register ``geometry_type`` as the exact type of ``table.column``.

    Z and M are set to mandatory where the type has them; where it has not,
    GDAL's own flag stays (GDAL sets "optional" when the data carries more
    dimensions than the layer). A non-linear type gets its extension row, and
    the column's declared SQL type is changed to match (GeoPackage requires
    both to name the same type).
    """
    with _connect(path, readonly=False) as conn:
        conn.execute("BEGIN")
        (old_base,) = conn.execute(
            "SELECT upper(geometry_type_name) FROM gpkg_geometry_columns"
            " WHERE lower(table_name) = lower(?) AND lower(column_name) = lower(?)",
            (table, column),
        ).fetchone()
        conn.execute(
            "UPDATE gpkg_geometry_columns SET geometry_type_name = ?,"
            " z = CASE WHEN ? THEN 1 ELSE z END, m = CASE WHEN ? THEN 1 ELSE m END"
            " WHERE lower(table_name) = lower(?) AND lower(column_name) = lower(?)",
            (geometry_type.base, geometry_type.z, geometry_type.m, table, column),
        )
        if geometry_type.base in NON_LINEAR_BASES:
            _register_geometry_extension(conn, table, column, geometry_type.base)
        conn.execute("COMMIT")

    if old_base != geometry_type.base:
        _retype_column(path, table, column, old_base, geometry_type.base)


def _register_geometry_extension(
    conn: sqlite3.Connection, table: str, column: str, base: str
) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS gpkg_extensions (table_name TEXT,"
        " column_name TEXT, extension_name TEXT NOT NULL, definition TEXT NOT NULL,"
        " scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE"
        " (table_name, column_name, extension_name))"
    )
    conn.execute(
        "INSERT OR IGNORE INTO gpkg_extensions VALUES (?, ?, ?, ?, 'read-write')",
        (table, column, f"gpkg_geom_{base}", _GEOMETRY_TYPES_EXTENSION),
    )


def _retype_column(path: Path, table: str, column: str, old: str, new: str) -> None:
    """Change the declared SQL type of the geometry column in the schema text.

    SQLite cannot alter a column type, so the CREATE TABLE text is edited with
    ``writable_schema``. That is safe here: both names are geometry type names
    with NUMERIC affinity (none contains INT, CHAR, TEXT, BLOB, REAL...), and
    geometry values are BLOBs, which no affinity converts.
    """
    pattern = re.compile(rf"({re.escape(quote(column))}\s+){re.escape(old)}\b", re.I)
    with _connect(path, readonly=False) as conn:
        (sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        new_sql, replaced = pattern.subn(rf"\g<1>{new}", sql, count=1)
        if replaced != 1:
            logger.warning(
                "table %s: declared type %s of column %s not found, left as it is",
                table,
                old,
                column,
            )
            return

        (version,) = conn.execute("PRAGMA schema_version").fetchone()
        conn.execute("BEGIN")
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
            (new_sql, table),
        )
        conn.execute(f"PRAGMA schema_version = {int(version) + 1}")
        conn.execute("PRAGMA writable_schema = OFF")
        conn.execute("COMMIT")


def drop_table(path: Path, table: str) -> None:
    """Remove ``table``, its R-trees and every catalog row naming it."""
    if not Path(path).exists():
        return

    with _connect(path, readonly=False) as conn:
        conn.execute("BEGIN")
        # GDAL names an R-tree after the table and its geometry column.
        columns = conn.execute("SELECT name FROM pragma_table_info(?)", (table,))
        rtrees = [
            f"rtree_{table}_{name}"
            for (name,) in columns.fetchall()
            if _is_rtree(conn, f"rtree_{table}_{name}")
        ]
        conn.execute(f"DROP TABLE IF EXISTS {quote(table)}")
        for rtree in rtrees:
            conn.execute(f"DROP TABLE IF EXISTS {quote(rtree)}")
        for catalog in _CATALOG_TABLES:
            if _has_table(conn, catalog):
                conn.execute(
                    f"DELETE FROM {catalog} WHERE lower(table_name) = lower(?)",
                    (table,),
                )
        if _has_table(conn, "sqlite_sequence"):
            conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
        conn.execute("COMMIT")
    logger.info("dropped unfinished table %s from %s", table, path)


def _is_rtree(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None and "USING RTREE" in str(row[0]).upper()


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        is not None
    )
