"""The jobs API: creation rules, listing, paging, errors, concurrency."""

import threading
import uuid
from urllib.parse import parse_qs, urlparse

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from qfjobs.extensions import get_db, get_queue
from qfjobs.models import Job, JobStatus, JobType, Project
from qfjobs.services import jobs as job_service
from tests.helpers import MINIMAL_QGS, job_list, new_project, upload

SDK_AGENT = {"User-Agent": "sdk|py|0.18.0 python-requests|2.32.3"}


@pytest.fixture
def project(client: FlaskClient, make_user) -> tuple[dict, str]:
    alice = make_user("alice")
    pid = new_project(client, alice)
    assert upload(client, alice, pid, "project.qgs", MINIMAL_QGS).status_code == 201
    return alice, pid


def post_job(client: FlaskClient, user: dict, **body):
    return client.post("/api/v1/jobs/", data=body, headers=user["headers"])


def test_project_without_qgis_file_is_refused(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "points.geojson", b"{}")
    for job_type in ("package", "delta_apply", "process_projectfile"):
        response = post_job(client, alice, project_id=pid, type=job_type)
        assert response.status_code == 400
        assert response.json["code"] == "no_qgis_project"
    assert job_list(client, alice, project_id=pid)["count"] == 0


def test_package_jobs_are_not_duplicated(client: FlaskClient, project) -> None:
    alice, pid = project
    first = post_job(client, alice, project_id=pid, type="package")
    assert first.status_code == 201
    again = post_job(client, alice, project_id=pid, type="package", force="0")
    assert again.status_code == 200
    assert again.json["id"] == first.json["id"]

    forced = post_job(client, alice, project_id=pid, type="package", force="1")
    assert forced.status_code == 201
    assert forced.json["id"] != first.json["id"]


def test_other_types_run_in_parallel(client: FlaskClient, project) -> None:
    alice, pid = project
    ids = {
        post_job(client, alice, project_id=pid, type="process_projectfile").json["id"]
        for _ in range(2)
    }
    assert len(ids) == 2
    # A delta_apply job takes the pending deltas; with none there is no job.
    response = post_job(client, alice, project_id=pid, type="delta_apply")
    assert response.status_code == 400
    assert response.json["code"] == "no_deltas_to_apply"


def test_json_body_is_accepted(client: FlaskClient, project) -> None:
    alice, pid = project
    response = client.post(
        "/api/v1/jobs/",
        json={"project_id": pid, "type": "package", "force": True},
        headers=alice["headers"],
    )
    assert response.status_code == 201
    assert response.json["type"] == "package"
    assert response.json["created_by"] == "alice"
    assert response.json["project_id"] == pid


def test_first_job_is_queued_later_ones_wait(client: FlaskClient, project) -> None:
    alice, pid = project
    jobs = job_list(client, alice, project_id=pid)["results"]
    assert [j["status"] for j in jobs] == ["queued"]
    response = post_job(client, alice, project_id=pid, type="package")
    assert response.json["status"] == "pending"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "package"}, "project_id"),
        ({"project_id": "not-a-uuid", "type": "package"}, "project_id"),
        ({"project_id": "00000000-0000-0000-0000-000000000001"}, "type"),
        (
            {"project_id": "00000000-0000-0000-0000-000000000001", "type": "export"},
            "type",
        ),
        (
            {
                "project_id": "00000000-0000-0000-0000-000000000001",
                "type": "package",
                "force": "maybe",
            },
            "force",
        ),
    ],
)
def test_bad_job_requests_are_400(
    client: FlaskClient, make_user, body: dict, field: str
) -> None:
    alice = make_user("alice")
    response = post_job(client, alice, **body)
    assert response.status_code == 400
    assert response.json["code"] == "validation_error"
    assert field in response.json["errors"]


