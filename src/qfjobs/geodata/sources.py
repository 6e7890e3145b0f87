"""Where a packaged table's data comes from, and what a reader tells about it.

A source is either anything GDAL (through pyogrio) opens — :class:`OgrSource`
— or a PostgreSQL table or view read with psycopg — :class:`PostgresSource`.
pyogrio's bundled GDAL has no PostgreSQL driver, hence the second reader.

The QGIS project parser resolves a layer's data source into one of these. A
layer's subset filter is deliberately not part of a source: layers of one
source share one table, and a filter stays on its layer in the project
unless the package cannot evaluate it (see
:mod:`qfjobs.packaging.layerfilters`).
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pyarrow as pa  # type: ignore[import-untyped]
from psycopg import conninfo

from qfjobs.geodata.geometrytypes import GeometryType

#: ``(xmin, ymin, xmax, ymax)`` in the layer's CRS.
BBox = tuple[float, float, float, float]

#: Aim for source batches of about this many bytes when no batch size is set.
BATCH_BYTES = 4 * 1024 * 1024
MIN_BATCH_FEATURES = 64
MAX_BATCH_FEATURES = 20_000


def features_per_batch(bytes_per_feature: float) -> int:
    """Batch length for :data:`BATCH_BYTES`, within the min and max."""
    if bytes_per_feature <= 0:
        return MAX_BATCH_FEATURES
    wanted = int(BATCH_BYTES / bytes_per_feature)
    return max(MIN_BATCH_FEATURES, min(MAX_BATCH_FEATURES, wanted))


@dataclass(frozen=True)
class OgrSource:
    """A file (or any GDAL dataset name) and optionally one layer of it.

    ``open_options`` are GDAL dataset open options, e.g. for a CSV from a QGIS
    delimited-text layer ``{"X_POSSIBLE_NAMES": "x", "Y_POSSIBLE_NAMES": "y",
    "AUTODETECT_TYPE": "YES"}``. ``layer_crs`` is the CRS the QGIS layer
    declares; when given it is written as the table's CRS instead of the
    source's own (it is assigned, nothing is reprojected), as the reference
    packager writes the layer CRS.
    """

    path: Path | str
    layer: str | None = None
    open_options: Mapping[str, str] = field(default_factory=dict)
    layer_crs: str | None = None


@dataclass(frozen=True)
class PostgresSource:
    """A table or view in PostgreSQL, read through a libpq connection string.

    ``geometry_column`` picks one of several geometry columns; None takes the
    first. Other geometry columns are copied as EWKT text attributes.
    """

    conninfo: str
    schema: str
    table: str
    geometry_column: str | None = None
    layer_crs: str | None = None


Source = OgrSource | PostgresSource


def source_label(source: Source) -> str:
    """A name of the source for logs and messages, without any password."""
    if isinstance(source, OgrSource):
        suffix = f"|layername={source.layer}" if source.layer else ""
        return f"{source.path}{suffix}"

    return f"{_redacted(source.conninfo)} {source.schema}.{source.table}"


def _redacted(text: str) -> str:
    try:
        params = conninfo.conninfo_to_dict(text)
    except psycopg.ProgrammingError:
        # An unparsable string must not leak either.
        return "<connection string>"
    if "password" in params:
        params["password"] = "***"
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


@dataclass(frozen=True)
class SourceLayer:
    """What a reader found out about a source before streaming it.

    ``schema`` describes the batches the reader yields. ``native_fid_column``
    names the column holding the source's own integer feature id (a
    GeoPackage's ``fid``), ``primary_key`` the key the source declares (that
    column, or a PostgreSQL primary key). ``geometry_type_exact`` is False when
    the type came from pyogrio's lossy report (see
    :func:`qfjobs.geodata.geometrytypes.refine_reported`).
    """

    label: str
    schema: pa.Schema
    geometry_column: str | None
    geometry_type: GeometryType | None
    geometry_type_exact: bool
    crs: str | None
    native_fid_column: str | None = None
    primary_key: str | None = None


@dataclass
class OpenedLayer:
    """An open source: its description, its batches, and losses on the way.

    ``value_losses`` counts values the reader could not carry (reason to
    count), filled while ``batches`` is consumed.
    """

    info: SourceLayer
    batches: Iterator[pa.RecordBatch]
    value_losses: dict[str, int] = field(default_factory=dict)
