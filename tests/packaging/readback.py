"""Packaging a project folder directly and reading the package back."""

import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pyogrio
from lxml import etree

from qfjobs.packaging.builder import PackageBuild, build_package
from qfjobs.qgis.inspect import ProjectReport, inspect_project
from qfjobs.qgis.pgcheck import PgOptions


def package_folder(
    folder: Path, project: str, out: Path
) -> tuple[ProjectReport, PackageBuild, ProjectReport]:
    """Package ``folder/project`` into ``out``; the original and packaged reports."""
    original = inspect_project(folder / project, data_root=folder)
    build = build_package(original, project, folder, out, PgOptions(), "test")
    # build_package rewrites the tree in place; read the original afresh.
    original = inspect_project(folder / project, data_root=folder)
    packaged = inspect_project(out / build.project_name, data_root=out)
    return original, build, packaged


def packaged_root(out: Path, build: PackageBuild) -> etree._Element:
    data = (out / build.project_name).read_bytes()
    assert data.startswith(b"<!DOCTYPE qgis")
    return etree.fromstring(data.split(b"\n", 1)[1])


def table_info(gpkg: Path, table: str) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info: dict[str, Any] = pyogrio.read_info(gpkg, layer=table)
    with sqlite3.connect(gpkg) as conn:
        row = conn.execute(
            "SELECT geometry_type_name, z, m FROM gpkg_geometry_columns "
            "WHERE table_name = ?",
            (table,),
        ).fetchone()
        count = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    info["catalog_type"] = row
    info["rows"] = count
    return info


def check_package(
    original: ProjectReport, build: PackageBuild, packaged: ProjectReport, out: Path
) -> None:
    """Every valid kept layer resolves, with the same count, type, CRS, fields."""
    after = {item.layer_id: item for item in packaged.layers}
    decisions = {layer["id"]: layer for layer in build.layers}
    for before in original.layers:
        decision = decisions[before.layer_id]
        if decision["outcome"] == "removed":
            assert before.layer_id not in after
            continue
        assert before.layer_id in after, before.name
        if not before.check.is_valid:
            continue
        now = after[before.layer_id]
        assert now.check.is_valid, (before.name, now.check.error_summary)
        assert now.name == before.name
        if decision["outcome"] != "packaged_offline":
            continue
        assert now.source.provider == "ogr"
        assert now.source.raw.startswith("./data.gpkg|layername=")
        expected_count = before.check.feature_count
        layer_filter = decision.get("filter") or {}
        if layer_filter.get("outcome") == "applied_at_source":
            expected_count = layer_filter["source_matches"]
        if expected_count is not None:
            assert now.check.feature_count == expected_count, before.name
            assert decision["feature_count"] == expected_count
        assert now.check.geometry_type == before.check.geometry_type, before.name
        assert (now.check.crs or None) == (before.check.crs or None), before.name
        before_fields = {f.name for f in before.check.fields}
        now_fields = {f.name for f in now.check.fields}
        renamed = decision.get("renamed_fields", {})
        expected = {renamed.get(name, name) for name in before_fields}
        expected.discard(decision["fid_column"])
        assert expected <= now_fields | {decision["fid_column"]}, before.name
        assert decision["skipped"] == []
        gpkg = (out / build.project_name).parent / "data.gpkg"
        info = table_info(gpkg, decision["table"])
        assert info["rows"] == decision["feature_count"]
        if before.check.geometry_type not in (None, "NoGeometry"):
            with sqlite3.connect(gpkg) as conn:
                rtree = f"rtree_{decision['table']}_geom"
                assert (
                    conn.execute(
                        "SELECT count(*) FROM sqlite_master WHERE name = ?", (rtree,)
                    ).fetchone()[0]
                    == 1
                )
