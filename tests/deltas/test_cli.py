"""``qfjobs set-delta-status``: the administrator's way to set deltas aside or back."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.deltas.helpers import corpus_deltafile, new_uuid, push

QFJOBS = Path(sys.executable).with_name("qfjobs")


def qfjobs(app: Flask, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "QFJOBS_DATABASE_URL": str(app.config["QFJOBS_DATABASE_URL"]),
        "QFJOBS_REDIS_URL": str(app.config["QFJOBS_REDIS_URL"]),
        "QFJOBS_STORAGE_DIR": str(app.config["QFJOBS_STORAGE_DIR"]),
    }
    return subprocess.run(
        [str(QFJOBS), *args], env=env, capture_output=True, text=True, timeout=120
    )


def statuses(client: FlaskClient, user: dict[str, Any], pid: str) -> list[str]:
    listed = client.get(f"/api/v1/deltas/{pid}/", headers=user["headers"])
    return [delta["status"] for delta in listed.json]


def test_set_delta_status_command(
    app: Flask,
    client: FlaskClient,
    user: dict[str, Any],
    project_id: str,
    run_jobs: Callable[[], None],
) -> None:
    document = corpus_deltafile("singlelayer_multidelta.json", project_id)
    [job_id] = push(client, user, project_id, document).json["job_ids"]
    first = document["deltas"][0]["uuid"]

    held = qfjobs(app, "set-delta-status", project_id, "ignored", first)
    assert held.returncode == 1
    assert "deltas_in_active_job" in held.stderr
    client.post(f"/api/v1/jobs/{job_id}/stop/", headers=user["headers"])

    one = qfjobs(app, "set-delta-status", project_id, "ignored", first)
    assert one.returncode == 0, one.stderr
    assert "1 deltas set to ignored, 0 already were" in one.stdout
    assert statuses(client, user, project_id) == ["ignored", "pending", "pending"]

    back = qfjobs(
        app, "set-delta-status", project_id, "pending", "--from-status", "ignored"
    )
    assert back.returncode == 0, back.stderr
    assert statuses(client, user, project_id) == ["pending"] * 3
    client.post(f"/api/v1/deltas/apply/{project_id}/", headers=user["headers"])
    run_jobs()
    assert statuses(client, user, project_id) == ["applied"] * 3

    applied = qfjobs(
        app, "set-delta-status", project_id, "pending", "--from-status", "applied"
    )
    assert applied.returncode == 1
    assert "delta_status_not_settable" in applied.stderr
    missing = qfjobs(app, "set-delta-status", new_uuid(), "pending", first)
    assert missing.returncode == 1
    assert "object_not_found" in missing.stderr
    nothing = qfjobs(
        app, "set-delta-status", project_id, "pending", "--from-status", "error"
    )
    assert nothing.returncode == 1
    assert "No deltas" in nothing.stderr
    assert statuses(client, user, project_id) == ["applied"] * 3
