"""Deltas: receiving deltafiles, listing deltas, and queuing their application.

A push (:func:`push_deltafile`) is validated whole before anything is stored:
the JSON Schema and limits (``qfjobs.geodata.deltafile``), the project id in
the file against the URL, and every delta's layer against the layers of the
project's QGIS file. Any failure is ``400 invalid_deltafile`` with the reason
and stores nothing. Deltas whose ``uuid`` the server already has are skipped,
so pushing the same deltafile again stores nothing and applies nothing twice;
a delta uuid that belongs to another project is refused.

A push that stored new deltas queues ``delta_apply`` jobs for the project's
pending deltas (:func:`queue_apply_jobs`), as ``POST deltas/apply/<id>/`` and
``POST jobs/`` with ``type=delta_apply`` do.

Deltas are stored ``pending``: the apply job decides which the project does
not permit (``unpermitted``, see ``qfjobs.geodata.deltas_permissions``; there
are no project roles yet, only the owner reaches a project). The owner sets
deltas back to ``pending`` or aside (``ignored``) with :func:`set_status`.
"""

import hashlib
import logging
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from rq import Queue
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from qfjobs.errors import (
    DeltasInActiveJobError,
    DeltaStatusNotSettableError,
    InvalidDeltafileError,
    NoDeltasToApplyError,
    NoQGISProjectError,
    ObjectNotFoundError,
    QfjobsError,
)
from qfjobs.geodata.deltafile import Deltafile as ParsedDeltafile
from qfjobs.geodata.deltafile import parse_deltafile
from qfjobs.geodata.deltas_results import ClientFeatureKey
from qfjobs.models import (
    ACTIVE_STATUSES,
    Delta,
    Deltafile,
    DeltaStatus,
    Job,
    JobType,
    Project,
    ProjectFile,
    User,
)
from qfjobs.models.timestamps import utcnow
from qfjobs.qgis.maplayers import read_map_layers
from qfjobs.qgis.projectfile import open_project
from qfjobs.services import jobs
from qfjobs.storage import ProjectStorage

logger = logging.getLogger(__name__)

#: Statuses an owner may set by hand (:func:`set_status`), and the statuses a
#: delta may have for that. ``applied`` is in neither: an applied delta is
#: never applied again, and ``ignored`` comes only from statuses that wrote
#: nothing, so setting an ignored delta back to pending writes nothing twice.
#: ``started`` is not either: a running job holds those deltas.
SETTABLE_FROM: dict[DeltaStatus, frozenset[DeltaStatus]] = {
    DeltaStatus.PENDING: frozenset(
        {
            DeltaStatus.PENDING,
            DeltaStatus.ERROR,
            DeltaStatus.NOT_APPLIED,
            DeltaStatus.CONFLICT,
            DeltaStatus.IGNORED,
            DeltaStatus.UNPERMITTED,
        }
    ),
    DeltaStatus.IGNORED: frozenset(
        {
            DeltaStatus.IGNORED,
            DeltaStatus.PENDING,
            DeltaStatus.ERROR,
            DeltaStatus.NOT_APPLIED,
            DeltaStatus.CONFLICT,
            DeltaStatus.UNPERMITTED,
        }
    ),
}


@dataclass
class PushResult:
    deltafile_id: str
    received: int
    stored: int
    jobs: list[Job] = field(default_factory=list)


def push_deltafile(
    session: Session,
    storage: ProjectStorage,
    queue: Queue,
    user: User,
    project: Project,
    data: bytes,
    job_timeout: int,
) -> PushResult:
    """Validate and store an uploaded deltafile; queue apply jobs for new deltas."""
    parsed = parse_deltafile(data)
    if not project.project_filename:
        raise NoQGISProjectError()

    if parsed.project.lower() != str(project.id).lower():
        raise InvalidDeltafileError(
            f"Deltafile's project id ({parsed.project}) doesn't match URL "
            f"parameter project id ({project.id}).",
            reason="project_mismatch",
        )

    _check_layers(parsed, project_layer_ids(session, storage, project))

    jobs.lock_project(session, project.id)
    stored = _store(session, user, project, parsed, data)
    session.commit()
    logger.info(
        "project %s: deltafile %s: %s deltas, %s new",
        project.id,
        parsed.id,
        len(parsed.deltas),
        stored,
    )
    result = PushResult(parsed.id, len(parsed.deltas), stored)
    if stored:
        result.jobs = queue_apply_jobs(session, queue, user, project, job_timeout)
    return result


