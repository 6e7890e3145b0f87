"""Reconciliation against real Redis: lost queue entries, dead workers."""

import time
import uuid
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from qfjobs.extensions import get_db, get_queue, get_redis
from qfjobs.models import Job, JobStatus
from qfjobs.models.timestamps import utcnow
from qfjobs.services.reconcile import reconcile
from tests.helpers import MINIMAL_QGS, job_list, new_project, upload


def run_reconcile(app: Flask, heartbeat_ttl: int = 1):
    with app.app_context(), get_db().new_session() as session:
        return reconcile(session, get_redis(), get_queue(), heartbeat_ttl=heartbeat_ttl)


def age_jobs(app: Flask, seconds: int, **values) -> None:
    past = utcnow() - timedelta(seconds=seconds)
    with app.app_context():
        session = get_db().session()
        session.execute(
            update(Job).values(
                queued_at=past, started_at=past, updated_at=past, **values
            )
        )
        session.commit()


def status_of(app: Flask, job_id: str) -> Job:
    with app.app_context():
        session = get_db().session()
        job = session.scalar(select(Job).where(Job.id == uuid.UUID(job_id)))
        assert job is not None
        session.expunge(job)
        return job


def test_queued_job_lost_from_redis_is_queued_again(
    app: Flask, client: FlaskClient, make_user, run_jobs
) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    job_id = job_list(client, alice, project_id=pid)["results"][0]["id"]
    with app.app_context():
        get_queue().empty()

    assert run_reconcile(app).requeued == []  # too fresh: maybe still enqueueing
    age_jobs(app, 60)
    report = run_reconcile(app)
    assert report.requeued == [uuid.UUID(job_id)]

    run_jobs()
    assert status_of(app, job_id).status == JobStatus.FINISHED


def lose_first_job(
    app: Flask, client: FlaskClient, make_user, **values
) -> tuple[str, str]:
    """Two jobs of one project; the first "started" on a worker that is gone."""
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    first = job_list(client, alice, project_id=pid)["results"][0]["id"]
    second = client.post(
        "/api/v1/jobs/",
        data={"project_id": pid, "type": "process_projectfile"},
        headers=alice["headers"],
    ).json["id"]
    with app.app_context():
        get_queue().empty()
        session = get_db().session()
        session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(first))
            .values(status=JobStatus.STARTED, worker_name="gone-worker", **values)
        )
        session.commit()
    age_jobs(app, 60)
    return first, second


def test_job_of_a_lost_worker_runs_once_more(
    app: Flask, client: FlaskClient, make_user, run_jobs
) -> None:
    first, second = lose_first_job(app, client, make_user, attempts=1)

    assert run_reconcile(app).retried == []
    time.sleep(1.1)
    report = run_reconcile(app)
    assert report.retried == [uuid.UUID(first)]
    assert report.failed == []
    assert report.dispatched == [uuid.UUID(first)]
    again = status_of(app, first)
    assert again.status == JobStatus.QUEUED
    assert again.started_at is None
    assert "running it again (attempt 2 of 2)" in (again.output or "")

    run_jobs()
    done = status_of(app, first)
    assert done.status == JobStatus.FINISHED
    assert done.attempts == 2
    assert "running it again (attempt 2 of 2)" in (done.output or "")
    assert f"{first}: finished" in (done.output or "")
    assert status_of(app, second).status == JobStatus.FINISHED


def test_delta_apply_job_of_a_lost_worker_is_not_run_again(
    app: Flask, client: FlaskClient, make_user
) -> None:
    first, _ = lose_first_job(app, client, make_user, attempts=1, type="delta_apply")

    run_reconcile(app)
    time.sleep(1.1)
    report = run_reconcile(app)
    assert report.failed == [uuid.UUID(first)]
    assert status_of(app, first).status == JobStatus.FAILED


def test_started_job_without_heartbeat_fails_after_its_last_attempt(
    app: Flask, client: FlaskClient, make_user, run_jobs
) -> None:
    first, second = lose_first_job(app, client, make_user, attempts=2)

    assert run_reconcile(app).failed == []
    time.sleep(1.1)
    report = run_reconcile(app)
    assert report.failed == [uuid.UUID(first)]
    lost = status_of(app, first)
    assert lost.status == JobStatus.FAILED
    assert lost.finished_at is not None
    assert lost.feedback is not None
    assert lost.feedback["error_type"] == "WORKER_DIED"
    assert "died" in lost.feedback["error"]
    assert "(attempt 2 of 2)" in lost.feedback["error"]
    assert report.dispatched == [uuid.UUID(second)]

    run_jobs()
    assert status_of(app, second).status == JobStatus.FINISHED


def test_pending_job_left_behind_is_dispatched(
    app: Flask, client: FlaskClient, make_user, run_jobs
) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    job_id = job_list(client, alice, project_id=pid)["results"][0]["id"]
    with app.app_context():
        get_queue().empty()
        session = get_db().session()
        session.execute(update(Job).values(status=JobStatus.PENDING, queued_at=None))
        session.commit()

    assert run_reconcile(app).dispatched == [uuid.UUID(job_id)]
    run_jobs()
    assert status_of(app, job_id).status == JobStatus.FINISHED
