"""The QFieldCloud corpus deltafiles, pushed through the API and applied by the
real ``delta_apply`` job; the resulting data is read back value by value."""

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.deltas.helpers import corpus_deltafile, download, gpkg_rows, push

ORIGINAL_XY = {
    1: {"fid": 1, "int": 1, "dbl": 0.1, "str": "str1", "geom": "POINT (1 0)"},
    2: {"fid": 2, "int": 2, "dbl": 0.2, "str": "str2", "geom": "POINT (5 0)"},
    3: {"fid": 3, "int": 3, "dbl": 0.3, "str": "str3", "geom": "POINT (9 0)"},
}


class Session:
    """Push corpus deltafiles to one project and read the outcome back."""

    def __init__(
        self,
        client: FlaskClient,
        user: dict[str, Any],
        pid: str,
        run_jobs: Callable[[], None],
        tmp: Path,
    ) -> None:
        self.client, self.user, self.pid = client, user, pid
        self.run_jobs, self.tmp = run_jobs, tmp

    def apply(self, *names: str) -> list[dict[str, Any]]:
        """Push each deltafile, run the jobs; the deltas of these files."""
        ids: list[str] = []
        for name in names:
            document = corpus_deltafile(name, self.pid)
            response = push(self.client, self.user, self.pid, document)
            assert response.status_code == 200, response.json
            ids += [delta["uuid"] for delta in document["deltas"]]
            self.run_jobs()
        listed = self.deltas()
        by_id = {delta["id"]: delta for delta in listed}
        return [by_id[delta_id] for delta_id in ids]

    def deltas(self) -> list[dict[str, Any]]:
        response = self.client.get(
            f"/api/v1/deltas/{self.pid}/",
            query_string={"limit": 1000},
            headers=self.user["headers"],
        )
        assert response.status_code == 200
        return list(response.json)

    def rows(self, table: str) -> dict[int, dict[str, Any]]:
        path = download(self.client, self.user, self.pid, "testdata.gpkg", self.tmp)
        return gpkg_rows(path, table)

    def text(self, name: str) -> str:
        return download(self.client, self.user, self.pid, name, self.tmp).read_text()

    def files(self) -> dict[str, dict[str, Any]]:
        response = self.client.get(
            f"/api/v1/files/{self.pid}/", headers=self.user["headers"]
        )
        return {row["name"]: row for row in response.json}

    def jobs(self) -> list[dict[str, Any]]:
        response = self.client.get(
            "/api/v1/jobs/",
            query_string={"project_id": self.pid, "type": "delta_apply"},
            headers=self.user["headers"],
        )
        jobs = []
        for summary in response.json["results"]:
            jobs.append(
                self.client.get(
                    f"/api/v1/jobs/{summary['id']}/", headers=self.user["headers"]
                ).json
            )
        return jobs


@pytest.fixture
def fresh(
    client: FlaskClient,
    user: dict[str, Any],
    project_id: str,
    run_jobs: Callable[[], None],
    tmp_path: Path,
) -> Session:
    return Session(client, user, project_id, run_jobs, tmp_path)


def set_overwrite(fresh: "Session", value: bool) -> None:
    response = fresh.client.patch(
        f"/api/v1/projects/{fresh.pid}/",
        json={"overwrite_conflicts": value},
        headers=fresh.user["headers"],
    )
    assert response.status_code == 200, response.json
    assert response.json["overwrite_conflicts"] is value


def updated_at(fresh: "Session") -> str | None:
    response = fresh.client.get(
        f"/api/v1/projects/{fresh.pid}/", headers=fresh.user["headers"]
    )
    value: str | None = response.json["data_last_updated_at"]
    return value


def statuses(deltas: list[dict[str, Any]]) -> list[str]:
    return [delta["status"] for delta in deltas]


def test_single_patch_changes_one_value_and_only_the_gpkg(fresh: Session) -> None:
    before = fresh.files()
    [delta] = fresh.apply("singlelayer_singledelta.json")
    assert delta["status"] == "applied", delta["output"]
    assert delta["last_modified_pk"] == "1"
    assert delta["output"]["status"] == "status_applied"
    assert fresh.rows("points_xy") == {**ORIGINAL_XY, 1: {**ORIGINAL_XY[1], "int": 666}}

    after = fresh.files()
    assert after["testdata.gpkg"]["version"] == before["testdata.gpkg"]["version"] + 1
    assert after["testdata.gpkg"]["sha256"] != before["testdata.gpkg"]["sha256"]
    for name in ("points.geojson", "polygons.geojson", "nonspatial.csv"):
        assert after[name] == before[name]

    [job] = fresh.jobs()
    assert job["status"] == "finished"
    [record] = job["feedback"]["outputs"]["apply_deltas"]["delta_feedback"]
    assert record["delta_id"] == delta["id"]
    assert record["status"] == "status_applied"
    assert f"{job['id']}: delta 0 {delta['id']} patch applied" in job["output"]


def test_project_needs_repackaging_after_an_applied_delta(fresh: Session) -> None:
    before = updated_at(fresh)
    fresh.apply("singlelayer_singledelta.json")
    after = updated_at(fresh)
    assert after is not None
    assert before is None or after > before


