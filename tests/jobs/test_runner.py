"""Running jobs with a real worker loop: statuses, output, feedback, order."""

import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from qfjobs.extensions import get_db
from qfjobs.models import Job, JobStatus
from tests.helpers import (
    MINIMAL_QGS,
    job_list,
    new_project,
    postgres_layer_project,
    upload,
)
from tests.silent import silent_server


def job_rows(app: Flask, project_id: str) -> list[Job]:
    with app.app_context():
        session = get_db().session()
        rows = session.scalars(
            select(Job)
            .where(Job.project_id == uuid.UUID(project_id))
            .order_by(Job.created_at)
        ).all()
        session.expunge_all()
        return list(rows)


def test_process_projectfile_finishes_with_details(
    client: FlaskClient, make_user, run_jobs
) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    job_id = job_list(client, alice, project_id=pid)["results"][0]["id"]

    run_jobs()

    job = client.get(f"/api/v1/jobs/{job_id}/", headers=alice["headers"]).json
    assert job["status"] == "finished", job["feedback"]
    assert job["started_at"] and job["finished_at"]
    assert job["finished_at"] >= job["started_at"]
    assert job["attempts"] == 1
    feedback = job["feedback"]
    assert feedback["workflow_id"] == "process_projectfile"
    assert [step["stage"] for step in feedback["steps"]] == [2, 2, 2]
    assert (
        feedback["outputs"]["project_details"]["project_details"]["crs"] == "EPSG:4326"
    )
    lines = [line for line in job["output"].splitlines() if line]
    assert lines and all(line.startswith(job_id) for line in lines)

    project = client.get(f"/api/v1/projects/{pid}/", headers=alice["headers"]).json
    assert project["status"] == "ok"
    assert project["project_details"]["crs"] == "EPSG:4326"


def test_unreadable_project_fails_and_clears_details(
    client: FlaskClient, make_user, run_jobs
) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    run_jobs()
    upload(client, alice, pid, "project.qgs", b"<qgis><projectlayers><maplayer>")
    run_jobs()

    latest = job_list(client, alice, project_id=pid)["results"][0]
    job = client.get(f"/api/v1/jobs/{latest['id']}/", headers=alice["headers"]).json
    assert job["status"] == "failed"
    assert job["finished_at"] is not None
    feedback = job["feedback"]
    assert feedback["error_type"] == "INVALID_PROJECT_FILE"
    assert feedback["error_class"] == "InvalidProjectFileError"
    assert feedback["error_stack"]
    assert [step["stage"] for step in feedback["steps"]][-1] == 1
    project = client.get(f"/api/v1/projects/{pid}/", headers=alice["headers"]).json
    assert project["project_details"] is None
    assert project["status_code"] == "failed_process_projectfile"


def test_jobs_of_a_project_run_one_at_a_time_in_order(
    app: Flask, client: FlaskClient, make_user, run_jobs
) -> None:
    alice = make_user("alice")
    pids = [new_project(client, alice, name) for name in ("a", "b")]
    for pid in pids:
        upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
        for _ in range(3):
            client.post(
                "/api/v1/jobs/",
                data={"project_id": pid, "type": "process_projectfile"},
                headers=alice["headers"],
            )
    for pid in pids:
        statuses = [job.status for job in job_rows(app, pid)]
        assert statuses == ["queued", "pending", "pending", "pending"]

    run_jobs()

    for pid in pids:
        rows = job_rows(app, pid)
        assert [job.status for job in rows] == ["finished"] * 4
        for earlier, later in zip(rows, rows[1:], strict=False):
            assert earlier.finished_at is not None and later.started_at is not None
            assert later.started_at >= earlier.finished_at


def test_timeout_fails_the_job_and_the_next_one_runs(
    app: Flask, client: FlaskClient, make_user, run_jobs
) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    app.config["QFJOBS_PG_TIMEOUT"] = 30
    app.config["QFJOBS_JOB_TIMEOUT"] = 1
    with silent_server() as port:
        project_file = postgres_layer_project("127.0.0.1", port)
        upload(client, alice, pid, "project.qgs", project_file)
        client.post(
            "/api/v1/jobs/",
            data={"project_id": pid, "type": "process_projectfile"},
            headers=alice["headers"],
        )
        run_jobs()

    rows = job_rows(app, pid)
    assert [job.status for job in rows] == ["failed", "failed"]
    for job in rows:
        assert job.feedback is not None
        assert job.feedback["error_type"] == "TIMEOUT"
        assert "within 1 seconds" in job.feedback["error"]
        assert job.finished_at is not None
        assert "s3cret" not in (job.output or "")


def test_stop_pending_and_finished_jobs(
    app: Flask, client: FlaskClient, make_user, run_jobs
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
    )
    assert stopped.status_code == 200
    assert stopped.json["status"] == "stopped"
    assert stopped.json["finished_at"] is not None

    run_jobs()
    statuses = {job.type: job.status for job in job_rows(app, pid)}
    assert statuses == {"process_projectfile": "finished", "package": "stopped"}

    again = client.post(f"/api/v1/jobs/{pending['id']}/stop/", headers=alice["headers"])
    assert again.status_code == 400
    assert again.json["code"] == "job_not_stoppable"


@pytest.mark.parametrize("status", [JobStatus.QUEUED])
def test_stopping_a_queued_job_means_it_never_runs(
    app: Flask, client: FlaskClient, make_user, run_jobs, status: JobStatus
) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    queued = job_list(client, alice, project_id=pid)["results"][0]
    assert queued["status"] == status

    response = client.post(
        f"/api/v1/jobs/{queued['id']}/stop/", headers=alice["headers"]
    )
    assert response.json["status"] == "stopped"
    run_jobs()
    rows = job_rows(app, pid)
    assert [job.status for job in rows] == ["stopped"]
    assert rows[0].started_at is None
