"""Every route of the app, for anonymous, another user and the owner.

Routes come from the app's ``url_map``, so a route added later is covered
without touching this file. Path parameters are filled with the owner's real
ids (``project_id``, ``job_id``, an existing ``filename``); a parameter this
file does not know gets a fresh UUID. The rules checked:

- anonymous (no token, or a wrong one): 401 on every route except the few
  public ones, whatever the body holds;
- another user: 404 on every route naming one of the owner's resources,
  nothing of the owner's ever in an answer, and nothing of the owner's
  changed by any request;
- the owner: 2xx or 4xx, never 5xx;
- rq-dashboard: superusers only.
"""

import base64
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from qfjobs.api import auth_context
from qfjobs.db import Base
from qfjobs.extensions import get_db
from qfjobs.models import Project
from tests.helpers import MINIMAL_QGS, job_list, new_project, upload

#: Endpoints that answer without a token.
PUBLIC_ENDPOINTS = {
    "static",
    "swagger_ui.static",
    "auth.Login",
    "status.Status",
    "api-docs.openapi_json",
    "api-docs.openapi_swagger_ui",
}
#: Endpoints only superusers may use; other users get this status.
SUPERUSER_ENDPOINTS = {"users.Users": 403}
DASHBOARD_PREFIX = "/rq/"
METHOD_ORDER = {"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}
OWNER_FILE = "data/notes.txt"


@dataclass
class World:
    owner: dict[str, Any]
    other: dict[str, Any]
    root: dict[str, Any]
    project_id: str
    job_id: str
    owner_ids: list[str]


@pytest.fixture
def world(app: Flask, client: FlaskClient, make_user) -> World:
    owner = make_user("owner")
    other = make_user("intruder")
    root = make_user("root", superuser=True)
    pid = new_project(client, owner, "private-survey")
    assert upload(client, owner, pid, OWNER_FILE, b"owner data").status_code == 201
    assert upload(client, owner, pid, "project.qgs", MINIMAL_QGS).status_code == 201
    job_id = job_list(client, owner, project_id=pid)["results"][0]["id"]
    new_project(client, other, "own-survey")
    return World(owner, other, root, pid, job_id, [pid, job_id, "private-survey"])


def routes(app: Flask) -> Iterator[tuple[Rule, str]]:
    rules = sorted(
        app.url_map.iter_rules(),
        key=lambda rule: (-len(rule.arguments), rule.rule),
    )
    for method in sorted(METHOD_ORDER, key=METHOD_ORDER.__getitem__):
        for rule in rules:
            if method in (rule.methods or ()):
                yield rule, method


def fill(app: Flask, rule: Rule, world: World) -> str:
    values: dict[str, Any] = {}
    for name, converter in rule._converters.items():
        if name == "project_id":
            values[name] = world.project_id
        elif name == "job_id":
            values[name] = world.job_id
        elif name == "filename":
            values[name] = OWNER_FILE
        elif name == "queue_name":
            values[name] = app.config["QFJOBS_QUEUE_NAME"]
        elif name == "registry_name":
            values[name] = "queued"
        elif name == "order":
            values[name] = "asc"
        elif name in ("page", "per_page"):
            values[name] = 1
        elif type(converter).__name__ in ("IntegerConverter", "NumberConverter"):
            values[name] = 0 if name == "instance_number" else 1
        else:
            values[name] = str(uuid.uuid4())
    path = rule.rule
    for name, value in values.items():
        path = re.sub(rf"<(?:[^:<>]+:)?{name}>", str(value), path)
    return path


def body(world: World) -> dict[str, Any]:
    """One multipart body fitting most routes: ids of the owner and a file."""
    return {
        "project_id": world.project_id,
        "job_id": world.job_id,
        "type": "process_projectfile",
        "name": f"matrix-{uuid.uuid4().hex[:6]}",
        "file": (io.BytesIO(b"matrix upload"), "notes.txt"),
    }


def call(
    client: FlaskClient,
    method: str,
    path: str,
    world: World,
    headers: dict[str, str] | None = None,
    *,
    with_body: bool = True,
) -> TestResponse:
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if method == "GET":
        kwargs["query_string"] = {"project_id": world.project_id}
    elif with_body:
        kwargs["data"] = body(world)
        kwargs["content_type"] = "multipart/form-data"
    return client.open(path, method=method, **kwargs)


def fresh_token(client: FlaskClient, username: str) -> dict[str, str]:
    """A token of its own per request, so that ``logout`` revokes only it."""
    response = client.post(
        "/api/v1/auth/login/", data={"username": username, "password": "secret-pw"}
    )
    assert response.status_code == 200
    return {"Authorization": f"Token {response.json['token']}"}


def owner_state(app: Flask, owner_name: str) -> list[Any]:
    """Every row about the owner's projects, in every table holding project ids."""
    with app.app_context():
        session = get_db().session()
        project_ids = set(
            session.scalars(
                select(Project.id).where(Project.owner.has(username=owner_name))
            )
        )
        state: list[Any] = []
        for table in Base.metadata.sorted_tables:
            if table.name == "projects":
                column = table.c.id
            elif "project_id" in table.c:
                column = table.c.project_id
            else:
                continue
            rows = session.execute(select(table).where(column.in_(project_ids))).all()
            state.append((table.name, sorted(map(repr, rows))))
        session.commit()
        return state


def is_dashboard(rule: Rule) -> bool:
    return rule.rule.startswith(DASHBOARD_PREFIX)


def refused_by_dashboard(response: TestResponse) -> bool:
    """401, or werkzeug's redirect of a defaults route to its canonical URL."""
    if response.status_code == 308:
        return response.location.startswith(("/rq/", "http://localhost/rq/"))
    return response.status_code == 401


def test_public_endpoints_are_exactly_the_reviewed_ones(app: Flask) -> None:
    """Making an endpoint public means changing this list on purpose."""
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert {"projects.ProjectItem", "files.FileItem", "jobs.JobStop"} <= endpoints
    assert PUBLIC_ENDPOINTS <= endpoints
    assert (
        auth_context.PUBLIC_ENDPOINTS | {"static", "swagger_ui.static"}
        == PUBLIC_ENDPOINTS
    )


def test_anonymous_gets_401_everywhere_but_public_routes(
    app: Flask, client: FlaskClient, world: World
) -> None:
    before = owner_state(app, "owner")
    checked = 0
    for rule, method in routes(app):
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        path = fill(app, rule, world)
        for headers in ({}, {"Authorization": "Token not-a-real-token"}):
            for with_body in (True, False):
                response = call(
                    client, method, path, world, headers, with_body=with_body
                )
                where = (method, path, response.data[:200])
                if is_dashboard(rule):
                    assert refused_by_dashboard(response), where
                else:
                    assert response.status_code == 401, where
                    assert response.json["code"] in (
                        "not_authenticated",
                        "authentication_failed",
                    )
                checked += 1
    assert checked >= 4 * 10
    assert owner_state(app, "owner") == before


def test_public_routes_answer_anonymous_without_server_errors(
    app: Flask, client: FlaskClient, world: World
) -> None:
    for rule, method in routes(app):
        if rule.endpoint not in PUBLIC_ENDPOINTS:
            continue
        response = call(client, method, fill(app, rule, world), world)
        assert response.status_code < 500, (method, rule.rule)
        assert world.project_id not in response.get_data(as_text=True)


def test_other_user_sees_404_and_changes_nothing(
    app: Flask, client: FlaskClient, world: World
) -> None:
    before = owner_state(app, "owner")
    names_resource = {"project_id", "job_id", "filename"}
    checked = 0
    for rule, method in routes(app):
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        path = fill(app, rule, world)
        headers = fresh_token(client, "intruder")
        response = call(client, method, path, world, headers)
        text = response.get_data(as_text=True)
        where = (method, path, response.status_code, text[:300])
        assert response.status_code < 500, where
        if is_dashboard(rule):
            assert refused_by_dashboard(response), where
        elif rule.endpoint in SUPERUSER_ENDPOINTS:
            assert response.status_code == SUPERUSER_ENDPOINTS[rule.endpoint], where
        elif set(rule.arguments) & names_resource:
            assert response.status_code == 404, where
            assert response.json["code"] == "object_not_found", where
        else:
            # Collections: the owner's ids given in the query or body either
            # name nothing (404) or are ignored; no answer mentions them.
            assert response.status_code in (200, 201, 204, 400, 404), where
            if response.status_code < 300:
                for owned in world.owner_ids:
                    assert owned not in text, where
        checked += 1
    assert checked >= 10
    assert owner_state(app, "owner") == before


def test_other_users_404_looks_like_a_missing_resource(
    client: FlaskClient, world: World
) -> None:
    """No existence oracle: a foreign id answers exactly like an unknown one."""
    unknown = str(uuid.uuid4())
    for template in (
        "/api/v1/projects/{}/",
        "/api/v1/files/{}/",
        "/api/v1/jobs/{}/",
    ):
        foreign = client.get(
            template.format(
                world.project_id if "jobs" not in template else world.job_id
            ),
            headers=world.other["headers"],
        )
        missing = client.get(template.format(unknown), headers=world.other["headers"])
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json["code"] == missing.json["code"]
        assert foreign.json["message"].replace(world.project_id, "ID").replace(
            world.job_id, "ID"
        ) == missing.json["message"].replace(unknown, "ID")


def test_owner_never_gets_a_server_error(
    app: Flask, client: FlaskClient, world: World
) -> None:
    answers: dict[str, int] = {}
    for rule, method in routes(app):
        if is_dashboard(rule):
            continue
        path = fill(app, rule, world)
        response = call(client, method, path, world, fresh_token(client, "owner"))
        answers[f"{method} {rule.rule}"] = response.status_code
        assert response.status_code < 500, (method, path, response.data[:300])
    # The owner really reaches their resources (not 404 everywhere).
    assert answers["GET /api/v1/projects/<project_id>/"] == 200
    assert answers["GET /api/v1/jobs/<job_id>/"] == 200
    assert answers["GET /api/v1/files/<project_id>/<anypath:filename>/"] == 200
    assert answers["POST /api/v1/files/<project_id>/<anypath:filename>/"] == 201
    assert answers["DELETE /api/v1/projects/<project_id>/"] == 204


def test_dashboard_is_for_superusers_only(
    app: Flask, client: FlaskClient, world: World
) -> None:
    for rule, method in routes(app):
        if not is_dashboard(rule) or method != "GET":
            continue
        path = fill(app, rule, world)
        assert refused_by_dashboard(call(client, method, path, world)), path
        owner = call(client, method, path, world, world.owner["headers"])
        assert refused_by_dashboard(owner), path
        root = call(client, method, path, world, world.root["headers"])
        assert root.status_code < 500, (path, root.data[:300])
    assert client.get("/rq/", headers=world.root["headers"]).status_code == 200


def basic(name: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def test_dashboard_basic_auth_checks_the_password(
    client: FlaskClient, world: World
) -> None:
    assert client.get("/rq/", headers=basic("root", "wrong")).status_code == 401
    assert client.get("/rq/", headers=basic("owner", "secret-pw")).status_code == 401
    assert client.get("/rq/", headers=basic("root", "secret-pw")).status_code == 200


def test_dashboard_basic_auth_is_throttled_like_logins(
    client: FlaskClient, world: World
) -> None:
    """Guessing a superuser's password through HTTP Basic locks it too."""
    for _ in range(5):
        assert client.get("/rq/", headers=basic("root", "guess")).status_code == 401
    assert client.get("/rq/", headers=basic("root", "secret-pw")).status_code == 401
    login = client.post(
        "/api/v1/auth/login/", data={"username": "root", "password": "secret-pw"}
    )
    assert login.status_code == 429
