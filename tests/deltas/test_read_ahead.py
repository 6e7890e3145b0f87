"""Features read ahead for the conflict check are never stale.

The engine reads the features of the next deltas in a few queries
(``read_ahead``); each delta must still compare its ``old`` values with what
the data holds when its turn comes: after earlier deltas of the same run
changed, deleted or re-created the feature, and when a trigger of the data
changes other rows.
"""

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from qfjobs.geodata.deltafile import Delta, parse_delta
from qfjobs.geodata.deltas_apply import apply_deltas
from qfjobs.geodata.deltas_results import DeltaStatus
from qfjobs.geodata.edits_sqlfuncs import register_gpkg_functions
from qfjobs.geodata.edits_target import FileLayer
from tests.deltas.helpers import CLIENT_1, POINTS_XY, gpkg_rows, new_uuid
from tests.helpers import DELTA_PROJECT


@pytest.fixture
def gpkg(tmp_path: Path) -> Path:
    target = tmp_path / "testdata.gpkg"
    shutil.copy(DELTA_PROJECT / "testdata.gpkg", target)
    return target


def patch(index: int, fid: int, old: dict[str, Any], new: dict[str, Any]) -> Delta:
    return parse_delta(
        {
            "uuid": new_uuid(),
            "clientId": CLIENT_1,
            "localPk": str(fid),
            "sourcePk": str(fid),
            "localLayerId": POINTS_XY,
            "sourceLayerId": POINTS_XY,
            "method": "patch",
            "old": {"attributes": old},
            "new": {"attributes": new},
        },
        index,
    )


def apply(gpkg: Path, deltas: list[Delta]) -> list[DeltaStatus]:
    layer = FileLayer(gpkg, "points_xy", "fid", True)
    result = apply_deltas(deltas, {POINTS_XY: layer}, overwrite_conflicts=False)
    return [outcome.status for outcome in result.outcomes]


def test_a_feature_changed_earlier_in_the_run_is_read_again(gpkg: Path) -> None:
    deltas = [
        patch(0, 1, {"int": 1}, {"int": 10}),
        # Expects the value the first delta wrote: no conflict.
        patch(1, 1, {"int": 10}, {"int": 11}),
        # Expects the value before the run: a conflict, nothing written.
        patch(2, 1, {"int": 1}, {"int": 99}),
        patch(3, 2, {"int": 2}, {"int": 20}),
    ]
    assert apply(gpkg, deltas) == [
        DeltaStatus.APPLIED,
        DeltaStatus.APPLIED,
        DeltaStatus.CONFLICT,
        DeltaStatus.APPLIED,
    ]
    rows = gpkg_rows(gpkg, "points_xy")
    assert rows[1]["int"] == 11
    assert rows[2]["int"] == 20


def test_a_deleted_feature_is_not_found_from_the_read_ahead(gpkg: Path) -> None:
    content = {**patch(0, 3, {"int": 3}, {}).content, "method": "delete"}
    del content["new"]
    delete = parse_delta(content, 0)
    deltas = [delete, patch(1, 3, {"int": 3}, {"int": 30})]
    assert apply(gpkg, deltas) == [DeltaStatus.APPLIED, DeltaStatus.NOT_APPLIED]
    assert 3 not in gpkg_rows(gpkg, "points_xy")


def test_rows_a_trigger_changed_are_compared_as_they_are_now(gpkg: Path) -> None:
    connection = sqlite3.connect(gpkg)
    register_gpkg_functions(connection)
    with connection:
        connection.execute(
            "CREATE TRIGGER touch_next AFTER UPDATE OF int ON points_xy BEGIN "
            "UPDATE points_xy SET str = 'touched' WHERE fid = NEW.fid + 1; END"
        )
    connection.close()
    deltas = [
        patch(0, 1, {"int": 1}, {"int": 10}),
        # The trigger changed feature 2 after it could have been read ahead.
        patch(1, 2, {"str": "str2"}, {"str": "mine"}),
        patch(2, 3, {"str": "str3"}, {"str": "mine"}),
    ]
    assert apply(gpkg, deltas) == [
        DeltaStatus.APPLIED,
        DeltaStatus.CONFLICT,
        DeltaStatus.APPLIED,
    ]
    rows = gpkg_rows(gpkg, "points_xy")
    assert rows[2]["str"] == "touched"
    assert rows[3]["str"] == "mine"
