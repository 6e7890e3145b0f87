"""RQ callbacks for jobs stopped through RQ's stop command."""

import logging
import uuid

from rq.job import Job as RQJob

from qfjobs.extensions import get_db, get_queue
from qfjobs.models import Job, JobStatus
from qfjobs.services import jobs as job_service
from qfjobs.tasks import joblog
from qfjobs.tasks import workdir as job_workdir
from qfjobs.tasks.context import get_app

logger = logging.getLogger(__name__)


def on_stopped(rq_job: RQJob, *_args: object) -> None:
    """The horse was stopped on request: the row becomes ``stopped``.

    This runs in the worker that ended the horse, so the log lines the run
    spooled in its working folder are kept in the job's ``output``, before
    the stop line; the folder is then removed. The run's ``feedback`` (its
    steps so far) lived only in the killed horse and is not kept: a stopped
    job's ``feedback`` stays empty.
    """
    app = get_app()
    job_id = uuid.UUID(rq_job.id)
    spooled = job_workdir.read_spooled(job_id, joblog.MAX_OUTPUT_CHARS)
    with app.app_context(), get_db(app).new_session() as session:
        stopped = job_service.mark_stopped(
            session,
            job_id,
            expect=(JobStatus.QUEUED, JobStatus.STARTED),
            spooled=spooled,
        )
        if stopped:
            logger.info("%s: stopped on request", job_id)
        job_workdir.remove_leftovers(job_id)
        job = session.get(Job, job_id)
        if job is not None:
            job_service.dispatch_next(session, get_queue(), job.project_id)
