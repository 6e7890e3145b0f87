"""The RQ side of jobs: the Redis connection, the queue and enqueueing.

The SQL row is the truth about a job; RQ only carries it to a worker. An RQ
job has the same id as its row, so rq-dashboard and the API name one job.
"""

import logging
from typing import Any

from redis import Redis
from rq import Callback, Queue

from qfjobs.models import Job

logger = logging.getLogger(__name__)

RUN_JOB = "qfjobs.tasks.runner.run_job"
#: Seconds RQ keeps results; the SQL row keeps them for good.
RESULT_TTL = 24 * 3600
FAILURE_TTL = 7 * 24 * 3600


def connect(url: str) -> Redis:
    return Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)


def get_queue(connection: Redis, name: str) -> Queue:
    return Queue(name, connection=connection)


def describe(job: Job) -> dict[str, Any]:
    """What rq-dashboard shows about the job."""
    return {
        "description": (
            f"{job.type} job {job.id} of project {job.project.name} ({job.project_id})"
        ),
        "meta": {
            "qfjobs_job_id": str(job.id),
            "type": job.type,
            "project_id": str(job.project_id),
            "project_name": job.project.name,
            "created_by": job.created_by.username if job.created_by else None,
        },
    }


def enqueue(queue: Queue, job: Job) -> None:
    """Put the job on the queue; raises redis errors when Redis is away."""
    info = describe(job)
    queue.enqueue(
        RUN_JOB,
        str(job.id),
        job_id=str(job.id),
        job_timeout=job.timeout,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        description=info["description"],
        meta=info["meta"],
        on_stopped=Callback("qfjobs.tasks.callbacks.on_stopped"),
    )
    logger.info("%s: enqueued on %s", job.id, queue.name)
