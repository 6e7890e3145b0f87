"""Checking ``gdal`` raster files without a raster-capable GDAL.

pyogrio's GDAL reads vectors only, so rasters are checked by their header:

* TIFF / BigTIFF (GeoTIFF, COG): byte-order mark and magic number, and the
  first image directory must lie inside the file;
* GeoPackage tiles (``GPKG:path:table`` or a plain .gpkg) and MBTiles: a
  read-only SQLite look-up of ``gpkg_contents`` or the ``tiles`` table;
* PNG, JPEG, JPEG 2000, GIF, BMP, WebP, ERDAS Imagine, netCDF/HDF5, Esri
  ASCII grids and GDAL VRT XML: their magic bytes.

A file whose extension promises one of these formats but whose header does
not match is invalid. A file in another format is accepted with a warning
("not verified"), since GDAL reads far more formats than are sniffed here.
Pixel data is never decoded, so a file with a good header and a corrupt body
passes.
"""

import sqlite3
import struct
from contextlib import closing
from pathlib import Path

from qfjobs.qgis.checkresult import SourceCheck, invalid_provider
from qfjobs.qgis.pathguard import LocatedFile
from qfjobs.qgis.sqlitefiles import connect_read_only, is_sqlite_file

HEADER_BYTES = 512

_MAGICS: tuple[tuple[str, bytes, int], ...] = (
    ("PNG", b"\x89PNG\r\n\x1a\n", 0),
    ("JPEG", b"\xff\xd8\xff", 0),
    ("JPEG2000", b"\x00\x00\x00\x0cjP  ", 0),
    ("JPEG2000", b"\xffO\xffQ", 0),
    ("GIF", b"GIF8", 0),
    ("BMP", b"BM", 0),
    ("HFA", b"EHFA_HEADER_TAG", 0),
    ("netCDF", b"CDF\x01", 0),
    ("netCDF", b"CDF\x02", 0),
    ("netCDF", b"CDF\x05", 0),
    ("HDF5", b"\x89HDF\r\n\x1a\n", 0),
    ("WEBP", b"WEBP", 8),
)
_EXPECTED_BY_SUFFIX = {
    ".tif": "GTiff",
    ".tiff": "GTiff",
    ".gtiff": "GTiff",
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jp2": "JPEG2000",
    ".j2k": "JPEG2000",
    ".gif": "GIF",
    ".img": "HFA",
    ".nc": "netCDF",
    ".mbtiles": "MBTiles",
    ".gpkg": "GPKG",
    ".asc": "AAIGrid",
    ".vrt": "VRT",
    ".webp": "WEBP",
}


def check_raster(
    located: LocatedFile, readable: Path, table: str | None
) -> SourceCheck:
    """Check a raster file; ``readable`` is the file or its staged copy."""
    filename = str(located.path)
    if located.path.is_dir():
        return SourceCheck(is_valid=True, filename=filename).with_warning(
            f'Raster "{located.display}" is a folder; its content was not verified.'
        )

    with located.path.open("rb") as handle:
        header = handle.read(HEADER_BYTES)
        size = handle.seek(0, 2)

    if not header:
        return invalid_provider(
            f'Raster "{located.display}" is empty.', filename=filename
        )

    detected = _detect(header, size, located.path.suffix.lower())
    if detected in ("GPKG", "MBTiles"):
        return _check_tiles_db(located, readable, detected, table)

    expected = _EXPECTED_BY_SUFFIX.get(located.path.suffix.lower())
    if expected is not None and expected != detected:
        return invalid_provider(
            f'Raster "{located.display}" is not a valid {expected} file.',
            f"its header does not match the {expected} format",
            filename=filename,
        )

    check = SourceCheck(is_valid=True, filename=filename, driver=detected)
    if detected is None:
        return check.with_warning(
            f'Raster "{located.display}": format not recognised, the file was '
            "not verified."
        )
    return check


def _detect(header: bytes, size: int, suffix: str) -> str | None:
    if header.startswith(b"SQLite format 3\x00"):
        if suffix == ".mbtiles":
            return "MBTiles"
        is_gpkg = header[68:72] in (b"GPKG", b"GP10", b"GP11") or suffix == ".gpkg"
        return "GPKG" if is_gpkg else "SQLite"

    tiff = _tiff_kind(header, size)
    if tiff is not None:
        return tiff

    for name, magic, offset in _MAGICS:
        if header[offset : offset + len(magic)] == magic:
            return name

    text = header.lstrip().lower()
    if text.startswith(b"<vrtdataset"):
        return "VRT"
    if text.startswith(b"ncols"):
        return "AAIGrid"
    return None


def _tiff_kind(header: bytes, size: int) -> str | None:
    order = {b"II": "<", b"MM": ">"}.get(header[:2])
    if order is None or len(header) < 16:
        return None

    version = struct.unpack(order + "H", header[2:4])[0]
    if version == 42:
        offset = struct.unpack(order + "I", header[4:8])[0]
    elif version == 43:
        offset = struct.unpack(order + "Q", header[8:16])[0]
    else:
        return None
    return "GTiff" if 8 <= offset < size else None


def _check_tiles_db(
    located: LocatedFile, readable: Path, kind: str, table: str | None
) -> SourceCheck:
    filename = str(located.path)
    if not is_sqlite_file(readable):
        return invalid_provider(
            f'"{located.display}" is not a {kind} file.', filename=filename
        )

    try:
        with closing(connect_read_only(readable)) as connection:
            found = _tile_table(connection, kind, table)
    except sqlite3.Error as exc:
        return invalid_provider(
            f'"{located.display}" is not a readable {kind} file.',
            str(exc),
            filename=filename,
        )

    if found is None:
        wanted = f'Raster table "{table}" not' if table else "No raster tile table"
        return invalid_provider(
            f'{wanted} found in "{located.display}".', filename=filename
        )
    return SourceCheck(is_valid=True, filename=filename, driver=kind)


def _tile_table(
    connection: sqlite3.Connection, kind: str, table: str | None
) -> str | None:
    if kind == "MBTiles":
        row = connection.execute(
            "SELECT name FROM sqlite_master "
            "WHERE name = 'tiles' AND type IN ('table', 'view')"
        ).fetchone()
        return str(row[0]) if row else None

    query = (
        "SELECT table_name FROM gpkg_contents "
        "WHERE data_type IN ('tiles', '2d-gridded-coverage')"
    )
    names = [str(row[0]) for row in connection.execute(query)]
    if table is None:
        return names[0] if names else None
    return next((name for name in names if name.lower() == table.lower()), None)
