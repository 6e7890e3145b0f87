"""Copy vector sources into tables of one GeoPackage (the package's data.gpkg).

:func:`export_table` streams one source into one new table; :func:`export_tables`
does it for a list. Each table gets:

* an integer primary key ``fid`` (values kept from the source's key where
  that is an integer, see :mod:`qfjobs.geodata.feature_batches`);
* for spatial sources a ``geom`` column of exactly the source's type (Z, M,
  curves), its CRS (authority code, else WKT; never reprojected) and an
  R-tree spatial index;
* every attribute with its type and width, under its own name unless it
  clashes with ``fid``/``geom`` or another name apart from case;
* every row, unless the request's ``where`` filter (in the source's own SQL
  dialect) keeps fewer; the optional area-of-interest box only applies to
  spatial tables. NULL, empty and invalid geometries are written as they
  are.

Memory stays bounded: batches stream from the reader through pyogrio's Arrow
writer one at a time. Unless a ``batch_size`` (features) is given, batches aim
at :data:`qfjobs.geodata.sources.BATCH_BYTES`: sized from the bytes per
feature on disk for files and from the previous batch for PostgreSQL, so a
table of a few very large features does not blow the bound where a fixed
feature count would. The R-tree spatial index is bounded too: GDAL bulk-loads
it in memory (about 35 bytes per feature; 3,000,000 points took 110 MB more
than the same table without index), so the write runs with GDAL's
``OGR_GPKG_MAX_RAM_USAGE_RTREE`` at :data:`RTREE_MAX_RAM_BYTES` and without
its R-tree thread (``OGR_GPKG_ALLOW_THREADED_RTREE=NO``: with the thread, the
limit did not lower the peak in our measurements). Up to about 1,900,000
features the index is built in memory as before; GDAL inserts the features
beyond that into the R-tree one by one, which costs about 15 seconds per
million features more (see ``bench/README.md``). Known limit: some GDAL
readers grow with the layer anyway; the shapefile reader keeps the ``.shx``
record index in memory (8 bytes per feature), so a shapefile past about 9
million features goes over 300 MB.

Nothing is dropped silently. After writing, the table's row count and NULL
geometries are compared with what was handed to GDAL: geometries GDAL could
not convert (it writes NULL) are reported in :attr:`TableExport.skipped`, as
are values a reader could not carry; GDAL's warnings go to
:attr:`TableExport.warnings`. Any failure raises
:class:`qfjobs.errors.DataSourceError` (interrupts and job timeouts propagate
as they are) after dropping the unfinished table, so a table is done exactly
when a :class:`TableExport` for it is returned. Known limit: a process killed
mid-write (SIGKILL, OOM) leaves the unfinished table; callers build the
package in a private folder and discard it when the job fails.

Writing happens only at ``gpkg_path``. Warnings are captured with
:func:`warnings.catch_warnings`, which is process-wide: run one export at a
time per process (an RQ worker runs one job at a time).
"""

import itertools
import logging
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import psycopg
import pyarrow as pa  # type: ignore[import-untyped]
import pyogrio

from qfjobs.errors import DataSourceError
from qfjobs.geodata import gpkg_catalog, ogr_reader, postgres_reader
from qfjobs.geodata.feature_batches import (
    GEOMETRY_COLUMN,
    BatchTransformer,
    ColumnPlan,
    FidKeyConflict,
    FidSource,
    plan_columns,
)
from qfjobs.geodata.fieldtypes import FieldInfo, written_fields
from qfjobs.geodata.geometrytypes import GeometryType, WkbTypeTally, refine_reported
from qfjobs.geodata.sources import (
    BBox,
    OgrSource,
    OpenedLayer,
    Source,
    SourceLayer,
    source_label,
)

logger = logging.getLogger(__name__)

#: Errors of the libraries underneath that mean "this data cannot be copied".
_DATA_ERRORS = (RuntimeError, OSError, ValueError, pa.ArrowException, psycopg.Error)

# pyogrio's notes about what it cannot express; this module handles both.
_PYOGRIO_NOTES = (
    "Measured (M) geometry types are not supported",
    "'crs' was not provided",
)
_MAX_WARNINGS = 20
#: Memory GDAL may use to bulk-load a table's R-tree.
RTREE_MAX_RAM_BYTES = 64 * 1024 * 1024
#: GDAL configuration for every GeoPackage write (see the module docstring).
_WRITE_CONFIG: dict[str, str | bool | int] = {
    "OGR_GPKG_ALLOW_THREADED_RTREE": False,
    "OGR_GPKG_MAX_RAM_USAGE_RTREE": RTREE_MAX_RAM_BYTES,
}
_RESERVED_PREFIXES = ("gpkg_", "rtree_", "sqlite_")


