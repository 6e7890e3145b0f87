"""Hostile input through the HTTP API: a clear 4xx, and nothing half-stored.

Each case goes through the real upload route (and, for project files that
pass the upload check, the real ``process_projectfile`` job), then checks
that the project's storage holds no temporary file and no blob that no file
row points at, and that the job, when there is one, failed with a message
saying what is wrong.
"""

import io
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from qfjobs.app import create_app
from qfjobs.extensions import get_db, get_redis
from qfjobs.models import AuthToken, ProjectFile
from qfjobs.models.timestamps import utcnow
from qfjobs.services.login_throttle import LOCKOUT_SECONDS
from tests.helpers import MINIMAL_QGS, job_list, new_project, upload
from tests.qgis.test_projectfile import lie_about_size


def storage_dir(app: Flask, pid: str) -> Path:
    return Path(app.config["QFJOBS_STORAGE_DIR"]) / "projects" / pid


def assert_nothing_half_stored(app: Flask, pid: str) -> None:
    """No temporary upload left, and every blob belongs to a file row."""
    root = storage_dir(app, pid)
    leftovers = list((root / "tmp").glob("*")) if (root / "tmp").exists() else []
    assert leftovers == []
    blobs = {p.name for p in (root / "blobs").glob("*")} if root.exists() else set()
    with app.app_context():
        session = get_db().session()
        used = set(
            session.scalars(
                select(ProjectFile.sha256).where(
                    ProjectFile.project_id == uuid.UUID(pid)
                )
            )
        )
        session.commit()
    assert blobs == used


def file_names(client: FlaskClient, user: dict[str, Any], pid: str) -> list[str]:
    response = client.get(f"/api/v1/files/{pid}/", headers=user["headers"])
    assert response.status_code == 200
    return [row["name"] for row in response.json]


@pytest.fixture
def owner(client: FlaskClient, make_user) -> tuple[dict[str, Any], str]:
    alice = make_user("alice")
    return alice, new_project(client, alice)


# ---- file names ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../escape.txt",
        "data/../../escape.txt",
        "..",
        "/etc/passwd",
        "//server/share/x.txt",
        "C:/..\\..\\x.txt",
        "nul\x00byte.txt",
        "bell\x07.txt",
        "new\nline.txt",
        "del\x7f.txt",
        "x" * 256 + ".txt",
        "/".join(["d" * 200] * 6) + "/f.txt",
    ],
)
def test_bad_upload_names_are_400_and_store_nothing(
    app: Flask, client: FlaskClient, owner, name: str
) -> None:
    alice, pid = owner
    response = client.post(
        f"/api/v1/files/{pid}/{quote(name, safe='/')}/",
        data={"file": (io.BytesIO(b"payload"), "f.txt")},
        headers=alice["headers"],
        content_type="multipart/form-data",
    )
    assert response.status_code == 400, (name, response.data)
    assert response.json["code"] == "invalid_filename"
    assert file_names(client, alice, pid) == []
    assert_nothing_half_stored(app, pid)


def test_bad_names_never_escape_the_storage_folder(
    app: Flask, client: FlaskClient, owner, tmp_path: Path
) -> None:
    alice, pid = owner
    for name in ("../../../../escaped.txt", "..%2F..%2Fescaped.txt"):
        client.post(
            f"/api/v1/files/{pid}/{name}/",
            data={"file": (io.BytesIO(b"payload"), "f.txt")},
            headers=alice["headers"],
            content_type="multipart/form-data",
        )
    assert not any(tmp_path.rglob("escaped.txt"))
    assert not any(Path(app.config["QFJOBS_STORAGE_DIR"]).rglob("escaped.txt"))


# ---- sizes and truncated bodies ---------------------------------------------------


