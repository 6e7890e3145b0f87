"""Logins, tokens, throttling and the 401s."""

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from qfjobs.extensions import get_db
from qfjobs.models import AuthToken, User
from qfjobs.models.timestamps import utcnow
from qfjobs.services import users


def test_login_with_form_body_returns_token(client: FlaskClient, make_user) -> None:
    user = make_user("alice")
    response = client.get("/api/v1/auth/user/", headers=user["headers"])

    assert response.status_code == 200
    assert response.json["username"] == "alice"


def test_token_scheme_is_case_insensitive(client: FlaskClient, make_user) -> None:
    token = make_user("alice")["token"]
    for scheme in ("token", "Token", "TOKEN"):
        response = client.get(
            "/api/v1/auth/user/", headers={"Authorization": f"{scheme} {token}"}
        )
        assert response.status_code == 200, scheme


def test_login_with_json_body(client: FlaskClient, make_user) -> None:
    make_user("alice")
    response = client.post(
        "/api/v1/auth/login/", json={"username": "alice", "password": "secret-pw"}
    )
    assert response.status_code == 200
    assert response.json["username"] == "alice"
    assert len(response.json["token"]) == 40


def test_wrong_password_is_401(client: FlaskClient, make_user) -> None:
    make_user("alice")
    response = client.post(
        "/api/v1/auth/login/", data={"username": "alice", "password": "nope"}
    )
    assert response.status_code == 401
    assert response.json["code"] == "authentication_failed"


def test_unknown_user_is_401_like_a_wrong_password(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/auth/login/", data={"username": "nobody", "password": "nope"}
    )
    assert response.status_code == 401
    assert response.json["code"] == "authentication_failed"


def test_login_without_fields_is_400(client: FlaskClient) -> None:
    response = client.post("/api/v1/auth/login/", data={})
    assert response.status_code == 400
    assert response.json["code"] == "validation_error"
    assert set(response.json["errors"]) == {"username", "password"}


def test_repeated_failed_logins_are_throttled(client: FlaskClient, make_user) -> None:
    make_user("alice")
    for _ in range(5):
        client.post("/api/v1/auth/login/", data={"username": "alice", "password": "x"})
    response = client.post(
        "/api/v1/auth/login/", data={"username": "alice", "password": "secret-pw"}
    )
    assert response.status_code == 429
    assert response.json["code"] == "too_many_requests"


def test_no_token_is_401(client: FlaskClient) -> None:
    response = client.get("/api/v1/auth/user/")
    assert response.status_code == 401
    assert response.json["code"] == "not_authenticated"


def test_logout_revokes_the_token(client: FlaskClient, make_user) -> None:
    user = make_user("alice")
    response = client.post("/api/v1/auth/logout/", headers=user["headers"])
    assert response.status_code == 200
    assert response.json["detail"]

    response = client.get("/api/v1/auth/user/", headers=user["headers"])
    assert response.status_code == 401


def test_tokens_are_stored_hashed_and_expire(
    app: Flask, client: FlaskClient, make_user
) -> None:
    user = make_user("alice")
    with app.app_context():
        session = get_db().session()
        row = session.scalar(select(AuthToken))
        assert row is not None
        assert row.key_hash != user["token"]
        assert user["token"] not in row.key_hash
        stored = session.scalar(select(User.password_hash))
        assert stored is not None and stored.startswith("$argon2")
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()

    response = client.get("/api/v1/auth/user/", headers=user["headers"])
    assert response.status_code == 401
    assert response.json["code"] == "authentication_failed"


def test_only_superusers_create_users(client: FlaskClient, make_user) -> None:
    admin = make_user("root", superuser=True)
    alice = make_user("alice")
    body = {"username": "bob", "password": "bob-secret", "email": "b@example.org"}

    assert (
        client.post("/api/v1/users/", data=body, headers=alice["headers"]).status_code
        == 403
    )
    response = client.post("/api/v1/users/", data=body, headers=admin["headers"])
    assert response.status_code == 201
    assert response.json["username"] == "bob"
    again = client.post("/api/v1/users/", data=body, headers=admin["headers"])
    assert again.status_code == 409
    assert again.json["code"] == "user_already_exists"


def test_status_needs_no_token(client: FlaskClient) -> None:
    response = client.get("/api/v1/status/")
    assert response.status_code == 200
    assert response.json["database"] == "ok"
    assert response.json["redis"] == "ok"


def test_token_use_is_recorded_at_most_every_few_minutes(
    app: Flask, client: FlaskClient, make_user
) -> None:
    user = make_user("alice")

    def last_used() -> object:
        with get_db(app).new_session() as session:
            return session.scalar(select(AuthToken.last_used_at))

    def set_last_used(value: object) -> None:
        with get_db(app).new_session() as session:
            session.execute(update(AuthToken).values(last_used_at=value))
            session.commit()

    for path in ("/api/v1/auth/user/", "/api/v1/jobs/"):
        set_last_used(None)
        assert client.get(path, headers=user["headers"]).status_code == 200
        first = last_used()
        assert first is not None
        assert client.get(path, headers=user["headers"]).status_code == 200
        assert last_used() == first

        long_ago = utcnow() - users.TOKEN_TOUCH_INTERVAL - timedelta(seconds=1)
        set_last_used(long_ago)
        assert client.get(path, headers=user["headers"]).status_code == 200
        assert last_used() > long_ago
