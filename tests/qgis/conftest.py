"""Fixtures for the QGIS domain tests: fixture folders and a PostGIS schema.

PostgreSQL is the local server (``QFJOBS_TEST_PG_DSN``, default
``host=127.0.0.1 port=5432 user=postgres dbname=test``); each test that needs
it gets a schema of its own, dropped afterwards.
"""

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def data_folder(name: str) -> Path:
    return DATA_DIR / name


@pytest.fixture
def copy_fixture(tmp_path: Path) -> "CopyFixture":
    """Copy a ``tests/data`` folder into ``tmp_path`` and return the copy."""
    return CopyFixture(tmp_path)


class CopyFixture:
    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, name: str) -> Path:
        target = self.root / name
        shutil.copytree(DATA_DIR / name, target)
        return target


@dataclass(frozen=True)
class PgSchema:
    """A fresh schema in the test database and how to reach it."""

    dsn: str
    schema: str
    params: dict[str, str]

    def execute(self, sql: str) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            connection.execute(sql.encode())


@pytest.fixture
def pg_schema() -> Iterator[PgSchema]:
    dsn = os.environ.get("QFJOBS_TEST_PG_DSN", DEFAULT_PG_DSN)
    try:
        connection = psycopg.connect(dsn, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {dsn!r}: {exc}")

    schema = f"qfjobs_qgis_{uuid.uuid4().hex[:10]}"
    with connection:
        has_postgis = connection.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'postgis'"
        ).fetchone()
        if not has_postgis or not has_postgis[0]:
            connection.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        connection.execute(f'CREATE SCHEMA "{schema}"'.encode())
        params = dict(psycopg.conninfo.conninfo_to_dict(dsn))
        try:
            yield PgSchema(
                dsn=dsn, schema=schema, params={k: str(v) for k, v in params.items()}
            )
        finally:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())
