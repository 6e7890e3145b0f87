"""From source batches to package batches: fid, column names, geometry.

:func:`plan_columns` decides, once per table, where the package's integer
``fid`` comes from and what every column is called; :class:`BatchTransformer`
applies that to each batch while it streams.

Feature ids (3.3 of the reference: a provider key, else a field named ``fid``
in any case):

* the source's own feature id (a GeoPackage ``fid``) is kept as the fid;
* an integer key attribute (``fid`` of a shapefile, CSV or GeoJSON, a PostGIS
  integer key) gives its values to the fid, so a device's edits refer to the
  same key as the source. A key attribute named ``fid`` (any case) *is* the fid
  column, under its own spelling; another key name (``gid``) stays an
  attribute as well;
* otherwise fids are numbered from 1 in reading order.

A source attribute named ``fid`` (any case) that cannot be the fid — not an
integer, or with NULL, -1 (GDAL's "no fid") or repeated values — is renamed
to ``fid_1`` (the first free ``fid_<n>``), keeping its values, and fids are
numbered from 1. Repeats only show when SQLite refuses a row; the table is
then written again from the start (see :mod:`qfjobs.geodata.gpkg_export`).
Likewise an attribute called ``geom`` in a spatial table, or names equal
apart from case, get the first free ``<name>_<n>``.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from qfjobs.errors import DataSourceError
from qfjobs.geodata.fieldtypes import is_integer_field, renamed_field
from qfjobs.geodata.geometrytypes import WkbTypeTally
from qfjobs.geodata.sources import SourceLayer

logger = logging.getLogger(__name__)

GEOMETRY_COLUMN = "geom"
FID_COLUMN = "fid"

# GDAL's OGRNullFID: a feature written with it gets a new fid.
_GDAL_NULL_FID = -1


class FidSource(StrEnum):
    """Where the package's fid values come from."""

    SOURCE_FID = "source_fid"
    KEY_ATTRIBUTE = "key_attribute"
    GENERATED = "generated"


class FidKeyConflict(Exception):
    """The key attribute cannot be the fid (NULL, -1, repeats, out of range)."""


@dataclass(frozen=True)
class ColumnPlan:
    """Column layout of one package table.

    ``attributes`` pairs each source column (by its name in the stream) with
    its name in the package; ``renamed`` lists those whose name changed.
    """

    fid_column: str
    fid_source: FidSource
    key: str | None
    fid_input: str | None
    attributes: tuple[tuple[str, str], ...]
    geometry_input: str | None
    schema: pa.Schema
    renamed: dict[str, str] = field(default_factory=dict)


def plan_columns(
    layer: SourceLayer, primary_key: str | None, *, generate_fids: bool = False
) -> ColumnPlan:
    """The column layout for ``layer``; ``generate_fids`` after a key conflict.

    Raises :class:`DataSourceError` when ``primary_key`` names no column.
    """
    fields = {f.name: f for f in layer.schema}
    key, key_is_native = _choose_key(layer, primary_key)
    fid_source = _fid_source(fields, key, key_is_native, generate_fids)
    fid_column = FID_COLUMN
    if fid_source is not FidSource.GENERATED and key and key.lower() == FID_COLUMN:
        fid_column = key

    inputs = [
        name
        for name in fields
        if name != layer.geometry_column
        and not (name == key and fid_source is not FidSource.GENERATED)
        and name != layer.native_fid_column
    ]
    if layer.native_fid_column and not (
        key_is_native and fid_column == layer.native_fid_column
    ):
        # The source's fid under another name (OBJECTID) stays an attribute.
        inputs.insert(0, layer.native_fid_column)
    if fid_source is FidSource.KEY_ATTRIBUTE and fid_column != key:
        inputs.insert(0, str(key))
    taken = {name.lower() for name in inputs}
    if fid_column.lower() in taken:
        # An attribute called fid that cannot be the fid (text, repeated
        # values) keeps its name and values, as the project and deltas refer
        # to it; the new fid column takes the next free name (fid_1, ...).
        fid_column = _free_name(FID_COLUMN, taken)

    attributes, renamed = _output_names(
        inputs, fid_column, spatial=layer.geometry_column is not None
    )
    schema = _output_schema(layer, fields, fid_column, attributes)
    return ColumnPlan(
        fid_column=fid_column,
        fid_source=fid_source,
        key=key,
        fid_input=key if fid_source is not FidSource.GENERATED else None,
        attributes=attributes,
        geometry_input=layer.geometry_column,
        schema=schema,
        renamed=renamed,
    )


def _choose_key(layer: SourceLayer, primary_key: str | None) -> tuple[str | None, bool]:
    """The key column and whether it is the source's own fid column."""
    native = layer.native_fid_column
    names = [f.name for f in layer.schema if f.name != layer.geometry_column]
    if primary_key is not None:
        if native and primary_key.lower() == native.lower():
            return native, True
        found = _find_name(names, primary_key)
        if found is None:
            raise DataSourceError(
                f"Primary key column {primary_key!r} not found in {layer.label}",
                source=layer.label,
            )
        return found, False

    if native:
        return native, True
    if layer.primary_key:
        return _find_name(names, layer.primary_key), False
    return _find_name(names, FID_COLUMN), False