def test_upload_over_the_size_limit_is_413_json(
    app: Flask, client: FlaskClient, owner
) -> None:
    alice, pid = owner
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    response = upload(client, alice, pid, "big.bin", b"\x00" * (65 * 1024))
    assert response.status_code == 413
    assert response.json["code"] == "payload_too_large"
    assert upload(client, alice, pid, "small.bin", b"\x00" * 1024).status_code == 201
    assert file_names(client, alice, pid) == ["small.bin"]
    assert_nothing_half_stored(app, pid)


def test_upload_over_the_limit_without_content_length_is_413(
    app: Flask, client: FlaskClient, owner
) -> None:
    """A chunked body (no Content-Length) is cut off at the limit while read."""
    alice, pid = owner
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    boundary = "qfjobsboundary"
    payload = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="big.bin"\r\n\r\n'.encode()
        + b"\x01" * (200 * 1024)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        f"/api/v1/files/{pid}/big.bin/",
        input_stream=io.BytesIO(payload),
        headers={
            **alice["headers"],
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Transfer-Encoding": "chunked",
        },
        # What gunicorn says for a chunked body: the stream ends by itself.
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413, response.data
    assert response.json["code"] == "payload_too_large"
    assert file_names(client, alice, pid) == []
    assert_nothing_half_stored(app, pid)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.99])
def test_truncated_multipart_body_is_400_and_stores_nothing(
    app: Flask, client: FlaskClient, owner, cut: float
) -> None:
    alice, pid = owner
    boundary = "qfjobsboundary"
    payload = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="a.bin"\r\n\r\n'.encode()
        + b"\x02" * 10_000
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        f"/api/v1/files/{pid}/a.bin/",
        data=payload[: int(len(payload) * cut)],
        headers={
            **alice["headers"],
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    assert 400 <= response.status_code < 500, response.data
    assert response.json["code"] in ("validation_error", "empty_content")
    assert file_names(client, alice, pid) == []
    assert_nothing_half_stored(app, pid)


def test_body_shorter_than_its_content_length_is_400(
    app: Flask, client: FlaskClient, owner
) -> None:
    """The client went away mid-upload: the declared length never arrives."""
    alice, pid = owner
    boundary = "qfjobsboundary"
    payload = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="a.bin"\r\n\r\n'.encode()
        + b"\x03" * 10_000
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        f"/api/v1/files/{pid}/a.bin/",
        input_stream=io.BytesIO(payload[:5000]),
        headers={
            **alice["headers"],
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(payload)),
        },
    )
    assert 400 <= response.status_code < 500, response.data
    assert file_names(client, alice, pid) == []
    assert_nothing_half_stored(app, pid)


# ---- hostile QGIS project files, end to end -------------------------------------

XXE_QGS = b"""<?xml version="1.0"?>
<!DOCTYPE qgis [<!ENTITY leak SYSTEM "file:///etc/hostname">]>
<qgis version="3.34.0"><title>&leak;</title><projectlayers/></qgis>
"""

LAUGHS_QGS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE qgis [\n<!ENTITY a0 "ha">\n'
    + b"".join(
        f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">\n'.encode() for i in range(1, 10)
    )
    + b']>\n<qgis version="3.34.0"><title>&a9;</title><projectlayers/></qgis>\n'
)


def run_project_job(
    client: FlaskClient, run_jobs, user: dict[str, Any], pid: str
) -> dict[str, Any]:
    jobs = job_list(client, user, project_id=pid)["results"]
    assert len(jobs) == 1 and jobs[0]["type"] == "process_projectfile"
    run_jobs()
    response = client.get(f"/api/v1/jobs/{jobs[0]['id']}/", headers=user["headers"])
    assert response.status_code == 200
    detail: dict[str, Any] = response.json
    return detail


