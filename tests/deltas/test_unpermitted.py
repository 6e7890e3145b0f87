"""``unpermitted``: deltas the QGIS project does not let field users make.

The project of ``tests/data/qfieldcloud-delta`` with its ``points_xy`` layer
made read-only, removed from packages, or with locked geometries.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from lxml import etree

from tests.deltas.helpers import (
    POINTS_XY,
    PROJECT_FILES,
    corpus_deltafile,
    download,
    gpkg_rows,
    push,
    upload_project,
)
from tests.helpers import DELTA_PROJECT, new_project, upload

POLYGONS = "polygons_f18b6046_8e46_4206_a698_641c58e5ac73"
ORIGINAL = (DELTA_PROJECT / "project.qgs").read_bytes()


def project_with(layer_id: str, *, read_only: bool = False, **props: str) -> bytes:
    """``project.qgs`` with one layer flagged read-only or given QFieldSync
    custom properties."""
    root = etree.fromstring(ORIGINAL)
    [layer] = root.xpath("//projectlayers/maplayer[id=$id]", id=layer_id)
    if read_only:
        layer.set("readOnly", "1")
    if props:
        custom = layer.find("customproperties")
        assert custom is not None
        custom.clear()
        options = etree.SubElement(custom, "Option", type="Map")
        for key, value in props.items():
            etree.SubElement(
                options, "Option", name=f"QFieldSync/{key}", type="QString", value=value
            )
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def start_project(
    client: FlaskClient,
    user: dict[str, Any],
    run_jobs: Callable[[], None],
    qgs: bytes,
) -> str:
    pid = new_project(client, user, "restricted")
    upload_project(client, user, pid, tuple(n for n in PROJECT_FILES if "qgs" not in n))
    assert upload(client, user, pid, "project.qgs", qgs).status_code == 201
    run_jobs()
    return pid


def listed(client: FlaskClient, user: dict[str, Any], pid: str) -> list[Any]:
    response = client.get(f"/api/v1/deltas/{pid}/", headers=user["headers"])
    return list(response.json)


def points(client: FlaskClient, user: dict[str, Any], pid: str, tmp: Path) -> Any:
    return gpkg_rows(download(client, user, pid, "testdata.gpkg", tmp), "points_xy")


@pytest.mark.parametrize(
    ("qgs", "expected"),
    [
        (project_with(POINTS_XY, read_only=True), "is read-only in the QGIS project"),
        (
            project_with(POINTS_XY, cloud_action="remove"),
            'cloud action is "remove"',
        ),
    ],
    ids=["read_only", "cloud_action_remove"],
)
def test_deltas_on_a_layer_field_users_may_not_edit_are_unpermitted(
    client: FlaskClient,
    user: dict[str, Any],
    run_jobs: Callable[[], None],
    tmp_path: Path,
    qgs: bytes,
    expected: str,
) -> None:
    pid = start_project(client, user, run_jobs, qgs)
    before = points(client, user, pid, tmp_path)
    document = corpus_deltafile("multilayer_multidelta.json", pid)
    [job_id] = push(client, user, pid, document).json["job_ids"]
    run_jobs()

    point, polygon = listed(client, user, pid)
    assert point["status"] == "unpermitted"
    assert expected in point["output"]["msg"]
    assert point["output"]["status"] == "status_unpermitted"
    assert point["last_modified_pk"] is None
    assert polygon["status"] == "applied"
    assert points(client, user, pid, tmp_path) == before
    job = client.get(f"/api/v1/jobs/{job_id}/", headers=user["headers"]).json
    assert job["status"] == "finished"
    summary = job["feedback"]["outputs"]["apply_deltas"]["summary"]
    assert summary["unpermitted"] == 1 and summary["applied"] == 1
    assert any(
        "unpermitted" in line and job_id in line for line in job["output"].splitlines()
    )

    # The owner makes the layer editable and sets the delta back to pending:
    # it is applied, once.
    assert upload(client, user, pid, "project.qgs", ORIGINAL).status_code == 201
    run_jobs()
    reset = client.post(
        f"/api/v1/deltas/status/{pid}/",
        json={"status": "pending", "delta_ids": [point["id"]]},
        headers=user["headers"],
    )
    assert reset.status_code == 200, reset.json
    client.post(f"/api/v1/deltas/apply/{pid}/", headers=user["headers"])
    run_jobs()
    assert [d["status"] for d in listed(client, user, pid)] == ["applied"] * 2
    after = points(client, user, pid, tmp_path)
    assert after[2]["int"] == 666 and after[2]["str"] == "str666"
    assert {fid: row for fid, row in after.items() if fid != 2} == {
        fid: row for fid, row in before.items() if fid != 2
    }


def test_locked_geometries_refuse_geometry_patches_only(
    client: FlaskClient,
    user: dict[str, Any],
    run_jobs: Callable[[], None],
    tmp_path: Path,
) -> None:
    qgs = project_with(POINTS_XY, is_geometry_locked="true")
    pid = start_project(client, user, run_jobs, qgs)
    before = points(client, user, pid, tmp_path)
    push(client, user, pid, corpus_deltafile("singlelayer_multidelta.json", pid))
    run_jobs()

    geometry, attributes, both = listed(client, user, pid)
    assert geometry["status"] == "unpermitted"
    assert "locked" in geometry["output"]["msg"]
    assert attributes["status"] == "applied"
    # A patch changing geometry and attributes is refused whole.
    assert both["status"] == "unpermitted"
    after = points(client, user, pid, tmp_path)
    assert after[1] == before[1]
    assert after[3] == before[3]
    assert after[2]["int"] == 666


def test_other_layers_and_unrestricted_projects_are_untouched(
    client: FlaskClient,
    user: dict[str, Any],
    run_jobs: Callable[[], None],
) -> None:
    # Read-only polygons do not restrict points.
    qgs = project_with(POLYGONS, read_only=True)
    root = etree.fromstring(qgs)
    [layer] = root.xpath("//projectlayers/maplayer[id=$id]", id=POINTS_XY)
    assert layer.get("readOnly") == "0"
    pid = start_project(client, user, run_jobs, qgs)
    push(client, user, pid, corpus_deltafile("singlelayer_multidelta.json", pid))
    run_jobs()
    assert [d["status"] for d in listed(client, user, pid)] == ["applied"] * 3