def test_repeated_push_is_applied_once(fresh: Session) -> None:
    first = fresh.apply("singlelayer_singledelta.json")
    version = fresh.files()["testdata.gpkg"]["version"]
    second = fresh.apply("singlelayer_singledelta.json")
    assert first[0]["id"] == second[0]["id"]
    assert statuses(fresh.deltas()) == ["applied"]
    assert len(fresh.jobs()) == 1
    assert fresh.files()["testdata.gpkg"]["version"] == version
    assert fresh.rows("points_xy")[1]["int"] == 666


def test_conflict_with_overwrite_on_is_applied_and_reported(fresh: Session) -> None:
    [delta] = fresh.apply("singlelayer_singledelta_conflict.json")
    assert delta["status"] == "applied"
    assert delta["output"]["conflicts"] == [
        'Conflict on attribute "int": the data has 1, the device had 134'
    ]
    assert fresh.rows("points_xy")[1]["int"] == 666


def test_conflict_with_overwrite_off_writes_nothing(app: Flask, fresh: Session) -> None:
    set_overwrite(fresh, False)
    before = fresh.files()["testdata.gpkg"]
    [delta] = fresh.apply("singlelayer_singledelta_conflict2.json")
    assert delta["status"] == "conflict"
    assert delta["output"]["status"] == "status_conflict"
    assert delta["output"]["e_type"] == "CONFLICT"
    assert fresh.rows("points_xy") == ORIGINAL_XY
    assert fresh.files()["testdata.gpkg"] == before


def test_multistage_creates_patches_and_deletes_of_two_clients(
    fresh: Session,
) -> None:
    created = fresh.apply(
        "multistage_p1_c1_create.json", "multistage_p2_c2_create.json"
    )
    assert statuses(created) == ["applied", "applied"]
    assert [d["last_modified_pk"] for d in created] == ["1000", "2000"]
    rows = fresh.rows("points_xy")
    assert rows[1000] == {
        "fid": 1000,
        "int": 1000,
        "dbl": None,
        "str": None,
        "geom": None,
    }
    assert rows[2000]["int"] == 2000

    patched = fresh.apply("multistage_p3_c1_patch.json", "multistage_p4_c2_patch.json")
    assert statuses(patched) == ["applied", "applied"]
    assert [d["last_modified_pk"] for d in patched] == ["1000", "2000"]
    rows = fresh.rows("points_xy")
    assert (rows[1000]["int"], rows[2000]["int"]) == (1001, 2002)
    assert {k: rows[k] for k in (1, 2, 3)} == ORIGINAL_XY

    deleted = fresh.apply(
        "multistage_p5_c1_delete.json", "multistage_p6_c2_delete.json"
    )
    assert statuses(deleted) == ["applied", "applied"]
    assert fresh.rows("points_xy") == ORIGINAL_XY


def test_create_modify_delete_across_gpkg_and_geojson(fresh: Session) -> None:
    assert statuses(fresh.apply("multilayer_multidelta_create.json")) == [
        "applied",
        "applied",
    ]
    points = json.loads(fresh.text("points.geojson"))
    created = [f for f in points["features"] if f["properties"]["fid"] == 2000]
    assert len(created) == 1
    assert created[0]["properties"]["int"] == 2000
    assert created[0]["geometry"] == {"type": "Point", "coordinates": [666, 0]}
    assert fresh.rows("points_xy")[1000]["int"] == 1000

    assert statuses(fresh.apply("multilayer_multidelta_modify.json")) == [
        "applied",
        "applied",
    ]
    points = json.loads(fresh.text("points.geojson"))
    [changed] = [f for f in points["features"] if f["properties"]["fid"] == 2000]
    assert changed["properties"]["int"] == 2002
    assert changed["geometry"]["coordinates"] == [777, 0]
    assert fresh.rows("points_xy")[1000]["int"] == 1001

    deleted = fresh.apply("multilayer_multidelta_delete.json")
    # The delete's old geometry (666 0) no longer matches (777 0): with
    # overwrite on it is applied anyway and the conflict is reported.
    assert statuses(deleted) == ["applied", "applied"]
    assert any("geometry" in c for c in deleted[1]["output"]["conflicts"])
    points = json.loads(fresh.text("points.geojson"))
    assert sorted(f["properties"]["fid"] for f in points["features"]) == [1, 2, 3]
    assert 1000 not in fresh.rows("points_xy")


def test_attributes_and_polygon_geometry_on_two_layers(fresh: Session) -> None:
    assert statuses(fresh.apply("multilayer_multidelta.json")) == ["applied"] * 2
    assert fresh.rows("points_xy")[2] == {
        "fid": 2,
        "int": 666,
        "dbl": 0.666,
        "str": "str666",
        "geom": "POINT (5 0)",
    }
    assert fresh.rows("polygons")[1] == {
        "fid": 1,
        "int": 777,
        "dbl": 0.777,
        "str": "str777",
        "geom": "POLYGON ((666 666, 5 2, 5 5, 2 5, 666 666))",
    }


