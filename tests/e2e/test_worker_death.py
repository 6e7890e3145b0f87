"""Workers killed with SIGKILL while they run a job."""

import os
import signal
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from flask import Flask
from redis import Redis
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.registry import StartedJobRegistry
from sqlalchemy import create_engine, select, update

from qfjobs.models import Job
from qfjobs.models.timestamps import utcnow
from tests.e2e.stack import BIN, REPO_ROOT, LiveStack, live_stack
from tests.helpers import MINIMAL_QGS, postgres_layer_project
from tests.silent import silent_server

pytestmark = pytest.mark.slow


def api(stack: LiveStack, token: str):  # type: ignore[no-untyped-def]
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    return session


def login_new_user(stack: LiveStack) -> requests.Session:
    assert stack.qfjobs("create-user", "bob", "--password", "bob-pw").returncode == 0
    token = requests.post(
        f"{stack.base_url}auth/login/", data={"username": "bob", "password": "bob-pw"}
    ).json()["token"]
    return api(stack, token)


def start_slow_job(stack: LiveStack, port: int) -> tuple[requests.Session, str]:
    http = login_new_user(stack)
    pid = http.post(f"{stack.base_url}projects/", data={"name": "slow"}).json()["id"]
    response = http.post(
        f"{stack.base_url}files/{pid}/project.qgs/",
        files={"file": ("project.qgs", postgres_layer_project("127.0.0.1", port))},
    )
    assert response.status_code == 201
    job_id = http.get(f"{stack.base_url}jobs/", params={"project_id": pid}).json()[
        "results"
    ][0]["id"]
    wait_status(http, stack, job_id, {"started"})
    return http, job_id


def wait_status(
    http: requests.Session,
    stack: LiveStack,
    job_id: str,
    wanted: set[str],
    seconds: float = 60,
) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = http.get(f"{stack.base_url}jobs/{job_id}/")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in wanted:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached {wanted}: {job['status']}")


