"""The RQ worker that runs qfjobs jobs.

It is RQ's forking worker with one addition: when a work horse dies without
reporting (killed by a signal, out of memory), the job's row is failed with
a message saying so and the project's next job is queued.
"""

import logging
import os
import uuid
from resource import struct_rusage

from flask import Flask
from rq import SimpleWorker, Worker
from rq.job import Job as RQJob
from rq.worker import BaseWorker

from qfjobs.extensions import get_db, get_queue
from qfjobs.models import Job, JobStatus
from qfjobs.models.timestamps import utcnow
from qfjobs.services import jobs as job_service
from qfjobs.tasks.context import set_app
from qfjobs.tasks.feedback import Feedback, Workflow

logger = logging.getLogger(__name__)


def horse_death_message(ret_val: int | None) -> str:
    if ret_val is not None and os.WIFSIGNALED(ret_val):
        return (
            "The worker process running the job died "
            f"(killed by signal {os.WTERMSIG(ret_val)})"
        )
    code = os.WEXITSTATUS(ret_val) if ret_val is not None else "unknown"
    return f"The worker process running the job died (exit status {code})"


class HorseDeathHandler:
    """Fails the row of a job whose work horse died."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def __call__(
        self, rq_job: RQJob, _pid: int, ret_val: int, _rusage: struct_rusage
    ) -> None:
        with self.app.app_context():
            fail_lost_job(self.app, uuid.UUID(rq_job.id), horse_death_message(ret_val))


def fail_lost_job(app: Flask, job_id: uuid.UUID, message: str) -> bool:
    """Fail a job whose process is gone; returns whether it was still active."""
    with get_db(app).new_session() as session:
        job = session.get(Job, job_id)
        if job is None:
            return False
        feedback = Feedback(Workflow(job.type, job.type, ()))
        feedback.fail(RuntimeError(message), error_type="WORKER_DIED", origin="worker")
        failed = job_service.set_status(
            session,
            job_id,
            JobStatus.FAILED,
            expect=(JobStatus.QUEUED, JobStatus.STARTED),
            finished_at=utcnow(),
            output=(job.output or "") + f"{job_id} {message}\n",
            feedback=feedback.to_dict(),
        )
        if failed:
            logger.error("%s: %s", job_id, message)
        job_service.dispatch_next(session, get_queue(), job.project_id)
        return failed


def build_worker(
    app: Flask, *, name: str | None = None, in_process: bool = False
) -> BaseWorker:
    """The worker for the app's queue; ``in_process`` runs jobs without forking."""
    set_app(app)
    queue = app.extensions["qfjobs.queue"]
    worker_class: type[BaseWorker] = SimpleWorker if in_process else Worker
    return worker_class(
        [queue],
        connection=app.extensions["qfjobs.redis"],
        name=name,
        work_horse_killed_handler=HorseDeathHandler(app),
    )
