"""Load test: 20 concurrent clients against gunicorn and 2 qfjobs workers.

Run by hand (not a test), from the repository root:

    .venv/bin/python bench/bench_load.py [--database-url URL] [--seconds 60]

It starts a private Redis, a throw-away store (SQLite, or a fresh schema in
the PostgreSQL database given), ``gunicorn -w 2 wsgi:app`` and two
``qfjobs worker`` processes, all on loopback. Five users each own one
project holding the delta test project; four clients work on each project
(20 in all), each with its own token, for ``--seconds``. A client loops
over a fixed mix: list the project's jobs (30 %), upload a file of 1 to
256 KiB (30 %; a tenth replace one of its own earlier files), create a job
(20 %; ``package`` or ``process_projectfile``, never forced) and read a job
(20 %).

It reports throughput, latency and errors per operation (any 5xx, any
connection error, and any status the operation should not give), then
waits for the queue to drain and checks:

- no job is left ``pending``, ``queued`` or ``started``;
- per project, the package jobs' lives (creation to end) never overlap, so
  there was never more than one active package job;
- per project, jobs ran one at a time (``started_at``..``finished_at`` do
  not overlap);
- every upload is stored with the checksum of the bytes last sent under its
  name: in the file list (``md5sum``) and in the downloaded bytes.

It exits non-zero when any error was counted or any check failed.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.services import free_port, postgres_schema, redis_server  # noqa: E402

from qfjobs.app import create_app  # noqa: E402
from qfjobs.extensions import get_db  # noqa: E402
from qfjobs.migrations import upgrade_database  # noqa: E402
from qfjobs.models import Job, JobStatus, JobType  # noqa: E402
from qfjobs.services import users  # noqa: E402

BIN = Path(sys.executable).parent
PROJECT_DIR = REPO / "tests" / "data" / "qfieldcloud-delta"
#: The QGIS project file last, as the client uploads it.
PROJECT_FILES = (
    "testdata.gpkg",
    "points.geojson",
    "polygons.geojson",
    "nonspatial.csv",
    "project.qgs",
)
PROJECTS = 5
CLIENTS_PER_PROJECT = 4
ACTIVE = {JobStatus.PENDING, JobStatus.QUEUED, JobStatus.STARTED}
#: Statuses each operation may answer with; anything else is an error.
EXPECTED = {
    "list_jobs": {200},
    "upload": {201},
    "create_job": {200, 201},
    "get_job": {200},
}


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    uploads: dict[tuple[str, str], str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: str, began: float, status: int | str) -> bool:
        elapsed = time.perf_counter() - began
        with self.lock:
            self.latencies[op].append(elapsed)
            if status not in EXPECTED[op]:
                self.errors[op].append(str(status))
                return False
        return True


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def wait_http(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def bench_app(env: dict[str, str]) -> Any:
    return create_app(
        {
            "QFJOBS_DATABASE_URL": env["QFJOBS_DATABASE_URL"],
            "QFJOBS_REDIS_URL": env["QFJOBS_REDIS_URL"],
            "QFJOBS_STORAGE_DIR": Path(env["QFJOBS_STORAGE_DIR"]),
            "QFJOBS_QUEUE_NAME": env["QFJOBS_QUEUE_NAME"],
        }
    )


def seed(base: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """Users and their projects, through the API; returns (user, project id)."""
    app = bench_app(env)
    with app.app_context():
        for number in range(PROJECTS):
            users.create_user(get_db().session(), f"user{number}", "load-pw-1")
    get_db(app).dispose()

    owners = []
    for number in range(PROJECTS):
        token = login(base, f"user{number}")
        headers = {"Authorization": f"Token {token}"}
        project = requests.post(
            f"{base}projects/", data={"name": f"load-{number}"}, headers=headers
        )
        project.raise_for_status()
        pid = project.json()["id"]
        for name in PROJECT_FILES:
            path = PROJECT_DIR / name
            with path.open("rb") as stream:
                answer = requests.post(
                    f"{base}files/{pid}/{name}/",
                    files={"file": (name, stream)},
                    headers=headers,
                )
            answer.raise_for_status()
        owners.append((f"user{number}", pid))
    return owners


def login(base: str, username: str) -> str:
    response = requests.post(
        f"{base}auth/login/", data={"username": username, "password": "load-pw-1"}
    )
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


def client_loop(
    base: str,
    username: str,
    pid: str,
    number: int,
    stop_at: float,
    stats: Stats,
) -> None:
    rng = random.Random(number)
    http = requests.Session()
    http.headers["Authorization"] = f"Token {login(base, username)}"
    my_jobs: list[str] = []
    my_files: list[str] = []
    count = 0

    def call(op: str, method: str, url: str, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            response = http.request(method, url, timeout=120, **kwargs)
        except requests.RequestException as exc:
            stats.record(op, began, f"{type(exc).__name__}")
            return None
        if not stats.record(op, began, response.status_code):
            with stats.lock:
                stats.errors[op][-1] += f" {response.text[:200]}"
            return None
        return response

    while time.monotonic() < stop_at:
        roll = rng.random()
        if roll < 0.3:
            call("list_jobs", "GET", f"{base}jobs/", params={"project_id": pid})
        elif roll < 0.6:
            if my_files and rng.random() < 0.1:
                name = rng.choice(my_files)
            else:
                count += 1
                name = f"load/c{number:02d}-{count:05d}.bin"
            payload = rng.randbytes(rng.randint(1024, 256 * 1024))
            response = call(
                "upload",
                "POST",
                f"{base}files/{pid}/{name}/",
                files={"file": (name.rsplit("/", 1)[-1], payload)},
            )
            with stats.lock:
                key = (pid, name)
                if response is not None:
                    stats.uploads[key] = hashlib.md5(payload).hexdigest()
                    if name not in my_files:
                        my_files.append(name)
                elif key in stats.uploads:
                    # Unknown outcome: either content may be stored.
                    stats.uploads.pop(key)
                    my_files.remove(name)
        elif roll < 0.8:
            job_type = rng.choice(["package", "process_projectfile"])
            response = call(
                "create_job",
                "POST",
                f"{base}jobs/",
                data={"project_id": pid, "type": job_type},
            )
            if response is not None:
                my_jobs.append(response.json()["id"])
        elif my_jobs:
            call("get_job", "GET", f"{base}jobs/{rng.choice(my_jobs)}/")
        else:
            call("list_jobs", "GET", f"{base}jobs/", params={"project_id": pid})


def drain(env: dict[str, str], seconds: float) -> float:
    """Wait until no job is active; returns how long it took."""
    app = bench_app(env)
    began = time.monotonic()
    try:
        while time.monotonic() - began < seconds:
            with app.app_context():
                session = get_db().session()
                active = session.scalar(
                    select(Job.id).where(Job.status.in_(ACTIVE)).limit(1)
                )
                session.commit()
            if active is None:
                break
            time.sleep(0.5)
    finally:
        get_db(app).dispose()
    return time.monotonic() - began


def overlaps(spans: list[tuple[datetime, datetime]]) -> int:
    spans = sorted(spans)
    return sum(1 for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1])


def check_jobs(env: dict[str, str]) -> dict[str, Any]:
    app = bench_app(env)
    with app.app_context():
        session = get_db().session()
        jobs = session.scalars(select(Job)).all()
        by_status: dict[str, int] = defaultdict(int)
        package_lives: dict[Any, list[tuple[datetime, datetime]]] = defaultdict(list)
        runs: dict[Any, list[tuple[datetime, datetime]]] = defaultdict(list)
        stuck = []
        failures: dict[str, str] = {}
        for job in jobs:
            by_status[str(job.status)] += 1
            if job.status == JobStatus.FAILED:
                failures[str(job.id)] = str((job.feedback or {}).get("error"))
            end = job.finished_at or job.updated_at
            if job.status in ACTIVE:
                stuck.append(str(job.id))
            if job.type == JobType.PACKAGE:
                package_lives[job.project_id].append((job.created_at, end))
            if job.started_at is not None and job.finished_at is not None:
                runs[job.project_id].append((job.started_at, job.finished_at))
        by_type: dict[str, int] = defaultdict(int)
        for job in jobs:
            by_type[str(job.type)] += 1
        session.commit()
    get_db(app).dispose()
    return {
        "jobs_by_status": dict(by_status),
        "jobs_by_type": dict(by_type),
        "stuck_jobs": stuck,
        "failed_jobs": failures,
        "package_overlaps": sum(overlaps(v) for v in package_lives.values()),
        "parallel_runs_in_a_project": sum(overlaps(v) for v in runs.values()),
    }


def check_uploads(
    base: str, owners: list[tuple[str, str]], stats: Stats
) -> dict[str, Any]:
    tokens = {pid: login(base, user) for user, pid in owners}
    listed_wrong, downloaded_wrong, missing = [], [], []
    for pid, token in tokens.items():
        headers = {"Authorization": f"Token {token}"}
        listing = requests.get(f"{base}files/{pid}/", headers=headers).json()
        md5_by_name = {row["name"]: row["md5sum"] for row in listing}
        for (project, name), md5 in stats.uploads.items():
            if project != pid:
                continue
            if name not in md5_by_name:
                missing.append(name)
                continue
            if md5_by_name[name] != md5:
                listed_wrong.append(name)
            body = requests.get(f"{base}files/{pid}/{name}/", headers=headers)
            if hashlib.md5(body.content).hexdigest() != md5:
                downloaded_wrong.append(name)
    return {
        "uploads_checked": len(stats.uploads),
        "missing": missing,
        "wrong_md5_listed": listed_wrong,
        "wrong_bytes_downloaded": downloaded_wrong,
    }


def summary(stats: Stats, seconds: float) -> dict[str, Any]:
    ops = {}
    total = 0
    for op, values in sorted(stats.latencies.items()):
        total += len(values)
        ordered = sorted(values)
        ops[op] = {
            "requests": len(values),
            "per_second": round(len(values) / seconds, 1),
            "p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 1),
            "errors": len(stats.errors.get(op, [])),
        }
    return {
        "requests": total,
        "per_second": round(total / seconds, 1),
        "errors": sum(len(v) for v in stats.errors.values()),
        "error_samples": {op: v[:5] for op, v in stats.errors.items() if v},
        "operations": ops,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", help="PostgreSQL base URL; SQLite if unset")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--drain-seconds", type=int, default=300)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="qfjobs-load-"))
    processes: list[subprocess.Popen[bytes]] = []
    with redis_server() as redis_url:
        schema_cm = postgres_schema(args.database_url) if args.database_url else None
        database_url = (
            schema_cm.__enter__()
            if schema_cm is not None
            else f"sqlite:///{tmp / 'load.sqlite3'}"
        )
        try:
            upgrade_database(database_url)
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("QFJOBS_")},
                "QFJOBS_DATABASE_URL": database_url,
                "QFJOBS_REDIS_URL": redis_url,
                "QFJOBS_STORAGE_DIR": str(tmp / "storage"),
                "QFJOBS_QUEUE_NAME": f"load-{uuid.uuid4().hex[:8]}",
                "QFJOBS_SECRET_KEY": "load",
            }
            port = free_port()
            base = f"http://127.0.0.1:{port}/api/v1/"
            processes.append(
                start(
                    [str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}"]
                    + ["wsgi:app"],
                    env,
                    tmp / "gunicorn.log",
                )
            )
            wait_http(f"{base}status/")
            for number in range(2):
                processes.append(
                    start(
                        [str(BIN / "qfjobs"), "worker", "--name", f"load-{number}"],
                        env,
                        tmp / f"worker{number}.log",
                    )
                )
            owners = seed(base, env)

            stats = Stats()
            began = time.monotonic()
            stop_at = began + args.seconds
            threads = [
                threading.Thread(
                    target=client_loop,
                    args=(base, user, pid, index * CLIENTS_PER_PROJECT + k, stop_at),
                    kwargs={"stats": stats},
                )
                for index, (user, pid) in enumerate(owners)
                for k in range(CLIENTS_PER_PROJECT)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - began

            drained_in = drain(env, args.drain_seconds)
            result = {
                "backend": "PostgreSQL" if schema_cm else "SQLite",
                "clients": len(threads),
                "seconds": round(elapsed, 1),
                **summary(stats, elapsed),
                "drained_in_s": round(drained_in, 1),
                **check_jobs(env),
                **check_uploads(base, owners, stats),
            }
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            if schema_cm is not None:
                schema_cm.__exit__(None, None, None)

    print(json.dumps(result, indent=2, default=str))
    failed = (
        result["errors"]
        or result["stuck_jobs"]
        or result["failed_jobs"]
        or result["package_overlaps"]
        or result["parallel_runs_in_a_project"]
        or result["missing"]
        or result["wrong_md5_listed"]
        or result["wrong_bytes_downloaded"]
    )
    if failed:
        print(f"FAILED; logs kept in {tmp}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
