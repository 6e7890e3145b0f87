"""Jobs: the creation rules, listing, dispatch and the status transitions.

Jobs of one project run one at a time, in creation order. A job is created
``pending``; :func:`dispatch_next` moves the oldest pending job of a project to
``queued`` and hands it to RQ only when no other job of that project is queued
or started. It runs after each creation and after each job ends, under the
project's row lock, so two processes never queue two jobs of one project.
"""

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job as RQJob
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from qfjobs.errors import (
    JobNotStoppableError,
    NoDeltasToApplyError,
    NoQGISProjectError,
)
from qfjobs.models import ACTIVE_STATUSES, Job, JobStatus, JobType, Project, User
from qfjobs.models.delta import Delta, Deltafile, DeltaStatus
from qfjobs.models.job import FINAL_STATUSES
from qfjobs.models.timestamps import utcnow
from qfjobs.services import delta_ledger
from qfjobs.services import queue as rq_queue
from qfjobs.tasks import joblog

logger = logging.getLogger(__name__)

#: Job types of which only one may be active per project unless forced.
EXCLUSIVE_TYPES = frozenset({JobType.PACKAGE})
#: Most deltas one ``delta_apply`` job takes; more pending deltas make more jobs.
APPLY_DELTAS_LIMIT = 10_000


def lock_project(session: Session, project_id: uuid.UUID) -> None:
    """Take the project's row lock until the transaction ends.

    An UPDATE locks the row on PostgreSQL and takes the database write lock
    on SQLite, so this serialises job creation and dispatch per project.
    """
    session.execute(
        update(Project)
        .where(Project.id == project_id)
        .values(lock_version=Project.lock_version + 1, updated_at=Project.updated_at)
    )


def create_job(
    session: Session,
    queue: Queue,
    user: User | None,
    project: Project,
    job_type: JobType,
    *,
    force: bool = False,
    timeout: int = 600,
) -> tuple[Job, bool]:
    """Create a job, or return the active one it would duplicate.

    Returns the job and whether it was created. A ``package`` job is not
    duplicated: without ``force``, an active package job of the project is
    returned instead.
    """
    lock_project(session, project.id)
    session.refresh(project)
    if not project.project_filename:
        session.rollback()
        raise NoQGISProjectError()

    if job_type in EXCLUSIVE_TYPES and not force:
        existing = active_job(session, project.id, job_type)
        if existing is not None:
            session.commit()
            return existing, False

    job = Job(
        type=job_type,
        project=project,
        created_by=user,
        force=force,
        timeout=timeout,
        status=JobStatus.PENDING,
    )
    session.add(job)
    if job_type == JobType.DELTA_APPLY:
        session.flush()
        if not claim_pending_deltas(session, project.id, job.id):
            session.rollback()
            raise NoDeltasToApplyError()
    session.commit()
    logger.info("%s: created %s job for project %s", job.id, job_type, project.id)
    dispatch_next(session, queue, project.id)
    return job, True


def active_job(
    session: Session,
    project_id: uuid.UUID,
    job_type: JobType,
    statuses: Sequence[JobStatus] = ACTIVE_STATUSES,
) -> Job | None:
    return session.scalar(
        select(Job)
        .where(
            Job.project_id == project_id,
            Job.type == job_type,
            Job.status.in_(statuses),
        )
        .order_by(Job.created_at.desc())
        .limit(1)
    )


_CLAIM_TRIES = 32


def dispatch_next(session: Session, queue: Queue, project_id: uuid.UUID) -> Job | None:
    """Queue the project's oldest pending job if none of its jobs is running."""
    lock_project(session, project_id)
    job = _claim_next(session, project_id)
    session.commit()
    if job is None:
        return None

    try:
        rq_queue.enqueue(queue, job)
    except RedisError as exc:
        # The job goes back to pending; the reconciler queues it later.
        logger.error("%s: could not enqueue, left pending: %s", job.id, exc)
        set_status(session, job.id, JobStatus.PENDING, expect=(JobStatus.QUEUED,))
        return None
    return job