def test_geometry_only_and_mixed_patches(fresh: Session) -> None:
    assert statuses(fresh.apply("singlelayer_multidelta.json")) == ["applied"] * 3
    rows = fresh.rows("points_xy")
    assert rows[1] == {**ORIGINAL_XY[1], "geom": "POINT (666 0)"}
    assert rows[2] == {**ORIGINAL_XY[2], "int": 666, "dbl": 0.666, "str": "str666"}
    assert rows[3] == {
        "fid": 3,
        "int": 666,
        "dbl": 0.666,
        "str": "str666",
        "geom": "POINT (666 0)",
    }


@pytest.mark.parametrize(
    ("name", "table", "patched", "created"),
    [
        (
            "singlelayer_multidelta_delta_with_xy_for_xyz_layer.json",
            "points_xyz",
            "POINT Z (666 0 0)",
            "POINT Z (777 0 0)",
        ),
        (
            "singlelayer_multidelta_delta_with_xyz_for_xyz_layer.json",
            "points_xyz",
            "POINT Z (666 0 0)",
            "POINT Z (777 0 0)",
        ),
        (
            "singlelayer_multidelta_delta_with_xyz_nan_for_xyz_layer.json",
            "points_xyz",
            "POINT Z (666 0 0)",
            "POINT Z (777 0 0)",
        ),
        (
            "singlelayer_multidelta_delta_with_xy_for_xyzm_layer.json",
            "points_xyzm",
            "POINT ZM (666 0 0 0)",
            "POINT ZM (777 0 0 0)",
        ),
        (
            "singlelayer_multidelta_delta_with_xyz_nan_for_xyzm_layer.json",
            "points_xyzm",
            "POINT ZM (666 0 0 0)",
            "POINT ZM (777 0 0 0)",
        ),
        (
            "singlelayer_multidelta_delta_with_xyzm_nan_for_xyzm_layer.json",
            "points_xyzm",
            "POINT ZM (666 0 0 0)",
            "POINT ZM (777 0 0 0)",
        ),
        (
            "singlelayer_multidelta_delta_with_xyzm_nannan_for_xyzm_layer.json",
            "points_xyzm",
            "POINT ZM (666 0 0 0)",
            "POINT ZM (777 0 0 0)",
        ),
    ],
)
def test_xy_xyz_xyzm_geometries(
    fresh: Session, name: str, table: str, patched: str, created: str
) -> None:
    deltas = fresh.apply(name)
    assert statuses(deltas) == ["applied", "applied"], [d["output"] for d in deltas]
    rows = fresh.rows(table)
    assert rows[1]["geom"] == patched
    new_pk = int(deltas[1]["last_modified_pk"])
    assert rows[new_pk] == {
        "fid": new_pk,
        "int": 666,
        "dbl": 0.666,
        "str": "str666",
        "geom": created,
    }
    assert rows[2]["geom"] == "POINT Z (5 0 0)" if table == "points_xyz" else True


def test_special_data_types_do_not_conflict(app: Flask, fresh: Session) -> None:
    set_overwrite(fresh, False)
    deltas = fresh.apply("special_data_types.json")
    assert statuses(deltas) == ["applied", "applied"], [d["output"] for d in deltas]
    rows = fresh.rows("special_data_types")
    assert rows[1]["col_date"] == "2024-03-23"
    assert rows[1]["col_datetime"] == "2024-03-23T01:23:45"
    assert bytes(rows[1]["col_binary"]) == b"bar"
    assert rows[2]["col_date"] == "2025-04-24"
    assert rows[2]["col_datetime"] == "2024-03-23T12:34:56"
    assert bytes(rows[2]["col_binary"]) == b"2025-04-24"


def test_nonspatial_csv(fresh: Session) -> None:
    deltas = fresh.apply("nonspatial.json")
    assert statuses(deltas) == ["applied"] * 3
    # The third delta expects col1="bar" but finds "foo": applied, reported.
    assert deltas[2]["output"]["conflicts"]
    assert fresh.text("nonspatial.csv") == 'fid,col1\n"1",qux\n"2",newfeature\n'


def test_empty_string_geometry_on_a_nonspatial_layer(fresh: Session) -> None:
    [delta] = fresh.apply("nonspatial_geom_empty_str.json")
    assert delta["status"] == "applied", delta["output"]
    rows = list(csv.reader(io.StringIO(fresh.text("nonspatial.csv"))))
    assert rows == [["fid", "col1"], ["1", "new_value"]]


def test_empty_source_layer_id_falls_back_to_local(fresh: Session) -> None:
    [delta] = fresh.apply("singlelayer_singledelta_empty_source_layer_id.json")
    assert delta["status"] == "applied"
    assert fresh.rows("points_xy")[1]["int"] == 666


def test_nul_value_is_stored_empty(fresh: Session) -> None:
    [delta] = fresh.apply("singlelayer_singledelta_null.json")
    assert delta["status"] == "applied"
    assert fresh.rows("points_xy")[1]["str"] == ""
