"""The apply engine on copies of the corpus data: geometry edge cases, layers
that cannot be edited, and deltas that fail while the others go on."""

import shutil
from pathlib import Path
from typing import Any

import pytest

from qfjobs.geodata.deltafile import Delta, parse_delta
from qfjobs.geodata.deltas_apply import apply_deltas
from qfjobs.geodata.deltas_results import DeltaStatus
from qfjobs.geodata.edits_target import FileLayer
from tests.deltas.helpers import CLIENT_1, POINTS_XY, gpkg_rows, new_uuid
from tests.helpers import DELTA_PROJECT


@pytest.fixture
def gpkg(tmp_path: Path) -> Path:
    target = tmp_path / "testdata.gpkg"
    shutil.copy(DELTA_PROJECT / "testdata.gpkg", target)
    return target


def make(index: int, method: str, pk: str, **states: Any) -> Delta:
    raw = {
        "uuid": new_uuid(),
        "clientId": CLIENT_1,
        "localPk": pk,
        "sourcePk": pk if method != "create" else "",
        "localLayerId": POINTS_XY,
        "sourceLayerId": POINTS_XY,
        "method": method,
        **states,
    }
    return parse_delta(raw, index)


def layer(gpkg: Path, pk: str | None = "fid") -> dict[str, FileLayer | None]:
    return {POINTS_XY: FileLayer(gpkg, "points_xy", pk, True)}


def test_bad_geometries_fail_alone(gpkg: Path) -> None:
    deltas = [
        make(0, "patch", "1", old={"geometry": "POINT (1 0)"}, new={"geometry": ""}),
        make(1, "patch", "2", old={}, new={"geometry": "POINT (1 2"}),
        make(2, "patch", "3", old={"geometry": "POINT (9 0)"}, new={"geometry": None}),
        make(
            3,
            "patch",
            "1",
            old={"attributes": {"int": 1}},
            new={"attributes": {"int": 5}},
        ),
        make(4, "create", "7", new={"geometry": "POINT (nan 1)", "attributes": {}}),
    ]
    result = apply_deltas(deltas, layer(gpkg), overwrite_conflicts=True)
    statuses = [o.status for o in result.outcomes]
    assert statuses == [
        DeltaStatus.NOT_APPLIED,
        DeltaStatus.NOT_APPLIED,
        DeltaStatus.APPLIED,
        DeltaStatus.APPLIED,
        DeltaStatus.NOT_APPLIED,
    ], [o.message for o in result.outcomes]
    assert "empty string" in result.outcomes[0].message
    assert "Invalid geometry" in result.outcomes[1].message
    rows = gpkg_rows(gpkg, "points_xy")
    assert rows[1]["geom"] == "POINT (1 0)"  # the empty string changed nothing
    assert rows[1]["int"] == 5  # an attribute-only patch keeps the geometry
    assert rows[2]["geom"] == "POINT (5 0)"
    assert rows[3]["geom"] is None  # null clears it
    assert len(rows) == 3


def test_unknown_layer_and_missing_feature_do_not_stop_the_others(gpkg: Path) -> None:
    gone = make(0, "patch", "1", old={}, new={"attributes": {"int": 9}})
    gone = parse_delta({**gone.content, "sourceLayerId": "roads_aaa111"}, 0)
    deltas = [
        gone,
        make(1, "delete", "99", old={"attributes": {}}),
        make(
            2,
            "patch",
            "2",
            old={"attributes": {"int": 2}},
            new={"attributes": {"int": 20}},
        ),
    ]
    result = apply_deltas(deltas, layer(gpkg), overwrite_conflicts=True)
    assert [o.status for o in result.outcomes] == [
        DeltaStatus.NOT_APPLIED,
        DeltaStatus.NOT_APPLIED,
        DeltaStatus.APPLIED,
    ]
    assert result.outcomes[0].message == 'No layer with id "roads_aaa111"'
    assert "Unable to find feature" in result.outcomes[1].message
    assert gpkg_rows(gpkg, "points_xy")[2]["int"] == 20


def test_layer_without_primary_key_is_refused(gpkg: Path) -> None:
    before = gpkg.read_bytes()
    delta = make(0, "patch", "3", old={}, new={"attributes": {"int": 4}})
    result = apply_deltas([delta], layer(gpkg, pk=None), overwrite_conflicts=True)
    [outcome] = result.outcomes
    assert outcome.status is DeltaStatus.NOT_APPLIED
    assert "has no primary key" in outcome.message
    assert gpkg.read_bytes() == before


def test_geometry_conflict_with_overwrite_off_writes_nothing(gpkg: Path) -> None:
    before = gpkg.read_bytes()
    delta = make(
        0,
        "patch",
        "1",
        old={"geometry": "POINT (2 0)", "attributes": {"int": 1}},
        new={"geometry": "POINT (3 0)", "attributes": {"int": 2}},
    )
    result = apply_deltas([delta], layer(gpkg), overwrite_conflicts=False)
    [outcome] = result.outcomes
    assert outcome.status is DeltaStatus.CONFLICT
    assert any("geometry" in c for c in outcome.conflicts)
    assert gpkg.read_bytes() == before


def test_a_refused_create_leaves_nothing_and_a_taken_key_gets_a_new_one(
    gpkg: Path,
) -> None:
    deltas = [
        make(0, "create", "5", new={"attributes": {"fid": 2, "int": "not a number"}}),
        make(1, "create", "6", new={"attributes": {"fid": 2, "int": 60}}),
    ]
    result = apply_deltas(deltas, layer(gpkg), overwrite_conflicts=True)
    first, second = result.outcomes
    assert first.status is DeltaStatus.NOT_APPLIED, first.message
    assert second.status is DeltaStatus.APPLIED
    assert second.modified_pk not in (None, "2")
    rows = gpkg_rows(gpkg, "points_xy")
    assert len(rows) == 4
    assert rows[int(str(second.modified_pk))]["int"] == 60