def _claim_next(session: Session, project_id: uuid.UUID) -> Job | None:
    """Move the oldest pending job to ``queued``, unless one is queued or started.

    The move is a compare-and-set on ``pending``: a job stopped since it was
    read (``mark_stopped`` does not take the project lock) is left stopped and
    the next one is tried. A plain update here once brought stopped jobs back
    to life on PostgreSQL.
    """
    running = session.scalar(
        select(Job.id)
        .where(
            Job.project_id == project_id,
            Job.status.in_((JobStatus.QUEUED, JobStatus.STARTED)),
        )
        .limit(1)
    )
    if running is not None:
        return None
    # Each miss is a job that left pending for good while the project is
    # locked (only a dispatcher, holding the lock, puts jobs back to pending).
    for _ in range(_CLAIM_TRIES):
        job = session.scalar(
            select(Job)
            .where(Job.project_id == project_id, Job.status == JobStatus.PENDING)
            .order_by(Job.created_at, Job.id)
            .limit(1)
        )
        if job is None:
            return None
        now = utcnow()
        if _swap_status(
            session,
            job.id,
            JobStatus.QUEUED,
            expect=(JobStatus.PENDING,),
            queued_at=now,
            updated_at=now,
        ):
            for name, value in (
                ("status", JobStatus.QUEUED),
                ("queued_at", now),
                ("updated_at", now),
            ):
                set_committed_value(job, name, value)
            return job
        session.expire(job)
    return None


def set_status(
    session: Session,
    job_id: uuid.UUID,
    status: JobStatus,
    *,
    expect: Sequence[JobStatus],
    **values: Any,
) -> bool:
    """Move a job to ``status`` only if it is in one of ``expect``.

    This compare-and-set is how every transition is written, so a job stopped
    or failed by one process is never overwritten by another.
    """
    changed = _swap_status(session, job_id, status, expect=expect, **values)
    if changed and status == JobStatus.FAILED:
        fail_started_deltas(session, job_id, "The delta_apply job failed")
    elif changed and status == JobStatus.STOPPED:
        release_stopped_deltas(session, job_id)
    session.commit()
    if changed:
        logger.info("%s: status %s", job_id, status)
    return changed


def _swap_status(
    session: Session,
    job_id: uuid.UUID,
    status: JobStatus,
    *,
    expect: Sequence[JobStatus],
    **values: Any,
) -> bool:
    """The compare-and-set itself, in the caller's transaction."""
    changes: dict[str, Any] = {"status": status, "updated_at": utcnow(), **values}
    if status == JobStatus.PENDING:
        changes.setdefault("queued_at", None)
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(expect))
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def claim_pending_deltas(
    session: Session,
    project_id: uuid.UUID,
    job_id: uuid.UUID,
    limit: int = APPLY_DELTAS_LIMIT,
) -> int:
    """Attach the oldest pending deltas no active apply job holds to ``job_id``.

    Runs under the project's row lock (``create_job``), so two jobs never claim
    the same delta. Returns how many were claimed.
    """
    active_jobs = select(Job.id).where(
        Job.project_id == project_id,
        Job.type == JobType.DELTA_APPLY,
        Job.status.in_(ACTIVE_STATUSES),
        Job.id != job_id,
    )
    ids = session.scalars(
        select(Delta.id)
        .join(Deltafile, Delta.deltafile_seq == Deltafile.seq)
        .where(
            Delta.project_id == project_id,
            Delta.last_status == DeltaStatus.PENDING,
            (Delta.job_id.is_(None)) | (Delta.job_id.not_in(active_jobs)),
        )
        .order_by(Deltafile.seq, Delta.position)
        .limit(limit)
    ).all()
    if ids:
        session.execute(
            update(Delta)
            .where(Delta.id.in_(ids))
            .values(job_id=job_id)
            .execution_options(synchronize_session=False)
        )
    return len(ids)


