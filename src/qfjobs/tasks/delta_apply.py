"""The ``delta_apply`` job: write the claimed field edits into the project's data.

Steps:

1. mark the job's deltas ``started`` and load them in apply order (upload
   order, then position in the deltafile), with the server keys earlier
   creates of the same devices got;
2. lay the project's files out in the job's private work folder (copies);
3. read the QGIS project, mark ``unpermitted`` the deltas it does not let
   field users make (``qfjobs.geodata.deltas_permissions``: read-only or
   removed layers, locked geometries), resolve each layer's data and apply the
   other deltas (``qfjobs.geodata.deltas_apply``): one transaction per data
   file (SQLite for GeoPackage/SpatiaLite, PostgreSQL for PostGIS),
   rewrite-and-rename for shapefile, GeoJSON and CSV;
4. store every data file whose bytes changed as a new blob.

The project's file rows, the deltas' statuses and ``data_last_updated_at`` are
written in the one transaction that marks the job finished. Until then the
stored project files are untouched: a job killed at any point leaves every
stored file as it was before the job. When it fails, its started deltas
become ``error`` (``services.jobs.fail_started_deltas``); when it is stopped
they go back to pending (``services.jobs.release_stopped_deltas``), but for
those on PostgreSQL layers (see below).

PostgreSQL layers are edited in place, and their database commits before the
job's results reach the SQL store. Every delta written there is recorded, in
the same data transaction, in that database's ledger
(``qfjobs.geodata.deltas_ledger``), which makes it exactly once:

* a job failing in its worker after that commit marks those deltas
  ``applied`` with their outcome, the others ``error``;
* a job whose worker is lost (killed, or far past its timeout) is failed by
  the reconciler, and a stopped job is marked ``stopped``; either way the
  deltas the ledgers hold are marked ``applied`` (``services.delta_ledger``),
  the job's other started deltas on PostgreSQL layers ``error``;
* a delta already in the ledger is not written again: it is reported
  ``applied`` as recorded, so deltas set back to pending and applied again
  write every change once.

Remaining limits: a stop reads the ledgers right after the work horse was
ended, so a commit the horse had sent but the database had not yet carried
out is missed: those deltas read ``error`` though applied (applying them
again is safe). A role that can neither create nor write
``qfjobs.applied_deltas`` works without ledger, as before, and the job says
so (feedback ``data_notes`` and its log): there a worker lost or a job
stopped between the two commits leaves deltas ``error`` though applied, and
applying them again writes creates twice. The ledgers are read from the
project's current project file: a database it no longer names, or one that
cannot be reached then, leaves its deltas ``error``. The data stores of one
job (several databases, or a database and files) are not committed together.
"""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rq.timeouts import JobTimeoutException
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from qfjobs.errors import (
    DataSourceError,
    InvalidDeltafileError,
    NoQGISProjectError,
    ProjectFileNotFoundError,
)
from qfjobs.geodata.deltafile import Delta as ParsedDelta
from qfjobs.geodata.deltafile import parse_stored_delta
from qfjobs.geodata.deltas_apply import apply_deltas
from qfjobs.geodata.deltas_permissions import LayerRules, layer_rules, refusal
from qfjobs.geodata.deltas_results import ApplyResult, DeltaOutcome
from qfjobs.geodata.deltas_results import DeltaStatus as OutcomeStatus
from qfjobs.geodata.deltas_targets import resolve_targets
from qfjobs.geodata.edits_target import LayerTarget, PostgresLayer
from qfjobs.models import Delta, DeltaStatus, Project, ProjectFile
from qfjobs.models.timestamps import utcnow
from qfjobs.qgis.inspect import inspect_project
from qfjobs.qgis.maplayers import read_map_layers
from qfjobs.services import delta_ledger
from qfjobs.services import deltas as delta_service
from qfjobs.services import jobs as job_service
from qfjobs.storage import StoredBlob, checksum_file
from qfjobs.tasks.base import JobContext
from qfjobs.tasks.feedback import Workflow

logger = logging.getLogger(__name__)

#: Sidecar suffixes a rewritten shapefile may change beside its ``.shp``.
_SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".cpg", ".prj")


@dataclass(frozen=True)
class _ChangedFile:
    path: str
    old_sha256: str
    blob: StoredBlob


