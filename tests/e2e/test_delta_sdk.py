"""Field edits pushed with the official QFieldCloud client, applied by a real
worker, and the changed data downloaded again with the client."""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from qfieldcloud_sdk import sdk

from tests.deltas.helpers import PROJECT_FILES, corpus_deltafile, gpkg_rows
from tests.e2e.stack import BIN, LiveStack, wait_for_job
from tests.helpers import DELTA_PROJECT

pytestmark = pytest.mark.slow


def login(stack: LiveStack) -> sdk.Client:
    created = stack.qfjobs("create-user", "fielder", "--password", "field-pw")
    assert created.returncode == 0, created.stderr
    client = sdk.Client(url=stack.base_url)
    client.login("fielder", "field-pw")
    return client


def test_push_delta_apply_and_download(stack: LiveStack, tmp_path: Path) -> None:
    client = login(stack)
    project = client.create_project("field-edits")
    pid = project["id"]
    local = tmp_path / "local"
    local.mkdir()
    for name in PROJECT_FILES:
        shutil.copy(DELTA_PROJECT / name, local / name)
    client.upload_files(pid, sdk.FileTransferType.PROJECT, str(local), "*")
    [processing] = client.list_jobs(pid, sdk.JobTypes.PROCESS_PROJECTFILE)
    assert wait_for_job(client, processing["id"])["status"] == "finished"

    deltafile = tmp_path / "deltafile.json"
    document = corpus_deltafile("singlelayer_multidelta.json", pid)
    deltafile.write_text(json.dumps(document))
    response = client.push_delta(pid, str(deltafile))
    assert response.status_code == 200  # type: ignore[attr-defined]

    [job] = client.list_jobs(pid, sdk.JobTypes.APPLY_DELTAS)
    status = wait_for_job(client, job["id"])
    assert status["status"] == "finished", json.dumps(status.get("feedback"))
    records = status["feedback"]["outputs"]["apply_deltas"]["delta_feedback"]
    assert [r["status"] for r in records] == ["status_applied"] * 3

    # The CLI pushes the same file again: nothing new, no second job.
    cli = subprocess.run(
        [str(BIN / "qfieldcloud-cli"), "delta-push", pid, str(deltafile)],
        env={
            **stack.env,
            "QFIELDCLOUD_URL": stack.base_url,
            "QFIELDCLOUD_TOKEN": client.token,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert len(client.list_jobs(pid, sdk.JobTypes.APPLY_DELTAS)) == 1

    download = tmp_path / "download"
    client.download_project(pid, str(download), filter_glob="testdata.gpkg")
    rows = gpkg_rows(download / "testdata.gpkg", "points_xy")
    assert rows == {
        1: {"fid": 1, "int": 1, "dbl": 0.1, "str": "str1", "geom": "POINT (666 0)"},
        2: {"fid": 2, "int": 666, "dbl": 0.666, "str": "str666", "geom": "POINT (5 0)"},
        3: {
            "fid": 3,
            "int": 666,
            "dbl": 0.666,
            "str": "str666",
            "geom": "POINT (666 0)",
        },
    }
    # The other files were not touched: the client finds them unchanged.
    remote = {f["name"]: f for f in client.list_remote_files(pid)}
    for name in PROJECT_FILES:
        if name != "testdata.gpkg":
            local_md5 = hashlib.md5((local / name).read_bytes())
            assert remote[name]["md5sum"] == local_md5.hexdigest(), name