def project_layer_ids(
    session: Session, storage: ProjectStorage, project: Project
) -> set[str]:
    """Ids of the layers in the project's stored QGIS file (parsed, hardened)."""
    row = session.scalar(
        select(ProjectFile).where(
            ProjectFile.project_id == project.id,
            ProjectFile.path == project.project_filename,
        )
    )
    if row is None:
        raise NoQGISProjectError()

    with tempfile.TemporaryDirectory(prefix="qfjobs-deltas-") as folder:
        name = row.path.rsplit("/", 1)[-1]
        storage.materialize(project.id, [(name, row.sha256)], Path(folder))
        parsed = open_project(Path(folder) / name)
        return {layer.layer_id for layer in read_map_layers(parsed.root)}


def _check_layers(parsed: ParsedDeltafile, layer_ids: set[str]) -> None:
    for delta in parsed.deltas:
        if delta.source_layer_id not in layer_ids:
            raise InvalidDeltafileError(
                f"Invalid deltafile: deltas[{delta.index}] is for the layer "
                f'"{delta.source_layer_id}", which the project does not have',
                reason="unknown_layer",
                delta_index=delta.index,
                field="sourceLayerId",
            )


def _store(
    session: Session,
    user: User,
    project: Project,
    parsed: ParsedDeltafile,
    data: bytes,
) -> int:
    ids = [uuid.UUID(delta.uuid) for delta in parsed.deltas]
    known: dict[uuid.UUID, uuid.UUID] = {}
    for chunk in _chunks(ids, 1000):
        rows = session.execute(
            select(Delta.id, Delta.project_id).where(Delta.id.in_(chunk))
        ).all()
        known.update({row.id: row.project_id for row in rows})

    foreign = [delta_id for delta_id, owner in known.items() if owner != project.id]
    if foreign:
        session.rollback()
        raise InvalidDeltafileError(
            f"Invalid deltafile: the delta {foreign[0]} was already pushed to "
            "another project",
            reason="delta_of_other_project",
        )

    new = [delta for delta in parsed.deltas if uuid.UUID(delta.uuid) not in known]
    if not new:
        return 0

    upload = Deltafile(
        id=uuid.UUID(parsed.id),
        project_id=project.id,
        created_by=user,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        delta_count=len(parsed.deltas),
        stored_count=len(new),
    )
    session.add(upload)
    session.flush()
    now = utcnow()
    values = [
        {
            "id": uuid.UUID(delta.uuid),
            "project_id": project.id,
            "deltafile_seq": upload.seq,
            "position": delta.index,
            "client_id": delta.client_id,
            "layer_id": delta.source_layer_id,
            "local_pk": delta.local_pk,
            "method": delta.method.value,
            "content": dict(delta.content),
            "last_status": DeltaStatus.PENDING,
            "created_by_id": user.id,
            "created_at": now,
            "updated_at": now,
        }
        for delta in new
    ]
    for start in range(0, len(values), 2000):
        session.execute(insert(Delta), values[start : start + 2000])
    return len(new)


