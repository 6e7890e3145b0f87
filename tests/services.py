"""Real Redis and database servers for the test suite.

No fakes: a Redis server is started on a free loopback port unless
``QFJOBS_TEST_REDIS_URL`` names one, and PostgreSQL is used when
``QFJOBS_TEST_DATABASE_URL`` is set (each run in a schema of its own).
"""

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from redis import Redis
from sqlalchemy import create_engine, text

from qfjobs.processes import end_with_parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def redis_server() -> Iterator[str]:
    """Start a private, non-persistent redis-server; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed: install Debian's redis-server "
            "package or set QFJOBS_TEST_REDIS_URL"
        )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=end_with_parent,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for_redis(url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_for_redis(url: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    client = Redis.from_url(url)
    while True:
        try:
            client.ping()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A fresh schema in the given PostgreSQL database; yields a URL using it."""
    schema = f"qfjobs_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    url = f"{base_url}{separator}options={quote(f'-csearch_path={schema}')}"
    try:
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def empty_databases(tmp_path: Path) -> Iterator[list[str]]:
    """URLs of an empty SQLite file and, when one is given, a fresh PostgreSQL
    schema: for tests that migrate a store from an older revision."""
    urls = [f"sqlite:///{tmp_path / 'old.sqlite3'}"]
    base = os.environ.get("QFJOBS_TEST_DATABASE_URL")
    if not base:
        yield urls
        return
    with postgres_schema(base) as url:
        yield [*urls, url]
