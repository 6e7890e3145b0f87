"""The package job through the API: job, latest package, downloads, staleness."""

import hashlib
import sqlite3
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from lxml import etree

from tests.helpers import DATA_DIR, DELTA_PROJECT, new_project, upload

LATEST = "/api/v1/packages/{}/latest/"


def _package(client: FlaskClient, user: dict[str, Any], project_id: str) -> Any:
    response = client.post(
        "/api/v1/jobs/",
        data={"project_id": project_id, "type": "package"},
        headers=user["headers"],
    )
    assert response.status_code in (200, 201), response.json
    return response.json


def _job(client: FlaskClient, user: dict[str, Any], job_id: str) -> Any:
    response = client.get(f"/api/v1/jobs/{job_id}/", headers=user["headers"])
    assert response.status_code == 200
    return response.json


def upload_project(
    client: FlaskClient,
    user: dict[str, Any],
    project_id: str,
    folder: Path,
    qgs: str | None = None,
) -> None:
    """Upload the data files of ``folder``, then one project file (the client's
    order); other project files and ``deltas/`` stay out."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    projects = [p for p in paths if p.suffix.lower() in (".qgs", ".qgz")]
    chosen = folder / qgs if qgs else projects[0]
    data = [p for p in paths if p not in projects and "deltas" not in p.parts]
    for path in [*data, chosen]:
        name = path.relative_to(folder).as_posix()
        response = upload(client, user, project_id, name, path.read_bytes())
        assert response.status_code == 201, (name, response.json)


def _packaged_project(
    client: FlaskClient,
    user: dict[str, Any],
    run_jobs: Callable[[], None],
    folder: Path,
    qgs: str | None = None,
) -> tuple[str, Any]:
    project_id = new_project(client, user)
    upload_project(client, user, project_id, folder, qgs)
    job = _package(client, user, project_id)
    run_jobs()
    return project_id, _job(client, user, job["id"])


def test_no_package_yet_is_invalid_job(client: FlaskClient, make_user) -> None:
    user = make_user()
    project_id = new_project(client, user)
    response = client.get(LATEST.format(project_id), headers=user["headers"])
    assert response.status_code == 400
    assert response.json["code"] == "invalid_job"


def test_delta_project_package(
    client: FlaskClient, make_user, run_jobs, tmp_path: Path
) -> None:
    user = make_user()
    project_id, job = _packaged_project(
        client, user, run_jobs, DELTA_PROJECT, "project.qgs"
    )
    assert job["status"] == "finished", job["feedback"]
    feedback = job["feedback"]
    assert [step["stage"] for step in feedback["steps"]] == [2, 2, 2, 2, 2]
    layers = feedback["outputs"]["package_project"]["layers"]
    assert {layer["outcome"] for layer in layers} == {"packaged_offline"}
    assert all(layer["feature_count"] >= 1 for layer in layers)
    assert all(layer["skipped"] == [] for layer in layers)
    output = job["output"]
    assert f'{job["id"]}: layer "points_xy" ' in output
    assert "3 feature(s)" in output
    assert "/tmp/" not in output  # no worker paths

    response = client.get(LATEST.format(project_id), headers=user["headers"])
    assert response.status_code == 200, response.json
    latest = response.json
    assert latest["status"] == "finished"
    assert latest["package_id"] == job["id"]
    assert latest["packaged_at"] and latest["data_last_updated_at"]
    assert latest["needs_repackaging"] is False
    names = sorted(item["name"] for item in latest["files"])
    assert names == [
        "data.gpkg",
        "project_qfield.qgs",
        "project_qfield_attachments.zip",
    ]
    original = feedback["outputs"]["qgis_layers_data"]["layers_by_id"]
    assert latest["layers"] == original
    assert all(layer["is_valid"] for layer in latest["layers"].values())

    for item in latest["files"]:
        url = LATEST.format(project_id) + f"files/{item['name']}/"
        got = client.get(url, headers=user["headers"])
        assert got.status_code == 200
        assert hashlib.md5(got.data).hexdigest() == item["md5sum"]
        assert hashlib.sha256(got.data).hexdigest() == item["sha256"]
        assert item["size"] == len(got.data)
        (tmp_path / item["name"]).write_bytes(got.data)
        again = client.get(
            url, headers={**user["headers"], "If-None-Match": f'"{item["etag"]}"'}
        )
        assert again.status_code == 304

    qgs = (tmp_path / "project_qfield.qgs").read_bytes()
    assert qgs.startswith(b"<!DOCTYPE qgis")
    root = etree.fromstring(qgs.split(b"\n", 1)[1])
    assert root.find("mapcanvas[@name='theMapCanvas']") is not None
    sources = [node.text for node in root.iter("datasource") if node.text]
    assert sources and all(s.startswith("./data.gpkg|layername=") for s in sources)
    with sqlite3.connect(tmp_path / "data.gpkg") as conn:
        rows = conn.execute("SELECT table_name FROM gpkg_contents").fetchall()
    tables = {row[0] for row in rows}
    assert {s.split("layername=")[1].split("|")[0] for s in sources} <= tables
    assert zipfile.ZipFile(tmp_path / "project_qfield_attachments.zip").namelist() == []

    skip = client.get(
        LATEST.format(project_id),
        query_string={"skip_metadata": 1},
        headers=user["headers"],
    )
    assert all("sha256" not in item for item in skip.json["files"])

    project = client.get(f"/api/v1/projects/{project_id}/", headers=user["headers"])
    assert project.json["needs_repackaging"] is False
    upload(client, user, project_id, "notes.txt", b"changed")
    project = client.get(f"/api/v1/projects/{project_id}/", headers=user["headers"])
    assert project.json["needs_repackaging"] is True


def test_failed_package_keeps_previous_one(
    client: FlaskClient, make_user, run_jobs, app
) -> None:
    user = make_user()
    project_id, first = _packaged_project(
        client, user, run_jobs, DELTA_PROJECT, "project.qgs"
    )
    assert first["status"] == "finished"
    # The project file is replaced by one GDAL cannot read.
    broken = (DATA_DIR / "qfieldcloud-broken_xml" / "broken.qgs").read_bytes()
    assert upload(client, user, project_id, "project.qgs", broken).status_code == 201
    second = _package(client, user, project_id)
    run_jobs()
    assert _job(client, user, second["id"])["status"] == "failed"

    latest = client.get(LATEST.format(project_id), headers=user["headers"]).json
    assert latest["package_id"] == first["id"]
    assert latest["status"] == "finished"
    url = LATEST.format(project_id) + "files/data.gpkg/"
    assert client.get(url, headers=user["headers"]).status_code == 200
    storage = Path(app.config["QFJOBS_STORAGE_DIR"])
    folders = list((storage / "projects" / project_id / "packages").iterdir())
    assert [item.name for item in folders] == [first["id"]]


def test_new_package_replaces_old_one(
    client: FlaskClient, make_user, run_jobs, app
) -> None:
    user = make_user()
    project_id, first = _packaged_project(
        client, user, run_jobs, DELTA_PROJECT, "project.qgs"
    )
    second = _package(client, user, project_id)
    run_jobs()
    assert _job(client, user, second["id"])["status"] == "finished"
    latest = client.get(LATEST.format(project_id), headers=user["headers"]).json
    assert latest["package_id"] == second["id"] != first["id"]
    storage = Path(app.config["QFJOBS_STORAGE_DIR"])
    folders = list((storage / "projects" / project_id / "packages").iterdir())
    assert [item.name for item in folders] == [second["id"]]


def test_pending_package_job_is_reported(
    client: FlaskClient, make_user, run_jobs
) -> None:
    user = make_user()
    project_id, first = _packaged_project(
        client, user, run_jobs, DELTA_PROJECT, "project.qgs"
    )
    waiting = _package(client, user, project_id)
    latest = client.get(LATEST.format(project_id), headers=user["headers"]).json
    assert latest["package_id"] == first["id"]
    assert latest["status"] in ("pending", "queued")
    assert waiting["status"] in ("pending", "queued")


def test_attachments_are_listed_and_served(
    client: FlaskClient, make_user, run_jobs
) -> None:
    user = make_user()
    project_id = new_project(client, user)
    upload(client, user, project_id, "DCIM/1.jpg", b"jpeg one")
    upload(client, user, project_id, "DCIM/sub/2.jpg", b"jpeg two")
    upload(client, user, project_id, "DCIMx.txt", b"not an attachment")
    upload_project(client, user, project_id, DELTA_PROJECT, "project.qgs")
    job = _package(client, user, project_id)
    run_jobs()
    assert _job(client, user, job["id"])["status"] == "finished"
    latest = client.get(LATEST.format(project_id), headers=user["headers"]).json
    attachments = {i["name"]: i for i in latest["files"] if i["is_attachment"]}
    assert sorted(attachments) == ["DCIM/1.jpg", "DCIM/sub/2.jpg"]
    names = {item["name"] for item in latest["files"]}
    assert "DCIMx.txt" not in names
    got = client.get(
        LATEST.format(project_id) + "files/DCIM/sub/2.jpg/", headers=user["headers"]
    )
    assert got.status_code == 200 and got.data == b"jpeg two"
    missing = client.get(
        LATEST.format(project_id) + "files/DCIMx.txt/", headers=user["headers"]
    )
    assert missing.status_code == 404


def test_other_users_cannot_see_packages(
    client: FlaskClient, make_user, run_jobs
) -> None:
    owner = make_user()
    project_id, _job_data = _packaged_project(
        client, owner, run_jobs, DELTA_PROJECT, "project.qgs"
    )
    other = make_user("bob")
    response = client.get(LATEST.format(project_id), headers=other["headers"])
    assert response.status_code == 404


def test_broken_datasource_layer_is_removed(
    client: FlaskClient, make_user, run_jobs, tmp_path: Path
) -> None:
    user = make_user()
    project_id, job = _packaged_project(
        client, user, run_jobs, DATA_DIR / "qfieldcloud-delta_broken_datasource"
    )
    assert job["status"] == "finished", job["feedback"]
    latest = client.get(LATEST.format(project_id), headers=user["headers"]).json
    names = sorted(item["name"] for item in latest["files"])
    assert names == [
        "data.gpkg",
        "project_broken_datasource_qfield.qgs",
        "project_broken_datasource_qfield_attachments.zip",
    ]
    invalid = [layer for layer in latest["layers"].values() if not layer["is_valid"]]
    assert len(invalid) == 1
    layers = job["feedback"]["outputs"]["package_project"]["layers"]
    removed = [layer for layer in layers if layer["outcome"] == "removed"]
    assert [layer["id"] for layer in removed] == [invalid[0]["id"]]
    assert "invalid" in removed[0]["reason"]
    url = LATEST.format(project_id) + "files/project_broken_datasource_qfield.qgs/"
    qgs = client.get(url, headers=user["headers"]).data
    assert invalid[0]["id"].encode() not in qgs
    packaged = job["feedback"]["outputs"]["qfield_layer_data"]["layers_by_id"]
    assert invalid[0]["id"] not in packaged
    url = LATEST.format(project_id) + "files/data.gpkg/"
    (tmp_path / "data.gpkg").write_bytes(client.get(url, headers=user["headers"]).data)
    with sqlite3.connect(tmp_path / "data.gpkg") as conn:
        assert conn.execute("SELECT count(*) FROM gpkg_contents").fetchone()[0] == 1


def test_stopped_package_job_keeps_previous_package(
    client: FlaskClient, make_user, run_jobs, app, monkeypatch
) -> None:
    """A stop that lands while the package is being stored drops the result."""
    from qfjobs.extensions import get_db
    from qfjobs.models import JobStatus
    from qfjobs.services import jobs as job_service
    from qfjobs.services import packages as package_service
    from qfjobs.tasks import package as package_task

    user = make_user()
    project_id, first = _packaged_project(
        client, user, run_jobs, DELTA_PROJECT, "project.qgs"
    )
    real_publish = package_service.publish

    def publish_then_stop(storage, project, job_id, source):  # type: ignore[no-untyped-def]
        files = real_publish(storage, project, job_id, source)
        with get_db(app).new_session() as session:
            assert job_service.set_status(
                session, job_id, JobStatus.STOPPED, expect=(JobStatus.STARTED,)
            )
            session.commit()
        return files

    monkeypatch.setattr(package_task.packages, "publish", publish_then_stop)
    second = _package(client, user, project_id)
    run_jobs()
    assert _job(client, user, second["id"])["status"] == "stopped"
    latest = client.get(LATEST.format(project_id), headers=user["headers"]).json
    assert latest["package_id"] == first["id"]
    url = LATEST.format(project_id) + "files/project_qfield.qgs/"
    assert client.get(url, headers=user["headers"]).status_code == 200

    monkeypatch.setattr(package_task.packages, "publish", real_publish)
    third = _package(client, user, project_id)
    run_jobs()
    assert _job(client, user, third["id"])["status"] == "finished"
    storage = Path(app.config["QFJOBS_STORAGE_DIR"])
    folders = list((storage / "projects" / project_id / "packages").iterdir())
    assert [item.name for item in folders] == [third["id"]]
