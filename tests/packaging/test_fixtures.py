"""Packaging the projects in tests/data and reading them back with GDAL and lxml."""

import sqlite3
from pathlib import Path

import pytest

from tests.helpers import DATA_DIR
from tests.packaging.readback import check_package, package_folder, packaged_root

PROJECTS = [
    ("qfieldcloud-delta", "project.qgs"),
    ("qfieldcloud-delta", "project3.qgs"),
    ("qfieldcloud-delta_broken_datasource", "project_broken_datasource.qgs"),
    ("qfieldcloud-localized", "simple_bumblebees_correct_localized.qgs"),
    ("qfieldcloud-localized", "simple_bumblebees_wrong_localized.qgs"),
    ("qfieldcloud-self_contained_memory", "self_contained.qgs"),
    ("qfieldcloud-simple_bee_farming", "simple_bee_farming.qgs"),
]


@pytest.mark.parametrize(("folder", "project"), PROJECTS)
def test_fixture_packages_read_back(folder: str, project: str, tmp_path: Path) -> None:
    original, build, packaged = package_folder(DATA_DIR / folder, project, tmp_path)
    check_package(original, build, packaged, tmp_path)
    root = packaged_root(tmp_path, build)
    assert root.find("mapcanvas[@name='theMapCanvas']") is not None
    ids = [(node.findtext("id") or "") for node in root.iter("maplayer")]
    kept = [item["id"] for item in build.layers if item["outcome"] != "removed"]
    assert sorted(ids) == sorted(kept)
    tree_ids = {node.get("id") for node in root.iter("layer-tree-layer")}
    removed = {item["id"] for item in build.layers if item["outcome"] == "removed"}
    assert not tree_ids & removed
    assert root.findtext("properties/qfieldsync/createBaseMap") == "false"


def test_delta_project_details(tmp_path: Path) -> None:
    original, build, _packaged = package_folder(
        DATA_DIR / "qfieldcloud-delta", "project.qgs", tmp_path
    )
    assert sorted(build.files) == [
        "data.gpkg",
        "project_qfield.qgs",
        "project_qfield_attachments.zip",
    ]
    by_name = {item["table"]: item for item in build.layers}
    assert by_name["points_xyzm"]["geometry_type"] == "Measured 3D Point"
    # Two layers on the same source would share a table; here they differ.
    tables = [item["table"] for item in build.layers]
    assert len(tables) == len(set(tables))
    with sqlite3.connect(tmp_path / "data.gpkg") as conn:
        rows = conn.execute(
            "SELECT z, m FROM gpkg_geometry_columns WHERE table_name='points_xyzm'"
        ).fetchone()
    assert rows == (1, 1)
    root = packaged_root(tmp_path, build)
    for layer in root.iter("maplayer"):
        props = {
            o.get("name"): o.get("value")
            for o in layer.iterfind("customproperties/Option/Option")
        }
        assert props["QFieldSync/remoteLayerId"] == layer.findtext("id")
        assert props["QFieldSync/sourceDataPrimaryKeys"] == "fid"
        assert props["isOfflineEditable"] == "true"
    assert root.findtext("properties/OfflineEditingPlugin/OfflineDbPath") == (
        "./data.gpkg"
    )
    assert original.project.filename == "project.qgs"


def test_memory_layer_becomes_an_empty_table(tmp_path: Path) -> None:
    _original, build, packaged = package_folder(
        DATA_DIR / "qfieldcloud-self_contained_memory", "self_contained.qgs", tmp_path
    )
    memory = next(item for item in build.layers if item["provider"] == "memory")
    assert memory["outcome"] == "packaged_offline"
    assert memory["feature_count"] == 0
    web = next(item for item in build.layers if item["provider"] != "memory")
    assert web["outcome"] == "kept_unchanged"
    with sqlite3.connect(tmp_path / "data.gpkg") as conn:
        row = conn.execute(
            "SELECT geometry_type_name, srs_id FROM gpkg_geometry_columns "
            "WHERE table_name = ?",
            (memory["table"],),
        ).fetchone()
        columns = [
            r[1] for r in conn.execute(f'PRAGMA table_info("{memory["table"]}")')
        ]
    assert row == ("POINT", 4326)
    assert {"fid", "name", "size", "geom"} <= set(columns)
    after = {item.layer_id: item for item in packaged.layers}
    assert after[memory["id"]].check.is_valid
