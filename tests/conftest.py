"""Fixtures: a real Redis, SQLite and (when given) PostgreSQL, and the app."""

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete

from qfjobs.app import create_app
from qfjobs.db import Base
from qfjobs.extensions import get_db
from qfjobs.migrations import upgrade_database
from qfjobs.services import users
from qfjobs.tasks.worker import build_worker
from tests.services import postgres_schema, redis_server

DATA_DIR = Path(__file__).parent / "data"
BACKENDS = ["sqlite"] + (
    ["postgresql"] if os.environ.get("QFJOBS_TEST_DATABASE_URL") else []
)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    given = os.environ.get("QFJOBS_TEST_REDIS_URL")
    if given:
        yield given
        return
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "qfjobs.sqlite3"
        url = f"sqlite:///{path}"
        upgrade_database(url)
        yield url
        return
    with postgres_schema(os.environ["QFJOBS_TEST_DATABASE_URL"]) as url:
        upgrade_database(url)
        yield url


def clear_tables(app: Flask) -> None:
    with get_db(app).engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))


@pytest.fixture
def app(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "QFJOBS_DATABASE_URL": database_url,
            "QFJOBS_REDIS_URL": redis_url,
            "QFJOBS_STORAGE_DIR": tmp_path / "storage",
            "QFJOBS_QUEUE_NAME": f"test-{uuid.uuid4().hex}",
            "QFJOBS_PG_TIMEOUT": 2,
        }
    )
    clear_tables(app)
    yield app
    get_db(app).dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_user(app: Flask) -> Callable[..., dict[str, Any]]:
    """Create a user and log in; returns name, token and auth headers."""

    def make(name: str = "alice", superuser: bool = False) -> dict[str, Any]:
        with app.app_context():
            users.create_user(get_db().session(), name, "secret-pw", "", superuser)
        response = app.test_client().post(
            "/api/v1/auth/login/", data={"username": name, "password": "secret-pw"}
        )
        assert response.status_code == 200, response.json
        token = response.json["token"]
        return {
            "username": name,
            "token": token,
            "headers": {"Authorization": f"Token {token}"},
        }

    return make


@pytest.fixture
def run_jobs(app: Flask) -> Callable[[], None]:
    """Run every queued job to the end, in this process, with the real queue."""

    def run() -> None:
        with app.app_context():
            build_worker(app, in_process=True).work(burst=True, with_scheduler=False)

    return run
