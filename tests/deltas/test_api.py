"""The deltas API: pushes, validation, idempotency, listing and apply jobs."""

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.test import TestResponse

from qfjobs.extensions import get_db
from qfjobs.models import Delta, Deltafile, DeltaStatus, Job, JobStatus, Project
from tests.deltas.helpers import (
    DELTAS_DIR,
    corpus_deltafile,
    new_uuid,
    push,
)
from tests.helpers import DELTA_PROJECT, MINIMAL_QGS, new_project, upload


def set_status(
    client: FlaskClient,
    user: dict[str, Any],
    project_id: str,
    delta_ids: list[str],
    status: str,
) -> TestResponse:
    return client.post(
        f"/api/v1/deltas/status/{project_id}/",
        json={"status": status, "delta_ids": delta_ids},
        headers=user["headers"],
    )


def count(app: Flask, model: Any) -> int:
    with app.app_context(), get_db().new_session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def jobs_of(client: FlaskClient, user: dict[str, Any], pid: str) -> list[Any]:
    response = client.get(
        "/api/v1/jobs/",
        query_string={"project_id": pid, "type": "delta_apply"},
        headers=user["headers"],
    )
    assert response.status_code == 200
    return list(response.json["results"])


def test_push_stores_deltas_and_queues_one_job(
    app: Flask, client: FlaskClient, user: dict[str, Any], project_id: str
) -> None:
    document = corpus_deltafile("singlelayer_multidelta.json", project_id)
    response = push(client, user, project_id, document)
    assert response.status_code == 200, response.json
    assert response.json["received"] == 3
    assert response.json["stored"] == 3
    assert len(response.json["job_ids"]) == 1

    listed = client.get(f"/api/v1/deltas/{project_id}/", headers=user["headers"])
    assert listed.status_code == 200
    assert listed.headers["X-Total-Count"] == "3"
    assert [d["id"] for d in listed.json] == [d["uuid"] for d in document["deltas"]]
    assert {d["status"] for d in listed.json} == {"pending"}
    assert {d["deltafile_id"] for d in listed.json} == {document["id"]}
    assert {d["job_id"] for d in listed.json} == set(response.json["job_ids"])
    assert listed.json[0]["content"] == document["deltas"][0]

    one = client.get(
        f"/api/v1/deltas/{project_id}/{document['id']}/", headers=user["headers"]
    )
    assert one.status_code == 200
    assert len(one.json) == 3
    missing = client.get(
        f"/api/v1/deltas/{project_id}/{new_uuid()}/", headers=user["headers"]
    )
    assert missing.status_code == 404


def test_pushing_twice_stores_nothing_twice(
    app: Flask,
    client: FlaskClient,
    user: dict[str, Any],
    project_id: str,
    run_jobs: Callable[[], None],
) -> None:
    document = corpus_deltafile("singlelayer_singledelta.json", project_id)
    first = push(client, user, project_id, document)
    assert first.json["stored"] == 1
    run_jobs()
    second = push(client, user, project_id, document)
    assert second.status_code == 200
    assert second.json == {
        "deltafile_id": document["id"],
        "received": 1,
        "stored": 0,
        "job_ids": [],
    }
    assert count(app, Delta) == 1
    assert count(app, Deltafile) == 1
    assert len(jobs_of(client, user, project_id)) == 1

    # Same deltafile id, a new delta uuid: only the new delta is stored.
    diff = corpus_deltafile("singlelayer_singledelta_diff_content.json", project_id)
    assert diff["id"] == document["id"]
    third = push(client, user, project_id, diff)
    assert third.json["stored"] == 1
    assert count(app, Delta) == 2


def test_invalid_deltafiles_are_refused_with_the_reason(
    app: Flask, client: FlaskClient, user: dict[str, Any], project_id: str
) -> None:
    not_valid = corpus_deltafile("not_schema_valid.json", project_id)
    response = push(client, user, project_id, not_valid)
    assert response.status_code == 400
    assert response.json["code"] == "invalid_deltafile"
    assert "'deltas' is a required property" in response.json["message"]

    unknown_layer = corpus_deltafile("with_errors.json", project_id)
    response = push(client, user, project_id, unknown_layer)
    assert response.status_code == 400
    assert response.json["code"] == "invalid_deltafile"
    assert '"pluto"' in response.json["message"]
    assert response.json["delta_index"] == 0

    other = corpus_deltafile("singlelayer_singledelta.json", project_id)
    other["project"] = new_uuid()
    response = push(client, user, project_id, other)
    assert response.status_code == 400
    assert response.json["code"] == "invalid_deltafile"
    assert "doesn't match URL parameter project id" in response.json["message"]

    response = push(client, user, project_id, b"{not json")
    assert response.status_code == 400
    assert response.json["reason"] == "not_json"

    bad_method = corpus_deltafile("singlelayer_singledelta.json", project_id)
    bad_method["deltas"][0]["method"] = "upsert"
    response = push(client, user, project_id, bad_method)
    assert response.status_code == 400
    assert "deltas[0].method" in response.json["message"]

    empty = client.post(
        f"/api/v1/deltas/{project_id}/",
        data={},
        headers=user["headers"],
        content_type="multipart/form-data",
    )
    assert empty.status_code == 400
    assert empty.json["code"] == "empty_content"
    assert count(app, Delta) == 0
    assert count(app, Deltafile) == 0