@pytest.mark.parametrize(
    ("content", "words"),
    [(XXE_QGS, "entit"), (LAUGHS_QGS, "entit")],
    ids=["external-entity", "billion-laughs"],
)
def test_entity_tricks_in_qgs_fail_the_job_cleanly(
    app: Flask, client: FlaskClient, owner, run_jobs, content: bytes, words: str
) -> None:
    alice, pid = owner
    response = upload(client, alice, pid, "project.qgs", content)
    assert response.status_code == 201
    job = run_project_job(client, run_jobs, alice, pid)
    assert job["status"] == "failed"
    assert words in job["feedback"]["error"].lower()
    assert job["feedback"]["error_type"] == "INVALID_PROJECT_FILE"
    hostname = Path("/etc/hostname")
    if hostname.exists() and hostname.read_text().strip():
        secret = hostname.read_text().strip()
        assert secret not in str(job)
    assert "haha" not in str(job)
    project = client.get(f"/api/v1/projects/{pid}/", headers=alice["headers"]).json
    assert project["project_details"] is None


def make_qgz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("members", "words"),
    [
        ({"project.qgs": b"<qgis>" + b" " * (64 * 1024 * 1024) + b"</qgis>"}, "bomb"),
        ({"a.qgs": MINIMAL_QGS, "b.qgs": MINIMAL_QGS}, ".qgs"),
        ({"project_attachments.zip": b"nothing"}, ".qgs"),
        ({"../project.qgs": MINIMAL_QGS}, ""),
        ({"/abs/project.qgs": MINIMAL_QGS}, ""),
    ],
    ids=["zip-bomb", "two-qgs", "no-qgs", "dotdot-name", "absolute-name"],
)
def test_bad_qgz_is_refused_at_upload(
    app: Flask, client: FlaskClient, owner, members: dict[str, bytes], words: str
) -> None:
    alice, pid = owner
    response = upload(client, alice, pid, "project.qgz", make_qgz(members))
    assert response.status_code == 400, response.data
    assert response.json["code"] == "invalid_project_file"
    assert words in response.json["message"]
    assert file_names(client, alice, pid) == []
    assert job_list(client, alice, project_id=pid)["count"] == 0
    project = client.get(f"/api/v1/projects/{pid}/", headers=alice["headers"]).json
    assert project["project_filename"] is None
    assert_nothing_half_stored(app, pid)


def test_qgz_lying_about_its_size_fails_the_job_cleanly(
    app: Flask, client: FlaskClient, owner, run_jobs
) -> None:
    """The directory looks harmless, so upload passes; the job reads bounded."""
    alice, pid = owner
    content = b"<qgis>" + b"<title>t</title>" * 200_000 + b"</qgis>"
    liar = lie_about_size(make_qgz({"project.qgs": content}), "project.qgs", 1000)
    assert upload(client, alice, pid, "project.qgz", liar).status_code == 201
    job = run_project_job(client, run_jobs, alice, pid)
    assert job["status"] == "failed"
    assert job["feedback"]["error_type"] == "INVALID_PROJECT_FILE"
    assert job["feedback"]["error"]


def test_not_a_zip_named_qgz_is_refused(app: Flask, client: FlaskClient, owner) -> None:
    alice, pid = owner
    response = upload(client, alice, pid, "project.qgz", MINIMAL_QGS)
    assert response.status_code == 400
    assert response.json["code"] == "invalid_project_file"
    assert file_names(client, alice, pid) == []
    assert_nothing_half_stored(app, pid)


# ---- tokens and logins ----------------------------------------------------------


