"""Redis flushed or restarted during a run: no job is lost or left ``queued``.

Each test runs its own redis-server (non-persistent, like a restart that
loses everything), so stopping it does not disturb the rest of the suite.
Jobs are created through the API, Redis is flushed or restarted, and the
real reconciler and an in-process worker are run: every job must end
``finished``, and none may be left ``queued`` or ``pending``.
"""

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import select, update

from qfjobs.app import create_app
from qfjobs.extensions import get_db, get_queue, get_redis
from qfjobs.models import Job, JobStatus
from qfjobs.models.timestamps import utcnow
from qfjobs.services import users
from qfjobs.services.reconcile import Report, reconcile
from qfjobs.tasks.worker import build_worker
from tests.conftest import clear_tables
from tests.helpers import MINIMAL_QGS, new_project, upload
from tests.services import free_port, wait_for_redis


class PrivateRedis:
    """A redis-server on a fixed loopback port that can be stopped and restarted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_redis(self.url)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_app(
    database_url: str, private_redis: PrivateRedis, tmp_path: Path
) -> Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "QFJOBS_DATABASE_URL": database_url,
            "QFJOBS_REDIS_URL": private_redis.url,
            "QFJOBS_STORAGE_DIR": tmp_path / "storage",
            "QFJOBS_QUEUE_NAME": f"test-{uuid.uuid4().hex}",
        }
    )
    clear_tables(app)
    yield app
    get_db(app).dispose()


def login(app: Flask, client: FlaskClient, name: str) -> dict[str, Any]:
    with app.app_context():
        users.create_user(get_db().session(), name, "secret-pw")
    response = client.post(
        "/api/v1/auth/login/", data={"username": name, "password": "secret-pw"}
    )
    return {"headers": {"Authorization": f"Token {response.json['token']}"}}


def statuses(app: Flask) -> dict[uuid.UUID, JobStatus]:
    with app.app_context():
        session = get_db().session()
        rows = session.execute(select(Job.id, Job.status)).all()
        session.commit()
        return {row.id: JobStatus(row.status) for row in rows}


def age_queued_jobs(app: Flask) -> None:
    """Move queue times past the reconciler's grace for fresh enqueues."""
    with app.app_context():
        session = get_db().session()
        session.execute(
            update(Job)
            .where(Job.status == JobStatus.QUEUED)
            .values(queued_at=utcnow() - timedelta(minutes=5))
        )
        session.commit()


def run_reconcile(app: Flask) -> Report:
    with app.app_context(), get_db().new_session() as session:
        return reconcile(session, get_redis(), get_queue())


def run_worker(app: Flask) -> None:
    with app.app_context():
        build_worker(app, in_process=True).work(burst=True, with_scheduler=False)


def queue_jobs(app: Flask, client: FlaskClient, user: dict[str, Any]) -> list[str]:
    """Two projects, each with a queued job and one waiting behind it."""
    projects = []
    for name in ("north", "south"):
        pid = new_project(client, user, name)
        assert upload(client, user, pid, "project.qgs", MINIMAL_QGS).status_code == 201
        second = client.post(
            "/api/v1/jobs/",
            data={"project_id": pid, "type": "process_projectfile"},
            headers=user["headers"],
        )
        assert second.status_code == 201
        projects.append(pid)
    counts = list(statuses(app).values())
    assert counts.count(JobStatus.QUEUED) == 2
    assert counts.count(JobStatus.PENDING) == 2
    return projects


def assert_all_finished(app: Flask) -> None:
    final = statuses(app)
    assert final and set(final.values()) == {JobStatus.FINISHED}, final


def test_flushed_redis_loses_no_queued_job(
    redis_app: Flask, private_redis: PrivateRedis
) -> None:
    client = redis_app.test_client()
    alice = login(redis_app, client, "alice")
    queue_jobs(redis_app, client, alice)

    Redis.from_url(private_redis.url).flushall()
    age_queued_jobs(redis_app)
    report = run_reconcile(redis_app)
    assert len(report.requeued) == 2
    assert report.failed == []

    # The worker runs the re-queued jobs; each one's end queues the next.
    for _ in range(3):
        run_worker(redis_app)
        run_reconcile(redis_app)
    assert_all_finished(redis_app)


def test_restarted_redis_loses_no_job_and_the_api_keeps_working(
    redis_app: Flask, private_redis: PrivateRedis
) -> None:
    client = redis_app.test_client()
    alice = login(redis_app, client, "alice")
    projects = queue_jobs(redis_app, client, alice)

    private_redis.stop()
    # While Redis is away the API still takes jobs: they wait as pending.
    late = client.post(
        "/api/v1/jobs/",
        data={"project_id": projects[0], "type": "process_projectfile"},
        headers=alice["headers"],
    )
    assert late.status_code == 201, late.json
    third = new_project(client, alice, "east")
    assert upload(client, alice, third, "project.qgs", MINIMAL_QGS).status_code == 201
    status = client.get("/api/v1/status/")
    assert status.status_code == 200 and status.json["redis"] == "unavailable"
    waiting = [s for s in statuses(redis_app).values() if s == JobStatus.PENDING]
    assert len(waiting) == 4  # two behind the queued ones, two made while away

    private_redis.start()  # empty: everything Redis held is gone
    age_queued_jobs(redis_app)
    report = run_reconcile(redis_app)
    assert len(report.requeued) == 2  # the two that were queued before
    assert len(report.dispatched) == 1  # the new project's job
    assert report.failed == []

    for _ in range(5):
        run_worker(redis_app)
        run_reconcile(redis_app)
    assert_all_finished(redis_app)
    assert len(statuses(redis_app)) == 6