def test_nul_characters_are_stripped(
    app: Flask, client: FlaskClient, user: dict[str, Any], project_id: str
) -> None:
    raw = (DELTAS_DIR / "singlelayer_singledelta_null.json").read_text("utf-8")
    document = json.loads(raw)
    document["project"] = project_id
    response = push(client, user, project_id, document)
    assert response.status_code == 200, response.json
    listed = client.get(f"/api/v1/deltas/{project_id}/", headers=user["headers"])
    text = json.dumps(listed.json[0]["content"])
    assert "\\u0000" not in text


def test_a_delta_of_another_project_is_refused(
    app: Flask,
    client: FlaskClient,
    user: dict[str, Any],
    project_id: str,
    run_jobs: Callable[[], None],
) -> None:
    document = corpus_deltafile("singlelayer_singledelta.json", project_id)
    assert push(client, user, project_id, document).status_code == 200
    second = new_project(client, user, "second")
    for name in ("testdata.gpkg", "project.qgs"):
        upload(client, user, second, name, (DELTA_PROJECT / name).read_bytes())
    document["project"] = second
    response = push(client, user, second, document)
    assert response.status_code == 400
    assert response.json["reason"] == "delta_of_other_project"


def test_push_needs_a_project_file_and_access(
    client: FlaskClient,
    user: dict[str, Any],
    make_user: Callable[..., dict[str, Any]],
    project_id: str,
) -> None:
    bare = new_project(client, user, "bare")
    document = corpus_deltafile("singlelayer_singledelta.json", bare)
    response = push(client, user, bare, document)
    assert response.status_code == 400
    assert response.json["code"] == "no_qgis_project"

    stranger = make_user("stranger")
    document = corpus_deltafile("singlelayer_singledelta.json", project_id)
    response = push(client, stranger, project_id, document)
    assert response.status_code == 404
    listed = client.get(f"/api/v1/deltas/{project_id}/", headers=stranger["headers"])
    assert listed.status_code == 404


def test_apply_endpoint_and_jobs_endpoint_claim_pending_deltas_once(
    app: Flask,
    client: FlaskClient,
    user: dict[str, Any],
    project_id: str,
    run_jobs: Callable[[], None],
) -> None:
    document = corpus_deltafile("singlelayer_singledelta.json", project_id)
    pushed = push(client, user, project_id, document)
    [job_id] = pushed.json["job_ids"]

    # Everything pending is already claimed by an active job.
    again = client.post(f"/api/v1/deltas/apply/{project_id}/", headers=user["headers"])
    assert again.status_code == 200
    assert again.json == {"job_ids": []}
    direct = client.post(
        "/api/v1/jobs/",
        json={"project_id": project_id, "type": "delta_apply"},
        headers=user["headers"],
    )
    assert direct.status_code == 400
    assert direct.json["code"] == "no_deltas_to_apply"

    run_jobs()
    job = client.get(f"/api/v1/jobs/{job_id}/", headers=user["headers"]).json
    assert job["status"] == "finished", job
    assert count(app, Job) >= 1


def test_apply_endpoint_needs_a_project_file(
    client: FlaskClient, user: dict[str, Any]
) -> None:
    pid = new_project(client, user, "nofile")
    response = client.post(f"/api/v1/deltas/apply/{pid}/", headers=user["headers"])
    assert response.status_code == 400
    assert response.json["code"] == "no_qgis_project"
    upload(client, user, pid, "project.qgs", MINIMAL_QGS)
    response = client.post(f"/api/v1/deltas/apply/{pid}/", headers=user["headers"])
    assert response.status_code == 200
    assert response.json == {"job_ids": []}


