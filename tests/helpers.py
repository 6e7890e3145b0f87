"""Small request helpers shared by the API tests."""

import io
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

DATA_DIR = Path(__file__).parent / "data"
DELTA_PROJECT = DATA_DIR / "qfieldcloud-delta"

MINIMAL_QGS = b"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis projectname="" version="3.34.0-Prizren">
  <projectCrs><spatialrefsys><authid>EPSG:4326</authid></spatialrefsys></projectCrs>
  <projectlayers/>
</qgis>
"""


def new_project(client: FlaskClient, user: dict[str, Any], name: str = "survey") -> str:
    response = client.post(
        "/api/v1/projects/", data={"name": name}, headers=user["headers"]
    )
    assert response.status_code == 201, response.json
    project_id: str = response.json["id"]
    return project_id


def upload(
    client: FlaskClient,
    user: dict[str, Any],
    project_id: str,
    name: str,
    content: bytes,
) -> TestResponse:
    return client.post(
        f"/api/v1/files/{project_id}/{quote(name)}/",
        data={"file": (io.BytesIO(content), name.rsplit("/", 1)[-1])},
        headers=user["headers"],
        content_type="multipart/form-data",
    )


def upload_dir(
    client: FlaskClient, user: dict[str, Any], project_id: str, folder: Path
) -> None:
    """Upload a folder as the client does: QGIS project files last."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    paths.sort(key=lambda p: p.suffix.lower() in (".qgs", ".qgz"))
    for path in paths:
        name = path.relative_to(folder).as_posix()
        response = upload(client, user, project_id, name, path.read_bytes())
        assert response.status_code == 201, (name, response.json)


def job_list(client: FlaskClient, user: dict[str, Any], **params: Any) -> Any:
    response = client.get("/api/v1/jobs/", query_string=params, headers=user["headers"])
    assert response.status_code == 200, response.json
    return response.json


def postgres_layer_project(host: str, port: int) -> bytes:
    """A project with one PostGIS layer on ``host:port`` (to make a job wait)."""
    source = (
        f"dbname='qfjobs' host={host} port={port} user='field' password='s3cret' "
        "sslmode=disable key='id' srid=4326 type=Point "
        'table="public"."trees" (geom)'
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis projectname="" version="3.34.0-Prizren">
  <projectCrs><spatialrefsys><authid>EPSG:4326</authid></spatialrefsys></projectCrs>
  <projectlayers>
    <maplayer type="vector" geometry="Point" wkbType="Point">
      <id>trees_1</id>
      <datasource>{source}</datasource>
      <layername>trees</layername>
      <srs><spatialrefsys><authid>EPSG:4326</authid></spatialrefsys></srs>
      <provider encoding="UTF-8">postgres</provider>
    </maplayer>
  </projectlayers>
</qgis>
""".encode()
