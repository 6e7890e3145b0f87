"""Generators for the data files the QGIS tests need (written with GDAL/sqlite3)."""

import sqlite3
import struct
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import numpy as np
import pyogrio.raw
import shapely

GPKG_APPLICATION_ID = 0x47504B47


def write_vector(
    path: Path,
    wkts: Sequence[str | None],
    columns: dict[str, Sequence[object]],
    *,
    driver: str,
    layer: str | None = None,
    geometry_type: str | None = None,
    crs: str | None = "EPSG:4326",
    **options: object,
) -> Path:
    """Write one layer with GDAL (pyogrio) and return the path."""
    geometry = (
        None
        if geometry_type is None
        else np.array(
            [shapely.to_wkb(shapely.from_wkt(w)) if w else None for w in wkts],
            dtype=object,
        )
    )
    field_data = [np.array(values) for values in columns.values()]
    pyogrio.raw.write(
        str(path),
        geometry,
        field_data,
        list(columns),
        layer=layer,
        driver=driver,
        geometry_type=geometry_type,
        crs=crs if geometry_type else None,
        **options,
    )
    return path


def write_shapefile_lines(path: Path) -> Path:
    """A line shapefile without any ``fid`` field (so no usable key)."""
    return write_vector(
        path,
        ["LINESTRING (0 0, 1 1)", "LINESTRING (1 1, 2 0)"],
        {"name": ["a", "b"], "length": [1.4, 1.4]},
        driver="ESRI Shapefile",
        geometry_type="LineString",
    )


def write_spreadsheet(path: Path, driver: str) -> Path:
    return write_vector(
        path,
        [None, None, None],
        {"name": ["a", "b", "c"], "count": np.array([1, 2, 3], dtype=np.int32)},
        driver=driver,
        layer="Sheet1",
    )


def set_wal_mode(path: Path) -> None:
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL").fetchone()


def write_spatialite_like(path: Path, *, with_pk: bool = True) -> Path:
    """A SQLite db with SpatiaLite 4 metadata (no SpatiaLite library needed)."""
    with closing(sqlite3.connect(path)) as connection:
        key = "pk INTEGER PRIMARY KEY" if with_pk else "pk INTEGER"
        connection.executescript(
            f"""
            CREATE TABLE geometry_columns (
                f_table_name TEXT, f_geometry_column TEXT, geometry_type INTEGER,
                coord_dimension INTEGER, srid INTEGER, spatial_index_enabled INTEGER);
            CREATE TABLE somepolydata ({key}, name TEXT, geom BLOB);
            INSERT INTO geometry_columns
                VALUES ('somepolydata', 'geom', 1006, 3, 2056, 0);
            INSERT INTO somepolydata VALUES (1, 'one', NULL), (2, 'two', NULL);
            """
        )
        connection.commit()
    return path


def tiff_bytes(width: int = 4, height: int = 3) -> bytes:
    """A tiny but structurally valid little-endian TIFF header and IFD."""
    entries = [(256, 3, 1, width), (257, 3, 1, height)]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        ifd += struct.pack("<HHII", tag, kind, count, value)
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * width * height


def write_mbtiles(path: Path, *, with_tiles: bool = True) -> Path:
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        if with_tiles:
            connection.execute(
                "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, "
                "tile_row INTEGER, tile_data BLOB)"
            )
        connection.commit()
    return path


def write_gpkg_raster(path: Path, table: str) -> Path:
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(f"PRAGMA application_id={GPKG_APPLICATION_ID}")
        connection.execute(
            "CREATE TABLE gpkg_contents (table_name TEXT, data_type TEXT, "
            "identifier TEXT)"
        )
        connection.execute(
            "INSERT INTO gpkg_contents VALUES (?, 'tiles', ?)", (table, table)
        )
        connection.commit()
    return path