def test_a_failed_job_marks_its_deltas_error_and_they_can_be_retried(
    app: Flask,
    client: FlaskClient,
    user: dict[str, Any],
    project_id: str,
    run_jobs: Callable[[], None],
) -> None:
    document = corpus_deltafile("singlelayer_singledelta.json", project_id)
    [job_id] = push(client, user, project_id, document).json["job_ids"]
    # The QGIS file disappears before the job runs: the job fails.
    deleted = client.delete(
        f"/api/v1/files/{project_id}/project.qgs/", headers=user["headers"]
    )
    assert deleted.status_code == 204
    run_jobs()
    job = client.get(f"/api/v1/jobs/{job_id}/", headers=user["headers"]).json
    assert job["status"] == "failed"
    [delta] = client.get(f"/api/v1/deltas/{project_id}/", headers=user["headers"]).json
    assert delta["status"] == "error"

    upload(
        client,
        user,
        project_id,
        "project.qgs",
        (DELTA_PROJECT / "project.qgs").read_bytes(),
    )
    # Set aside first: no apply job takes an ignored delta.
    ignored = set_status(client, user, project_id, [delta["id"]], "ignored")
    assert ignored.status_code == 200, ignored.json
    assert ignored.json == {
        "status": "ignored",
        "changed": [delta["id"]],
        "unchanged": [],
    }
    nothing = client.post(
        f"/api/v1/deltas/apply/{project_id}/", headers=user["headers"]
    )
    assert nothing.json == {"job_ids": []}

    # Back to pending, as form fields this time.
    pending = client.post(
        f"/api/v1/deltas/status/{project_id}/",
        data={"status": "pending", "delta_ids": [delta["id"]]},
        headers=user["headers"],
    )
    assert pending.status_code == 200, pending.json
    assert pending.json["changed"] == [delta["id"]]
    retried = client.post(
        "/api/v1/jobs/",
        json={"project_id": project_id, "type": "delta_apply"},
        headers=user["headers"],
    )
    assert retried.status_code == 201, retried.json
    run_jobs()
    [delta] = client.get(f"/api/v1/deltas/{project_id}/", headers=user["headers"]).json
    assert delta["status"] == "applied"
    assert delta["job_id"] == retried.json["id"]

    # An applied delta is never set back: it would be written twice.
    for status in ("pending", "ignored"):
        refused = set_status(client, user, project_id, [delta["id"]], status)
        assert refused.status_code == 400
        assert refused.json["code"] == "delta_status_not_settable"
        assert refused.json["delta_ids"] == [delta["id"]]
    [delta] = client.get(f"/api/v1/deltas/{project_id}/", headers=user["headers"]).json
    assert delta["status"] == "applied"


def test_status_change_is_refused_for_deltas_of_an_active_job(
    client: FlaskClient,
    user: dict[str, Any],
    project_id: str,
    run_jobs: Callable[[], None],
) -> None:
    document = corpus_deltafile("singlelayer_multidelta.json", project_id)
    [job_id] = push(client, user, project_id, document).json["job_ids"]
    ids = [d["uuid"] for d in document["deltas"]]

    # The job that claimed them is pending: nothing changes, all or nothing.
    refused = set_status(client, user, project_id, ids, "ignored")
    assert refused.status_code == 400
    assert refused.json["code"] == "deltas_in_active_job"
    assert refused.json["job_ids"] == [job_id]
    assert sorted(refused.json["delta_ids"]) == sorted(ids)
    listed = client.get(f"/api/v1/deltas/{project_id}/", headers=user["headers"]).json
    assert {d["status"] for d in listed} == {"pending"}

    # Once the job is stopped they are free again.
    client.post(f"/api/v1/jobs/{job_id}/stop/", headers=user["headers"])
    changed = set_status(client, user, project_id, ids[:1], "ignored")
    assert changed.status_code == 200, changed.json
    again = set_status(client, user, project_id, ids, "ignored")
    assert again.json["changed"] == ids[1:]
    assert again.json["unchanged"] == ids[:1]
    applied = client.post(
        f"/api/v1/deltas/apply/{project_id}/", headers=user["headers"]
    )
    assert applied.json == {"job_ids": []}
    run_jobs()
    listed = client.get(f"/api/v1/deltas/{project_id}/", headers=user["headers"]).json
    assert {d["status"] for d in listed} == {"ignored"}