@dataclass(frozen=True)
class TableRequest:
    """One table to write: its source, name, key and area of interest.

    ``primary_key`` names the source's key column (``QFieldSync/
    sourceDataPrimaryKeys``); None looks for one as QGIS would (the source's
    own fid, a PostgreSQL primary key, else a field called ``fid``). ``bbox``
    is in the layer CRS and ignored for tables without geometry. ``where``
    keeps only the rows matching that filter, evaluated by the source (SQL of
    PostgreSQL, SQLite or OGR, as the source's driver reads it).
    ``description`` and ``identifier`` go to ``gpkg_contents``.
    """

    source: Source
    table: str
    primary_key: str | None = None
    bbox: BBox | None = None
    description: str = ""
    identifier: str | None = None
    where: str | None = None


@dataclass(frozen=True)
class Skipped:
    """Data that could not be written as it was, with why and how much.

    ``scope`` says what was lost: a whole ``feature``, a feature's
    ``geometry`` (the feature is kept with NULL), or single ``value``s.
    """

    reason: str
    count: int
    scope: Literal["feature", "geometry", "value"]


@dataclass(frozen=True)
class TableExport:
    """What one table holds once written."""

    table: str
    source: str
    feature_count: int
    geometry_type: GeometryType | None
    geometry_column: str | None
    crs: str | None
    fid_column: str
    fid_source: FidSource
    fields: tuple[FieldInfo, ...]
    renamed_fields: Mapping[str, str]
    skipped: tuple[Skipped, ...]
    warnings: tuple[str, ...]
    spatial_index: str | None
    elapsed_seconds: float

    @property
    def skipped_count(self) -> int:
        return sum(item.count for item in self.skipped)


@dataclass
class _Written:
    layer: SourceLayer
    plan: ColumnPlan
    transformer: BatchTransformer
    value_losses: dict[str, int]
    notes: list[str] = field(default_factory=list)


def export_tables(
    gpkg_path: Path, requests: Sequence[TableRequest], *, batch_size: int | None = None
) -> list[TableExport]:
    """Write every request into ``gpkg_path``, in order; stop at the first failure.

    Tables finished before a failure stay (and are complete).
    """
    names = [request.table.lower() for request in requests]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataSourceError(f"Table names requested more than once: {repeated}")

    return [
        export_table(gpkg_path, request, batch_size=batch_size) for request in requests
    ]


def export_table(
    gpkg_path: Path, request: TableRequest, *, batch_size: int | None = None
) -> TableExport:
    """Write ``request``'s source into a new table of ``gpkg_path``.

    The file is created if missing; the table must not exist yet.
    ``batch_size`` fixes the features per batch (None: sized by bytes).
    """
    started = time.perf_counter()
    gpkg_path = Path(gpkg_path)
    label = source_label(request.source)
    _check_request(gpkg_path, request, label)
    logger.debug("writing %s into table %s of %s", label, request.table, gpkg_path)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = _write_keeping_keys(gpkg_path, request, batch_size)
        try:
            result = _finish(gpkg_path, request, written, started)
        except BaseException as exc:
            gpkg_catalog.drop_table(gpkg_path, request.table)
            if isinstance(exc, _DATA_ERRORS) and not isinstance(exc, DataSourceError):
                message = f"Cannot finish table {request.table} from {label}: {exc}"
                raise DataSourceError(message, source=label) from exc
            raise

    gdal_warnings = _gdal_warnings(caught, request.table)
    result = _with_warnings(result, gdal_warnings)
    logger.debug(
        "table %s: %s features, %s skipped, %.1f s",
        result.table,
        result.feature_count,
        result.skipped_count,
        result.elapsed_seconds,
    )
    return result


def _check_request(gpkg_path: Path, request: TableRequest, label: str) -> None:
    table = request.table
    if not table.strip() or table.lower().startswith(_RESERVED_PREFIXES):
        raise DataSourceError(f"Invalid table name {table!r}", source=label)
    if not gpkg_path.parent.is_dir():
        raise DataSourceError(f"Folder of {gpkg_path} does not exist", source=label)
    if isinstance(request.source, OgrSource) and _same_file(request.source, gpkg_path):
        raise DataSourceError(f"{label} is the package being written", source=label)
    if gpkg_catalog.table_exists(gpkg_path, table):
        raise DataSourceError(f"Table {table} already exists in {gpkg_path}")


def _same_file(source: OgrSource, gpkg_path: Path) -> bool:
    path = Path(source.path)
    return path.exists() and gpkg_path.exists() and path.samefile(gpkg_path)


