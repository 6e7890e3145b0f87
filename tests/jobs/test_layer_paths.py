"""Layer records name files by their path in the project, never a worker folder.

Jobs read the project from a temporary folder (``qfjobs-<job id>-...``);
``project_details``, the package's layer records and every job's output and
feedback must not show it. Projects at the root and in a sub-folder.
"""

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from tests.deltas.helpers import PROJECT_FILES, corpus_deltafile, push
from tests.helpers import DELTA_PROJECT, new_project, upload
from tests.qgis import datagen

#: A job's work folder, or the staging folder of read-only copies.
WORKER_FOLDER = re.compile(r"qfjobs-(?:[0-9a-f]{8}-[0-9a-f-]{27}|stage)")

SUB_PROJECT = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis projectname="" version="3.34.0-Prizren">
  <projectCrs><spatialrefsys><authid>EPSG:4326</authid></spatialrefsys></projectCrs>
  <projectlayers>{layers}</projectlayers>
</qgis>
"""
SUB_LAYERS = {
    "here": "./data.gpkg|layername=here",
    "nested": "./more/nested.gpkg|layername=nested",
    "above": "../top.gpkg|layername=top",
    "missing": "./missing.gpkg|layername=x",
    "outside": "../../outside.gpkg|layername=x",
    "broken": "./broken.gpkg|layername=x",
}


def layer_xml(name: str, datasource: str) -> str:
    return (
        f'<maplayer type="vector" geometry="Point"><id>{name}</id>'
        f"<layername>{name}</layername><provider>ogr</provider>"
        f"<datasource>{datasource}</datasource></maplayer>"
    )


def gpkg_bytes(tmp_path: Path, layer: str) -> bytes:
    path = tmp_path / f"{layer}.gpkg"
    datagen.write_vector(
        path,
        ["POINT(1 2)"],
        {"fid": [1], "name": ["a"]},
        driver="GPKG",
        layer=layer,
        geometry_type="Point",
    )
    return path.read_bytes()


def get(client: FlaskClient, user: dict[str, Any], url: str) -> Any:
    response = client.get(url, headers=user["headers"])
    assert response.status_code == 200, (url, response.json)
    return response.json


def all_answers(client: FlaskClient, user: dict[str, Any], pid: str) -> list[Any]:
    """Every answer that shows layer records, job output or feedback."""
    jobs = get(client, user, f"/api/v1/jobs/?project_id={pid}&limit=100")["results"]
    assert jobs and {job["status"] for job in jobs} == {"finished"}, jobs
    return [
        get(client, user, f"/api/v1/projects/{pid}/"),
        get(client, user, f"/api/v1/packages/{pid}/latest/"),
        get(client, user, f"/api/v1/deltas/{pid}/"),
        *(get(client, user, f"/api/v1/jobs/{job['id']}/") for job in jobs),
    ]


def assert_no_worker_folder(answers: list[Any]) -> None:
    text = json.dumps(answers)
    assert WORKER_FOLDER.search(text) is None, WORKER_FOLDER.search(text)
    assert f"{tempfile.gettempdir()}/qfjobs" not in text


def filenames(layers_by_id: dict[str, Any]) -> dict[str, str]:
    return {record["name"]: record["filename"] for record in layers_by_id.values()}


def package(client: FlaskClient, user: dict[str, Any], pid: str) -> None:
    response = client.post(
        "/api/v1/jobs/",
        data={"project_id": pid, "type": "package"},
        headers=user["headers"],
    )
    assert response.status_code == 201, response.json


def test_root_project_layers_name_files_as_the_project_does(
    client: FlaskClient, make_user, run_jobs
) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    for name in PROJECT_FILES:
        upload(client, alice, pid, name, (DELTA_PROJECT / name).read_bytes())
    run_jobs()
    package(client, alice, pid)
    run_jobs()
    document = corpus_deltafile("singlelayer_multidelta.json", pid)
    assert push(client, alice, pid, document).status_code == 200
    run_jobs()

    details = get(client, alice, f"/api/v1/projects/{pid}/")["project_details"]
    files = set(filenames(details["layers_by_id"]).values())
    assert files == {
        "nonspatial.csv",
        "points.geojson",
        "polygons.geojson",
        "testdata.gpkg",
    }
    latest = get(client, alice, f"/api/v1/packages/{pid}/latest/")
    assert set(filenames(latest["layers"]).values()) == files
    answers = all_answers(client, alice, pid)
    packaged = [
        job["feedback"]["outputs"]["qfield_layer_data"]["layers_by_id"]
        for job in answers[3:]
        if job["type"] == "package"
    ]
    assert set(filenames(packaged[0]).values()) == {"data.gpkg"}
    assert_no_worker_folder(answers)


def test_sub_folder_project_layers_name_files_from_the_project_root(
    client: FlaskClient, make_user, run_jobs, tmp_path: Path
) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    layers = "".join(layer_xml(name, source) for name, source in SUB_LAYERS.items())
    uploads = {
        "sub/data.gpkg": gpkg_bytes(tmp_path, "here"),
        "sub/more/nested.gpkg": gpkg_bytes(tmp_path, "nested"),
        "top.gpkg": gpkg_bytes(tmp_path, "top"),
        "sub/broken.gpkg": b"not a GeoPackage" * 20,
        "sub/project.qgs": SUB_PROJECT.format(layers=layers).encode(),
    }
    for name, content in uploads.items():
        assert upload(client, alice, pid, name, content).status_code == 201
    run_jobs()
    package(client, alice, pid)
    run_jobs()

    expected = {
        "here": "sub/data.gpkg",
        "nested": "sub/more/nested.gpkg",
        "above": "top.gpkg",
        "missing": "sub/missing.gpkg",
        "outside": "../../outside.gpkg",
        "broken": "sub/broken.gpkg",
    }
    details = get(client, alice, f"/api/v1/projects/{pid}/")["project_details"]
    records = {record["name"]: record for record in details["layers_by_id"].values()}
    assert filenames(details["layers_by_id"]) == expected
    assert records["missing"]["error_summary"] == 'File "missing.gpkg" missing.'
    assert "broken.gpkg" in records["broken"]["error_message"]
    latest = get(client, alice, f"/api/v1/packages/{pid}/latest/")
    assert filenames(latest["layers"]) == expected
    assert_no_worker_folder(all_answers(client, alice, pid))