def _chunks(items: Sequence[uuid.UUID], size: int) -> Iterable[Sequence[uuid.UUID]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def queue_apply_jobs(
    session: Session, queue: Queue, user: User, project: Project, job_timeout: int
) -> list[Job]:
    """Create ``delta_apply`` jobs for every pending, unclaimed delta."""
    created: list[Job] = []
    while True:
        try:
            job, _ = jobs.create_job(
                session,
                queue,
                user,
                project,
                JobType.DELTA_APPLY,
                timeout=job_timeout,
            )
        except NoDeltasToApplyError:
            return created
        created.append(job)


def list_deltas(
    session: Session,
    project: Project,
    *,
    deltafile_id: uuid.UUID | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[tuple[Delta, Deltafile]], int]:
    """Deltas of the project in apply order, with their deltafile, and the count."""
    conditions = [Delta.project_id == project.id]
    if deltafile_id is not None:
        conditions.append(Deltafile.id == deltafile_id)
    base = select(Delta, Deltafile).join(
        Deltafile, Delta.deltafile_seq == Deltafile.seq
    )
    total = session.scalar(
        select(func.count())
        .select_from(Delta)
        .join(Deltafile, Delta.deltafile_seq == Deltafile.seq)
        .where(*conditions)
    )
    query = base.where(*conditions).order_by(Deltafile.seq, Delta.position)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    rows = [(row[0], row[1]) for row in session.execute(query).all()]
    return rows, total or 0


def deltafile_deltas(
    session: Session, project: Project, deltafile_id: uuid.UUID
) -> list[tuple[Delta, Deltafile]]:
    rows, _ = list_deltas(session, project, deltafile_id=deltafile_id)
    if not rows:
        raise ObjectNotFoundError(f'No deltafile with id "{deltafile_id}"')
    return rows


def job_deltas(session: Session, job_id: uuid.UUID) -> list[Delta]:
    """The deltas a job claimed, in apply order."""
    return list(
        session.scalars(
            select(Delta)
            .join(Deltafile, Delta.deltafile_seq == Deltafile.seq)
            .where(Delta.job_id == job_id)
            .order_by(Deltafile.seq, Delta.position)
        ).all()
    )


def created_keys(
    session: Session, project_id: uuid.UUID, client_ids: Iterable[str]
) -> dict[ClientFeatureKey, str]:
    """Server keys of features that earlier creates of these devices got.

    Scoped by project, layer and device, so keys of different layers or
    projects never mix (reference bug 8).
    """
    rows = session.execute(
        select(Delta.layer_id, Delta.client_id, Delta.local_pk, Delta.last_modified_pk)
        .join(Deltafile, Delta.deltafile_seq == Deltafile.seq)
        .where(
            Delta.project_id == project_id,
            Delta.client_id.in_(sorted(set(client_ids))),
            Delta.method == "create",
            Delta.last_status == DeltaStatus.APPLIED,
            Delta.last_modified_pk.is_not(None),
        )
        .order_by(Deltafile.seq, Delta.position)
    ).all()
    return {
        ClientFeatureKey(row.layer_id, row.client_id, row.local_pk): str(
            row.last_modified_pk
        )
        for row in rows
    }


def ids_with_status(
    session: Session, project_id: uuid.UUID, status: DeltaStatus
) -> list[uuid.UUID]:
    """Ids of the project's deltas in ``status``, in apply order."""
    return list(
        session.scalars(
            select(Delta.id)
            .join(Deltafile, Delta.deltafile_seq == Deltafile.seq)
            .where(Delta.project_id == project_id, Delta.last_status == status)
            .order_by(Deltafile.seq, Delta.position)
        ).all()
    )


@dataclass(frozen=True)
class StatusChange:
    """What :func:`set_status` did: the deltas it changed, and those it found
    already in the asked status."""

    status: DeltaStatus
    changed: list[uuid.UUID]
    unchanged: list[uuid.UUID]


def set_status(
    session: Session,
    project: Project,
    delta_ids: Sequence[uuid.UUID],
    status: DeltaStatus,
) -> StatusChange:
    """Set deltas back to ``pending`` (to apply them again) or to ``ignored``.

    All or nothing: the request is refused, and nothing changed, when a delta
    is not the project's (``object_not_found``), is held by an active
    ``delta_apply`` job or is being applied (``deltas_in_active_job``), or
    cannot go to ``status`` from the one it has (``delta_status_not_settable``:
    an ``applied`` delta is never set back, so nothing is written twice).
    Runs under the project's row lock, so no apply job claims the deltas
    meanwhile.
    """
    if status not in SETTABLE_FROM:
        raise DeltaStatusNotSettableError(
            f'The status "{status}" cannot be set by hand',
            allowed=[str(allowed) for allowed in SETTABLE_FROM],
        )
    wanted = list(dict.fromkeys(delta_ids))
    jobs.lock_project(session, project.id)
    try:
        rows = _locked_deltas(session, project.id, wanted)
        _check_settable(session, rows, wanted, status)
    except QfjobsError:
        session.rollback()
        raise

    changed = [row.id for row in rows if row.last_status != status]
    for chunk in _chunks(changed, 1000):
        session.execute(
            update(Delta)
            .where(Delta.id.in_(chunk))
            .values(last_status=status, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    session.commit()
    logger.info(
        "project %s: %s deltas set to %s (%s already were)",
        project.id,
        len(changed),
        status,
        len(rows) - len(changed),
    )
    unchanged = [row.id for row in rows if row.last_status == status]
    return StatusChange(status, changed, unchanged)


class _DeltaState(NamedTuple):
    id: uuid.UUID
    last_status: str
    job_id: uuid.UUID | None


def _locked_deltas(
    session: Session, project_id: uuid.UUID, delta_ids: Sequence[uuid.UUID]
) -> list[_DeltaState]:
    """The project's deltas among ``delta_ids``, their rows locked."""
    rows: list[_DeltaState] = []
    for chunk in _chunks(delta_ids, 1000):
        rows.extend(
            _DeltaState(row.id, row.last_status, row.job_id)
            for row in session.execute(
                select(Delta.id, Delta.last_status, Delta.job_id)
                .where(Delta.project_id == project_id, Delta.id.in_(chunk))
                .with_for_update()
            )
        )
    return rows


def _check_settable(
    session: Session,
    rows: Sequence[_DeltaState],
    wanted: Sequence[uuid.UUID],
    status: DeltaStatus,
) -> None:
    found = {row.id for row in rows}
    missing = [delta_id for delta_id in wanted if delta_id not in found]
    if missing:
        raise ObjectNotFoundError(
            f'No delta with id "{missing[0]}" in this project',
            delta_ids=_listed(missing),
        )

    claimed = {row.job_id for row in rows if row.job_id is not None}
    active = set(
        session.scalars(
            select(Job.id).where(
                Job.id.in_(sorted(claimed)), Job.status.in_(ACTIVE_STATUSES)
            )
        ).all()
    )
    held = [
        row
        for row in rows
        if row.job_id in active or row.last_status == DeltaStatus.STARTED
    ]
    if held:
        raise DeltasInActiveJobError(
            f"{len(held)} of these deltas are held by an active delta_apply job;"
            " stop the job or wait until it has ended",
            delta_ids=_listed([row.id for row in held]),
            job_ids=sorted({str(row.job_id) for row in held if row.job_id}),
        )

    allowed = SETTABLE_FROM[status]
    refused = [row for row in rows if row.last_status not in allowed]
    if refused:
        first = refused[0]
        raise DeltaStatusNotSettableError(
            f'{len(refused)} of these deltas cannot be set to "{status}" (delta'
            f' {first.id} is "{first.last_status}"; {_why(status)})',
            delta_ids=_listed([row.id for row in refused]),
            from_statuses=sorted(str(allowed_status) for allowed_status in allowed),
        )


def _why(status: DeltaStatus) -> str:
    if status == DeltaStatus.PENDING:
        return "an applied delta is never applied again"
    return "an applied delta cannot be set aside"


def _listed(ids: Sequence[uuid.UUID], most: int = 100) -> list[str]:
    """The first ``most`` ids, for an error answer."""
    return [str(delta_id) for delta_id in ids[:most]]
