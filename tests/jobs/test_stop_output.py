"""A stopped job's output: the lines its run spooled, then the stop line.

The work horse of a started job is killed by RQ's stop command (SIGKILL), so
its lines reach the job only through the spool file in its working folder;
``tests/e2e/test_job_stop.py`` stops a real running horse. Here the pieces
are checked one by one with a real store and queue.
"""

import logging
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq.job import Job as RQJob

from qfjobs.extensions import get_db, get_redis
from qfjobs.models import Job, JobStatus
from qfjobs.services import jobs as job_service
from qfjobs.tasks import joblog
from qfjobs.tasks import workdir as job_workdir
from qfjobs.tasks.callbacks import on_stopped
from qfjobs.tasks.context import set_app
from tests.helpers import MINIMAL_QGS, job_list, new_project, upload

logger = logging.getLogger("qfjobs.tasks.test")


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The system temporary directory, as jobs see it, is a fresh folder."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder


def job_row(app: Flask, job_id: str) -> Job:
    with app.app_context():
        session = get_db().session()
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        session.expunge(job)
        return job


def assert_job_lines(output: str, job_id: str) -> list[str]:
    lines = output.splitlines()
    assert lines
    assert all(line.startswith(f"{job_id} ") for line in lines), output
    assert lines[-1].endswith(f"{job_id}: stopped on request")
    return lines


def test_pending_job_stopped_gets_the_stop_line(
    app: Flask, client: FlaskClient, make_user
) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    pending = client.post(
        "/api/v1/jobs/",
        data={"project_id": pid, "type": "package"},
        headers=alice["headers"],
    ).json
    assert pending["status"] == "pending"

    stopped = client.post(
        f"/api/v1/jobs/{pending['id']}/stop/", headers=alice["headers"]
    ).json
    assert stopped["status"] == "stopped"
    assert len(assert_job_lines(stopped["output"], pending["id"])) == 1
    assert " INFO " in stopped["output"]
    again = client.get(f"/api/v1/jobs/{pending['id']}/", headers=alice["headers"])
    assert again.json["output"] == stopped["output"]


def test_capture_spools_every_collected_line(tmp_path: Path) -> None:
    job_id = str(uuid.uuid4())
    spool = tmp_path / "output.log"
    with joblog.capture(job_id, spool) as collector:
        logger.info("%s: first step", job_id)
        logger.info("%s: password=s3cret in a line", job_id)
        logger.debug("%s: not collected", job_id)
        assert spool.read_text() == collector.text()  # written as it goes
    assert spool.read_text() == collector.text()
    assert len(collector.text().splitlines()) == 2
    assert "s3cret" not in spool.read_text()


def test_spooled_output_is_cut_at_the_limit(tmp_path: Path, private_tmp: Path) -> None:
    job_id = uuid.uuid4()
    folder = job_workdir.create(job_id)
    lines = "".join(f"{job_id} line {number}\n" for number in range(100))
    job_workdir.spool_path(folder).write_text(lines)

    assert job_workdir.read_spooled(job_id, 10_000) == lines
    cut = job_workdir.read_spooled(job_id, 200)
    assert cut.endswith("\n[output truncated]\n")
    assert lines.startswith(cut.removesuffix("[output truncated]\n"))
    assert len(cut) <= 200 + len("[output truncated]\n")


def test_stopped_callback_keeps_the_spooled_lines(
    app: Flask, client: FlaskClient, make_user, private_tmp: Path
) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    job_id = job_list(client, alice, project_id=pid)["results"][0]["id"]
    with app.app_context():
        session = get_db().session()
        assert job_service.set_status(
            session,
            uuid.UUID(job_id),
            JobStatus.STARTED,
            expect=(JobStatus.QUEUED,),
        )
        rq_job = RQJob.fetch(job_id, connection=get_redis())
    # What a run leaves behind when its horse is killed mid-way.
    folder = job_workdir.create(uuid.UUID(job_id))
    (folder / "files").mkdir()
    with joblog.capture(job_id, job_workdir.spool_path(folder)):
        logger.info("%s: step one done", job_id)
        logger.info("%s: step two begins", job_id)

    set_app(app)
    on_stopped(rq_job)

    job = job_row(app, job_id)
    assert job.status == JobStatus.STOPPED
    assert job.finished_at is not None
    lines = assert_job_lines(job.output or "", job_id)
    assert [line.split(": ", 1)[1] for line in lines] == [
        f"{job_id}: step one done",
        f"{job_id}: step two begins",
        f"{job_id}: stopped on request",
    ]
    assert not folder.exists()
    assert job_workdir.leftovers(uuid.UUID(job_id)) == []


def test_stopped_callback_after_the_job_ended_changes_nothing(
    app: Flask, client: FlaskClient, make_user, run_jobs, private_tmp: Path
) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    job_id = job_list(client, alice, project_id=pid)["results"][0]["id"]
    run_jobs()
    finished = job_row(app, job_id)
    assert finished.status == JobStatus.FINISHED
    assert job_workdir.leftovers(uuid.UUID(job_id)) == []  # the run cleaned up

    with app.app_context():
        rq_job = RQJob.fetch(job_id, connection=get_redis())
    set_app(app)
    on_stopped(rq_job)

    job = job_row(app, job_id)
    assert job.status == JobStatus.FINISHED
    assert job.output == finished.output
    assert "stopped on request" not in (job.output or "")
