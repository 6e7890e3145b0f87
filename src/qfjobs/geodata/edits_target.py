"""Where a layer's data lives: the resolved targets the caller hands to the engine.

The QGIS project parser resolves a layer id to one of these. ``pk_column`` is the
primary-key attribute chosen by the reference rule (provider key, else a field
named ``fid``); ``None`` means the layer has none, and every delta on it is
refused (field failure D9). ``is_spatial`` is whether QGIS sees a geometry.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FileLayer:
    """A layer stored in a file: GeoPackage, SpatiaLite, shapefile, CSV, GeoJSON...

    ``layer_name`` is the table or layer inside the file (``layername=`` of the
    QGIS datasource); ``None`` for single-layer files. ``encoding`` is the
    layer's text encoding for formats that do not record one (CSV, a shapefile
    without ``.cpg``); ``None`` means UTF-8 for CSV and the dBASE default for
    shapefiles.
    """

    path: Path
    layer_name: str | None
    pk_column: str | None
    is_spatial: bool
    encoding: str | None = None

    def store_key(self) -> str:
        real = os.path.realpath(self.path)
        if real.lower().endswith((".shp", ".dbf", ".shx")):
            real = real[:-4]

        return "file:" + real

    def describe(self) -> str:
        suffix = f"|layername={self.layer_name}" if self.layer_name else ""
        return f"{self.path}{suffix}"


@dataclass(frozen=True, slots=True)
class PostgresLayer:
    """A PostgreSQL/PostGIS table. ``conninfo`` is a libpq connection string."""

    conninfo: str
    schema: str
    table: str
    pk_column: str | None
    is_spatial: bool
    geometry_column: str | None = None

    def store_key(self) -> str:
        params = conninfo_to_dict(self.conninfo)
        identity = {
            k: params.get(k) for k in ("service", "host", "port", "dbname", "user")
        }
        return "postgres:" + repr(sorted(identity.items()))

    def describe(self) -> str:
        return f"{redacted_conninfo(self.conninfo)} {self.schema}.{self.table}"


LayerTarget = FileLayer | PostgresLayer


def redacted_conninfo(conninfo: str) -> str:
    """The connection string without secrets, for messages and logs."""
    params = conninfo_to_dict(conninfo)
    shown = {
        k: params[k] for k in ("service", "host", "port", "dbname") if params.get(k)
    }
    return " ".join(f"{k}={v}" for k, v in shown.items()) or "postgres"
