"""Open the data store that holds a layer target, choosing the format handler.

SQLite files (GeoPackage, SpatiaLite, GDAL SQLite) are recognised by their
header, whatever their extension; shapefiles (``.shp``, or a bare ``.dbf``
table), GeoJSON and CSV by extension; every other file goes to the generic GDAL
handler. PostgreSQL targets open a database connection.
"""

import logging

from qfjobs.geodata.edits_csv import CsvStore
from qfjobs.geodata.edits_geojson import GeoJsonStore
from qfjobs.geodata.edits_ogr import OgrStore
from qfjobs.geodata.edits_postgis import PostgresStore
from qfjobs.geodata.edits_shapefile import ShapefileStore
from qfjobs.geodata.edits_sqlite import SqliteStore, is_sqlite_file
from qfjobs.geodata.edits_store import DataStore, StoreOpenError
from qfjobs.geodata.edits_target import FileLayer, LayerTarget

logger = logging.getLogger(__name__)

_GEOJSON_SUFFIXES = (".geojson", ".json")
_CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_SHAPEFILE_SUFFIXES = (".shp", ".dbf")


def open_store(target: LayerTarget) -> DataStore:
    """The store for ``target``; ``StoreOpenError`` when it cannot be opened."""
    if not isinstance(target, FileLayer):
        return PostgresStore(target.conninfo)

    path = target.path
    if not path.is_file():
        raise StoreOpenError(f"The data file {path} does not exist")

    if is_sqlite_file(path):
        return SqliteStore(path)

    suffix = path.suffix.lower()
    if suffix in _SHAPEFILE_SUFFIXES:
        return ShapefileStore(path, target.encoding)

    if suffix in _GEOJSON_SUFFIXES:
        return GeoJsonStore(path)

    if suffix in _CSV_SUFFIXES:
        return CsvStore(path, target.encoding)

    return OgrStore(path)