def fail_started_deltas(session: Session, job_id: uuid.UUID, message: str) -> int:
    """The deltas a job had started become ``error``: its results were not kept.

    Called in the transaction that ends the job (failed or stopped), whichever
    process ends it. Deltas the job had claimed but not started stay pending and
    are claimed again by the next apply job.
    """
    result = session.execute(
        update(Delta)
        .where(Delta.job_id == job_id, Delta.last_status == DeltaStatus.STARTED)
        .values(
            last_status=DeltaStatus.ERROR,
            last_feedback={"msg": message, "status": "status_unknown_error"},
            last_modified_pk=None,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def release_stopped_deltas(session: Session, job_id: uuid.UUID) -> int:
    """A stopped job's started deltas go back to ``pending``, to be claimed again.

    Its file edits were made on private copies and are dropped, so nothing of
    them was written. Deltas on PostgreSQL layers are the exception: the job
    may have been stopped after committing there: those its database's ledger
    holds become ``applied`` (``services.delta_ledger``), the others ``error``
    for someone to check. Returns how many went back to pending.
    """
    project_details = session.scalar(
        select(Project.project_details)
        .join(Job, Job.project_id == Project.id)
        .where(Job.id == job_id)
    )
    layers = (project_details or {}).get("layers_by_id") or {}
    started = session.execute(
        select(Delta.id, Delta.layer_id).where(
            Delta.job_id == job_id, Delta.last_status == DeltaStatus.STARTED
        )
    ).all()
    # Without the project's details a layer's provider is unknown: not safe.
    released = [
        row.id
        for row in started
        if (layers.get(row.layer_id) or {}).get("provider") not in (None, "postgres")
    ]
    if released:
        session.execute(
            update(Delta)
            .where(Delta.id.in_(released))
            .values(
                last_status=DeltaStatus.PENDING,
                job_id=None,
                last_feedback=None,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
    job = session.get(Job, job_id)
    if job is not None:
        delta_ledger.settle_from_ledgers(session, job)
    fail_started_deltas(
        session,
        job_id,
        "The delta_apply job was stopped while it wrote to PostgreSQL: check the"
        " data before applying this delta again",
    )
    return len(released)


def has_pending_job(session: Session, project_id: uuid.UUID, job_type: JobType) -> bool:
    """Whether a job of this type waits to run (pending or queued)."""
    return (
        active_job(session, project_id, job_type, (JobStatus.PENDING, JobStatus.QUEUED))
        is not None
    )


def stop_job(session: Session, connection: Redis, queue: Queue, job: Job) -> Job:
    """Stop a job: at once if it has not started, else at the worker's next check.

    A started job's work horse is ended through RQ's stop command; its partial
    work is dropped (packages are built in a private folder, data edits are
    transactional) and the worker's stopped callback marks it ``stopped``,
    keeping the log lines the run spooled before it was ended. A job stopped
    here (not started, or started with no worker holding it) gets only the
    stop line: there is no run whose lines could be read.
    """
    if job.status in FINAL_STATUSES:
        raise JobNotStoppableError(f"The job has already ended as {job.status}")

    if job.status in (JobStatus.PENDING, JobStatus.QUEUED) and mark_stopped(
        session, job.id, expect=(JobStatus.PENDING, JobStatus.QUEUED)
    ):
        _cancel_rq_job(connection, job.id)
        dispatch_next(session, queue, job.project_id)

    session.refresh(job)
    if job.status == JobStatus.STARTED:
        _send_stop_command(session, connection, job)
        session.refresh(job)
    session.commit()
    return job


def _cancel_rq_job(connection: Redis, job_id: uuid.UUID) -> None:
    try:
        RQJob.fetch(str(job_id), connection=connection).cancel()
    except (NoSuchJobError, InvalidJobOperation, RedisError):
        # Not on the queue any more: the runner will find the row stopped.
        pass


def _send_stop_command(session: Session, connection: Redis, job: Job) -> None:
    try:
        send_stop_job_command(connection, str(job.id))
        logger.info("%s: stop requested from its worker", job.id)
    except (NoSuchJobError, InvalidJobOperation, RedisError) as exc:
        # No worker holds it: nothing runs it any more, so it stops here.
        logger.warning("%s: no worker to stop (%s); marking it stopped", job.id, exc)
        mark_stopped(session, job.id, expect=(JobStatus.STARTED,))


def mark_stopped(
    session: Session,
    job_id: uuid.UUID,
    *,
    expect: Sequence[JobStatus],
    spooled: str = "",
) -> bool:
    """Move a job in one of ``expect`` to ``stopped``; the one way a job stops.

    Its ``output`` keeps what it had, then ``spooled`` (the lines a killed run
    wrote, when the caller could read them), and ends with a line saying it
    was stopped on request.
    """
    line = joblog.format_line(str(job_id), logger, "%s: stopped on request", job_id)
    return set_status(
        session,
        job_id,
        JobStatus.STOPPED,
        expect=expect,
        finished_at=utcnow(),
        output=func.coalesce(Job.output, "") + (spooled + line),
    )
