"""RQ callbacks for jobs stopped through RQ's stop command."""

import logging
import uuid

from rq.job import Job as RQJob

from qfjobs.extensions import get_db, get_queue
from qfjobs.models import Job, JobStatus
from qfjobs.models.timestamps import utcnow
from qfjobs.services import jobs as job_service
from qfjobs.tasks.context import get_app

logger = logging.getLogger(__name__)


def on_stopped(rq_job: RQJob, *_args: object) -> None:
    """The horse was stopped on request: the row becomes ``stopped``."""
    app = get_app()
    job_id = uuid.UUID(rq_job.id)
    with app.app_context(), get_db(app).new_session() as session:
        stopped = job_service.set_status(
            session,
            job_id,
            JobStatus.STOPPED,
            expect=(JobStatus.QUEUED, JobStatus.STARTED),
            finished_at=utcnow(),
        )
        if stopped:
            logger.info("%s: stopped", job_id)
        job = session.get(Job, job_id)
        if job is not None:
            job_service.dispatch_next(session, get_queue(), job.project_id)
