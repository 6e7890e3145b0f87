"""The RQ worker that runs qfjobs jobs.

It is RQ's forking worker with two additions. When a work horse dies without
reporting (killed by a signal, out of memory), the job's row is failed with a
message saying so and the project's next job is queued. And between jobs it
runs the reconciliation pass (one worker at a time), so lost and stuck jobs
are found without any other process running.
"""

import logging
import os
import uuid
from resource import struct_rusage
from typing import Any

from flask import Flask
from rq import Queue, SimpleWorker, Worker
from rq.job import Job as RQJob
from rq.worker import BaseWorker

from qfjobs.extensions import get_db
from qfjobs.models import Job
from qfjobs.services import jobs as job_service
from qfjobs.services.reconcile import handle_lost_worker, reconcile
from qfjobs.tasks import joblog
from qfjobs.tasks import workdir as job_workdir
from qfjobs.tasks.context import set_app

# Imported here, in the worker, so that every forked work horse starts with the
# runner, the tasks and GDAL loaded: importing them in each horse cost ~0.5 s
# a job.
from qfjobs.tasks.runner import run_job  # noqa: F401

logger = logging.getLogger(__name__)

#: Seconds without a heartbeat after which a worker counts as dead.
WORKER_TTL = 30
JOB_MONITORING_INTERVAL = 5
RECONCILE_INTERVAL = 30
RECONCILE_LOCK = "qfjobs:reconcile-lock"


def horse_death_message(ret_val: int | None) -> str:
    if ret_val is not None and os.WIFSIGNALED(ret_val):
        return (
            "The worker process running the job died "
            f"(killed by signal {os.WTERMSIG(ret_val)})"
        )
    code = os.WEXITSTATUS(ret_val) if ret_val is not None else "unknown"
    return f"The worker process running the job died (exit status {code})"


class HorseDeathHandler:
    """Runs again or fails the job of a work horse that died.

    The project's next job is queued afterwards, by
    :meth:`QfjobsWorker.handle_job_failure`, once RQ has filed the dead run:
    a retry keeps the job's id, and the two must not mix.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app

    def __call__(
        self, rq_job: RQJob, _pid: int, ret_val: int, _rusage: struct_rusage
    ) -> None:
        job_id = uuid.UUID(rq_job.id)
        # The dead run's folder is on this machine: its spooled lines go in
        # the output, and it goes before a retry can make a folder of its own.
        spooled = job_workdir.read_spooled(job_id, joblog.MAX_OUTPUT_CHARS)
        job_workdir.remove_leftovers(job_id)
        with self.app.app_context(), get_db(self.app).new_session() as session:
            job = session.get(Job, job_id)
            if job is None:
                return
            handle_lost_worker(session, job, horse_death_message(ret_val), spooled)


class InProcessWorker(SimpleWorker):
    """Runs jobs in this process (tests, debugging).

    It listens for no stop commands: there is no work horse to stop, and
    ending RQ's pubsub thread after a burst can wait for its poll to time out.
    """

    def subscribe(self) -> None:
        pass


class QfjobsWorker(Worker):
    app: Flask

    #: Longest wait of the stop-command listener for one message, in seconds.
    LISTEN_SECONDS = 1

    def subscribe(self) -> None:
        """Listen for stop commands as RQ does, waking every second.

        RQ's listener thread waits up to 60 s for one message. A warm shutdown
        was seen (redis-py 8, a loaded machine) to hang in RQ's unsubscribe
        until that wait ended; waking every second bounds the shutdown.
        """
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=self.LISTEN_SECONDS,
            daemon=True,
            exception_handler=self._pubsub_exception_handler,
        )

    def handle_job_failure(
        self,
        job: RQJob,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Any = None,
    ) -> None:
        super().handle_job_failure(
            job, queue, started_job_registry, exc_string, execution
        )
        # RQ reaches here when a work horse died or was stopped: the project's
        # next job (or this one, run again) may be queued now.
        with self.app.app_context(), get_db(self.app).new_session() as session:
            row = session.get(Job, uuid.UUID(job.id))
            if row is not None:
                job_service.dispatch_next(
                    session, self.app.extensions["qfjobs.queue"], row.project_id
                )

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        run_reconciliation(self.app, self.name)


def run_reconciliation(app: Flask, holder: str) -> None:
    """One reconciliation pass, unless another process holds the lock."""
    connection = app.extensions["qfjobs.redis"]
    if not connection.set(RECONCILE_LOCK, holder, nx=True, ex=RECONCILE_INTERVAL - 5):
        return
    with app.app_context(), get_db(app).new_session() as session:
        report = reconcile(
            session,
            connection,
            app.extensions["qfjobs.queue"],
            heartbeat_ttl=app.config["QFJOBS_HEARTBEAT_TTL"],
        )
    if report.requeued or report.retried or report.failed or report.dispatched:
        logger.info(
            "reconciled: %s re-queued, %s run again, %s failed, %s dispatched",
            len(report.requeued),
            len(report.retried),
            len(report.failed),
            len(report.dispatched),
        )


def build_worker(
    app: Flask, *, name: str | None = None, in_process: bool = False
) -> BaseWorker:
    """The worker for the app's queue; ``in_process`` runs jobs without forking."""
    set_app(app)
    options: dict[str, Any] = {
        "connection": app.extensions["qfjobs.redis"],
        "name": name,
        "worker_ttl": WORKER_TTL,
        "job_monitoring_interval": JOB_MONITORING_INTERVAL,
        "maintenance_interval": RECONCILE_INTERVAL,
    }
    queues = [app.extensions["qfjobs.queue"]]
    if in_process:
        return InProcessWorker(queues, **options)
    worker = QfjobsWorker(
        queues, work_horse_killed_handler=HorseDeathHandler(app), **options
    )
    worker.app = app
    return worker
