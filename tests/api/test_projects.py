"""Projects: create, list with paging headers, get, patch, delete, access."""

from urllib.parse import parse_qs, urlparse

from flask.testing import FlaskClient


def create(client: FlaskClient, user, name: str = "survey", **fields) -> dict:
    response = client.post(
        "/api/v1/projects/", data={"name": name, **fields}, headers=user["headers"]
    )
    assert response.status_code == 201, response.json
    return response.json


def test_create_and_get_project(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    project = create(client, alice, description="trees", is_public="0")

    response = client.get(
        f"/api/v1/projects/{project['id']}/", headers=alice["headers"]
    )
    assert response.status_code == 200
    body = response.json
    assert body["name"] == "survey"
    assert body["owner"] == "alice"
    assert body["description"] == "trees"
    assert body["is_public"] is False
    assert body["project_type"] == "regular"
    assert body["status"] == "failed"
    assert body["status_code"] == "missing_projectfile"
    assert body["project_details"] is None


def test_duplicate_name_is_refused(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    create(client, alice)
    response = client.post(
        "/api/v1/projects/", data={"name": "survey"}, headers=alice["headers"]
    )
    assert response.status_code == 400
    assert response.json["code"] == "project_already_exists"


def test_list_is_a_paged_array(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    for number in range(5):
        create(client, alice, name=f"p{number}")

    response = client.get(
        "/api/v1/projects/?limit=2&offset=0", headers=alice["headers"]
    )
    assert response.status_code == 200
    assert [p["name"] for p in response.json] == ["p0", "p1"]
    assert response.headers["X-Total-Count"] == "5"
    query = parse_qs(urlparse(response.headers["X-Next-Page"]).query)
    assert query["limit"] == ["2"] and query["offset"] == ["2"]

    last = client.get("/api/v1/projects/?limit=2&offset=4", headers=alice["headers"])
    assert [p["name"] for p in last.json] == ["p4"]
    assert "X-Next-Page" not in last.headers
    assert "X-Previous-Page" in last.headers


def test_patch_with_form_booleans(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    project = create(client, alice)
    response = client.patch(
        f"/api/v1/projects/{project['id']}/",
        data={"description": "new", "is_public": "True", "overwrite_conflicts": "0"},
        headers=alice["headers"],
    )
    assert response.status_code == 200
    assert response.json["description"] == "new"
    assert response.json["is_public"] is True
    assert response.json["overwrite_conflicts"] is False


def test_delete_project(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    project = create(client, alice)
    url = f"/api/v1/projects/{project['id']}/"
    assert client.delete(url, headers=alice["headers"]).status_code == 204
    assert client.get(url, headers=alice["headers"]).status_code == 404


def test_other_users_projects_are_404(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    bob = make_user("bob")
    project = create(client, alice)
    url = f"/api/v1/projects/{project['id']}/"

    assert client.get(url, headers=bob["headers"]).status_code == 404
    assert (
        client.patch(url, data={"name": "x"}, headers=bob["headers"]).status_code == 404
    )
    assert client.delete(url, headers=bob["headers"]).status_code == 404
    assert client.get("/api/v1/projects/", headers=bob["headers"]).json == []
    assert client.get(url).status_code == 401


def test_bad_ids_and_unknown_routes(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    response = client.get("/api/v1/projects/not-a-uuid/", headers=alice["headers"])
    assert response.status_code == 404
    assert response.json["code"] == "object_not_found"
    response = client.get(
        "/api/v1/projects/00000000-0000-0000-0000-000000000000/",
        headers=alice["headers"],
    )
    assert response.status_code == 404
    response = client.get("/api/v1/nothing-here/", headers=alice["headers"])
    assert response.status_code == 404
    assert response.json["code"] == "object_not_found"


def test_bad_paging_values_are_400(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    for query in ("limit=-1", "offset=-5", "limit=abc", "limit=0"):
        response = client.get(f"/api/v1/projects/?{query}", headers=alice["headers"])
        assert response.status_code == 400, query
        assert response.json["code"] == "validation_error"


def test_missing_name_is_400(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    response = client.post("/api/v1/projects/", data={}, headers=alice["headers"])
    assert response.status_code == 400
    assert "name" in response.json["errors"]
