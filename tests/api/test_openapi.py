"""The OpenAPI document states the statuses and error body the API answers."""

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.helpers import new_project

METHODS = ("get", "post", "put", "patch", "delete")


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def takes_arguments(operation: dict[str, Any]) -> bool:
    """Query parameters or a request body, as ``@blp.arguments`` declares."""
    query = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
    return bool(query) or "requestBody" in operation


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json
    return body


def test_no_operation_documents_422(document: dict[str, Any]) -> None:
    documented = [
        f"{method.upper()} {path}"
        for method, path, operation in operations(document)
        if "422" in operation["responses"]
    ]
    assert documented == []
    assert "UNPROCESSABLE_ENTITY" not in document["components"]["responses"]


def test_operations_with_arguments_document_400(document: dict[str, Any]) -> None:
    with_arguments = [
        (method, path, operation)
        for method, path, operation in operations(document)
        if takes_arguments(operation)
    ]
    # jobs/, projects/, deltas/status/, auth/login/ and users/ at least.
    assert len(with_arguments) >= 8
    for method, path, operation in with_arguments:
        response = operation["responses"].get("400")
        assert response == {"$ref": "#/components/responses/BAD_REQUEST"}, (
            method,
            path,
        )
    bad_request = document["components"]["responses"]["BAD_REQUEST"]
    schema = bad_request["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Error"}


def test_error_schema_is_the_answered_shape(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["Error"]
    assert error["properties"]["code"]["type"] == "string"
    assert error["properties"]["message"]["type"] == "string"
    assert "errors" in error["properties"]
    assert "status" not in error["properties"]
    assert set(error["required"]) == {"code", "message"}


def test_validation_failures_answer_what_is_documented(
    client: FlaskClient, make_user, document: dict[str, Any]
) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    headers = alice["headers"]
    root = make_user("root", superuser=True)
    project = "/api/v1/projects/{project_id}/"
    status = "/api/v1/deltas/status/{project_id}/"
    refused = {
        ("post", "/api/v1/auth/login/"): client.post(
            "/api/v1/auth/login/", json={"username": 3}
        ),
        ("post", "/api/v1/jobs/"): client.post(
            "/api/v1/jobs/", json={"project_id": pid, "type": "bogus"}, headers=headers
        ),
        ("get", "/api/v1/jobs/"): client.get("/api/v1/jobs/?limit=-1", headers=headers),
        ("get", "/api/v1/projects/"): client.get(
            "/api/v1/projects/?offset=x", headers=headers
        ),
        ("patch", project): client.patch(
            project.format(project_id=pid),
            json={"overwrite_conflicts": "x"},
            headers=headers,
        ),
        ("post", status): client.post(
            status.format(project_id=pid), json={"status": "applied"}, headers=headers
        ),
        ("post", "/api/v1/users/"): client.post(
            "/api/v1/users/", json={}, headers=root["headers"]
        ),
    }
    for (method, path), response in refused.items():
        assert response.status_code == 400, (method, path, response.json)
        assert response.json["code"] == "validation_error"
        assert isinstance(response.json["errors"], dict)
        assert "400" in document["paths"][path][method]["responses"]