def _write_keeping_keys(
    gpkg_path: Path, request: TableRequest, batch_size: int | None
) -> _Written:
    """Write with the source's keys as fids; numbered fids if the keys clash."""
    try:
        return _write(gpkg_path, request, batch_size, generate_fids=False)
    except _KeyConflict as conflict:
        reason = str(conflict)
    # Reported through TableExport.warnings (the caller logs it).
    logger.debug("table %s: %s; writing it again with new fids", request.table, reason)

    written = _write(gpkg_path, request, batch_size, generate_fids=True)
    renamed = written.plan.renamed.get(str(written.plan.key))
    kept = f", its values are kept in {renamed!r}" if renamed else ""
    written.notes.append(f"{reason}: new fids were generated{kept}")
    return written


class _KeyConflict(Exception):
    """The key attribute cannot provide the fids; the table was dropped."""


def _write(
    gpkg_path: Path,
    request: TableRequest,
    batch_size: int | None,
    *,
    generate_fids: bool,
) -> _Written:
    with _open(request.source, request.bbox, batch_size, request.where) as opened:
        plan = plan_columns(
            opened.info, request.primary_key, generate_fids=generate_fids
        )
        transformer = BatchTransformer(plan)
        try:
            batches, creation_type = _peek_geometry_type(opened)
            stream = pa.RecordBatchReader.from_batches(
                plan.schema, transformer.stream(batches)
            )
            _write_stream(gpkg_path, request, opened.info, creation_type, stream)
        except BaseException as exc:
            gpkg_catalog.drop_table(gpkg_path, request.table)
            failure = _failure(exc, transformer, request.table, opened.info.label)
            if failure is exc:
                raise
            raise failure from exc
        return _Written(opened.info, plan, transformer, dict(opened.value_losses))


def _open(
    source: Source, bbox: BBox | None, batch_size: int | None, where: str | None
) -> AbstractContextManager[OpenedLayer]:
    if isinstance(source, OgrSource):
        return ogr_reader.open_layer(source, bbox, batch_size, where)
    return postgres_reader.open_layer(source, bbox, batch_size, where)


def count_at_source(source: Source, bbox: BBox | None, where: str) -> int:
    """Rows of ``source`` matching ``where`` (and ``bbox``), counted by the source.

    Raises :class:`DataSourceError` when the source cannot evaluate it.
    """
    if isinstance(source, OgrSource):
        return ogr_reader.count_features(source, bbox, where)
    return postgres_reader.count_features(source, bbox, where)


def _peek_geometry_type(
    opened: OpenedLayer,
) -> tuple[Iterator[pa.RecordBatch], GeometryType | None]:
    """The batches again, and the type to create the layer with.

    For a type pyogrio reported lossily, the first batch's geometries show
    whether the layer has M or curves, so the layer is mostly created right
    and GDAL has nothing to warn about; the catalog is set from all the data
    once written.
    """
    layer = opened.info
    if layer.geometry_type is None or layer.geometry_type_exact:
        return opened.batches, layer.geometry_type

    first = next(opened.batches, None)
    if first is None:
        return iter(()), layer.geometry_type
    tally = WkbTypeTally()
    tally.observe(first.column(layer.geometry_column))
    refined = refine_reported(layer.geometry_type, tally.types())
    return itertools.chain([first], opened.batches), refined


def _write_stream(
    gpkg_path: Path,
    request: TableRequest,
    layer: SourceLayer,
    geometry_type: GeometryType | None,
    stream: pa.RecordBatchReader,
) -> None:
    layer_options = {"FID": stream.schema.field(0).name}
    if request.description:
        layer_options["DESCRIPTION"] = request.description
    if request.identifier:
        layer_options["IDENTIFIER"] = request.identifier

    geometry: dict[str, str | None] = {"geometry_name": None, "geometry_type": None}
    if geometry_type is not None:
        layer_options |= {"GEOMETRY_NAME": GEOMETRY_COLUMN, "SPATIAL_INDEX": "YES"}
        geometry = {
            "geometry_name": GEOMETRY_COLUMN,
            "geometry_type": geometry_type.pyogrio_name,
        }

    with _gdal_config(_WRITE_CONFIG):
        pyogrio.write_arrow(
            stream,
            str(gpkg_path),
            layer=request.table,
            driver="GPKG",
            crs=layer.crs,
            layer_options=layer_options,
            **geometry,
        )


@contextmanager
def _gdal_config(options: Mapping[str, str | bool | int]) -> Iterator[None]:
    """Set GDAL configuration options for a block, then put the old ones back.

    GDAL's configuration is process-wide, like the warning capture: one
    export at a time per process.
    """
    previous = {name: pyogrio.get_gdal_config_option(name) for name in options}
    pyogrio.set_gdal_config_options(dict(options))
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options(previous)


