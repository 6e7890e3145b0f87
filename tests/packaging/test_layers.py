"""Per-layer packaging rules on generated projects."""

import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest

from qfjobs.errors import PackagingError
from tests.packaging.readback import (
    check_package,
    package_folder,
    packaged_root,
    table_info,
)
from tests.qgis.datagen import write_shapefile_lines, write_vector

HEADER = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis projectname="" version="3.34.0-Prizren">
  <projectCrs><spatialrefsys><authid>EPSG:4326</authid></spatialrefsys></projectCrs>
  <layer-tree-group>{tree}<custom-order enabled="0">{order}</custom-order>
  </layer-tree-group>
  <mapcanvas name="theMapCanvas"><extent><xmin>0</xmin><ymin>0</ymin>
  <xmax>10</xmax><ymax>10</ymax></extent></mapcanvas>
  {relations}
  <projectlayers>{layers}</projectlayers>
  <properties>{properties}</properties>
</qgis>
"""


def layer_xml(
    layer_id: str,
    datasource: str,
    provider: str = "ogr",
    *,
    wkb: str = "Point",
    props: str = "",
    extra: str = "",
    layer_type: str = "vector",
) -> str:
    return f"""
    <maplayer type="{layer_type}" wkbType="{wkb}">
      <id>{layer_id}</id><datasource>{datasource}</datasource>
      <layername>{layer_id}</layername>
      <srs><spatialrefsys><authid>EPSG:4326</authid></spatialrefsys></srs>
      <provider encoding="UTF-8">{provider}</provider>
      <customproperties><Option type="Map">{props}</Option></customproperties>
      {extra}
    </maplayer>"""


def write_project(
    folder: Path,
    layers: list[str],
    ids: list[str],
    *,
    relations: str = "",
    properties: str = "",
    name: str = "project.qgs",
) -> str:
    tree = "".join(f'<layer-tree-layer id="{i}" name="{i}"/>' for i in ids)
    order = "".join(f"<item>{i}</item>" for i in ids)
    text = HEADER.format(
        tree=tree,
        order=order,
        relations=relations,
        layers="".join(layers),
        properties=properties,
    )
    (folder / name).write_text(text, encoding="utf-8")
    return name


def points(path: Path, n: int, *, driver: str, with_fid: bool = True) -> Path:
    columns: dict[str, object] = {"name": [f"p{i}" for i in range(n)]}
    if with_fid:
        columns = {"fid": np.arange(1, n + 1, dtype=np.int64), **columns}
    return write_vector(
        path,
        [f"POINT ({i % 10} {i // 10})" for i in range(n)],
        columns,  # type: ignore[arg-type]
        driver=driver,
        geometry_type="Point",
    )


def test_shapefiles_with_and_without_fid(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    points(data / "with_fid.shp", 25, driver="ESRI Shapefile")
    write_shapefile_lines(data / "lines.shp")
    name = write_project(
        tmp_path,
        [
            layer_xml("pts", "./data/with_fid.shp"),
            layer_xml("lines", "./data/lines.shp", wkb="MultiLineString"),
        ],
        ["pts", "lines"],
    )
    original, build, packaged = package_folder(tmp_path, name, tmp_path / "out")
    check_package(original, build, packaged, tmp_path / "out")
    by_id = {item["id"]: item for item in build.layers}
    assert by_id["pts"]["outcome"] == "packaged_offline"
    assert by_id["pts"]["feature_count"] == 25
    assert by_id["lines"]["outcome"] == "copied"
    assert by_id["lines"]["read_only"] is True
    assert "primary key" in by_id["lines"]["reason"]
    # copied with sidecars, at the same relative place
    assert {"data/lines.shp", "data/lines.dbf", "data/lines.shx"} <= set(build.files)
    root = packaged_root(tmp_path / "out", build)
    lines = next(
        node for node in root.iter("maplayer") if node.findtext("id") == "lines"
    )
    assert lines.get("readOnly") == "1"
    assert lines.findtext("datasource") == "./data/lines.shp"
    props = {
        o.get("name"): o.get("value")
        for o in lines.iterfind("customproperties/Option/Option")
    }
    assert props["QFieldSync/unsupported_source_pk"] == "1"


def test_same_file_names_in_two_folders_do_not_collide(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_shapefile_lines(tmp_path / folder / "x.shp")
    name = write_project(
        tmp_path,
        [
            layer_xml("la", "./a/x.shp", wkb="MultiLineString"),
            layer_xml("lb", "./b/x.shp", wkb="MultiLineString"),
        ],
        ["la", "lb"],
    )
    _original, build, packaged = package_folder(tmp_path, name, tmp_path / "out")
    assert {"a/x.shp", "b/x.shp"} <= set(build.files)
    assert all(item.check.is_valid for item in packaged.layers)


def test_csv_with_xy_and_geometryless_with_filter(tmp_path: Path) -> None:
    rows = ["fid,x,y,label"] + [f"{i},{i}.5,{i},row {i}" for i in range(1, 41)]
    (tmp_path / "sites.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    nonspatial = ["fid,kind"] + [f"{i},{'a' if i % 2 else 'b'}" for i in range(1, 31)]
    (tmp_path / "kinds.csv").write_text("\n".join(nonspatial) + "\n")
    sites = (
        "file:./sites.csv?type=csv&amp;delimiter=,&amp;xField=x&amp;yField=y"
        "&amp;crs=EPSG:4326&amp;detectTypes=yes&amp;useHeader=yes"
    )
    kinds = "./kinds.csv|subset=&quot;kind&quot; = 'a'"
    name = write_project(
        tmp_path,
        [
            layer_xml("sites", sites, "delimitedtext"),
            layer_xml("kinds", kinds, wkb="NoGeometry"),
        ],
        ["sites", "kinds"],
    )
    out = tmp_path / "out"
    original, build, packaged = package_folder(tmp_path, name, out)
    by_id = {item["id"]: item for item in build.layers}
    assert by_id["sites"]["outcome"] == "packaged_offline"
    assert by_id["sites"]["feature_count"] == 40
    assert by_id["sites"]["geometry_type"] == "Point"
    info = table_info(out / "data.gpkg", by_id["sites"]["table"])
    assert info["crs"] == "EPSG:4326"
    assert {"x", "y", "label"} <= set(info["fields"])
    # a geometry-less table keeps every row; the filter stays a filter
    assert by_id["kinds"]["feature_count"] == 30
    assert table_info(out / "data.gpkg", by_id["kinds"]["table"])["rows"] == 30
    root = packaged_root(out, build)
    source = next(
        node.findtext("datasource")
        for node in root.iter("maplayer")
        if node.findtext("id") == "kinds"
    )
    assert source.endswith("|subset=\"kind\" = 'a'")
    assert all(item.check.is_valid for item in packaged.layers)
    del original


def test_value_relations_and_relations_point_at_packaged_layers(
    tmp_path: Path,
) -> None:
    points(tmp_path / "trees.gpkg", 5, driver="GPKG")
    write_vector(
        tmp_path / "species.gpkg",
        [None, None],
        {"fid": np.array([1, 2]), "label": ["oak", "ash"]},
        driver="GPKG",
    )
    widget = """<fieldConfiguration><field name="name"><editWidget type="ValueRelation">
      <config><Option type="Map">
        <Option name="Layer" type="QString" value="species"/>
        <Option name="LayerName" type="QString" value="species"/>
        <Option name="LayerProviderName" type="QString" value="ogr"/>
        <Option name="LayerSource" type="QString" value="./species.gpkg"/>
        <Option name="Key" type="QString" value="fid"/>
      </Option></config></editWidget></field></fieldConfiguration>
      <referencedLayers><relation id="r1" referencingLayer="trees"
        referencedLayer="species" layerId="species" providerKey="ogr"
        dataSource="./species.gpkg" name="r" strength="Association"/>
      </referencedLayers>"""
    relations = (
        '<relations><relation id="r1" referencingLayer="trees" '
        'referencedLayer="species" name="r" strength="Association"/></relations>'
    )
    name = write_project(
        tmp_path,
        [
            layer_xml("trees", "./trees.gpkg", extra=widget),
            layer_xml("species", "./species.gpkg", wkb="NoGeometry"),
        ],
        ["trees", "species"],
        relations=relations,
    )
    out = tmp_path / "out"
    original, build, packaged = package_folder(tmp_path, name, out)
    check_package(original, build, packaged, out)
    root = packaged_root(out, build)
    species = next(
        n.findtext("datasource")
        for n in root.iter("maplayer")
        if n.findtext("id") == "species"
    )
    options = {o.get("name"): o.get("value") for o in root.iter("Option")}
    assert options["LayerSource"] == species
    assert options["Layer"] == "species"
    nested = next(r for r in root.iter("relation") if r.get("dataSource") is not None)
    assert nested.get("dataSource") == species
    assert root.find("relations/relation").get("referencedLayer") == "species"


def test_area_of_interest_clips_spatial_layers_only(tmp_path: Path) -> None:
    points(tmp_path / "grid.gpkg", 100, driver="GPKG")
    write_vector(
        tmp_path / "table.gpkg",
        [None] * 7,
        {"fid": np.arange(1, 8), "v": np.arange(7)},
        driver="GPKG",
    )
    aoi = (
        "<qfieldsync><offlineCopyOnlyAoi type='bool'>true</offlineCopyOnlyAoi>"
        "<areaOfInterest type='QString'>POLYGON((-0.5 -0.5, 4.5 -0.5, 4.5 1.5, "
        "-0.5 1.5, -0.5 -0.5))</areaOfInterest>"
        "<areaOfInterestCrs type='QString'>EPSG:4326</areaOfInterestCrs>"
        "</qfieldsync>"
    )
    name = write_project(
        tmp_path,
        [
            layer_xml("grid", "./grid.gpkg"),
            layer_xml("table", "./table.gpkg", wkb="NoGeometry"),
        ],
        ["grid", "table"],
        properties=aoi,
    )
    _original, build, _packaged = package_folder(tmp_path, name, tmp_path / "out")
    by_id = {item["id"]: item for item in build.layers}
    assert by_id["grid"]["feature_count"] == 10  # x 0..4, y 0..1
    assert by_id["table"]["feature_count"] == 7


def test_bad_area_of_interest_fails(tmp_path: Path) -> None:
    points(tmp_path / "grid.gpkg", 3, driver="GPKG")
    aoi = "<qfieldsync><offlineCopyOnlyAoi>true</offlineCopyOnlyAoi></qfieldsync>"
    name = write_project(
        tmp_path, [layer_xml("grid", "./grid.gpkg")], ["grid"], properties=aoi
    )
    with pytest.raises(PackagingError):
        package_folder(tmp_path, name, tmp_path / "out")


def test_qgz_project_with_plugin_and_removed_layer(tmp_path: Path) -> None:
    points(tmp_path / "trees.gpkg", 4, driver="GPKG")
    name = write_project(
        tmp_path,
        [
            layer_xml("trees", "./trees.gpkg"),
            layer_xml("gone", "./missing.gpkg"),
            layer_xml(
                "dropped",
                "./trees.gpkg",
                props='<Option name="QFieldSync/cloud_action" '
                'type="QString" value="remove"/>',
            ),
        ],
        ["trees", "gone", "dropped"],
        name="inner.qgs",
    )
    with zipfile.ZipFile(tmp_path / "survey.qgz", "w") as archive:
        archive.write(tmp_path / name, "survey.qgs")
        archive.writestr("survey_styles.db", b"styles")
    (tmp_path / name).unlink()
    (tmp_path / "survey.qml").write_text("import QtQuick 2.0\nItem {}\n")
    (tmp_path / "survey_de.qm").write_bytes(b"qm")
    out = tmp_path / "out"
    original, build, packaged = package_folder(tmp_path, "survey.qgz", out)
    check_package(original, build, packaged, out)
    assert build.project_name == "survey_qfield.qgs"
    assert {"survey.qml", "survey_de.qm", "survey_qfield_attachments.zip"} <= set(
        build.files
    )
    with zipfile.ZipFile(out / "survey_qfield_attachments.zip") as archive:
        assert archive.namelist() == ["survey_styles.db"]
    by_id = {item["id"]: item for item in build.layers}
    assert by_id["gone"]["outcome"] == "removed"
    assert by_id["dropped"]["outcome"] == "removed"
    root = packaged_root(out, build)
    assert [n.findtext("id") for n in root.iter("maplayer")] == ["trees"]
    assert [n.get("id") for n in root.iter("layer-tree-layer")] == ["trees"]
    assert [n.text for n in root.iter("item")] == ["trees"]
    with sqlite3.connect(out / "data.gpkg") as conn:
        assert conn.execute("SELECT count(*) FROM gpkg_contents").fetchone()[0] == 1


def test_rasters_are_copied_with_sidecars(tmp_path: Path) -> None:
    from tests.qgis.datagen import tiff_bytes

    (tmp_path / "maps" / "north").mkdir(parents=True)
    (tmp_path / "maps" / "north" / "ortho.tif").write_bytes(tiff_bytes())
    (tmp_path / "maps" / "north" / "ortho.tfw").write_text("1\n0\n0\n-1\n0\n0\n")
    (tmp_path / "maps" / "north" / "ortho.tif.aux.xml").write_text("<PAMDataset/>")
    (tmp_path / "maps" / "north" / "other.tif").write_bytes(tiff_bytes())
    name = write_project(
        tmp_path,
        [
            layer_xml(
                "ortho", "./maps/north/ortho.tif", "gdal", wkb="", layer_type="raster"
            )
        ],
        ["ortho"],
    )
    out = tmp_path / "out"
    original, build, packaged = package_folder(tmp_path, name, out)
    check_package(original, build, packaged, out)
    assert build.layers[0]["outcome"] == "copied"
    assert sorted(build.layers[0]["files"]) == [
        "maps/north/ortho.tfw",
        "maps/north/ortho.tif",
        "maps/north/ortho.tif.aux.xml",
    ]
    assert "maps/north/other.tif" not in build.files
    assert "data.gpkg" not in build.files


def test_non_ascii_names_and_qgz_without_crs(tmp_path: Path) -> None:
    """Field failures A7 and A8: non-ASCII file and layer names, no project CRS."""
    (tmp_path / "data").mkdir()
    points(tmp_path / "data" / "Übersichtskarte.gpkg", 6, driver="GPKG")
    layer = layer_xml("nutzung", "./data/Übersichtskarte.gpkg")
    layer = layer.replace(
        "<layername>nutzung</layername>", "<layername>Tatsächliche_Nutzung</layername>"
    )
    name = write_project(tmp_path, [layer], ["nutzung"], name="inner.qgs")
    text = (tmp_path / name).read_text(encoding="utf-8")
    text = text.replace(
        "<projectCrs><spatialrefsys><authid>EPSG:4326</authid></spatialrefsys>"
        "</projectCrs>",
        "",
    )
    with zipfile.ZipFile(tmp_path / "Prüfung.qgz", "w") as archive:
        archive.writestr("Prüfung.qgs", text.encode("utf-8"))
    (tmp_path / name).unlink()
    out = tmp_path / "out"
    original, build, packaged = package_folder(tmp_path, "Prüfung.qgz", out)
    check_package(original, build, packaged, out)
    assert build.project_name == "Prüfung_qfield.qgs"
    assert build.layers[0]["outcome"] == "packaged_offline"
    assert build.layers[0]["feature_count"] == 6
    assert build.layers[0]["skipped"] == []


def test_spreadsheet_and_flatgeobuf_layers(tmp_path: Path) -> None:
    write_vector(
        tmp_path / "sheet.xlsx",
        [None, None, None],
        {"fid": np.array([1, 2, 3], dtype=np.int32), "name": ["a", "b", "c"]},
        driver="XLSX",
        layer="Sheet1",
    )
    points(tmp_path / "pts.fgb", 12, driver="FlatGeobuf")
    name = write_project(
        tmp_path,
        [
            layer_xml("sheet", "./sheet.xlsx|layername=Sheet1", wkb="NoGeometry"),
            layer_xml("fgb", "./pts.fgb"),
        ],
        ["sheet", "fgb"],
    )
    out = tmp_path / "out"
    original, build, packaged = package_folder(tmp_path, name, out)
    check_package(original, build, packaged, out)
    by_id = {item["id"]: item for item in build.layers}
    assert by_id["sheet"]["outcome"] == "packaged_offline"
    assert by_id["sheet"]["feature_count"] == 3
    assert by_id["fgb"]["feature_count"] == 12
