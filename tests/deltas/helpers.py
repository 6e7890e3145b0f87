"""Helpers of the delta tests: corpus deltafiles, pushes, and reading data back."""

import io
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from qfjobs.geodata.edits_blobs import decode_gpkg
from qfjobs.geodata.edits_wkt import to_wkt
from tests.helpers import DELTA_PROJECT, upload

DELTAS_DIR = DELTA_PROJECT / "deltas"
#: The project files of ``tests/data/qfieldcloud-delta`` (without ``deltas/``).
PROJECT_FILES = (
    "nonspatial.csv",
    "points.geojson",
    "polygons.geojson",
    "testdata.gpkg",
    "project.qgs",
)
POINTS_XY = "points_xy_897d5ed7_b810_4624_abe3_9f7c0a93d6a1"
CLIENT_1 = "cd517e24-a520-4021-8850-e5af70e3a612"


def corpus_deltafile(name: str, project_id: str) -> dict[str, Any]:
    """A corpus deltafile, with its project id set to ``project_id``."""
    document: dict[str, Any] = json.loads((DELTAS_DIR / name).read_text("utf-8"))
    document["project"] = project_id
    return document


def push(
    client: FlaskClient,
    user: dict[str, Any],
    project_id: str,
    document: dict[str, Any] | bytes,
) -> TestResponse:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    return client.post(
        f"/api/v1/deltas/{project_id}/",
        data={"file": (io.BytesIO(data), "deltafile.json")},
        headers=user["headers"],
        content_type="multipart/form-data",
    )


def upload_project(
    client: FlaskClient,
    user: dict[str, Any],
    project_id: str,
    files: tuple[str, ...] = PROJECT_FILES,
) -> None:
    for name in files:
        response = upload(
            client, user, project_id, name, (DELTA_PROJECT / name).read_bytes()
        )
        assert response.status_code == 201, response.json


def download(
    client: FlaskClient, user: dict[str, Any], project_id: str, name: str, to: Path
) -> Path:
    response = client.get(
        f"/api/v1/files/{project_id}/{name}/", headers=user["headers"]
    )
    assert response.status_code == 200, response.json
    target = to / name
    target.write_bytes(response.data)
    return target


def gpkg_rows(path: Path, table: str) -> dict[int, dict[str, Any]]:
    """``fid`` → attributes and ``geom`` as WKT (None for no geometry)."""
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        geometry = connection.execute(
            "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?",
            (table,),
        ).fetchone()
        rows = connection.execute(f'SELECT * FROM "{table}" ORDER BY fid').fetchall()
    finally:
        connection.close()
    result: dict[int, dict[str, Any]] = {}
    for row in rows:
        values = dict(row)
        if geometry is not None:
            blob = values.pop(geometry[0])
            shape = decode_gpkg(blob) if blob is not None else None
            values["geom"] = to_wkt(shape) if shape is not None else None
        result[int(values["fid"])] = values
    return result


def new_uuid() -> str:
    return str(uuid.uuid4())
