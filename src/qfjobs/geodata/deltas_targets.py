"""From a checked QGIS project to the data target of every editable layer.

:func:`resolve_targets` turns the layers of a
:class:`~qfjobs.qgis.inspect.ProjectReport` into what ``apply_deltas`` writes:
a :class:`~qfjobs.geodata.edits_target.FileLayer` for file-based vector layers
(GeoPackage, SpatiaLite, shapefile, GeoJSON, CSV...) and a
:class:`~qfjobs.geodata.edits_target.PostgresLayer` for PostgreSQL tables. The
primary key is the one the project check chose by the libqfieldsync rule.

A layer gets no target, with the reason in :attr:`ResolvedTargets.reasons`,
when it is not a vector layer, its data could not be checked (missing file,
unreachable or refused database host), it is a query layer or a layer embedded
from another project, or its file lies outside the project folder. Deltas on
such a layer end as ``not_applied`` with that reason.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.conninfo import make_conninfo

from qfjobs.geodata.edits_target import FileLayer, LayerTarget, PostgresLayer
from qfjobs.qgis.inspect import LayerReport, ProjectReport
from qfjobs.qgis.pgcheck import PgOptions, connection_params
from qfjobs.qgis.pgservice import ServiceNotFound
from qfjobs.qgis.sourcemodel import SourceKind

logger = logging.getLogger(__name__)

POSTGRES_PROVIDERS = frozenset({"postgres"})
NON_SPATIAL = frozenset({"NoGeometry", "", None})


@dataclass
class ResolvedTargets:
    targets: dict[str, LayerTarget] = field(default_factory=dict)
    #: Why a layer of the project has no target.
    reasons: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)


def resolve_targets(
    report: ProjectReport, data_root: Path, pg_options: PgOptions
) -> ResolvedTargets:
    """The target of every layer of ``report`` whose data qfjobs can edit."""
    resolved = ResolvedTargets()
    root = data_root.resolve()
    for layer in report.layers:
        resolved.names[layer.layer_id] = layer.name
        try:
            target = _target(layer, root, pg_options)
        except _NoTarget as exc:
            resolved.reasons[layer.layer_id] = (
                f'Layer "{layer.name}" ({layer.layer_id}) cannot be edited: {exc}'
            )
            continue

        resolved.targets[layer.layer_id] = target
    return resolved


class _NoTarget(Exception):
    pass


def _target(layer: LayerReport, root: Path, pg_options: PgOptions) -> LayerTarget:
    record = layer.record
    if record.get("type_name") != "Vector":
        raise _NoTarget("it is not a vector layer")

    if not layer.check.is_valid:
        summary = layer.check.error_summary or "its data source is invalid"
        raise _NoTarget(summary.rstrip("."))

    pk = str(record.get("qfc_source_data_pk_name") or "") or None
    spatial = record.get("geometry_type") not in NON_SPATIAL
    source = layer.source
    if source.provider in POSTGRES_PROVIDERS:
        return _postgres_target(layer, pk, spatial, pg_options)

    if source.kind is not SourceKind.FILE or not source.path:
        raise _NoTarget(f"its {source.provider or 'unknown'} data is not a local file")

    path = Path(layer.check.filename) if layer.check.filename else None
    if path is None:
        path = source.resolve_path(root)
    if path is None:
        raise _NoTarget("its data file is unknown")

    real = path.resolve()
    if not real.is_relative_to(root):
        raise _NoTarget("its data file lies outside the project")

    return FileLayer(
        path=real,
        layer_name=source.layer_name,
        pk_column=pk,
        is_spatial=spatial,
        encoding=source.params.get("encoding") or None,
    )


def _postgres_target(
    layer: LayerReport, pk: str | None, spatial: bool, pg_options: PgOptions
) -> PostgresLayer:
    table = layer.source.table
    if table is None or table.is_query:
        raise _NoTarget("it is a query layer, not a table")

    try:
        params = connection_params(layer.source, pg_options)
    except ServiceNotFound as exc:
        raise _NoTarget(str(exc)) from exc

    return PostgresLayer(
        conninfo=make_conninfo("", **params),
        schema=table.schema or "public",
        table=table.table,
        pk_column=pk,
        is_spatial=spatial,
        geometry_column=table.geometry_column,
    )
