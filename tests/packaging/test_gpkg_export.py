"""The streaming GeoPackage exporter on its own (qfjobs.geodata.gpkg_export)."""

import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pyogrio
import pytest

from qfjobs.errors import DataSourceError
from qfjobs.geodata import gpkg_export
from qfjobs.geodata.feature_batches import FidSource
from qfjobs.geodata.gpkg_export import TableRequest, export_table, export_tables
from qfjobs.geodata.sources import OgrSource
from tests.qgis.datagen import write_vector


def read(gpkg: Path, table: str) -> dict[str, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dict(pyogrio.read_info(gpkg, layer=table))


def test_small_batches_keep_every_row_and_fid(tmp_path: Path) -> None:
    source = write_vector(
        tmp_path / "src.gpkg",
        [f"POINT Z ({i} {i} {i})" for i in range(101)],
        {"label": [f"n{i}" for i in range(101)]},
        driver="GPKG",
        geometry_type="Point Z",
    )
    gpkg = tmp_path / "out.gpkg"
    result = export_table(gpkg, TableRequest(OgrSource(source), "pts"), batch_size=7)
    assert result.feature_count == 101
    assert result.fid_source is FidSource.SOURCE_FID
    assert result.geometry_type is not None and result.geometry_type.z
    with sqlite3.connect(gpkg) as conn:
        fids = [r[0] for r in conn.execute("SELECT fid FROM pts ORDER BY fid")]
        labels = dict(conn.execute("SELECT fid, label FROM pts").fetchall())
    with sqlite3.connect(source) as conn:
        expected = dict(conn.execute("SELECT fid, label FROM src").fetchall())
    assert fids == sorted(expected)
    assert labels == expected
    assert result.spatial_index == "rtree_pts_geom"


def test_field_types_are_kept(tmp_path: Path) -> None:
    source = write_vector(
        tmp_path / "types.gpkg",
        ["POINT (1 2)", "POINT (3 4)"],
        {
            "i32": np.array([1, 2], dtype=np.int32),
            "i64": np.array([2**40, 3], dtype=np.int64),
            "real": np.array([0.5, 1.5]),
            "text": ["a", "b"],
            "day": np.array(["2024-01-02", "2024-03-04"], dtype="datetime64[D]"),
            "flag": np.array([True, False]),
        },
        driver="GPKG",
        geometry_type="Point",
    )
    gpkg = tmp_path / "out.gpkg"
    export_table(gpkg, TableRequest(OgrSource(source), "t"))
    info = read(gpkg, "t")
    types = dict(zip(info["fields"], info["ogr_types"], strict=True))  # type: ignore[call-overload]
    assert types["i32"] == "OFTInteger"
    assert types["i64"] == "OFTInteger64"
    assert types["real"] == "OFTReal"
    assert types["text"] == "OFTString"
    assert types["day"] in ("OFTDate", "OFTDateTime")
    assert info["crs"] == "EPSG:4326"


def test_repeated_key_values_get_new_fids(tmp_path: Path) -> None:
    source = write_vector(
        tmp_path / "dup.geojson",
        ["POINT (0 0)", "POINT (1 1)", "POINT (2 2)"],
        {"fid": np.array([5, 5, 6]), "v": ["a", "b", "c"]},
        driver="GeoJSON",
        geometry_type="Point",
    )
    gpkg = tmp_path / "out.gpkg"
    result = export_table(
        gpkg, TableRequest(OgrSource(source), "dup", primary_key="fid")
    )
    assert result.feature_count == 3
    assert result.fid_source is FidSource.GENERATED
    assert any("new fids" in text for text in result.warnings)
    with sqlite3.connect(gpkg) as conn:
        rows = conn.execute(f'SELECT "{result.fid_column}", fid FROM dup').fetchall()
    assert sorted(row[1] for row in rows) == [5, 5, 6]


def test_bbox_filters_spatial_tables(tmp_path: Path) -> None:
    source = write_vector(
        tmp_path / "grid.gpkg",
        [f"POINT ({i} 0)" for i in range(10)],
        {"v": list(range(10))},
        driver="GPKG",
        geometry_type="Point",
    )
    gpkg = tmp_path / "out.gpkg"
    result = export_table(
        gpkg, TableRequest(OgrSource(source), "g", bbox=(2.5, -1, 6.5, 1))
    )
    assert result.feature_count == 4


def test_failures_leave_no_table_behind(tmp_path: Path) -> None:
    gpkg = tmp_path / "out.gpkg"
    source = write_vector(
        tmp_path / "a.gpkg",
        ["POINT (0 0)"],
        {"v": [1]},
        driver="GPKG",
        geometry_type="Point",
    )
    export_table(gpkg, TableRequest(OgrSource(source), "a"))
    with pytest.raises(DataSourceError):
        export_table(gpkg, TableRequest(OgrSource(tmp_path / "missing.gpkg"), "b"))
    with pytest.raises(DataSourceError):
        export_table(gpkg, TableRequest(OgrSource(source), "c", primary_key="nope"))
    with pytest.raises(DataSourceError):
        export_tables(
            gpkg,
            [
                TableRequest(OgrSource(source), "x"),
                TableRequest(OgrSource(source), "X"),
            ],
        )
    with sqlite3.connect(gpkg) as conn:
        tables = [r[0] for r in conn.execute("SELECT table_name FROM gpkg_contents")]
    assert tables == ["a"]


@pytest.mark.parametrize("ram_bytes", [gpkg_export.RTREE_MAX_RAM_BYTES, 4096])
def test_rtree_is_complete_beyond_the_memory_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ram_bytes: int
) -> None:
    """With a tiny R-tree memory limit GDAL inserts the rest one by one: the
    index must still hold every feature with its box."""
    count = 5000
    source = write_vector(
        tmp_path / "pts.gpkg",
        [f"POINT ({i % 97} {i // 97})" for i in range(count)],
        {"n": np.arange(count, dtype=np.int64)},
        driver="GPKG",
        geometry_type="Point",
    )
    config = {**gpkg_export._WRITE_CONFIG, "OGR_GPKG_MAX_RAM_USAGE_RTREE": ram_bytes}
    monkeypatch.setattr(gpkg_export, "_WRITE_CONFIG", config)
    pyogrio.set_gdal_config_options({"OGR_GPKG_MAX_RAM_USAGE_RTREE": 12345})
    try:
        gpkg = tmp_path / "out.gpkg"
        result = export_table(gpkg, TableRequest(OgrSource(source), "pts"))
        # the process's own setting is put back
        assert pyogrio.get_gdal_config_option("OGR_GPKG_MAX_RAM_USAGE_RTREE") == 12345
    finally:
        pyogrio.set_gdal_config_options({"OGR_GPKG_MAX_RAM_USAGE_RTREE": None})
    assert pyogrio.get_gdal_config_option("OGR_GPKG_ALLOW_THREADED_RTREE") is None
    assert result.spatial_index == "rtree_pts_geom"
    with sqlite3.connect(gpkg) as conn:
        boxes = conn.execute(
            "SELECT id, minx, maxx, miny, maxy FROM rtree_pts_geom ORDER BY id"
        ).fetchall()
        rows = conn.execute("SELECT fid, n FROM pts ORDER BY fid").fetchall()
    assert [box[0] for box in boxes] == [row[0] for row in rows]
    for (fid, minx, maxx, miny, maxy), (_fid, n) in zip(boxes, rows, strict=True):
        x, y = n % 97, n // 97
        assert minx <= x <= maxx and miny <= y <= maxy, fid
        assert maxx - minx < 1e-3 and maxy - miny < 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _meta, inside = pyogrio.read_arrow(gpkg, layer="pts", bbox=(10, 10, 20, 20))
    assert inside.num_rows == 11 * 11
