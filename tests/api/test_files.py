"""Project files: upload, list, download with etags, delete, name rules."""

import hashlib

import pytest
from flask.testing import FlaskClient

from tests.helpers import MINIMAL_QGS, job_list, new_project, upload


def test_upload_list_download(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    content = b"a,b\n1,2\n"

    response = upload(client, alice, pid, "data/table.csv", content)
    assert response.status_code == 201
    assert response.json["name"] == "data/table.csv"
    assert response.json["md5sum"] == hashlib.md5(content).hexdigest()

    listing = client.get(f"/api/v1/files/{pid}/", headers=alice["headers"]).json
    assert listing == [
        {
            "name": "data/table.csv",
            "size": len(content),
            "md5sum": hashlib.md5(content).hexdigest(),
            "sha256": hashlib.sha256(content).hexdigest(),
            "etag": hashlib.md5(content).hexdigest(),
            "version": 1,
            "last_modified": listing[0]["last_modified"],
            "is_attachment": False,
        }
    ]

    download = client.get(
        f"/api/v1/files/{pid}/data/table.csv/", headers=alice["headers"]
    )
    assert download.status_code == 200
    assert download.data == content


def test_if_none_match_gives_304(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    content = b"hello"
    upload(client, alice, pid, "a.txt", content)
    etag = hashlib.md5(content).hexdigest()

    response = client.get(
        f"/api/v1/files/{pid}/a.txt/",
        headers={**alice["headers"], "If-None-Match": etag},
    )
    assert response.status_code == 304
    assert response.data == b""
    response = client.get(
        f"/api/v1/files/{pid}/a.txt/",
        headers={**alice["headers"], "If-None-Match": "0" * 32},
    )
    assert response.status_code == 200


def test_non_ascii_and_spaces_in_names(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    name = "sub dir/Übersichtskarte ä.gpkg"
    assert upload(client, alice, pid, name, b"x").status_code == 201
    listing = client.get(f"/api/v1/files/{pid}/", headers=alice["headers"]).json
    assert [f["name"] for f in listing] == [name]
    assert (
        client.get(f"/api/v1/files/{pid}/{name}/", headers=alice["headers"]).data
        == b"x"
    )


@pytest.mark.parametrize(
    "name",
    [
        "../escape.txt",
        "a/../../b.txt",
        "a/./b.txt",
        "a//b.txt",
        "DCIM/photo_12:30?.jpg",
        "nul\x00byte.txt",
        "tab\there.txt",
        "x" * 300 + ".txt",
        "trailing-dot.",
        "evil\u202etxt.exe",
    ],
)
def test_bad_names_are_refused(client: FlaskClient, make_user, name: str) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    response = upload(client, alice, pid, name, b"x")
    assert response.status_code in (400, 404), response.data
    if response.status_code == 400:
        assert response.json["code"] == "invalid_filename"
    assert client.get(f"/api/v1/files/{pid}/", headers=alice["headers"]).json == []


def test_absolute_names_are_refused(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    response = upload(client, alice, pid, "/etc/passwd", b"x")
    assert response.status_code == 400
    assert response.json["code"] == "invalid_filename"


def test_upload_without_file_field(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    response = client.post(
        f"/api/v1/files/{pid}/a.txt/",
        data={"other": "x"},
        headers=alice["headers"],
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert response.json["code"] == "empty_content"
    response = client.post(
        f"/api/v1/files/{pid}/a.txt/", data=b"raw", headers=alice["headers"]
    )
    assert response.status_code == 400
    assert response.json["code"] == "validation_error"


def test_one_qgis_project_per_project(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    assert upload(client, alice, pid, "project.qgs", MINIMAL_QGS).status_code == 201
    assert upload(client, alice, pid, "project.qgs", MINIMAL_QGS).status_code == 201
    response = upload(client, alice, pid, "other/second.qgs", MINIMAL_QGS)
    assert response.status_code == 400
    assert response.json["code"] == "multiple_projects"


def test_replacing_a_file_bumps_its_version(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "a.txt", b"one")
    response = upload(client, alice, pid, "a.txt", b"two")
    assert response.json["version"] == 2
    assert (
        client.get(f"/api/v1/files/{pid}/a.txt/", headers=alice["headers"]).data
        == b"two"
    )


def test_delete_file(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    url = f"/api/v1/files/{pid}/project.qgs/"
    assert client.delete(url, headers=alice["headers"]).status_code == 204
    assert client.get(url, headers=alice["headers"]).status_code == 404
    project = client.get(f"/api/v1/projects/{pid}/", headers=alice["headers"]).json
    assert project["project_filename"] is None


def test_attachments_are_marked(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "DCIM/1.jpg", b"jpg")
    upload(client, alice, pid, "DCIMx.txt", b"txt")
    listing = client.get(f"/api/v1/files/{pid}/", headers=alice["headers"]).json
    flags = {f["name"]: f["is_attachment"] for f in listing}
    assert flags == {"DCIM/1.jpg": True, "DCIMx.txt": False}


def test_other_users_files_are_404(client: FlaskClient, make_user) -> None:
    alice = make_user("alice")
    bob = make_user("bob")
    pid = new_project(client, alice)
    upload(client, alice, pid, "a.txt", b"secret")
    for method in ("get", "delete"):
        response = getattr(client, method)(
            f"/api/v1/files/{pid}/a.txt/", headers=bob["headers"]
        )
        assert response.status_code == 404
    assert (
        client.get(f"/api/v1/files/{pid}/", headers=bob["headers"]).status_code == 404
    )
    assert upload(client, bob, pid, "b.txt", b"x").status_code == 404


def test_uploads_trigger_one_waiting_process_job(
    client: FlaskClient, make_user
) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "data.csv", b"a\n1\n")
    assert job_list(client, alice, project_id=pid)["count"] == 0

    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    for number in range(10):
        upload(client, alice, pid, f"svg/icon_{number}.svg", b"<svg/>")
    upload(client, alice, pid, "DCIM/photo.jpg", b"jpg")

    jobs = job_list(client, alice, project_id=pid)["results"]
    assert [job["type"] for job in jobs] == ["process_projectfile"]
    assert jobs[0]["status"] == "queued"
