"""Property-based fuzz of the HTTP API from its own OpenAPI document.

schemathesis reads ``/api/v1/openapi.json`` from the app and generates
requests for every operation in it (routes added later are fuzzed too). The
requests run as a real (super)user who owns a real project with files and a job:
path parameters, query fields and body fields naming a project or a job
get those ids, so the generated
query strings, bodies and file names reach the code behind the access check.
The one property: no answer is a server error. With ``TESTING`` on, an
unexpected exception is raised instead of answered, so it fails the test
with its traceback.

schemathesis's own pytest loader (``schemathesis.pytest.from_fixture``) does
not run under pytest 9 (it reads ``request.node._nodeid``, which pytest 9
removed), so each operation is a plain parametrized test here that draws
cases from the operation's public ``as_strategy()`` with hypothesis.

The number of examples per operation is bounded (``QFJOBS_FUZZ_EXAMPLES``,
default 50) to keep the run within a few minutes in CI.
"""

import os
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from qfjobs.app import create_app
from tests.helpers import MINIMAL_QGS, job_list, new_project, upload

EXAMPLES = int(os.environ.get("QFJOBS_FUZZ_EXAMPLES", "50"))


@dataclass
class Owner:
    headers: dict[str, str]
    ids: dict[str, str]


@pytest.fixture
def owner(app: Flask, client: FlaskClient, make_user) -> Owner:
    # A superuser, so that creating users is fuzzed past the permission check.
    user = make_user("fuzzer", superuser=True)
    pid = new_project(client, user)
    assert upload(client, user, pid, "data/notes.txt", b"notes").status_code == 201
    assert upload(client, user, pid, "project.qgs", MINIMAL_QGS).status_code == 201
    job_id = job_list(client, user, project_id=pid)["results"][0]["id"]
    return Owner(user["headers"], {"project_id": pid, "job_id": job_id})


def operations() -> list[tuple[str, str]]:
    """``(method, path)`` of every operation the OpenAPI document lists."""
    app = create_app({"QFJOBS_DATABASE_URL": "sqlite://", "SECRET_KEY": "fuzz"})
    document = app.test_client().get("/api/v1/openapi.json").json
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), operations())
def test_no_operation_answers_with_a_server_error(
    app: Flask, owner: Owner, method: str, path: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operation = _operation(schema, method, path)
    fixed = {name: value for name, value in owner.ids.items() if f"{{{name}}}" in path}
    strategy = operation.as_strategy(mode, path_parameters=fixed or None)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case: Any) -> None:
        # Ids in queries and bodies too, so that jobs get created for real.
        for part in (case.query, case.body):
            if isinstance(part, dict):
                for name, value in owner.ids.items():
                    if name in part:
                        part[name] = value
        response = case.call(headers=owner.headers)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: "
            f"{response.text[:500]}"
        )

    try:
        no_server_error()
    except Unsatisfiable:
        # Negative mode needs something to make invalid: an operation whose
        # only parameters are the fixed ids has nothing.
        assert mode is GenerationMode.NEGATIVE
        pytest.skip("no parameter or body to make invalid")


def _operation(schema: Any, method: str, path: str) -> Any:
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == method and operation.path == path:
            return operation
    raise AssertionError(f"{method} {path} is not in the OpenAPI document")