def wait_spooled(tmp: Path, job_id: str, seconds: float = 30) -> str:
    """The run's spooled lines, once it has written its first ones."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for spool in tmp.glob(f"qfjobs-{job_id}-*/output.log"):
            text = spool.read_text()
            if text:
                return text
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} spooled nothing in {tmp}")


def horse_of(worker: subprocess.Popen[bytes]) -> int:
    children = (
        Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    )
    assert children, "the worker has no work horse"
    return int(children[0])


def wait_attempt(
    http: requests.Session, stack: LiveStack, job_id: str, attempt: int
) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        job = http.get(f"{stack.base_url}jobs/{job_id}/").json()
        if job["status"] == "started" and job["attempts"] == attempt:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never started attempt {attempt}: {job}")


def test_killed_work_horse_runs_the_job_once_more_then_fails_it(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    jobs_tmp = tmp_path / "tmp"
    jobs_tmp.mkdir()
    slow = {"QFJOBS_PG_TIMEOUT": "60", "TMPDIR": str(jobs_tmp)}
    with (
        silent_server() as port,
        live_stack(database_url, redis_url, tmp_path, env_overrides=slow) as stack,
    ):
        worker = stack.workers[0]
        http, job_id = start_slow_job(stack, port)

        wait_spooled(jobs_tmp, job_id)
        os.kill(horse_of(worker), signal.SIGKILL)
        second = wait_attempt(http, stack, job_id, 2)
        wait_spooled(jobs_tmp, job_id)
        os.kill(horse_of(worker), signal.SIGKILL)
        job = wait_status(http, stack, job_id, {"failed"}, seconds=20)

    assert "(killed by signal 9); running it again (attempt 2 of 2)" in second["output"]
    # Each killed run's spooled lines come before the note on its death, and
    # its working folder is gone.
    lines = job["output"].splitlines()
    assert all(line.startswith(f"{job_id} ") for line in lines), job["output"]
    runs = [i for i, line in enumerate(lines) if "process_projectfile job of" in line]
    deaths = [i for i, line in enumerate(lines) if "killed by signal 9" in line]
    assert len(runs) == len(deaths) == 2, job["output"]
    assert runs[0] < deaths[0] < runs[1] < deaths[1] == len(lines) - 1
    assert list(jobs_tmp.glob(f"qfjobs-{uuid.UUID(job_id)}-*")) == []
    assert job["feedback"]["error_type"] == "WORKER_DIED"
    assert "killed by signal 9" in job["feedback"]["error"]
    assert "(attempt 2 of 2)" in job["feedback"]["error"]
    assert job["attempts"] == 2
    assert job["finished_at"] is not None


def test_whole_worker_killed_is_found_by_the_reconciler(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    slow = {"QFJOBS_PG_TIMEOUT": "60", "QFJOBS_HEARTBEAT_TTL": "2"}
    with (
        silent_server() as port,
        live_stack(
            database_url, redis_url, tmp_path, workers=0, env_overrides=slow
        ) as stack,
    ):
        log = (stack.log_dir / "doomed.log").open("ab")
        doomed = subprocess.Popen(
            [str(BIN / "qfjobs"), "worker", "--name", f"doomed-{uuid.uuid4().hex[:6]}"],
            env=stack.env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            http, job_id = start_slow_job(stack, port)
            # The work horse runs in a session of its own: kill the worker
            # first (so nothing reports the horse's death), then the horse,
            # as if the machine had gone away.
            horse = horse_of(doomed)
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait()
            os.kill(horse, signal.SIGKILL)

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                assert stack.qfjobs("reconcile").returncode == 0
                job = http.get(f"{stack.base_url}jobs/{job_id}/").json()
                if job["status"] != "started":
                    break
                time.sleep(1)
        finally:
            if doomed.poll() is None:
                doomed.kill()

    # Its first run was lost: it waits for a worker to run it once more.
    assert job["status"] == "queued"
    assert job["attempts"] == 1
    assert "stopped sending heartbeats" in job["output"]
    assert "running it again (attempt 2 of 2)" in job["output"]


def test_killed_package_job_keeps_the_previous_package(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    slow = {"QFJOBS_PG_TIMEOUT": "60"}
    with (
        silent_server() as port,
        live_stack(database_url, redis_url, tmp_path, env_overrides=slow) as stack,
    ):
        worker = stack.workers[0]
        http = login_new_user(stack)
        base = stack.base_url
        pid = http.post(f"{base}projects/", data={"name": "pkg"}).json()["id"]

        # A first package, of a project that packages quickly.
        upload = {"file": ("project.qgs", MINIMAL_QGS)}
        assert http.post(f"{base}files/{pid}/project.qgs/", files=upload).ok
        first = http.post(f"{base}jobs/", data={"project_id": pid, "type": "package"})
        wait_status(http, stack, first.json()["id"], {"finished"})
        before = http.get(f"{base}packages/{pid}/latest/").json()

        # The project now waits on a database that never answers: its
        # process_projectfile job is stopped, its package job killed twice.
        slow_project = {
            "file": ("project.qgs", postgres_layer_project("127.0.0.1", port))
        }
        assert http.post(f"{base}files/{pid}/project.qgs/", files=slow_project).ok
        check = http.get(f"{base}jobs/", params={"project_id": pid}).json()["results"]
        http.post(f"{base}jobs/{check[0]['id']}/stop/")
        package = http.post(
            f"{base}jobs/", data={"project_id": pid, "type": "package"}
        ).json()["id"]
        wait_status(http, stack, package, {"started"})
        os.kill(horse_of(worker), signal.SIGKILL)
        wait_attempt(http, stack, package, 2)
        os.kill(horse_of(worker), signal.SIGKILL)
        job = wait_status(http, stack, package, {"failed"}, seconds=20)
        after = http.get(f"{base}packages/{pid}/latest/").json()
        downloads = [
            http.get(f"{base}packages/{pid}/latest/files/{entry['name']}/")
            for entry in after["files"]
        ]

    assert job["feedback"]["error_type"] == "WORKER_DIED"
    assert after["package_id"] == before["package_id"] == first.json()["id"]
    assert after["files"] == before["files"]
    assert [response.status_code for response in downloads] == [200] * len(downloads)


def test_worker_killed_before_the_job_said_started_is_found_by_the_reconciler(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    # RQ marks the job started and forks; the horse's first step, writing
    # "started" to the job's row, waits here on a row lock while horse and
    # worker are killed. RQ then says "started" of a job nobody runs.
    if not database_url.startswith("postgresql"):
        pytest.skip("holds one job row locked; SQLite would lock the worker out")
    with live_stack(
        database_url,
        redis_url,
        tmp_path,
        workers=0,
        env_overrides={"QFJOBS_HEARTBEAT_TTL": "1"},
    ) as stack:
        http = login_new_user(stack)
        pid = http.post(f"{stack.base_url}projects/", data={"name": "p"}).json()["id"]
        upload = {"file": ("project.qgs", MINIMAL_QGS)}
        assert http.post(f"{stack.base_url}files/{pid}/project.qgs/", files=upload).ok
        job_id = http.get(f"{stack.base_url}jobs/", params={"project_id": pid}).json()[
            "results"
        ][0]["id"]
        engine = create_engine(database_url)
        rows = select(Job.id).where(Job.id == uuid.UUID(job_id)).with_for_update()
        with engine.connect() as lock:
            lock.execute(rows)
            doomed = stack.start_worker("doomed")
            rq_job = RQJob.fetch(job_id, connection=Redis.from_url(redis_url))
            deadline = time.monotonic() + 30
            while rq_job.get_status() != RQStatus.STARTED:
                assert time.monotonic() < deadline, "the worker never took the job"
                time.sleep(0.1)
            horse = horse_of(doomed)
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait()
            os.kill(horse, signal.SIGKILL)
            lock.rollback()
        with engine.begin() as connection:  # Queued long enough to be checked.
            long_ago = utcnow() - timedelta(minutes=2)
            connection.execute(update(Job).values(queued_at=long_ago))
        engine.dispose()
        assert http.get(f"{stack.base_url}jobs/{job_id}/").json()["status"] == "queued"

        reports = []
        for _ in range(5):  # Two passes a heartbeat period apart find it.
            reports.append(stack.qfjobs("reconcile").stdout)
            if "re-queued 1" in reports[-1]:
                break
            time.sleep(1.5)
        assert "re-queued 1" in reports[-1], reports
        registry = StartedJobRegistry(
            name=stack.env["QFJOBS_QUEUE_NAME"], connection=Redis.from_url(redis_url)
        )
        held = registry.get_job_and_execution_ids(cleanup=False)
        assert job_id not in {held_id for held_id, _ in held}

        stack.start_worker("after")
        job = wait_status(http, stack, job_id, {"finished", "failed"})
    assert job["status"] == "finished", job["output"]
    assert job["attempts"] == 1
