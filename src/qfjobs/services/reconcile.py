"""Reconciliation: the SQL store stays the truth about jobs, whatever happens.

A periodic pass (in every worker, one at a time) and ``qfjobs reconcile``
compare active job rows with what Redis and the workers say:

- a ``queued`` job with no usable RQ entry (Redis flushed or restarted) is
  put back on the queue;
- a ``started`` job whose process no longer writes its heartbeat (killed,
  even with SIGKILL, or its machine lost) is run once more when that is safe
  (:func:`handle_lost_worker`), else failed with a message saying the worker
  died;
- a ``started`` job far beyond its timeout is failed;
- a project with pending jobs and nothing queued or started gets its next job
  queued (an enqueue that failed while Redis was away).

Every action is logged with the job id first.
"""

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.registry import StartedJobRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session

from qfjobs.models import Job, JobStatus, JobType
from qfjobs.models.timestamps import utcnow
from qfjobs.services import jobs as job_service
from qfjobs.services import queue as rq_queue
from qfjobs.services.delta_ledger import settle_from_ledgers
from qfjobs.tasks.feedback import Feedback, Workflow
from qfjobs.tasks.heartbeat import is_alive

logger = logging.getLogger(__name__)

#: A job just queued may not have reached Redis yet; leave it this long.
QUEUE_GRACE = timedelta(seconds=30)
#: Beyond its timeout, RQ itself ends a job within about a minute.
TIMEOUT_GRACE = timedelta(seconds=120)
RQ_DEAD_STATUSES = (RQStatus.FAILED, RQStatus.STOPPED, RQStatus.CANCELED)
MISSED_PREFIX = "qfjobs:heartbeat-missed:"
#: Runs a job gets in all when its worker is lost (killed, out of memory, the
#: machine gone): that is not the project's fault, so it is tried once more.
MAX_ATTEMPTS = 2
#: Job types that are run again after a lost worker: their effects are all or
#: nothing (project details are stored at the end, a package is published
#: atomically). delta_apply is not among them: its PostGIS edits are committed
#: before the job's result. Its deltas found in their database's ledger are
#: marked ``applied`` (``services.delta_ledger``), the others ``error``, to be
#: applied again on request.
RETRIED_TYPES = frozenset({JobType.PROCESS_PROJECTFILE, JobType.PACKAGE})


@dataclass
class Report:
    requeued: list[uuid.UUID] = field(default_factory=list)
    retried: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    dispatched: list[uuid.UUID] = field(default_factory=list)


def reconcile(
    session: Session, connection: Redis, queue: Queue, *, heartbeat_ttl: int = 15
) -> Report:
    report = Report()
    now = utcnow()
    for job in _jobs_in(session, JobStatus.QUEUED):
        _check_queued(session, connection, queue, job, now, heartbeat_ttl, report)
    for job in _jobs_in(session, JobStatus.STARTED):
        _check_started(session, connection, job, now, heartbeat_ttl, report)
    _dispatch_waiting(session, queue, report)
    return report


def _jobs_in(session: Session, status: JobStatus) -> list[Job]:
    rows = session.scalars(select(Job).where(Job.status == status)).all()
    session.commit()
    return list(rows)


def _check_queued(
    session: Session,
    connection: Redis,
    queue: Queue,
    job: Job,
    now: datetime,
    heartbeat_ttl: int,
    report: Report,
) -> None:
    """Put a queued job back on the queue when RQ lost it or ended it.

    RQ also says ``started`` for a job whose work horse died after RQ handed
    it over and before the job's row said ``started`` (the row is written
    first thing). With no heartbeat for two passes such a job is queued
    again, after its RQ execution is removed: RQ's own clean-up would
    otherwise find the dead execution later and fail the job under the same
    id, perhaps while it runs again.
    """
    if job.queued_at is not None and now - job.queued_at < QUEUE_GRACE:
        return
    try:
        rq_status = RQJob.fetch(str(job.id), connection=connection).get_status()
    except NoSuchJobError:
        rq_status = None
    if rq_status == RQStatus.STARTED:
        if not _worker_is_gone(connection, job, now, heartbeat_ttl):
            return
        connection.delete(f"{MISSED_PREFIX}{job.id}")
        _forget_executions(queue, job.id)
    elif rq_status is not None and rq_status not in RQ_DEAD_STATUSES:
        return

    logger.warning(
        "%s: queued but its RQ entry is %s; putting it back on the queue",
        job.id,
        rq_status or "gone",
    )
    try:
        rq_queue.enqueue(queue, job)
    except RedisError as exc:
        logger.error("%s: could not re-enqueue: %s", job.id, exc)
        return
    job_service.set_status(
        session, job.id, JobStatus.QUEUED, expect=(JobStatus.QUEUED,), queued_at=now
    )
    report.requeued.append(job.id)


def _forget_executions(queue: Queue, job_id: uuid.UUID) -> None:
    """Take the job's executions out of RQ's registry of started jobs."""
    registry = StartedJobRegistry(queue=queue)
    for held_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
        if held_id == str(job_id):
            registry.connection.zrem(registry.key, f"{held_id}:{execution_id}")


