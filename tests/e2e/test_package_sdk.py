"""Packages downloaded with the official QFieldCloud client from a live qfjobs."""

import hashlib
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from qfieldcloud_sdk import sdk

from tests.e2e.stack import BIN, LiveStack, wait_for_job
from tests.helpers import DELTA_PROJECT

pytestmark = pytest.mark.slow

FILES = ["project.qgs", "testdata.gpkg", "points.geojson", "polygons.geojson"]


def test_package_download_with_the_sdk_and_cli(
    stack: LiveStack, tmp_path: Path
) -> None:
    created = stack.qfjobs("create-user", "packer", "--password", "field-pw")
    assert created.returncode == 0, created.stderr
    client = sdk.Client(url=stack.base_url)
    client.login("packer", "field-pw")
    project = client.create_project("pkg")
    local = tmp_path / "local"
    local.mkdir()
    for name in [*FILES, "nonspatial.csv"]:
        shutil.copy(DELTA_PROJECT / name, local / name)
    (local / "DCIM").mkdir()
    (local / "DCIM" / "1.jpg").write_bytes(b"photo")
    client.upload_files(project["id"], sdk.FileTransferType.PROJECT, str(local), "*")

    with pytest.raises(Exception, match="(?i)invalid_job|not packaged|400"):
        client.package_latest(project["id"])

    job = client.job_trigger(project["id"], sdk.JobTypes.PACKAGE)
    status = wait_for_job(client, job["id"], seconds=120)
    assert status["status"] == "finished", json.dumps(status.get("feedback"))

    latest = client.package_latest(project["id"])
    assert latest["status"] == "finished"
    assert latest["package_id"] == job["id"]
    listed = {item["name"]: item for item in latest["files"]}
    assert set(listed) == {
        "data.gpkg",
        "project_qfield.qgs",
        "project_qfield_attachments.zip",
        "DCIM/1.jpg",
    }
    assert listed["DCIM/1.jpg"]["is_attachment"] is True

    target = tmp_path / "download"
    client.package_download(project["id"], str(target))
    for name, item in listed.items():
        data = (target / name).read_bytes()
        assert hashlib.md5(data).hexdigest() == item["md5sum"], name
    assert (target / "project_qfield.qgs").read_bytes().startswith(b"<!DOCTYPE qgis")
    with sqlite3.connect(target / "data.gpkg") as conn:
        tables = conn.execute("SELECT count(*) FROM gpkg_contents").fetchone()[0]
    assert tables == 8

    cli = subprocess.run(
        [
            str(BIN / "qfieldcloud-cli"),
            "-U",
            stack.base_url,
            "-u",
            "packer",
            "-p",
            "field-pw",
            "package-download",
            project["id"],
            str(tmp_path / "cli"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": f"{BIN}:/usr/bin:/bin"},
    )
    assert cli.returncode == 0, cli.stderr
    assert (tmp_path / "cli" / "data.gpkg").read_bytes() == (
        target / "data.gpkg"
    ).read_bytes()
