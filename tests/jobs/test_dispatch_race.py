"""A job stopped while the dispatcher picks it stays stopped (PostgreSQL).

``mark_stopped`` does not take the project lock, so on PostgreSQL a stop can
commit between the dispatcher reading the oldest pending job and moving it to
``queued``. The stop is made to land exactly there, from another connection.
"""

import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from qfjobs.extensions import get_db, get_queue
from qfjobs.models import Job, JobStatus
from qfjobs.services import jobs as job_service
from tests.helpers import MINIMAL_QGS, new_project, upload


def test_a_job_stopped_while_being_dispatched_stays_stopped(
    app: Flask, client: FlaskClient, make_user
) -> None:
    engine = get_db(app).engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's single writer cannot interleave a stop there")
    alice = make_user("alice")
    pid = uuid.UUID(new_project(client, alice))
    upload(client, alice, str(pid), "project.qgs", MINIMAL_QGS)
    for _ in range(2):  # Behind the queued process_projectfile job.
        client.post(
            "/api/v1/jobs/",
            data={"project_id": str(pid), "type": "package", "force": 1},
            headers=alice["headers"],
        )
    with get_db(app).new_session() as session:
        first, waiting, later = session.scalars(
            select(Job.id).where(Job.project_id == pid).order_by(Job.created_at)
        ).all()
        job_service.set_status(
            session, first, JobStatus.FINISHED, expect=(JobStatus.QUEUED,)
        )

    def stop_first_waiting_job(*args: object) -> None:
        statement = str(args[2])
        if statement.startswith("UPDATE jobs SET status") and not stopped:
            stopped.append(True)
            with get_db(app).new_session() as other:
                assert job_service.mark_stopped(
                    other, waiting, expect=(JobStatus.PENDING,)
                )

    stopped: list[bool] = []
    event.listen(engine, "before_cursor_execute", stop_first_waiting_job)
    try:
        with app.app_context(), get_db().new_session() as session:
            dispatched = job_service.dispatch_next(session, get_queue(), pid)
    finally:
        event.remove(engine, "before_cursor_execute", stop_first_waiting_job)

    assert stopped
    with get_db(app).new_session() as session:
        rows = session.execute(select(Job.id, Job.status).where(Job.project_id == pid))
        statuses = {job_id: status for job_id, status in rows}
    assert statuses[waiting] == JobStatus.STOPPED
    assert dispatched is not None and dispatched.id == later
    assert statuses[later] == JobStatus.QUEUED == dispatched.status