def _free_name(base: str, taken: set[str]) -> str:
    suffix = 1
    while f"{base}_{suffix}".lower() in taken:
        suffix += 1
    return f"{base}_{suffix}"


def _find_name(names: list[str], wanted: str) -> str | None:
    """``wanted`` among ``names``: exact spelling first, then any case."""
    if wanted in names:
        return wanted
    return next((name for name in names if name.lower() == wanted.lower()), None)


def _fid_source(
    fields: dict[str, pa.Field],
    key: str | None,
    key_is_native: bool,
    generate_fids: bool,
) -> FidSource:
    if key is None or generate_fids:
        return FidSource.GENERATED
    if key_is_native:
        return FidSource.SOURCE_FID
    if is_integer_field(fields[key]):
        return FidSource.KEY_ATTRIBUTE
    return FidSource.GENERATED


def _output_names(
    inputs: list[str], fid_column: str, *, spatial: bool
) -> tuple[tuple[tuple[str, str], ...], dict[str, str]]:
    """Unique (case-insensitive) package names for the attribute columns."""
    taken = {fid_column.lower()} | ({GEOMETRY_COLUMN} if spatial else set())
    pairs = []
    renamed = {}
    for name in inputs:
        output = name
        suffix = 0
        while output.lower() in taken:
            suffix += 1
            output = f"{name}_{suffix}"
        taken.add(output.lower())
        pairs.append((name, output))
        if output != name:
            renamed[name] = output
    return tuple(pairs), renamed


def _output_schema(
    layer: SourceLayer,
    fields: dict[str, pa.Field],
    fid_column: str,
    attributes: tuple[tuple[str, str], ...],
) -> pa.Schema:
    columns = [pa.field(fid_column, pa.int64(), nullable=False)]
    for source_name, output_name in attributes:
        source_field = fields[source_name]
        if source_name == layer.native_fid_column:
            source_field = source_field.with_type(pa.int64())
        columns.append(renamed_field(source_field, output_name))
    if layer.geometry_column is not None:
        columns.append(
            pa.field(
                GEOMETRY_COLUMN,
                _storage_type(fields[layer.geometry_column].type),
                metadata={b"ARROW:extension:name": b"geoarrow.wkb"},
            )
        )
    return pa.schema(columns)


def _storage_type(arrow_type: pa.DataType) -> pa.DataType:
    if isinstance(arrow_type, pa.ExtensionType):
        return arrow_type.storage_type
    return arrow_type


class BatchTransformer:
    """Applies a :class:`ColumnPlan` to batches and keeps count.

    After streaming, ``rows`` and ``null_geometries`` say what was handed to
    GDAL, ``tally`` which WKB types, and ``failure`` the exception that ended
    the stream early (GDAL only reports that the stream failed).
    """

    def __init__(self, plan: ColumnPlan) -> None:
        self.plan = plan
        self.rows = 0
        self.null_geometries = 0
        self.tally = WkbTypeTally()
        self.failure: BaseException | None = None
        self._next_fid = 1

    def stream(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            for batch in batches:
                yield self.transform(batch)
        except BaseException as exc:
            self.failure = exc
            raise

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = [self._fids(batch)]
        for index, (source_name, _) in enumerate(self.plan.attributes, start=1):
            column = batch.column(source_name)
            wanted = self.plan.schema.field(index).type
            if column.type != wanted:
                # Only the source's own fid, copied as an attribute, is widened.
                column = column.cast(wanted)
            arrays.append(column)

        if self.plan.geometry_input is not None:
            geometry = batch.column(self.plan.geometry_input)
            if isinstance(geometry, pa.ExtensionArray):
                geometry = geometry.storage
            self.null_geometries += geometry.null_count
            self.tally.observe(geometry)
            arrays.append(geometry)

        self.rows += batch.num_rows
        return pa.RecordBatch.from_arrays(arrays, schema=self.plan.schema)

    def _fids(self, batch: pa.RecordBatch) -> pa.Array:
        if self.plan.fid_input is None:
            start = self._next_fid
            self._next_fid += batch.num_rows
            return pa.array(np.arange(start, self._next_fid, dtype=np.int64))

        column = batch.column(self.plan.fid_input)
        if self.plan.fid_source is FidSource.SOURCE_FID:
            return column.cast(pa.int64())
        return _key_fids(column, self.plan.fid_input)


def _key_fids(column: pa.Array, key: str) -> pa.Array:
    """Key attribute values as fids; :class:`FidKeyConflict` when they cannot be."""
    if column.null_count:
        raise FidKeyConflict(f"key {key!r} has NULL values")
    try:
        fids = column.cast(pa.int64())
    except pa.ArrowInvalid as exc:
        raise FidKeyConflict(f"key {key!r} has values beyond 64 bits") from exc
    if pc.any(pc.equal(fids, _GDAL_NULL_FID)).as_py():
        raise FidKeyConflict(f"key {key!r} has the value -1")
    return fids
