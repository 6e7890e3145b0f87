"""Job lists answered from memory: only while true, per caller and request."""

import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, update

from qfjobs.api.answer_cache import AnswerCache, KeptAnswer
from qfjobs.app import create_app
from qfjobs.models import Job, Project
from tests.helpers import MINIMAL_QGS, new_project, upload

SDK = {"User-Agent": "sdk|py|0.18.0 python-requests|2.32.3"}


def cache_of(app: Flask) -> AnswerCache:
    cache: AnswerCache = app.extensions["qfjobs.answer_cache"]
    return cache


def get_list(client: FlaskClient, user: dict[str, Any], pid: str, **headers: str):
    return client.get(
        "/api/v1/jobs/",
        query_string={"project_id": pid, "limit": 1},
        headers={**user["headers"], **headers},
    )


@pytest.fixture
def listed(app: Flask, client: FlaskClient, make_user) -> tuple[dict[str, Any], str]:
    """Alice's project with two jobs, listed once (so its answer is kept)."""
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    client.post(
        "/api/v1/jobs/",
        data={"project_id": pid, "type": "package"},
        headers=alice["headers"],
    )
    assert get_list(client, alice, pid).status_code == 200
    return alice, pid


def test_a_repeated_list_is_the_kept_answer(app: Flask, client, listed) -> None:
    alice, pid = listed
    cache = cache_of(app)
    first = get_list(client, alice, pid)
    hits = cache.hits
    second = get_list(client, alice, pid)

    assert cache.hits == hits + 1
    assert second.data == first.data
    assert second.headers == first.headers
    assert second.json["count"] == 2
    assert "offset=1" in second.headers["X-Next-Page"]


def test_a_change_made_elsewhere_shows_at_once(app: Flask, client, listed) -> None:
    # Written by another engine, as a worker process would: the app hears of
    # it only through the database.
    alice, pid = listed
    engine = create_engine(app.config["QFJOBS_DATABASE_URL"])
    for status in ("failed", "stopped", "finished"):
        with engine.begin() as connection:
            connection.execute(
                update(Job)
                .where(Job.project_id == uuid.UUID(pid))
                .values(status=status)
            )
        assert get_list(client, alice, pid).json["results"][0]["status"] == status
    engine.dispose()


def test_a_new_job_shows_at_once(app: Flask, client, listed) -> None:
    alice, pid = listed
    client.post(
        "/api/v1/jobs/",
        data={"project_id": pid, "type": "process_projectfile", "force": 1},
        headers=alice["headers"],
    )
    assert get_list(client, alice, pid).json["count"] == 3


def test_logging_out_ends_the_kept_answers(app: Flask, client, listed) -> None:
    alice, pid = listed
    client.post("/api/v1/auth/logout/", headers=alice["headers"])
    response = get_list(client, alice, pid)
    assert response.status_code == 401
    assert response.json["code"] == "authentication_failed"


def test_losing_the_project_ends_the_kept_answers(
    app: Flask, client, listed, make_user
) -> None:
    alice, pid = listed
    bob = make_user("bob")
    engine = create_engine(app.config["QFJOBS_DATABASE_URL"])
    with engine.begin() as connection:
        connection.execute(
            update(Project)
            .where(Project.id == uuid.UUID(pid))
            .values(owner_id=Project.owner_id + 1)
        )
    engine.dispose()
    assert get_list(client, alice, pid).status_code == 404
    assert get_list(client, bob, pid).status_code == 200


def test_other_callers_get_answers_of_their_own(
    app: Flask, client, listed, make_user
) -> None:
    alice, pid = listed
    bob = make_user("bob")
    assert get_list(client, bob, pid).status_code == 404
    assert (
        client.get("/api/v1/jobs/", query_string={"project_id": pid}).status_code == 401
    )

    bare = get_list(client, alice, pid, **SDK)
    assert isinstance(bare.json, list) and len(bare.json) == 1
    assert isinstance(get_list(client, alice, pid).json, dict)

    elsewhere = get_list(client, alice, pid, Host="jobs.example.org")
    assert elsewhere.headers["X-Next-Page"].startswith("http://jobs.example.org/")


