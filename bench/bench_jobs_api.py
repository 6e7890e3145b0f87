"""Benchmark: ``GET jobs/`` throughput and the ``process_projectfile`` round trip.

Run by hand (not a test), from the repository root:

    .venv/bin/python bench/bench_jobs_api.py [--database-url URL] [--seconds 15]

It builds a throw-away store with one user, one project and 10,000 jobs, and
serves it with ``gunicorn -w 2 wsgi:app``. Beside it, ``gunicorn -w 2`` serves
``bench/bare_app.py``, a bare Flask endpoint returning a JSON page of the same
size. wrk (Debian's ``wrk``) loads each in turn from this machine, over
loopback. The same request repeated is what polling clients send, and the
API answers it from memory while the project's jobs are unchanged; a third
``gunicorn -w 2 wsgi:app`` with ``QFJOBS_ANSWER_CACHE_BYTES=0`` shows what
each list costs when it has to be read (as when the jobs keep changing).
Then one ``qfjobs worker`` runs, and the time from ``POST jobs/`` to
``finished`` for ``process_projectfile`` on the delta test project is taken
over 30 jobs (polled every 5 ms).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import requests
from sqlalchemy import insert, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.services import free_port, postgres_schema, redis_server  # noqa: E402

from qfjobs.app import create_app  # noqa: E402
from qfjobs.extensions import get_db, get_login_throttle  # noqa: E402
from qfjobs.migrations import upgrade_database  # noqa: E402
from qfjobs.models import Job, JobStatus, JobType  # noqa: E402
from qfjobs.models.timestamps import utcnow  # noqa: E402
from qfjobs.services import users  # noqa: E402

BIN = Path(sys.executable).parent
PROJECT_DIR = REPO / "tests" / "data" / "qfieldcloud-delta"
PROJECT_FILES = [
    PROJECT_DIR / name
    for name in (
        "testdata.gpkg",
        "points.geojson",
        "polygons.geojson",
        "nonspatial.csv",
        "project.qgs",
    )
]
JOBS = 10_000


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def wait_http(url: str, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def wrk(url: str, token: str | None, seconds: int) -> float:
    cmd = ["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", url]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Token {token}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    print(out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def seed(env: dict[str, str]) -> tuple[str, str]:
    """One user, one project holding the delta project, 10,000 finished jobs."""
    app = create_app(
        {
            "QFJOBS_DATABASE_URL": env["QFJOBS_DATABASE_URL"],
            "QFJOBS_REDIS_URL": env["QFJOBS_REDIS_URL"],
            "QFJOBS_STORAGE_DIR": Path(env["QFJOBS_STORAGE_DIR"]),
            "QFJOBS_QUEUE_NAME": env["QFJOBS_QUEUE_NAME"],
        }
    )
    with app.app_context():
        session = get_db().session()
        user = users.create_user(session, "bench", "bench-pw")
        credentials = users.Credentials("bench", "bench-pw", "127.0.0.1")
        _, token, _ = users.login(
            session, get_login_throttle(), credentials, timedelta(days=1)
        )
    client = app.test_client()
    headers = {"Authorization": f"Token {token}"}
    project_id = client.post(
        "/api/v1/projects/", data={"name": "bench"}, headers=headers
    ).json["id"]
    for path in PROJECT_FILES:
        with path.open("rb") as stream:
            response = client.post(
                f"/api/v1/files/{project_id}/{path.name}/",
                data={"file": (stream, path.name)},
                headers=headers,
            )
        assert response.status_code == 201, response.json
    with app.app_context():
        session = get_db().session()
        session.query(Job).delete()
        now = utcnow()
        rows = [
            {
                "id": uuid.uuid4(),
                "type": JobType.PROCESS_PROJECTFILE,
                "status": JobStatus.FINISHED,
                "project_id": uuid.UUID(project_id),
                "created_by_id": user.id,
                "created_at": now,
                "updated_at": now,
                "started_at": now,
                "finished_at": now,
                "force": False,
                "timeout": 600,
                "attempts": 1,
            }
            for _ in range(JOBS)
        ]
        session.execute(insert(Job), rows)
        session.commit()
        if session.get_bind().dialect.name == "postgresql":
            # A store that has served 10,000 jobs has planner statistics;
            # autovacuum would take a minute to gather them.
            session.execute(text("ANALYZE"))
            session.commit()
    get_db(app).dispose()
    return token, project_id


def round_trips(base: str, token: str, project_id: str, count: int) -> list[float]:
    headers = {"Authorization": f"Token {token}"}
    durations = []
    with requests.Session() as http:
        for _ in range(count):
            began = time.perf_counter()
            job = http.post(
                f"{base}/api/v1/jobs/",
                data={"project_id": project_id, "type": "process_projectfile"},
                headers=headers,
            ).json()
            while True:
                status = http.get(f"{base}/api/v1/jobs/{job['id']}/", headers=headers)
                if status.json()["status"] in ("finished", "failed"):
                    break
                time.sleep(0.005)
            assert status.json()["status"] == "finished", status.json()
            durations.append(time.perf_counter() - began)
    return durations


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", help="PostgreSQL base URL; SQLite if unset")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--round-trips", type=int, default=30)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    tmp = Path(tempfile.mkdtemp(prefix="qfjobs-bench-"))
    with redis_server() as redis_url:
        if args.database_url:
            schema_cm = postgres_schema(args.database_url)
            database_url = schema_cm.__enter__()
        else:
            schema_cm = None
            database_url = f"sqlite:///{tmp / 'bench.sqlite3'}"
        upgrade_database(database_url)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("QFJOBS_")},
            "QFJOBS_DATABASE_URL": database_url,
            "QFJOBS_REDIS_URL": redis_url,
            "QFJOBS_STORAGE_DIR": str(tmp / "storage"),
            "QFJOBS_QUEUE_NAME": "bench",
            "QFJOBS_SECRET_KEY": "bench",
        }
        token, project_id = seed(env)

        api_port, uncached_port, bare_port = free_port(), free_port(), free_port()
        one = client_page(env, token, project_id, tmp)
        env["BENCH_PAGE_FILE"] = str(one)
        processes = [
            start(
                [
                    str(BIN / "gunicorn"),
                    "-w",
                    "2",
                    "-b",
                    f"127.0.0.1:{api_port}",
                    "wsgi:app",
                ],
                env,
                tmp / "api.log",
            ),
            start(
                [
                    str(BIN / "gunicorn"),
                    "-w",
                    "2",
                    "-b",
                    f"127.0.0.1:{uncached_port}",
                    "wsgi:app",
                ],
                {**env, "QFJOBS_ANSWER_CACHE_BYTES": "0"},
                tmp / "uncached.log",
            ),
            start(
                [
                    str(BIN / "gunicorn"),
                    "-w",
                    "2",
                    "-b",
                    f"127.0.0.1:{bare_port}",
                    "--chdir",
                    str(REPO / "bench"),
                    "bare_app:app",
                ],
                env,
                tmp / "bare.log",
            ),
        ]
        try:
            api = f"http://127.0.0.1:{api_port}"
            query = f"/api/v1/jobs/?project_id={project_id}&limit=20&offset=0"
            list_url = f"{api}{query}"
            uncached_url = f"http://127.0.0.1:{uncached_port}{query}"
            for url in (list_url, uncached_url):
                wait_http(url, {"Authorization": f"Token {token}"})
            wait_http(f"http://127.0.0.1:{bare_port}/page/")
            api_rps = wrk(list_url, token, args.seconds)
            bare_rps = wrk(f"http://127.0.0.1:{bare_port}/page/", None, args.seconds)
            uncached_rps = wrk(uncached_url, token, args.seconds)

            processes.append(
                start([str(BIN / "qfjobs"), "worker"], env, tmp / "worker.log")
            )
            durations = round_trips(api, token, project_id, args.round_trips)
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=20)
            if schema_cm is not None:
                schema_cm.__exit__(None, None, None)

    backend = "PostgreSQL" if args.database_url else "SQLite"
    result = {
        "backend": backend,
        "jobs_list_rps": round(api_rps, 1),
        "bare_flask_rps": round(bare_rps, 1),
        "ratio": round(api_rps / bare_rps, 3),
        "jobs_list_uncached_rps": round(uncached_rps, 1),
        "uncached_ratio": round(uncached_rps / bare_rps, 3),
        "round_trip_median_ms": round(statistics.median(durations) * 1000, 1),
        "round_trip_p90_ms": round(statistics.quantiles(durations, n=10)[-1] * 1000, 1),
    }
    print(json.dumps(result, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


def client_page(env: dict[str, str], token: str, project_id: str, tmp: Path) -> Path:
    """Fetch one real page through the app, for the bare endpoint to serve."""
    app = create_app(
        {
            "QFJOBS_DATABASE_URL": env["QFJOBS_DATABASE_URL"],
            "QFJOBS_REDIS_URL": env["QFJOBS_REDIS_URL"],
            "QFJOBS_STORAGE_DIR": Path(env["QFJOBS_STORAGE_DIR"]),
        }
    )
    response = app.test_client().get(
        f"/api/v1/jobs/?project_id={project_id}&limit=20&offset=0",
        headers={"Authorization": f"Token {token}"},
    )
    assert response.json["count"] == JOBS, response.json["count"]
    get_db(app).dispose()
    path = tmp / "page.json"
    path.write_bytes(response.data)
    return path


if __name__ == "__main__":
    main()