def test_unknown_project_is_404(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    response = post_job(
        client, alice, project_id="00000000-0000-0000-0000-000000000001", type="package"
    )
    assert response.status_code == 404
    assert response.json["code"] == "object_not_found"


def test_wrong_content_type_and_bad_json(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    response = client.post(
        "/api/v1/jobs/",
        data="project_id=x",
        headers={**alice["headers"], "Content-Type": "text/plain"},
    )
    assert response.status_code == 400
    assert response.json["code"] == "validation_error"
    response = client.post(
        "/api/v1/jobs/",
        data="{not json",
        headers={**alice["headers"], "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json["code"] == "validation_error"


def test_other_users_cannot_see_or_create_jobs(
    client: FlaskClient, make_user, project
) -> None:
    alice, pid = project
    bob = make_user("bob")
    job_id = job_list(client, alice, project_id=pid)["results"][0]["id"]

    assert post_job(client, bob, project_id=pid, type="package").status_code == 404
    assert (
        client.get(f"/api/v1/jobs/{job_id}/", headers=bob["headers"]).status_code == 404
    )
    others = client.get(
        "/api/v1/jobs/", query_string={"project_id": pid}, headers=bob["headers"]
    )
    assert others.status_code == 404
    assert others.json["code"] == "object_not_found"
    assert job_list(client, bob)["count"] == 0
    assert client.get("/api/v1/jobs/").status_code == 401
    assert client.get(f"/api/v1/jobs/{job_id}/").status_code == 401


def test_job_detail_has_output_and_feedback(client: FlaskClient, project) -> None:
    alice, pid = project
    job_id = job_list(client, alice, project_id=pid)["results"][0]["id"]
    response = client.get(f"/api/v1/jobs/{job_id}/", headers=alice["headers"])
    assert response.status_code == 200
    assert set(response.json) >= {
        "id",
        "type",
        "status",
        "project_id",
        "created_by",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "output",
        "feedback",
    }
    assert client.get("/api/v1/jobs/nope/", headers=alice["headers"]).status_code == 404


def test_paging_body_and_headers(client: FlaskClient, project) -> None:
    alice, pid = project
    for _ in range(24):
        post_job(client, alice, project_id=pid, type="process_projectfile")

    page = job_list(client, alice, project_id=pid, limit=20, offset=0)
    assert page["count"] == 25
    assert len(page["results"]) == 20
    assert page["previous"] is None
    next_query = parse_qs(urlparse(page["next"]).query)
    assert next_query["limit"] == ["20"] and next_query["offset"] == ["20"]
    assert next_query["project_id"] == [pid]

    created = [j["created_at"] for j in page["results"]]
    assert created == sorted(created, reverse=True)

    last = client.get(
        "/api/v1/jobs/",
        query_string={"project_id": pid, "limit": 20, "offset": 20},
        headers=alice["headers"],
    )
    assert len(last.json["results"]) == 5
    assert last.json["next"] is None
    assert last.headers["X-Total-Count"] == "25"
    assert "X-Next-Page" not in last.headers
    assert "offset=0" in last.headers["X-Previous-Page"]


def test_sdk_gets_a_bare_array(client: FlaskClient, project) -> None:
    alice, pid = project
    for _ in range(3):
        post_job(client, alice, project_id=pid, type="process_projectfile")
    response = client.get(
        "/api/v1/jobs/",
        query_string={"project_id": pid, "limit": 2, "offset": 0},
        headers={**alice["headers"], **SDK_AGENT},
    )
    assert isinstance(response.json, list)
    assert len(response.json) == 2
    assert response.headers["X-Total-Count"] == "4"
    assert "offset=2" in response.headers["X-Next-Page"]


def test_type_and_status_filters(client: FlaskClient, project) -> None:
    alice, pid = project
    post_job(client, alice, project_id=pid, type="package")
    assert job_list(client, alice, project_id=pid, type="package")["count"] == 1
    assert job_list(client, alice, project_id=pid, status="queued")["count"] == 1
    assert job_list(client, alice, project_id=pid, status="pending")["count"] == 1
    for query in ({"type": "nope"}, {"status": "done"}, {"project_id": "x"}):
        response = client.get(
            "/api/v1/jobs/", query_string=query, headers=alice["headers"]
        )
        assert response.status_code == 400, query


def test_list_without_project_covers_all_own_projects(
    client: FlaskClient, make_user
) -> None:
    alice = make_user("alice")
    for name in ("one", "two"):
        pid = new_project(client, alice, name)
        upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    assert job_list(client, alice)["count"] == 2


@pytest.mark.parametrize("query", ["limit=-1", "offset=-1", "limit=x", "offset=1.5"])
def test_bad_paging_is_400(client: FlaskClient, make_user, query: str) -> None:
    alice = make_user("alice")
    response = client.get(f"/api/v1/jobs/?{query}", headers=alice["headers"])
    assert response.status_code == 400
    assert response.json["code"] == "validation_error"


def test_simultaneous_package_requests_make_one_job(app: Flask, project) -> None:
    alice, pid = project
    barrier = threading.Barrier(8)
    answers: list[tuple[int, str]] = []

    def request_package() -> None:
        client = app.test_client()
        barrier.wait()
        response = post_job(client, alice, project_id=pid, type="package")
        answers.append((response.status_code, response.json["id"]))

    threads = [threading.Thread(target=request_package) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({job_id for _, job_id in answers}) == 1
    assert sorted(code for code, _ in answers) == [200] * 7 + [201]
    with app.app_context():
        count = len(
            get_db()
            .session()
            .scalars(select(Job).where(Job.type == JobType.PACKAGE))
            .all()
        )
    assert count == 1


def test_dispatch_queues_one_job_per_project_in_order(app: Flask, project) -> None:
    _alice, pid = project
    with app.app_context():
        session = get_db().session()
        project_row = session.get(Project, uuid.UUID(pid))
        assert project_row is not None
        created = [
            job_service.create_job(
                session, get_queue(), None, project_row, JobType.PROCESS_PROJECTFILE
            )[0].id
            for _ in range(3)
        ]
        statuses = {
            job.id: job.status
            for job in session.scalars(select(Job).where(Job.id.in_(created)))
        }
    assert all(statuses[job_id] == JobStatus.PENDING for job_id in created)
