"""The official QFieldCloud client against a live qfjobs."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from qfieldcloud_sdk import sdk

from tests.e2e.stack import BIN, LiveStack, wait_for_job
from tests.helpers import DATA_DIR, DELTA_PROJECT

pytestmark = pytest.mark.slow

EXPECTED_WKB_TYPES = {
    "points_xy": 1,
    "points_xyz": 1001,
    "points_xyzm": 3001,
    "polygons": 3,
    "special_data_types": 100,
    "nonspatial": 100,
}


def login(stack: LiveStack, name: str = "surveyor") -> sdk.Client:
    created = stack.qfjobs("create-user", name, "--password", "field-pw")
    assert created.returncode == 0, created.stderr
    client = sdk.Client(url=stack.base_url)
    client.login(name, "field-pw")
    return client


def copy_project(source: Path, target: Path, names: list[str]) -> Path:
    target.mkdir()
    for name in names:
        shutil.copy(source / name, target / name)
    return target


def test_process_projectfile_through_the_sdk(stack: LiveStack, tmp_path: Path) -> None:
    client = login(stack)
    project = client.create_project("delta", description="e2e")
    local = copy_project(
        DELTA_PROJECT,
        tmp_path / "local",
        [
            "project.qgs",
            "testdata.gpkg",
            "points.geojson",
            "polygons.geojson",
            "nonspatial.csv",
        ],
    )

    client.upload_files(project["id"], sdk.FileTransferType.PROJECT, str(local), "*")
    remote = {f["name"] for f in client.list_remote_files(project["id"])}
    assert remote == {p.name for p in local.iterdir()}

    jobs = client.list_jobs(project["id"], sdk.JobTypes.PROCESS_PROJECTFILE)
    assert len(jobs) >= 1
    status = wait_for_job(client, jobs[0]["id"])
    assert status["status"] == "finished", json.dumps(status.get("feedback"), indent=1)

    details = client.get_project(project["id"])["project_details"]
    layers = details["layers_by_id"]
    assert len(layers) == 8
    assert all(layer["is_valid"] for layer in layers.values())
    assert all(layer["error_code"] == "no_error" for layer in layers.values())
    by_name = {layer["name"]: layer for layer in layers.values()}
    for name, wkb_type in EXPECTED_WKB_TYPES.items():
        assert by_name[name]["wkb_type"] == wkb_type, name
    assert details["crs"] == "EPSG:4326"


def test_broken_xml_fails_with_the_parse_error(
    stack: LiveStack, tmp_path: Path
) -> None:
    client = login(stack)
    project = client.create_project("broken")
    local = copy_project(
        DATA_DIR / "qfieldcloud-broken_xml",
        tmp_path / "local",
        ["broken.qgs", "points.geojson", "polygons.geojson"],
    )
    client.upload_files(project["id"], sdk.FileTransferType.PROJECT, str(local), "*")

    job = client.list_jobs(project["id"], sdk.JobTypes.PROCESS_PROJECTFILE)[0]
    status = wait_for_job(client, job["id"])
    assert status["status"] == "failed"
    assert status["feedback"]["error_type"] == "INVALID_PROJECT_FILE"
    assert "line 20" in status["feedback"]["error"]
    assert client.get_project(project["id"])["status"] == "failed"


def test_cli_job_commands(stack: LiveStack, tmp_path: Path) -> None:
    client = login(stack, "cli-user")
    project = client.create_project("cli")
    local = copy_project(
        DELTA_PROJECT, tmp_path / "local", ["project.qgs", "points.geojson"]
    )
    client.upload_files(project["id"], sdk.FileTransferType.PROJECT, str(local), "*")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(BIN / "qfieldcloud-cli"),
                "-U",
                stack.base_url,
                "-u",
                "cli-user",
                "-p",
                "field-pw",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": f"{BIN}:/usr/bin:/bin"},
        )

    listed = cli("--json", "list-jobs", project["id"])
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)
    assert [job["type"] for job in jobs] == ["process_projectfile"]

    triggered = cli("--json", "job-trigger", project["id"], "process_projectfile")
    assert triggered.returncode == 0, triggered.stderr
    job_id = json.loads(triggered.stdout)["id"]
    status = wait_for_job(client, job_id)
    assert status["status"] == "finished"

    shown = cli("job-status", job_id)
    assert "finished" in shown.stderr + shown.stdout