class DeltaApply:
    workflow = Workflow(
        "apply_deltas",
        "Apply Deltas",
        (
            ("start", "Start"),
            ("download_project_directory", "Download Project Directory"),
            ("apply_deltas", "Apply Deltas"),
            ("upload_exported_project", "Store Changed Files"),
        ),
    )

    def __call__(self, ctx: JobContext) -> None:
        job_id = ctx.job_id
        # Records of deltas committed in a database: in the data whatever follows.
        in_data: list[dict[str, Any]] = []
        ctx.on_failure.append(
            lambda session, project: _fail_deltas(
                session, job_id, "The job failed", in_data, project
            )
        )
        with ctx.feedback.step("start") as outputs:
            rows = _start_deltas(ctx)
            parsed = _parse(ctx, rows)
            keys = delta_service.created_keys(
                ctx.session, ctx.project.id, {d.client_id for d in parsed if d}
            )
            ctx.session.commit()
            outputs["delta_count"] = len(rows)
            logger.info("%s: %s deltas to apply", job_id, len(rows))

        with ctx.feedback.step("download_project_directory"):
            files = ctx.download_project(writable=True)
            snapshot = {row.path: row.sha256 for row in files}
            project_file = _project_file(ctx)

        with ctx.feedback.step("apply_deltas") as outputs:
            result, in_place = _apply(ctx, project_file, rows, parsed, keys)
            records = [
                _record(outcome, rows[outcome.delta_index], ctx)
                for outcome in result.outcomes
            ]
            records.sort(key=lambda record: record["delta_index"])
            in_data.extend(_committed_in_place(records, in_place))
            for record in records:
                logger.info(
                    "%s: delta %s %s %s %s: %s (feature %s, modified %s)",
                    job_id,
                    record["delta_index"],
                    record["delta_id"],
                    record["method"],
                    record["qfjobs_status"],
                    record["msg"],
                    record["feature_pk"],
                    record["modified_pk"],
                )
            outputs["delta_feedback"] = records
            outputs["summary"] = {
                status.value: result.count(status) for status in OutcomeStatus
            }
            notes = [note for store in result.stores if (note := store.note)]
            for note in notes:
                logger.warning("%s: %s", job_id, note)
            if notes:
                outputs["data_notes"] = notes

        with ctx.feedback.step("upload_exported_project") as outputs:
            changed = _store_changed(ctx, result, snapshot)
            outputs["changed_files"] = [change.path for change in changed]
            for change in changed:
                logger.info(
                    "%s: %s changed, stored as %s",
                    job_id,
                    change.path,
                    change.blob.sha256,
                )

        started_at = ctx.job.started_at
        user_id = ctx.job.created_by_id

        def write_results(session: Session, project: Project) -> None:
            _write_results(
                session,
                project,
                job_id,
                records,
                changed,
                (started_at, user_id),
                in_data,
            )

        ctx.on_success.append(write_results)


