"""Fixtures of the delta tests: a user and the QFieldCloud delta project."""

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from qfjobs.tasks.worker import build_worker
from tests.deltas.helpers import upload_project
from tests.helpers import new_project


@pytest.fixture
def user(make_user: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return make_user("surveyor")


@pytest.fixture
def project_id(
    client: FlaskClient, user: dict[str, Any], run_jobs: Callable[[], None]
) -> str:
    """A project holding ``tests/data/qfieldcloud-delta``, processed."""
    pid = new_project(client, user, "delta")
    upload_project(client, user, pid)
    run_jobs()
    return pid


@pytest.fixture
def run_jobs(app: Flask) -> Callable[[], None]:
    """Run every queued job to the end, in this process, with the real queue.

    Like the suite's ``run_jobs`` but without the worker's pubsub thread: with
    redis-py 8 and RQ 3, stopping that thread can wait out its 60 s poll after
    each burst. In-process workers get no stop commands anyway.
    """

    def run() -> None:
        with app.app_context():
            worker = build_worker(app, in_process=True)
            worker.subscribe = lambda: None  # type: ignore[method-assign]
            worker.work(burst=True, with_scheduler=False)

    return run
