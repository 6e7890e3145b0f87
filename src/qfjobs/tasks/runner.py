"""The RQ entry point that runs one job and writes its outcome to the store.

Status is written in one place: ``started`` when the work horse begins, then
``finished`` or ``failed`` (with ``finished_at``, ``output`` and ``feedback``)
when the task returns or raises. Every write is a compare-and-set on the
status, so a job that was stopped or failed elsewhere is never overwritten.
"""

import logging
import shutil
import uuid

from flask import Flask
from rq import get_current_job
from rq.timeouts import JobTimeoutException
from sqlalchemy.orm import Session

from qfjobs.errors import InvalidJobError
from qfjobs.extensions import get_db, get_queue, get_redis, get_storage
from qfjobs.models import Job, JobStatus, Project
from qfjobs.models.timestamps import utcnow
from qfjobs.services import jobs as job_service
from qfjobs.tasks import joblog
from qfjobs.tasks import workdir as job_workdir
from qfjobs.tasks.base import JobContext, ProjectUpdate
from qfjobs.tasks.context import get_app
from qfjobs.tasks.feedback import Feedback, Workflow
from qfjobs.tasks.heartbeat import Heartbeat
from qfjobs.tasks.registry import task_for

logger = logging.getLogger(__name__)


def run_job(job_id: str) -> str:
    """RQ job function: run the qfjobs job ``job_id``; returns its final status."""
    app = get_app()
    with app.app_context():
        return JobRun(app, uuid.UUID(job_id)).run()


class JobRun:
    def __init__(self, app: Flask, job_id: uuid.UUID) -> None:
        self.app = app
        self.job_id = job_id
        self.database = get_db(app)
        self.database.after_fork()

    def run(self) -> str:
        with self.database.new_session() as session:
            if not self._mark_started(session):
                return "skipped"
            job = session.get(Job, self.job_id)
            if job is None:
                return "skipped"
            try:
                return self._execute(session, job)
            finally:
                self._dispatch_next(session, job.project_id)

    def _mark_started(self, session: Session) -> bool:
        rq_job = get_current_job()
        started = job_service.set_status(
            session,
            self.job_id,
            JobStatus.STARTED,
            expect=(JobStatus.QUEUED,),
            started_at=utcnow(),
            finished_at=None,
            attempts=Job.attempts + 1,
            worker_name=rq_job.worker_name if rq_job else None,
        )
        if not started:
            logger.warning("%s: not queued any more, not running it", self.job_id)
        return started

    def _execute(self, session: Session, job: Job) -> str:
        try:
            task = task_for(job.type)
        except InvalidJobError as exc:
            feedback = Feedback(Workflow(job.type, job.type, ()))
            feedback.fail(exc)
            self._finish(session, job, JobStatus.FAILED, "", feedback, [])
            return str(JobStatus.FAILED)
        feedback = Feedback(task.workflow)
        workdir = job_workdir.create(job.id)
        ctx = JobContext(
            job=job,
            project=job.project,
            session=session,
            storage=get_storage(),
            workdir=workdir,
            feedback=feedback,
            config=dict(self.app.config),
        )
        session.commit()  # no transaction stays open while the task runs
        heartbeat = Heartbeat(
            get_redis(), job.id, int(self.app.config["QFJOBS_HEARTBEAT_TTL"])
        )
        spool = job_workdir.spool_path(workdir)
        with heartbeat, joblog.capture(str(job.id), spool) as collector:
            try:
                logger.info(
                    "%s: %s job of project %s", job.id, job.type, job.project_id
                )
                task(ctx)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded
                session.rollback()
                self._record_failure(feedback, exc, job)
                outcome = JobStatus.FAILED
                updates = ctx.on_failure
            else:
                logger.info("%s: finished", job.id)
                outcome = JobStatus.FINISHED
                updates = ctx.on_success
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        self._finish(session, job, outcome, collector.text(), feedback, updates)
        return str(outcome)

    def _record_failure(self, feedback: Feedback, exc: Exception, job: Job) -> None:
        if isinstance(exc, JobTimeoutException):
            message = (
                f"Timeout error! The job failed to finish within {job.timeout} seconds!"
            )
            logger.error("%s: %s", job.id, message)
            feedback.fail(TimeoutError(message), error_type="TIMEOUT")
            return
        logger.error("%s: failed: %s: %s", job.id, type(exc).__name__, exc)
        feedback.fail(exc)

    def _finish(
        self,
        session: Session,
        job: Job,
        outcome: JobStatus,
        output: str,
        feedback: Feedback,
        updates: list[ProjectUpdate],
    ) -> None:
        """Write the outcome and the project changes in one transaction."""
        job_service.lock_project(session, job.project_id)
        session.refresh(job)
        if job.status != JobStatus.STARTED:
            logger.warning(
                "%s: ended as %s elsewhere; its result is dropped", job.id, job.status
            )
            session.rollback()
            return

        project = session.get(Project, job.project_id)
        if project is not None:
            for update in updates:
                update(session, project)
        job.status = outcome
        job.finished_at = utcnow()
        # A job run again after a lost worker keeps the note about the lost run.
        job.output = (job.output or "") + output
        job.feedback = feedback.to_dict()
        session.commit()

    def _dispatch_next(self, session: Session, project_id: uuid.UUID) -> None:
        session.rollback()
        job_service.dispatch_next(session, get_queue(), project_id)
