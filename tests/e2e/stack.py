"""A live qfjobs: gunicorn and real ``qfjobs worker`` processes on loopback."""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from qfjobs.processes import end_with_parent
from tests.services import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class LiveStack:
    base_url: str
    env: dict[str, str]
    log_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def qfjobs(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "qfjobs"), *args],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        worker = subprocess.Popen(
            [str(BIN / "qfjobs"), "worker", "--name", f"{name}-{uuid.uuid4().hex[:6]}"],
            env=self.env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=end_with_parent,
        )
        self.workers.append(worker)
        return worker


def stack_env(database_url: str, redis_url: str, storage: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("QFJOBS_") and key != "ENVIRONMENT"
    }
    env.update(
        {
            "QFJOBS_DATABASE_URL": database_url,
            "QFJOBS_REDIS_URL": redis_url,
            "QFJOBS_STORAGE_DIR": str(storage),
            "QFJOBS_QUEUE_NAME": f"e2e-{uuid.uuid4().hex}",
            "QFJOBS_SECRET_KEY": "e2e",
            "QFJOBS_PG_TIMEOUT": "2",
        }
    )
    return env


@contextmanager
def live_stack(
    database_url: str,
    redis_url: str,
    tmp: Path,
    *,
    workers: int = 1,
    gunicorn_workers: int = 2,
    env_overrides: dict[str, str] | None = None,
) -> Iterator[LiveStack]:
    port = free_port()
    env = stack_env(database_url, redis_url, tmp / "storage")
    env.update(env_overrides or {})
    log_dir = tmp / "logs"
    log_dir.mkdir()
    stack = LiveStack(f"http://127.0.0.1:{port}/api/v1/", env, log_dir)
    server_log = (log_dir / "gunicorn.log").open("ab")
    server = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(gunicorn_workers),
            "wsgi:app",
        ],
        env=env,
        cwd=REPO_ROOT,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        preexec_fn=end_with_parent,
    )
    try:
        _wait_until_up(stack.base_url, server, log_dir / "gunicorn.log")
        for number in range(workers):
            stack.start_worker(f"worker{number}")
        yield stack
    finally:
        for process in [*stack.workers, server]:
            if process.poll() is None:
                process.terminate()
        for process in [*stack.workers, server]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_until_up(base_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log.read_text()}")
        try:
            if requests.get(f"{base_url}status/", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not come up:\n{log.read_text()}")


def wait_for_job(client, job_id: str, seconds: float = 60) -> dict:  # type: ignore[no-untyped-def]
    """Poll the job through the SDK until it ends."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = client.job_status(job_id)
        if status["status"] in ("finished", "failed", "stopped"):
            return status  # type: ignore[no-any-return]
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not end within {seconds} s")
