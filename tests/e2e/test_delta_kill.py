"""A worker killed with SIGKILL in the middle of applying a large deltafile.

The stored data file must be exactly as before, the job ``failed`` and its
deltas ``error``; pushing the same deltafile again stores nothing; setting the
deltas back to pending and applying again writes every change exactly once.
"""

import hashlib
import os
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from qfjobs.extensions import get_db
from qfjobs.models import Delta, Deltafile
from tests.deltas.bigdata import create_delta, deltafile, make_points_gpkg, patch_delta
from tests.deltas.helpers import PROJECT_FILES
from tests.e2e.stack import live_stack
from tests.e2e.test_worker_death import horse_of, wait_status
from tests.helpers import DELTA_PROJECT

pytestmark = pytest.mark.slow

ROWS = 50_000
PATCHES = 8_000
CREATES = 1_000
MARKER = 10_000_000


def statuses(app: Flask) -> Counter[str]:
    with app.app_context(), get_db().new_session() as session:
        rows = session.execute(
            select(Delta.last_status, func.count()).group_by(Delta.last_status)
        ).all()
    return Counter({status: count for status, count in rows})


def test_kill_mid_apply_then_apply_again(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    gpkg = make_points_gpkg(tmp_path / "testdata.gpkg", ROWS)
    original = gpkg.read_bytes()
    deltas = [
        patch_delta(fid, fid + MARKER, geometry=True) for fid in range(1, PATCHES + 1)
    ]
    deltas += [create_delta(900_000 + k, 2 * MARKER + k) for k in range(CREATES)]
    work = tmp_path / "work"
    work.mkdir()

    with live_stack(
        database_url, redis_url, tmp_path, env_overrides={"TMPDIR": str(work)}
    ) as stack:
        assert (
            stack.qfjobs("create-user", "killer", "--password", "k-pw").returncode == 0
        )
        http = requests.Session()
        token = http.post(
            f"{stack.base_url}auth/login/",
            data={"username": "killer", "password": "k-pw"},
        ).json()["token"]
        http.headers["Authorization"] = f"Token {token}"
        pid = http.post(f"{stack.base_url}projects/", data={"name": "big"}).json()["id"]
        for name in PROJECT_FILES:
            body = (
                original
                if name == "testdata.gpkg"
                else (DELTA_PROJECT / name).read_bytes()
            )
            response = http.post(
                f"{stack.base_url}files/{pid}/{name}/", files={"file": (name, body)}
            )
            assert response.status_code == 201, response.text
        processing = http.get(
            f"{stack.base_url}jobs/", params={"project_id": pid}
        ).json()["results"][0]
        wait_status(http, stack, processing["id"], {"finished"}, seconds=120)

        payload = deltafile(pid, deltas)
        pushed = http.post(
            f"{stack.base_url}deltas/{pid}/", files={"file": ("d.json", payload)}
        )
        assert pushed.status_code == 200, pushed.text
        assert pushed.json()["stored"] == PATCHES + CREATES
        [job_id] = pushed.json()["job_ids"]

        # Wait until the job writes into its copy of the GeoPackage (its
        # rollback journal appears), freeze the work horse, check that the
        # transaction is still open (SQLite deletes the journal on COMMIT),
        # then kill it.
        pattern = f"qfjobs-{job_id}-*/files/testdata.gpkg-journal"
        deadline = time.monotonic() + 240
        journal = None
        while time.monotonic() < deadline and journal is None:
            journal = next(iter(work.glob(pattern)), None)
            if journal is None:
                time.sleep(0.001)
        assert journal is not None, "the job never started writing"
        horse = horse_of(stack.workers[0])
        os.kill(horse, signal.SIGSTOP)
        assert journal.exists(), "the apply had already committed"
        os.kill(horse, signal.SIGKILL)
        job = wait_status(http, stack, job_id, {"failed", "finished"}, seconds=60)
        assert job["status"] == "failed", "the kill came too late"
        assert job["feedback"]["error_type"] == "WORKER_DIED"

        # The stored file is the uploaded one, byte for byte.
        files = {f["name"]: f for f in http.get(f"{stack.base_url}files/{pid}/").json()}
        assert files["testdata.gpkg"]["version"] == 1
        assert files["testdata.gpkg"]["sha256"] == hashlib.sha256(original).hexdigest()
        stored = http.get(f"{stack.base_url}files/{pid}/testdata.gpkg/").content
        assert stored == original
        assert statuses(app) == Counter({"error": PATCHES + CREATES})

        # Pushing the same deltafile again stores nothing and queues nothing.
        again = http.post(
            f"{stack.base_url}deltas/{pid}/", files={"file": ("d.json", payload)}
        )
        assert again.status_code == 200
        assert again.json()["stored"] == 0
        assert again.json()["job_ids"] == []
        with app.app_context(), get_db().new_session() as session:
            assert session.scalar(select(func.count()).select_from(Delta)) == len(
                deltas
            )
            assert session.scalar(select(func.count()).select_from(Deltafile)) == 1

        # The owner sets them back to pending through the API, then applies.
        ids = [d["uuid"] for d in deltas]
        reset = http.post(
            f"{stack.base_url}deltas/status/{pid}/",
            json={"status": "pending", "delta_ids": ids},
        )
        assert reset.status_code == 200, reset.text
        assert sorted(reset.json()["changed"]) == sorted(ids)
        assert statuses(app) == Counter({"pending": PATCHES + CREATES})

        applied = http.post(f"{stack.base_url}deltas/apply/{pid}/")
        assert applied.status_code == 200
        for apply_job in applied.json()["job_ids"]:
            done = wait_status(
                http, stack, apply_job, {"finished", "failed"}, seconds=300
            )
            assert done["status"] == "finished", done["feedback"]
        assert statuses(app) == Counter({"applied": PATCHES + CREATES})
        twice = http.post(
            f"{stack.base_url}deltas/status/{pid}/",
            json={"status": "pending", "delta_ids": ids},
        )
        assert twice.status_code == 400
        assert twice.json()["code"] == "delta_status_not_settable"

        result = tmp_path / "result.gpkg"
        result.write_bytes(
            http.get(f"{stack.base_url}files/{pid}/testdata.gpkg/").content
        )

    connection = sqlite3.connect(result)
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    ints = Counter(
        value for (value,) in connection.execute("SELECT int FROM points_xy")
    )
    total = connection.execute("SELECT count(*) FROM points_xy").fetchone()[0]
    indexed = connection.execute(
        "SELECT count(*) FROM rtree_points_xy_geom"
    ).fetchone()[0]
    connection.close()
    assert total == ROWS + CREATES
    assert indexed == ROWS + CREATES
    for fid in range(1, PATCHES + 1):
        assert ints[fid + MARKER] == 1
        assert ints[fid] == 0
    for k in range(CREATES):
        assert ints[2 * MARKER + k] == 1
    for fid in range(PATCHES + 1, ROWS + 1):
        assert ints[fid] == 1
