"""Fixtures of the delta tests: a user and the QFieldCloud delta project."""

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

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