def _failure(
    exc: BaseException, transformer: BatchTransformer, table: str, label: str
) -> BaseException:
    """The exception to raise for a failed write (the table is already gone)."""
    cause = transformer.failure or exc
    plan = transformer.plan
    if isinstance(cause, FidKeyConflict):
        return _KeyConflict(str(cause))
    if plan.fid_source is FidSource.KEY_ATTRIBUTE and _repeats_fid(exc, table, plan):
        return _KeyConflict(f"key {plan.key!r} has repeated values")
    if isinstance(cause, _DATA_ERRORS) and not isinstance(cause, DataSourceError):
        message = f"Cannot write {label} into table {table}: {cause}"
        return DataSourceError(message, source=label, table=table)
    return cause


def _repeats_fid(exc: BaseException, table: str, plan: ColumnPlan) -> bool:
    wanted = f"UNIQUE constraint failed: {table}.{plan.fid_column}".lower()
    return wanted in str(exc).lower()


def _finish(
    gpkg_path: Path, request: TableRequest, written: _Written, started: float
) -> TableExport:
    """Check the written table, fix its geometry type, describe it."""
    layer, plan, transformer = written.layer, written.plan, written.transformer
    geometry_column = GEOMETRY_COLUMN if layer.geometry_type is not None else None
    skipped = _check_counts(gpkg_path, request.table, geometry_column, transformer)
    skipped += [
        Skipped(reason, count, "value")
        for reason, count in written.value_losses.items()
    ]

    geometry_type = _final_geometry_type(layer, transformer)
    spatial_index = None
    if geometry_type is not None:
        gpkg_catalog.set_geometry_type(
            gpkg_path, request.table, GEOMETRY_COLUMN, geometry_type
        )
        spatial_index = gpkg_catalog.spatial_index_table(
            gpkg_path, request.table, GEOMETRY_COLUMN
        )

    notes = list(written.notes)
    if plan.renamed:
        notes.append(f"fields renamed to stay unique: {plan.renamed}")
    return TableExport(
        table=request.table,
        source=layer.label,
        feature_count=transformer.rows,
        geometry_type=geometry_type,
        geometry_column=geometry_column,
        crs=layer.crs,
        fid_column=plan.fid_column,
        fid_source=plan.fid_source,
        fields=written_fields(gpkg_path, request.table),
        renamed_fields=dict(plan.renamed),
        skipped=tuple(skipped),
        warnings=tuple(notes),
        spatial_index=spatial_index,
        elapsed_seconds=time.perf_counter() - started,
    )


def _check_counts(
    gpkg_path: Path,
    table: str,
    geometry_column: str | None,
    transformer: BatchTransformer,
) -> list[Skipped]:
    """Compare the table with what GDAL was given; GDAL NULLs bad WKB quietly."""
    rows, null_geometries = gpkg_catalog.count_rows(gpkg_path, table, geometry_column)
    if rows != transformer.rows:
        raise DataSourceError(
            f"Table {table} holds {rows} rows, {transformer.rows} were written"
        )

    lost = null_geometries - transformer.null_geometries if geometry_column else 0
    if lost <= 0:
        return []
    logger.debug("table %s: %s geometries could not be converted", table, lost)
    reason = "geometry GDAL could not convert; feature kept with a NULL geometry"
    return [Skipped(reason, lost, "geometry")]


def _final_geometry_type(
    layer: SourceLayer, transformer: BatchTransformer
) -> GeometryType | None:
    if layer.geometry_type is None or layer.geometry_type_exact:
        return layer.geometry_type
    return refine_reported(layer.geometry_type, transformer.tally.types())


def _gdal_warnings(caught: list[warnings.WarningMessage], table: str) -> list[str]:
    """GDAL's warnings, each once with a count; other warnings are re-issued."""
    counts: dict[str, int] = {}
    for item in caught:
        message = str(item.message)
        if issubclass(item.category, RuntimeWarning):
            counts[message] = counts.get(message, 0) + 1
        elif not message.startswith(_PYOGRIO_NOTES):
            warnings.warn_explicit(
                item.message, item.category, item.filename, item.lineno
            )

    for message, count in counts.items():
        logger.debug("table %s: GDAL: %s (%s times)", table, message, count)
    summary = [
        message if count == 1 else f"{message} ({count} times)"
        for message, count in counts.items()
    ]
    if len(summary) > _MAX_WARNINGS:
        extra = len(summary) - _MAX_WARNINGS
        summary = summary[:_MAX_WARNINGS] + [f"... and {extra} other GDAL warnings"]
    return summary


def _with_warnings(result: TableExport, gdal_warnings: list[str]) -> TableExport:
    if not gdal_warnings:
        return result
    merged = result.warnings + tuple(f"GDAL: {text}" for text in gdal_warnings)
    return replace(result, warnings=merged)