def test_token_lifetime_follows_the_setting(app: Flask, client: FlaskClient) -> None:
    from qfjobs.services import users

    with app.app_context():
        users.create_user(get_db().session(), "carol", "secret-pw")
    app.config["QFJOBS_TOKEN_TTL_DAYS"] = 3
    before = utcnow()
    response = client.post(
        "/api/v1/auth/login/", data={"username": "carol", "password": "secret-pw"}
    )
    assert response.status_code == 200
    headers = {"Authorization": f"Token {response.json['token']}"}
    with app.app_context():
        session = get_db().session()
        row = session.scalar(select(AuthToken))
        assert row is not None
        assert (
            timedelta(days=3) - timedelta(seconds=5)
            <= row.expires_at - before
            <= timedelta(days=3, seconds=5)
        )
        session.commit()
    assert client.get("/api/v1/auth/user/", headers=headers).status_code == 200

    app.config["QFJOBS_TOKEN_TTL_DAYS"] = 0
    response = client.post(
        "/api/v1/auth/login/", data={"username": "carol", "password": "secret-pw"}
    )
    expired = {"Authorization": f"Token {response.json['token']}"}
    answer = client.get("/api/v1/auth/user/", headers=expired)
    assert answer.status_code == 401
    assert answer.json["code"] == "authentication_failed"


def test_lockout_ends_and_resets_after_a_good_login(
    app: Flask, client: FlaskClient, make_user
) -> None:
    make_user("dave")

    def login(password: str, address: str = "127.0.0.1") -> Any:
        return client.post(
            "/api/v1/auth/login/",
            data={"username": "dave", "password": password},
            environ_base={"REMOTE_ADDR": address},
        )

    assert [login("wrong").status_code for _ in range(5)] == [401] * 5
    locked = login("secret-pw")
    assert locked.status_code == 429
    assert locked.json["code"] == "too_many_requests"
    assert 0 < int(locked.headers["Retry-After"]) <= LOCKOUT_SECONDS
    assert login("wrong").status_code == 429
    # The lockout is for this user from this address: the user elsewhere
    # still logs in, so a stranger cannot lock them out.
    assert login("secret-pw", address="192.0.2.7").status_code == 200

    with app.app_context():
        get_redis().delete(*get_redis().keys("qfjobs:*:login-failures:*"))
    assert login("secret-pw").status_code == 200
    assert [login("wrong").status_code for _ in range(4)] == [401] * 4
    assert login("secret-pw").status_code == 200
    assert login("wrong").status_code == 401


def test_behind_a_trusted_proxy_the_forwarded_address_is_throttled(
    app: Flask, make_user
) -> None:
    make_user("erin")
    proxied = create_app({**app.config, "QFJOBS_TRUSTED_PROXIES": 1}).test_client()

    def login(password: str, forwarded_for: str) -> int:
        return proxied.post(
            "/api/v1/auth/login/",
            data={"username": "erin", "password": password},
            headers={"X-Forwarded-For": forwarded_for},
        ).status_code

    assert [login("wrong", "198.51.100.1") for _ in range(5)] == [401] * 5
    assert login("secret-pw", "198.51.100.1") == 429
    assert login("secret-pw", "198.51.100.2") == 200


# ---- NUL characters in arguments (PostgreSQL text cannot hold them) --------------


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/projects/", {"name": "a\x00b"}, "name"),
        ("PATCH", "/api/v1/projects/{pid}/", {"description": "\x00"}, "description"),
        ("POST", "/api/v1/auth/login/", {"username": "\x00", "password": "x"}, None),
        ("GET", "/api/v1/projects/?include-public=\x00", None, "include-public"),
    ],
)
@pytest.mark.parametrize("as_json", [True, False])
def test_nul_characters_are_a_400_naming_the_field(
    client: FlaskClient,
    owner,
    method: str,
    path: str,
    body: dict[str, str] | None,
    field: str | None,
    as_json: bool,
) -> None:
    alice, pid = owner
    kwargs: dict[str, Any] = {"headers": alice["headers"]}
    if body is not None:
        kwargs["json" if as_json else "data"] = body
    response = client.open(path.format(pid=pid), method=method, **kwargs)
    assert response.status_code == 400, response.data
    assert response.json["code"] == "validation_error"
    assert set(response.json["errors"]) == {field or "username"}
    names = client.get("/api/v1/projects/", headers=alice["headers"]).json
    assert [project["description"] for project in names] == [""]