def _start_deltas(ctx: JobContext) -> list[Delta]:
    """Mark the job's claimed deltas ``started``; they are what it applies."""
    now = utcnow()
    ctx.session.execute(
        update(Delta)
        .where(
            Delta.job_id == ctx.job_id,
            Delta.last_status.in_((DeltaStatus.PENDING, DeltaStatus.STARTED)),
        )
        .values(
            last_status=DeltaStatus.STARTED,
            last_apply_attempt_at=now,
            last_apply_attempt_by_id=ctx.job.created_by_id,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    ctx.session.commit()
    rows = delta_service.job_deltas(ctx.session, ctx.job_id)
    return [row for row in rows if row.last_status == DeltaStatus.STARTED]


def _parse(ctx: JobContext, rows: Sequence[Delta]) -> list[ParsedDelta | None]:
    """Parse each stored delta; one that no longer validates is ``None``."""
    parsed: list[ParsedDelta | None] = []
    for index, row in enumerate(rows):
        try:
            parsed.append(parse_stored_delta(row.content, index))
        except InvalidDeltafileError as exc:
            logger.warning("%s: delta %s is invalid: %s", ctx.job_id, row.id, exc)
            parsed.append(None)
    return parsed


def _project_file(ctx: JobContext) -> Path:
    filename = ctx.project.project_filename
    if not filename:
        raise NoQGISProjectError()
    path = ctx.files_dir.joinpath(*filename.split("/"))
    if not path.is_file():
        raise ProjectFileNotFoundError(f'Project file "{filename}" does not exist')
    return path


def _apply(
    ctx: JobContext,
    project_file: Path,
    rows: Sequence[Delta],
    parsed: Sequence[ParsedDelta | None],
    keys: dict[Any, str],
) -> tuple[ApplyResult, frozenset[str]]:
    """The deltas' outcomes, and the layers whose database committed them."""
    pg_options = delta_ledger.pg_options(ctx.config)
    report = inspect_project(
        project_file,
        pg_service_file=pg_options.service_file,
        pg_timeout=pg_options.timeout,
        pg_allowed_hosts=pg_options.allowed_hosts,
        data_root=ctx.files_dir,
    )
    resolved = resolve_targets(report, ctx.files_dir, pg_options)
    for reason in resolved.reasons.values():
        logger.info("%s: %s", ctx.job_id, reason)

    valid, refused = _permitted(
        parsed, layer_rules(read_map_layers(report.project.root))
    )
    targets: dict[str, LayerTarget | None] = dict(resolved.targets)
    result = apply_deltas(
        [delta for _, delta in valid],
        targets,
        overwrite_conflicts=ctx.project.overwrite_conflicts,
        created_keys=keys,
        abort_on=(JobTimeoutException,),
        job_id=str(ctx.job_id),
    )
    outcomes: list[DeltaOutcome] = []
    for outcome in result.outcomes:
        index = valid[outcome.delta_index][0]
        message = outcome.message
        if (
            outcome.status is OutcomeStatus.NOT_APPLIED
            and outcome.layer_id in resolved.reasons
        ):
            message = resolved.reasons[outcome.layer_id]
        outcomes.append(_moved(outcome, index, message))
    outcomes.extend(refused)
    for index, delta in enumerate(parsed):
        if delta is None:
            outcomes.append(_invalid_outcome(rows[index], index))
    in_place = frozenset(
        layer_id
        for store in result.stores
        if store.committed
        for layer_id in store.layer_ids
        if isinstance(targets.get(layer_id), PostgresLayer)
    )
    applied = ApplyResult(
        outcomes=tuple(outcomes),
        created_keys=result.created_keys,
        stores=result.stores,
    )
    return applied, in_place


def _committed_in_place(
    records: list[dict[str, Any]], layers: frozenset[str]
) -> list[dict[str, Any]]:
    """The applied deltas' records whose change a database committed."""
    return [
        record
        for record in records
        if record["qfjobs_status"] == DeltaStatus.APPLIED
        and record["layer_id"] in layers
    ]


def _moved(outcome: DeltaOutcome, index: int, message: str) -> DeltaOutcome:
    return DeltaOutcome(
        delta_index=index,
        delta_id=outcome.delta_id,
        layer_id=outcome.layer_id,
        method=outcome.method,
        status=outcome.status,
        message=message,
        feature_pk=outcome.feature_pk,
        modified_pk=outcome.modified_pk,
        conflicts=outcome.conflicts,
        notes=outcome.notes,
    )


def _permitted(
    parsed: Sequence[ParsedDelta | None], rules: dict[str, LayerRules]
) -> tuple[list[tuple[int, ParsedDelta]], list[DeltaOutcome]]:
    """The valid deltas the project permits (with their index), and the
    ``unpermitted`` outcomes of the others."""
    permitted: list[tuple[int, ParsedDelta]] = []
    refused: list[DeltaOutcome] = []
    for index, delta in enumerate(parsed):
        if delta is None:
            continue
        why = refusal(delta, rules)
        if why is None:
            permitted.append((index, delta))
        else:
            refused.append(_unpermitted_outcome(delta, index, why))
    return permitted, refused


def _unpermitted_outcome(delta: ParsedDelta, index: int, reason: str) -> DeltaOutcome:
    return DeltaOutcome(
        delta_index=index,
        delta_id=delta.uuid,
        layer_id=delta.source_layer_id,
        method=delta.method.value,
        status=OutcomeStatus.UNPERMITTED,
        message=reason,
        feature_pk=delta.source_pk,
    )


def _invalid_outcome(row: Delta, index: int) -> DeltaOutcome:
    return DeltaOutcome(
        delta_index=index,
        delta_id=str(row.id),
        layer_id=row.layer_id,
        method=row.method,
        status=OutcomeStatus.NOT_APPLIED,
        message="The stored delta is not valid any more",
        feature_pk=None,
    )


def _record(outcome: DeltaOutcome, row: Delta, ctx: JobContext) -> dict[str, Any]:
    record = outcome.to_feedback(str(row.deltafile.id))
    record["qfjobs_status"] = outcome.status.value
    record["job_id"] = str(ctx.job_id)
    return record


def _store_changed(
    ctx: JobContext, result: ApplyResult, snapshot: dict[str, str]
) -> list[_ChangedFile]:
    """Keep every project file a committed store changed as a new blob."""
    root = ctx.files_dir.resolve()
    candidates: set[Path] = set()
    for store in result.stores:
        if not (store.committed and store.changed):
            continue
        label = Path(store.label)
        if not label.is_absolute() or not label.resolve().is_relative_to(root):
            continue  # a database: committed in place
        real = label.resolve()
        candidates.add(real)
        if real.suffix.lower() in _SHAPEFILE_PARTS:
            candidates.update(real.with_suffix(s) for s in _SHAPEFILE_PARTS)

    changed: list[_ChangedFile] = []
    for real in sorted(candidates):
        path = real.relative_to(root).as_posix()
        if path not in snapshot or not real.is_file():
            continue
        blob = checksum_file(real)
        if blob.sha256 == snapshot[path]:
            continue
        ctx.storage.keep_file(ctx.project.id, real)
        changed.append(_ChangedFile(path, snapshot[path], blob))

    current = {
        row.path: row.sha256
        for row in ctx.project_files()
        if row.path in {change.path for change in changed}
    }
    replaced = [c.path for c in changed if current.get(c.path) != c.old_sha256]
    if replaced:
        raise DataSourceError(
            f"{', '.join(replaced)} changed on the server while the deltas were "
            "applied; nothing was stored, apply the deltas again"
        )
    return changed


def _write_results(
    session: Session,
    project: Project,
    job_id: uuid.UUID,
    records: list[dict[str, Any]],
    changed: list[_ChangedFile],
    attempt: tuple[Any, int | None],
    in_data: list[dict[str, Any]],
) -> None:
    """Runs in the transaction that marks the job finished.

    ``attempt`` is when the job started and who created it; ``in_data`` the
    records of deltas committed in a database, applied whatever happens here.
    """
    started_at, user_id = attempt
    rows = {
        row.path: row
        # Row locks: an upload of the same file either committed before (and
        # is seen as a change) or waits until the job's results are written.
        for row in session.scalars(
            select(ProjectFile)
            .where(ProjectFile.project_id == project.id)
            .with_for_update()
        ).all()
    }
    stale = [c.path for c in changed if rows.get(c.path) is None]
    stale += [
        c.path
        for c in changed
        if c.path in rows and rows[c.path].sha256 != c.old_sha256
    ]
    if stale:
        message = (
            f"{', '.join(stale)} changed on the server while the deltas were "
            "applied; the job's changes were not stored"
        )
        logger.error("%s: %s", job_id, message)
        _fail_deltas(session, job_id, message, in_data, project)
        return

    now = utcnow()
    for change in changed:
        row = rows[change.path]
        row.size = change.blob.size
        row.md5 = change.blob.md5
        row.sha256 = change.blob.sha256
        row.etag = change.blob.etag
        row.version = (row.version or 0) + 1
        row.last_modified = now

    by_id = {record["delta_id"]: record for record in records}
    deltas = session.scalars(select(Delta).where(Delta.job_id == job_id)).all()
    modified = False
    for delta in deltas:
        record = by_id.get(str(delta.id))
        if record is None or delta.last_status != DeltaStatus.STARTED:
            continue
        status = DeltaStatus(record["qfjobs_status"])
        modified = modified or status == DeltaStatus.APPLIED
        delta.last_status = status
        delta.last_feedback = record
        delta.last_modified_pk = record["modified_pk"]
        delta.last_apply_attempt_at = started_at or now
        delta.last_apply_attempt_by_id = user_id
    if modified or changed:
        project.data_last_updated_at = now


def _fail_deltas(
    session: Session,
    job_id: uuid.UUID,
    message: str,
    in_data: list[dict[str, Any]],
    project: Project | None,
) -> None:
    """The job's results are not kept: its started deltas become ``error``,
    but for those its data commit holds (``in_data``), which are ``applied``."""
    settled = _settle_in_data(session, job_id, in_data)
    if settled and project is not None:
        project.data_last_updated_at = utcnow()
    count = job_service.fail_started_deltas(session, job_id, message)
    logger.info("%s: %s deltas set to error: %s", job_id, count, message)


def _settle_in_data(
    session: Session, job_id: uuid.UUID, in_data: list[dict[str, Any]]
) -> int:
    """Mark ``applied`` the still-started deltas whose change a database holds."""
    now = utcnow()
    settled = 0
    for record in in_data:
        result = session.execute(
            update(Delta)
            .where(
                Delta.id == uuid.UUID(record["delta_id"]),
                Delta.job_id == job_id,
                Delta.last_status == DeltaStatus.STARTED,
            )
            .values(
                last_status=DeltaStatus.APPLIED,
                last_feedback=record,
                last_modified_pk=record["modified_pk"],
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        settled += int(result.rowcount)  # type: ignore[attr-defined]
    if settled:
        logger.info(
            "%s: %s deltas committed in their database marked applied",
            job_id,
            settled,
        )
    return settled