def test_status_change_input_and_access(
    client: FlaskClient,
    user: dict[str, Any],
    make_user: Callable[..., dict[str, Any]],
    project_id: str,
) -> None:
    document = corpus_deltafile("singlelayer_singledelta.json", project_id)
    [job_id] = push(client, user, project_id, document).json["job_ids"]
    client.post(f"/api/v1/jobs/{job_id}/stop/", headers=user["headers"])
    [delta_id] = [d["uuid"] for d in document["deltas"]]

    for status in ("applied", "started", "unpermitted", ""):
        response = set_status(client, user, project_id, [delta_id], status)
        assert response.status_code == 400, status
        assert response.json["code"] == "validation_error"
        assert "status" in response.json["errors"]
    for ids in ([], ["not-a-uuid"]):
        response = set_status(client, user, project_id, ids, "ignored")
        assert response.status_code == 400
        assert "delta_ids" in response.json["errors"]

    unknown = new_uuid()
    response = set_status(client, user, project_id, [delta_id, unknown], "ignored")
    assert response.status_code == 404
    assert response.json["code"] == "object_not_found"
    assert response.json["delta_ids"] == [unknown]

    stranger = make_user("stranger")
    response = set_status(client, stranger, project_id, [delta_id], "ignored")
    assert response.status_code == 404
    assert response.json["code"] == "object_not_found"
    # The owner's project elsewhere does not reach this one's deltas either.
    other = new_project(client, stranger, "other")
    response = set_status(client, stranger, other, [delta_id], "ignored")
    assert response.status_code == 404
    listed = client.get(f"/api/v1/deltas/{project_id}/", headers=user["headers"]).json
    assert [d["status"] for d in listed] == ["pending"]


def test_deltas_of_a_stopped_job_are_claimed_again(
    client: FlaskClient,
    user: dict[str, Any],
    project_id: str,
    run_jobs: Callable[[], None],
) -> None:
    document = corpus_deltafile("singlelayer_multidelta.json", project_id)
    [job_id] = push(client, user, project_id, document).json["job_ids"]
    stopped = client.post(f"/api/v1/jobs/{job_id}/stop/", headers=user["headers"])
    assert stopped.json["status"] == "stopped"
    listed = client.get(f"/api/v1/deltas/{project_id}/", headers=user["headers"]).json
    assert {d["status"] for d in listed} == {"pending"}
    again = client.post(f"/api/v1/deltas/apply/{project_id}/", headers=user["headers"])
    [new_job] = again.json["job_ids"]
    assert new_job != job_id
    run_jobs()
    listed = client.get(f"/api/v1/deltas/{project_id}/", headers=user["headers"]).json
    assert [d["status"] for d in listed] == ["applied"] * 3


@pytest.mark.parametrize("provider", ["ogr", "postgres"])
def test_deltas_of_a_job_stopped_mid_run_go_back_unless_on_postgres(
    app: Flask,
    client: FlaskClient,
    user: dict[str, Any],
    project_id: str,
    run_jobs: Callable[[], None],
    provider: str,
) -> None:
    document = corpus_deltafile("singlelayer_multidelta.json", project_id)
    [job_id] = push(client, user, project_id, document).json["job_ids"]
    layer_id = document["deltas"][0]["sourceLayerId"]
    # As the job's first step leaves things, with no worker holding the job.
    with app.app_context(), get_db().new_session() as session:
        project = session.get(Project, uuid.UUID(project_id))
        assert project is not None and project.project_details is not None
        details = json.loads(json.dumps(project.project_details))
        details["layers_by_id"][layer_id]["provider"] = provider
        project.project_details = details
        session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(job_id))
            .values(status=JobStatus.STARTED)
        )
        session.execute(
            update(Delta)
            .where(Delta.job_id == uuid.UUID(job_id))
            .values(last_status=DeltaStatus.STARTED)
        )
        session.commit()

    stopped = client.post(f"/api/v1/jobs/{job_id}/stop/", headers=user["headers"])
    assert stopped.json["status"] == "stopped"
    listed = client.get(f"/api/v1/deltas/{project_id}/", headers=user["headers"]).json

    if provider == "postgres":
        assert {d["status"] for d in listed} == {"error"}
        assert "PostgreSQL" in listed[0]["output"]["msg"]
        return
    assert {d["status"] for d in listed} == {"pending"}
    again = client.post(f"/api/v1/deltas/apply/{project_id}/", headers=user["headers"])
    [new_job] = again.json["job_ids"]
    run_jobs()
    listed = client.get(f"/api/v1/deltas/{project_id}/", headers=user["headers"]).json
    assert [d["status"] for d in listed] == ["applied"] * 3
    assert {d["job_id"] for d in listed} == {new_job}