def test_bad_requests_are_not_kept(app: Flask, client, listed) -> None:
    alice, pid = listed
    kept = len(cache_of(app))
    for _ in range(2):
        response = client.get(
            "/api/v1/jobs/",
            query_string={"project_id": pid, "limit": -1},
            headers=alice["headers"],
        )
        assert response.status_code == 400
        assert response.json["code"] == "validation_error"
    assert len(cache_of(app)) == kept


def test_anonymous_callers_get_401_before_any_argument_check(client) -> None:
    response = client.get(
        "/api/v1/jobs/", query_string={"limit": "x", "project_id": "1"}
    )
    assert response.status_code == 401
    assert response.json["code"] == "not_authenticated"


def test_the_cache_can_be_turned_off(
    database_url: str, redis_url: str, tmp_path, make_user
) -> None:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "QFJOBS_DATABASE_URL": database_url,
            "QFJOBS_REDIS_URL": redis_url,
            "QFJOBS_STORAGE_DIR": tmp_path / "off",
            "QFJOBS_QUEUE_NAME": f"test-{uuid.uuid4().hex}",
            "QFJOBS_ANSWER_CACHE_BYTES": 0,
        }
    )
    client = app.test_client()
    alice = make_user("alice")
    pid = new_project(client, alice)
    for _ in range(2):
        assert get_list(client, alice, pid).json["count"] == 0
    assert len(cache_of(app)) == 0
    assert cache_of(app).hits == 0


def answer(size: int) -> KeptAnswer:
    from werkzeug.datastructures import Headers

    return KeptAnswer(uuid.uuid4(), 1, b"x" * size, Headers())


def test_the_least_recently_used_answers_go_first() -> None:
    cache = AnswerCache(max_bytes=3 * answer(1000).size)
    for key in "abc":
        cache.put((key,), answer(1000))
    assert cache.get(("a",)) is not None  # a is now the most recent
    cache.put(("d",), answer(1000))

    assert cache.get(("b",)) is None
    assert all(cache.get((key,)) is not None for key in "acd")
    cache.put(("huge",), answer(10_000))
    assert cache.get(("huge",)) is None and len(cache) == 3


def test_lists_naming_several_projects_are_not_kept(app: Flask, client, listed) -> None:
    alice, pid = listed
    other = new_project(client, alice, "other")
    kept = len(cache_of(app))
    response = client.get(
        f"/api/v1/jobs/?project_id={pid}&project_id={other}",
        headers=alice["headers"],
    )
    assert response.status_code == 200
    assert len(cache_of(app)) == kept


def test_a_restored_backup_does_not_bring_back_kept_answers(
    app: Flask, client, listed, tmp_path
) -> None:
    # The database goes back in time under a running API: the next change
    # must not land on a version the API has kept an answer for.
    import sqlite3

    from sqlalchemy.engine import make_url

    url = make_url(app.config["QFJOBS_DATABASE_URL"])
    if url.get_backend_name() != "sqlite":
        pytest.skip("restores a backup with SQLite's online backup API")
    alice, pid = listed
    live = sqlite3.connect(url.database)
    backup = sqlite3.connect(tmp_path / "backup.sqlite3")
    live.backup(backup)

    def one_more_job(job_type: str) -> str:
        response = client.post(
            "/api/v1/jobs/",
            data={"project_id": pid, "type": job_type, "force": 1},
            headers=alice["headers"],
        )
        job_id: str = response.json["id"]
        return job_id

    gone = one_more_job("package")
    assert get_list(client, alice, pid).json["results"][0]["id"] == gone
    backup.backup(live)
    live.close()
    backup.close()

    new = one_more_job("process_projectfile")
    assert get_list(client, alice, pid).json["results"][0]["id"] == new
