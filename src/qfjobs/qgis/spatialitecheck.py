"""Checking ``spatialite`` provider layers with Python's sqlite3.

The table must exist (table or view); its geometry column is looked up in
SpatiaLite's ``geometry_columns`` (version 4 integer types, or the older
text ``type`` + ``coord_dimension``). The primary key is the URI's ``key=``,
else the table's single ``PRIMARY KEY`` column. The ``sql=`` filter is not
evaluated (it is SpatiaLite SQL that plain sqlite3 may not understand).
"""

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

from qfjobs.qgis.checkresult import FieldInfo, SourceCheck, invalid_provider
from qfjobs.qgis.pathguard import LocatedFile
from qfjobs.qgis.sourcemodel import DataSource
from qfjobs.qgis.sqlitefiles import connect_read_only
from qfjobs.qgis.wkbtypes import BASE_TYPES, normalise_name

logger = logging.getLogger(__name__)

_CODE_NAMES = {code: name for name, code in BASE_TYPES.items()}
_SUFFIX_BY_THOUSANDS = {0: "", 1: "Z", 2: "M", 3: "ZM"}
_LEGACY_DIMENSIONS = {"XYZ": "Z", "XYM": "M", "XYZM": "ZM", "3": "Z", "4": "ZM"}


def check_spatialite(
    source: DataSource, located: LocatedFile, readable: Path
) -> SourceCheck:
    """Check a spatialite layer; ``readable`` is the file or its staged copy."""
    table = source.table
    filename = str(located.path)
    if table is None:
        return invalid_provider("The datasource names no table.", filename=filename)

    try:
        with closing(connect_read_only(readable)) as connection:
            return _check_table(connection, source, located)
    except sqlite3.Error as exc:
        return invalid_provider(
            f'"{located.display}" is not a readable SQLite database.',
            str(exc),
            filename=filename,
        )


def _check_table(
    connection: sqlite3.Connection, source: DataSource, located: LocatedFile
) -> SourceCheck:
    assert source.table is not None
    name = _find_table(connection, source.table.table)
    filename = str(located.path)
    if name is None:
        return invalid_provider(
            f'Table "{source.table.table}" not found in "{located.display}".',
            filename=filename,
        )

    columns = connection.execute(f'PRAGMA table_info("{_quote(name)}")').fetchall()
    geometry_column = source.table.geometry_column
    geometry, srid = _geometry(connection, name, geometry_column)
    if geometry_column and geometry is None:
        return invalid_provider(
            f'Geometry column "{geometry_column}" of "{name}" is not registered '
            f'in "{located.display}".',
            filename=filename,
        )

    count = connection.execute(f'SELECT count(*) FROM "{_quote(name)}"').fetchone()[0]
    return SourceCheck(
        is_valid=True,
        filename=filename,
        geometry_type=geometry or "NoGeometry",
        crs=f"EPSG:{srid}" if srid and srid > 0 else None,
        feature_count=int(count),
        fields=tuple(
            FieldInfo(name=str(row[1]), type=str(row[2]) or "String")
            for row in columns
            if not geometry_column or str(row[1]).lower() != geometry_column.lower()
        ),
        primary_keys=_primary_keys(source, columns),
        driver="SQLite",
    )


def _find_table(connection: sqlite3.Connection, table: str) -> str | None:
    row = connection.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
        "AND lower(name) = lower(?)",
        (table,),
    ).fetchone()
    return str(row[0]) if row else None


def _geometry(
    connection: sqlite3.Connection, table: str, column: str | None
) -> tuple[str | None, int | None]:
    if not column:
        return None, None

    query = (
        "SELECT * FROM geometry_columns WHERE lower(f_table_name) = lower(?) "
        "AND lower(f_geometry_column) = lower(?)"
    )
    try:
        cursor = connection.execute(query, (table, column))
    except sqlite3.Error as exc:
        logger.debug("No geometry_columns table: %s", exc)
        return None, None

    row = cursor.fetchone()
    if row is None:
        return None, None

    record = dict(zip([d[0].lower() for d in cursor.description], row, strict=True))
    return _geometry_name(record), _as_int(record.get("srid"))


def _geometry_name(record: dict[str, object]) -> str | None:
    code = _as_int(record.get("geometry_type"))
    if code is not None:
        base = _CODE_NAMES.get(code % 1000)
        return base + _SUFFIX_BY_THOUSANDS.get(code // 1000, "") if base else None

    legacy = str(record.get("type") or "")
    dimension = str(record.get("coord_dimension") or "")
    return normalise_name(legacy + _LEGACY_DIMENSIONS.get(dimension.upper(), ""))


def _primary_keys(
    source: DataSource, columns: list[tuple[object, ...]]
) -> tuple[str, ...]:
    assert source.table is not None
    if source.table.key:
        return (source.table.key.strip('"'),)

    keyed = sorted(
        (int(str(row[5])), str(row[1])) for row in columns if int(str(row[5])) > 0
    )
    return tuple(name for _, name in keyed)


def _as_int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _quote(identifier: str) -> str:
    return identifier.replace('"', '""')