def _check_started(
    session: Session,
    connection: Redis,
    job: Job,
    now: datetime,
    heartbeat_ttl: int,
    report: Report,
) -> None:
    started_at = job.started_at or job.updated_at
    if now - started_at > timedelta(seconds=job.timeout) + TIMEOUT_GRACE:
        message = (
            f"Timeout error! The job failed to finish within {job.timeout} seconds!"
            " (ended by the reconciler: its worker did not end it)"
        )
        if fail_job(session, job, message, error_type="WORKER_DIED"):
            report.failed.append(job.id)
    elif _worker_is_gone(connection, job, now, heartbeat_ttl):
        connection.delete(f"{MISSED_PREFIX}{job.id}")
        message = (
            f"The worker {job.worker_name or ''} running the job died or was killed:"
            " the job stopped sending heartbeats"
        )
        retried = handle_lost_worker(session, job, message)
        if retried is not None:
            (report.retried if retried else report.failed).append(job.id)


def _worker_is_gone(
    connection: Redis, job: Job, now: datetime, heartbeat_ttl: int
) -> bool:
    """No heartbeat in two passes at least ``heartbeat_ttl`` apart.

    One missing heartbeat is not enough: right after a Redis restart every
    key is gone until the running jobs write theirs again.
    """
    missed_key = f"{MISSED_PREFIX}{job.id}"
    if is_alive(connection, job.id):
        connection.delete(missed_key)
        return False
    started_at = job.started_at or job.updated_at
    if now - started_at < timedelta(seconds=heartbeat_ttl):
        return False
    first_miss = connection.get(missed_key)
    if first_miss is None:
        connection.set(missed_key, str(now.timestamp()), ex=24 * 3600)
        logger.info("%s: no heartbeat; failing it if none comes", job.id)
        return False
    return now.timestamp() - float(first_miss) >= heartbeat_ttl


def handle_lost_worker(
    session: Session, job: Job, message: str, spooled: str = ""
) -> bool | None:
    """Put a started job whose worker was lost back to ``pending``, or fail it.

    It runs again (``True``) when its type allows and it has had fewer than
    :data:`MAX_ATTEMPTS` runs; its ``output`` says why, and ``attempts`` counts
    the runs. Otherwise it fails (``False``). ``None``: the job was no longer
    started. The caller queues the project's next job. ``spooled``: the log
    lines the lost run wrote, where they could be read; they go in ``output``
    before the note.
    """
    if job.type in RETRIED_TYPES and job.attempts < MAX_ATTEMPTS:
        note = (
            f"{spooled}{job.id} {message}; running it again "
            f"(attempt {job.attempts + 1} of {MAX_ATTEMPTS})\n"
        )
        if not job_service.set_status(
            session,
            job.id,
            JobStatus.PENDING,
            expect=(JobStatus.STARTED,),
            started_at=None,
            worker_name=None,
            output=(job.output or "") + note,
        ):
            return None
        logger.warning(
            "%s: %s; running it again (attempt %s of %s)",
            job.id,
            message,
            job.attempts + 1,
            MAX_ATTEMPTS,
        )
        return True

    if job.attempts > 1:
        message = f"{message} (attempt {job.attempts} of {MAX_ATTEMPTS})"
    failed = fail_job(session, job, message, error_type="WORKER_DIED", spooled=spooled)
    return False if failed else None


def fail_job(
    session: Session, job: Job, message: str, *, error_type: str, spooled: str = ""
) -> bool:
    """Fail an active job from outside its work horse.

    A ``delta_apply`` job's deltas that its databases committed are marked
    ``applied`` in the same transaction, the others ``error``. ``spooled``
    goes in ``output`` before the failure line, as in
    :func:`handle_lost_worker`.
    """
    if job.status == JobStatus.STARTED:
        settle_from_ledgers(session, job)
    feedback = Feedback(Workflow(job.type, job.type, ()))
    if job.feedback:
        feedback.outputs = dict(job.feedback.get("outputs") or {})
    feedback.fail(RuntimeError(message), error_type=error_type, origin="worker")
    failed = job_service.set_status(
        session,
        job.id,
        JobStatus.FAILED,
        expect=(JobStatus.QUEUED, JobStatus.STARTED),
        finished_at=utcnow(),
        output=(job.output or "") + f"{spooled}{job.id} {message}\n",
        feedback=feedback.to_dict(),
    )
    if failed:
        logger.error("%s: failed: %s", job.id, message)
    return failed


def _dispatch_waiting(session: Session, queue: Queue, report: Report) -> None:
    project_ids = session.scalars(
        select(Job.project_id).where(Job.status == JobStatus.PENDING).distinct()
    ).all()
    session.commit()
    for project_id in project_ids:
        job = job_service.dispatch_next(session, queue, project_id)
        if job is not None:
            logger.info("%s: queued by the reconciler", job.id)
            report.dispatched.append(job.id)
