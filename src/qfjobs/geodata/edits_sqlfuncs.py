"""SQL functions that GeoPackage and SpatiaLite triggers call, for plain sqlite3.

GDAL and SpatiaLite register these functions in their own connections; Python's
``sqlite3`` has none of them, and it cannot load extensions here. Without them
the rtree triggers of a GeoPackage (``ST_IsEmpty``, ``ST_MinX``...) and the
geometry and index triggers of a SpatiaLite database (``GeometryConstraints``,
``RTreeAlign``, ``MbrMinX``...) fail with "no such function", so every write
would fail. The functions below read the blobs with :mod:`edits_blobs`.

``RTreeAlign`` must insert into the SpatiaLite rtree, which a function cannot do
safely in the middle of the statement that called it. It records the row in a
:class:`RTreeQueue` instead; the store writes the queued rows right after the
statement (see ``edits_sqlite``).
"""

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qfjobs.geodata.edits_blobs import (
    decode_gpkg,
    decode_spatialite,
    gpkg_envelope,
    gpkg_is_empty,
    gpkg_srs_id,
    spatialite_class,
    spatialite_envelope,
    spatialite_srid,
)
from qfjobs.geodata.edits_geometry import Envelope, GeomType, type_fits

logger = logging.getLogger(__name__)


@dataclass
class RTreeQueue:
    """Rows that SpatiaLite's ``RTreeAlign`` asked to add to an rtree index."""

    pending: list[tuple[str, int, Envelope]] = field(default_factory=list)

    def align(self, index_name: Any, rowid: Any, blob: Any) -> int | None:
        if not isinstance(blob, bytes) or not isinstance(index_name, str):
            return None

        self.pending.append((index_name, int(rowid), spatialite_envelope(blob)))
        return 1


def _blob_function(reader: Callable[[bytes], Any]) -> Callable[[Any], Any]:
    def function(blob: Any) -> Any:
        return reader(blob) if isinstance(blob, bytes) else None

    return function


def _envelope_part(
    envelope_of: Callable[[bytes], Envelope | None], attribute: str
) -> Callable[[Any], float | None]:
    def function(blob: Any) -> float | None:
        if not isinstance(blob, bytes):
            return None

        envelope = envelope_of(blob)
        return None if envelope is None else float(getattr(envelope, attribute))

    return function


def _gpkg_is_assignable(expected: Any, actual: Any) -> int:
    try:
        return int(
            type_fits(GeomType[str(actual).upper()], GeomType[str(expected).upper()])
        )
    except KeyError:
        return 0


def register_gpkg_functions(conn: sqlite3.Connection) -> None:
    """The functions of the GeoPackage rtree, type and SRS trigger extensions."""
    conn.create_function(
        "ST_IsEmpty",
        1,
        _blob_function(lambda b: int(gpkg_is_empty(b))),
        deterministic=True,
    )
    for name, attribute in (
        ("ST_MinX", "min_x"),
        ("ST_MaxX", "max_x"),
        ("ST_MinY", "min_y"),
        ("ST_MaxY", "max_y"),
    ):
        conn.create_function(
            name, 1, _envelope_part(gpkg_envelope, attribute), deterministic=True
        )

    conn.create_function(
        "ST_GeometryType",
        1,
        _blob_function(lambda b: decode_gpkg(b).type.name),
        deterministic=True,
    )
    conn.create_function("ST_SRID", 1, _blob_function(gpkg_srs_id), deterministic=True)
    conn.create_function(
        "GPKG_IsAssignable", 2, _gpkg_is_assignable, deterministic=True
    )


def _geometry_constraints(blob: Any, geometry_type: Any, srid: Any, *_: Any) -> int:
    if not isinstance(blob, bytes):
        return 1

    code = spatialite_class(blob)
    type_ok = _spatialite_type_ok(code, geometry_type)
    srid_ok = srid is None or int(srid) == spatialite_srid(blob)
    return int(type_ok and srid_ok)


def _spatialite_type_ok(code: int, expected: Any) -> bool:
    if isinstance(expected, int):
        return expected % 1000 == 0 or expected == code

    expected_name = str(expected).upper()
    if expected_name == "GEOMETRY":
        return True

    return GeomType(code % 1000).name == expected_name


def register_spatialite_functions(conn: sqlite3.Connection, queue: RTreeQueue) -> None:
    """The SpatiaLite functions its geometry and spatial-index triggers call."""
    conn.create_function("GeometryConstraints", 3, _geometry_constraints)
    conn.create_function("GeometryConstraints", 4, _geometry_constraints)
    conn.create_function("RTreeAlign", 3, queue.align)
    for name, attribute in (
        ("MbrMinX", "min_x"),
        ("MbrMaxX", "max_x"),
        ("MbrMinY", "min_y"),
        ("MbrMaxY", "max_y"),
    ):
        conn.create_function(
            name, 1, _envelope_part(spatialite_envelope, attribute), deterministic=True
        )

    for name in ("ST_SRID", "SRID"):
        conn.create_function(
            name, 1, _blob_function(spatialite_srid), deterministic=True
        )

    for name in ("ST_IsEmpty", "IsEmpty"):
        conn.create_function(
            name,
            1,
            _blob_function(lambda b: int(decode_spatialite(b).is_empty)),
            deterministic=True,
        )
