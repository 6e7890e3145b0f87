"""A running job stopped on request keeps the lines its killed horse wrote."""

import uuid
from pathlib import Path

import pytest
from flask import Flask

from tests.e2e.stack import live_stack
from tests.e2e.test_worker_death import start_slow_job, wait_spooled, wait_status
from tests.silent import silent_server

pytestmark = pytest.mark.slow


def test_stopped_running_job_keeps_its_lines_and_ends_with_the_stop(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    jobs_tmp = tmp_path / "tmp"
    jobs_tmp.mkdir()
    env = {"QFJOBS_PG_TIMEOUT": "60", "TMPDIR": str(jobs_tmp)}
    with (
        silent_server() as port,
        live_stack(database_url, redis_url, tmp_path, env_overrides=env) as stack,
    ):
        http, job_id = start_slow_job(stack, port)
        base = stack.base_url
        pid = http.get(f"{base}jobs/{job_id}/").json()["project_id"]
        spooled = wait_spooled(jobs_tmp, job_id)

        response = http.post(f"{base}jobs/{job_id}/stop/")
        assert response.status_code == 200, response.text
        job = wait_status(http, stack, job_id, {"stopped"}, seconds=20)

    lines = job["output"].splitlines()
    assert all(line.startswith(f"{job_id} ") for line in lines), job["output"]
    assert job["output"].startswith(spooled)
    assert f"{job_id}: process_projectfile job of project {pid}" in lines[0]
    assert lines[-1].endswith(f"{job_id}: stopped on request")
    assert job["finished_at"] is not None
    assert list(jobs_tmp.glob(f"qfjobs-{uuid.UUID(job_id)}-*")) == []
