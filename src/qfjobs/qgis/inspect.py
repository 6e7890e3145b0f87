"""The entry point of the process_projectfile job: :func:`inspect_project`.

It opens the project (hardened XML, safe ``.qgz``), checks every layer's data
source for real, and returns a :class:`ProjectReport`: the JSON-serialisable
``project_details`` (reference section 2.2, with the fixes listed in
:mod:`qfjobs.qgis.details`) and human-readable, redacted log lines per layer
for the job output. Project-level failures (missing file, bad XML, unsafe
archive) raise the :mod:`qfjobs.errors` classes; layer problems never raise,
they are reported in the layer records.
"""

import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from qfjobs.qgis.availability import SourceChecker
from qfjobs.qgis.checkresult import SourceCheck, invalid_layer, invalid_provider
from qfjobs.qgis.datasource import parse_datasource
from qfjobs.qgis.details import build_project_details, layer_record
from qfjobs.qgis.maplayers import MapLayerXml, read_map_layers
from qfjobs.qgis.pgcheck import LOOPBACK_HOSTS, PgOptions
from qfjobs.qgis.projectfile import ProjectFile, open_project
from qfjobs.qgis.redaction import redact
from qfjobs.qgis.sourcemodel import DataSource, SourceKind
from qfjobs.qgis.xmlparser import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH

logger = logging.getLogger(__name__)

#: Layer types that have no data provider and are valid as such.
PROVIDERLESS_TYPES = frozenset({"group", "annotation"})


@dataclass(frozen=True)
class LayerReport:
    """One layer: its parsed source, the check result, record and log lines.

    ``source.raw`` may hold secrets; ``record`` and ``log_lines`` do not.
    """

    layer_id: str
    name: str
    source: DataSource
    check: SourceCheck
    record: dict[str, Any]
    log_lines: tuple[str, ...]


@dataclass(frozen=True)
class ProjectReport:
    """What :func:`inspect_project` found."""

    project: ProjectFile
    details: dict[str, Any]
    layers: tuple[LayerReport, ...]

    @property
    def log_lines(self) -> list[str]:
        """Every layer's log lines, in layer order, after a header line."""
        version = self.project.qgis_version or "?"
        header = (
            f'Project "{self.project.filename}" (QGIS {version}): '
            f"{len(self.layers)} layer(s), {self.invalid_count} invalid"
        )
        return [header] + [line for layer in self.layers for line in layer.log_lines]

    @property
    def layer_logs(self) -> dict[str, tuple[str, ...]]:
        return {layer.layer_id: layer.log_lines for layer in self.layers}

    @property
    def invalid_count(self) -> int:
        return sum(1 for layer in self.layers if not layer.check.is_valid)


def inspect_project(
    project_file: Path,
    *,
    pg_service_file: Path | None = None,
    pg_timeout: float = 3.0,
    pg_allowed_hosts: Iterable[str] | None = LOOPBACK_HOSTS,
    data_root: Path | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> ProjectReport:
    """Open ``project_file`` and check every layer.

    ``pg_service_file`` defines ``service=`` connections (else
    ``$PGSERVICEFILE``). ``pg_allowed_hosts`` lists the database hosts a
    layer may make us connect to (None: any; default: loopback only).
    ``data_root`` is the folder layer files must lie in (default: the
    project file's folder; pass the project storage root when the project
    file sits in a sub-folder). Raises ``ProjectFileNotFoundError`` or
    ``InvalidProjectFileError`` when the project itself cannot be read.
    """
    project = open_project(project_file, max_bytes=max_bytes, max_depth=max_depth)
    allowed = (
        None
        if pg_allowed_hosts is None
        else frozenset(h.lower() for h in pg_allowed_hosts)
    )
    options = PgOptions(
        service_file=pg_service_file, timeout=pg_timeout, allowed_hosts=allowed
    )
    layers = read_map_layers(project.root)

    with SourceChecker(
        project.project_dir, data_root=data_root, pg_options=options
    ) as checker:
        reports = _check_layers(checker, layers, checker.data_root)

    records = {report.layer_id: report.record for report in reports}
    details = build_project_details(project, records)
    by_id = {report.layer_id: report for report in reports}
    ordered = tuple(by_id[layer_id] for layer_id in details["ordered_layer_ids"])
    logger.info("Inspected %s: %s layers", project.filename, len(ordered))
    return ProjectReport(project=project, details=details, layers=ordered)


def _check_layers(
    checker: SourceChecker, layers: list[MapLayerXml], files_root: Path
) -> list[LayerReport]:
    sources = {
        layer.layer_id: parse_datasource(layer.provider, layer.datasource)
        for layer in layers
    }
    checks: dict[str, SourceCheck] = {}

    for layer in layers:
        if sources[layer.layer_id].kind is not SourceKind.VIRTUAL:
            checks[layer.layer_id] = _check_one(checker, layer, sources[layer.layer_id])

    for layer in layers:
        source = sources[layer.layer_id]
        if source.kind is SourceKind.VIRTUAL:
            checks[layer.layer_id] = _guarded(
                partial(checker.check_virtual, source, checks)
            )

    return [
        _report(layer, sources[layer.layer_id], checks[layer.layer_id], files_root)
        for layer in layers
    ]


def _check_one(
    checker: SourceChecker, layer: MapLayerXml, source: DataSource
) -> SourceCheck:
    if layer.is_embedded:
        return invalid_layer(
            "Layers embedded from another project are not supported on the server."
        )

    if layer.layer_type in PROVIDERLESS_TYPES and source.kind is SourceKind.NONE:
        return SourceCheck(is_valid=True)

    return _guarded(partial(checker.check, source, layer_type=layer.layer_type))


def _guarded(run: Callable[[], SourceCheck]) -> SourceCheck:
    """Run a check; an unexpected I/O or library error invalidates the layer only."""
    try:
        result = run()
    except (OSError, ValueError, RuntimeError, UnicodeError, sqlite3.Error) as exc:
        reason = redact(str(exc))
        logger.warning("Checking a data source failed: %s", reason)
        logger.debug("Traceback of the failed check", exc_info=True)
        return invalid_provider("Checking the data source failed.", reason)
    return result


def _report(
    layer: MapLayerXml, source: DataSource, check: SourceCheck, files_root: Path
) -> LayerReport:
    record = layer_record(layer, source, check, files_root)
    return LayerReport(
        layer_id=layer.layer_id,
        name=layer.name,
        source=source,
        check=check,
        record=record,
        log_lines=tuple(redact(line) for line in _log_lines(record, check)),
    )


def _log_lines(record: dict[str, Any], check: SourceCheck) -> list[str]:
    provider = record["provider"] or "no provider"
    label = f'Layer "{record["name"]}" ({record["id"]}, {provider})'
    if check.is_valid:
        facts = [record["type_name"]]
        if record["geometry_type"]:
            facts.append(record["geometry_type"])
        if record["feature_count"] is not None:
            facts.append(f"{record['feature_count']} feature(s)")
        lines = [f"{label}: valid; {', '.join(facts)}"]
    else:
        # The record's texts, not the check's: they have the secrets masked.
        message, summary = record["error_message"], record["error_summary"]
        detail = f" ({message})" if message else ""
        lines = [f"{label}: INVALID [{check.error_code.value}] {summary}{detail}"]

    if record["read_only_reason"]:
        lines.append(f"  warning: {record['read_only_reason']}")
    lines.extend(f"  warning: {redact(warning)}" for warning in check.warnings)
    return lines
