"""inspect_project over the corpus fixtures and generated projects."""

import json
import os
import zipfile
from pathlib import Path

import pytest

from qfjobs.errors import InvalidProjectFileError, ProjectFileNotFoundError
from qfjobs.qgis.attachments import is_attachment
from qfjobs.qgis.inspect import ProjectReport, inspect_project
from tests.qgis import datagen
from tests.qgis.conftest import PgSchema, data_folder

REFERENCE_KEYS = {
    "id",
    "name",
    "crs",
    "wkb_type",
    "qfs_action",
    "qfs_cloud_action",
    "qfs_is_geometry_locked",
    "qfs_photo_naming",
    "qfc_source_data_pk_name",
    "qfs_unsupported_source_pk",
    "is_valid",
    "is_localized",
    "datasource",
    "type",
    "type_name",
    "error_code",
    "error_summary",
    "error_message",
    "filename",
    "provider_name",
    "provider_error_summary",
    "provider_error_message",
}
EXTRA_KEYS = {
    "provider",
    "geometry_type",
    "feature_count",
    "fields",
    "read_only_reason",
}
PROJECT_KEYS = {
    "background_color",
    "extent",
    "crs",
    "project_name",
    "layers_by_id",
    "ordered_layer_ids",
    "attachment_dirs",
}


def by_name(report: ProjectReport) -> dict[str, dict[str, object]]:
    """Layer records keyed by "name" (with the provider for duplicate names)."""
    records: dict[str, dict[str, object]] = {}
    for record in report.details["layers_by_id"].values():
        key = str(record["name"])
        if key in records:
            key = f"{key} ({str(record['datasource']).rsplit('.', 1)[-1]})"
        records[key] = record
    return records


@pytest.fixture
def no_service_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGSERVICEFILE", raising=False)


@pytest.fixture(scope="module")
def delta_report() -> ProjectReport:
    return inspect_project(data_folder("qfieldcloud-delta") / "project.qgs")


class TestDeltaProject:
    @pytest.fixture
    def report(self, delta_report: ProjectReport) -> ProjectReport:
        return delta_report

    def test_eight_valid_layers_with_types_and_counts(
        self, report: ProjectReport
    ) -> None:
        records = by_name(report)
        expected = {
            "points_xy": ("Point", 1, 3),
            "points_xyz": ("PointZ", 1001, 3),
            "points_xyzm": ("PointZM", 3001, 3),
            "polygons": ("Polygon", 3, 2),
            "special_data_types": ("NoGeometry", 100, 1),
            "points": ("Point", 1, 3),
            "polygons (geojson)": ("Polygon", 3, 2),
            "nonspatial": ("NoGeometry", 100, 1),
        }

        assert len(report.details["layers_by_id"]) == 8
        assert set(records) == set(expected)
        for name, (geometry, wkb, count) in expected.items():
            record = records[name]
            assert record["is_valid"] is True, record
            assert record["error_code"] == "no_error"
            assert (record["geometry_type"], record["wkb_type"]) == (geometry, wkb), (
                name
            )
            assert record["feature_count"] == count, name
            assert record["type_name"] == "Vector"
            assert record["provider_name"] is None
            assert record["filename"]

    def test_record_keys(self, report: ProjectReport) -> None:
        assert set(report.details) == PROJECT_KEYS
        for record in report.details["layers_by_id"].values():
            assert set(record) == REFERENCE_KEYS | EXTRA_KEYS

    def test_primary_keys(self, report: ProjectReport) -> None:
        records = by_name(report)

        assert records["points_xy"]["qfc_source_data_pk_name"] == "fid"
        assert records["points"]["qfc_source_data_pk_name"] == "fid"
        assert records["nonspatial"]["qfc_source_data_pk_name"] == "fid"
        assert all(r["read_only_reason"] is None for r in records.values())

    def test_project_level_keys(self, report: ProjectReport) -> None:
        details = report.details

        assert details["background_color"] == "#ffffff"
        assert details["crs"] == "EPSG:4326"
        assert details["project_name"] == ""
        assert details["attachment_dirs"] == ["DCIM"]
        assert details["extent"] == (
            "POLYGON((-2.1988621586475956 -0.61056566970091097, "
            "12.50113784135240635 -0.61056566970091097, "
            "12.50113784135240635 5.68943433029908974, "
            "-2.1988621586475956 5.68943433029908974, "
            "-2.1988621586475956 -0.61056566970091097))"
        )

    def test_ordered_layer_ids_follow_the_layer_tree(
        self, report: ProjectReport
    ) -> None:
        names = [
            report.details["layers_by_id"][layer_id]["name"]
            for layer_id in report.details["ordered_layer_ids"]
        ]

        assert names == [
            "nonspatial",
            "points_xy",
            "points_xyz",
            "points_xyzm",
            "polygons",
            "special_data_types",
            "polygons",
            "points",
        ]
        assert (
            list(report.details["layers_by_id"]) == report.details["ordered_layer_ids"]
        )

    def test_json_and_log_lines(self, report: ProjectReport) -> None:
        json.dumps(report.details)

        assert report.log_lines[0].startswith('Project "project.qgs" (QGIS 3.30.0')
        assert len(report.log_lines) == 9
        assert report.invalid_count == 0

    def test_no_side_files(self) -> None:
        folder = data_folder("qfieldcloud-delta")
        before = sorted(os.listdir(folder))

        inspect_project(folder / "project.qgs")

        assert sorted(os.listdir(folder)) == before


def test_broken_xml_fails_naming_line_20() -> None:
    with pytest.raises(InvalidProjectFileError, match="line 20, column 27"):
        inspect_project(data_folder("qfieldcloud-broken_xml") / "broken.qgs")


def test_missing_project_file(tmp_path: Path) -> None:
    with pytest.raises(ProjectFileNotFoundError):
        inspect_project(tmp_path / "nope.qgs")


def test_zero_byte_project(tmp_path: Path) -> None:
    (tmp_path / "project.qgs").write_bytes(b"")

    with pytest.raises(InvalidProjectFileError, match="empty"):
        inspect_project(tmp_path / "project.qgs")


def test_broken_datasource(no_service_file: None) -> None:
    report = inspect_project(
        data_folder("qfieldcloud-delta_broken_datasource")
        / "project_broken_datasource.qgs"
    )
    records = by_name(report)
    postgres = records["surfacestructure"]

    assert postgres["is_valid"] is False
    assert postgres["error_code"] == "invalid_dataprovider"
    assert str(postgres["error_summary"]).startswith("Unable to connect")
    assert postgres["provider_name"] == "postgres"
    assert postgres["filename"] == ""
    assert "password='***'" in str(postgres["datasource"])
    assert records["points"]["is_valid"] is True
    text = json.dumps(report.details) + "\n".join(report.log_lines)
    assert "Bhooo" not in text


def test_pgservice_without_a_service_file(no_service_file: None) -> None:
    report = inspect_project(
        data_folder("qfieldcloud-delta_pgservice") / "project_pgservice.qgs"
    )
    summaries = sorted(
        str(record["error_summary"])
        for record in report.details["layers_by_id"].values()
    )

    assert summaries == [
        'Unable to connect to service "geodb1".',
        'Unable to connect to service "geodb2".',
    ]
    assert report.details["crs"] == "EPSG:2056"


def test_pgservice_with_a_service_file(pg_schema: PgSchema, tmp_path: Path) -> None:
    p = pg_schema.params
    service_file = tmp_path / "pg_service.conf"
    service_file.write_text(
        f"[geodb1]\nhost=127.0.0.1\nport={p.get('port', '5432')}\n"
        f"dbname={p['dbname']}\n"
        f"user={p['user']}\n"
    )

    report = inspect_project(
        data_folder("qfieldcloud-delta_pgservice") / "project_pgservice.qgs",
        pg_service_file=service_file,
    )
    summaries = sorted(
        str(record["error_summary"])
        for record in report.details["layers_by_id"].values()
    )

    # geodb1 connects (the test database has no public.point table); geodb2 is
    # still undefined.
    assert summaries == [
        'Table "public.point" not found in the database.',
        'Unable to connect to service "geodb2".',
    ]


def test_localized_layers() -> None:
    report = inspect_project(
        data_folder("qfieldcloud-localized") / "simple_bumblebees_wrong_localized.qgs"
    )
    records = by_name(report)

    for name in ("apiary_valid_localized", "area_invalid_localized"):
        assert records[name]["error_code"] == "localized_dataprovider"
        assert records[name]["is_localized"] is True
        assert records[name]["is_valid"] is False
    assert records["apiary_valid_localized"]["filename"] == "bumblebees.gpkg"
    missing = records["apiary_doesnotexist"]
    assert missing["error_summary"] == 'File "bumblebees_doesnotexist.gpkg" missing.'
    assert records["Online OpenStreetMap"]["is_valid"] is True


def test_memory_layer() -> None:
    report = inspect_project(
        data_folder("qfieldcloud-self_contained_memory") / "self_contained.qgs"
    )
    records = by_name(report)

    assert records["points"]["is_valid"] is True
    assert records["points"]["provider"] == "memory"
    assert records["points"]["fields"] == [
        {"name": "name", "type": "string"},
        {"name": "size", "type": "integer"},
    ]
    assert records["OpenStreetMap"]["type_name"] == "Raster"
    assert records["OpenStreetMap"]["wkb_type"] is None
    assert records["OpenStreetMap"]["filename"] == ""


def test_old_style_custom_properties() -> None:
    report = inspect_project(
        data_folder("qfieldcloud-simple_bee_farming") / "simple_bee_farming.qgs"
    )
    records = by_name(report)

    assert records["Apiary"]["qfs_action"] == "offline"
    assert records["Online OpenStreetMap"]["qfs_action"] == "no_action"
    assert records["Apiary"]["qfs_cloud_action"] is None
    assert records["Apiary"]["qfc_source_data_pk_name"] == "fid"
    assert report.details["project_name"] == "Simple Bee Farming Demo"
    assert all(r["is_valid"] for r in records.values())


def test_new_style_custom_properties() -> None:
    report = inspect_project(data_folder("qfieldcloud-delta") / "project3.qgs")
    (record,) = report.details["layers_by_id"].values()

    assert record["qfs_cloud_action"] == "offline"
    assert record["qfs_action"] == "copy"
    assert record["qfs_photo_naming"] == "{}"


GENERATED_QGS = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis projectname="" version="2.18.28">
  <title>Generated &amp; old</title>
  <legend updateDrawingOrder="true">
    <legendlayer name="trees"><filegroup>
      <legendlayerfile layerid="trees_id" visible="1"/></filegroup></legendlayer>
    <legendlayer name="roads"><filegroup>
      <legendlayerfile layerid="roads_id" visible="1"/></filegroup></legendlayer>
  </legend>
  <mapcanvas>
    <extent><xmin>0</xmin><ymin>-1.5</ymin><xmax>10.25</xmax><ymax>20</ymax></extent>
  </mapcanvas>
  <projectlayers>
    <maplayer type="vector" geometry="Line">
      <id>roads_id</id><datasource>./roads.shp</datasource>
      <layername>roads</layername><provider encoding="UTF-8">ogr</provider>
    </maplayer>
    <maplayer type="vector" geometry="Point">
      <id>trees_id</id>
      <datasource>file:./trees.csv?type=csv&amp;xField=lon&amp;yField=lat&amp;crs=EPSG:4326</datasource>
      <layername>trees</layername><provider>delimitedtext</provider>
      <customproperties>
        <Option type="Map">
          <Option name="QFieldSync/cloud_action" type="QString" value="offline"/>
        </Option>
      </customproperties>
    </maplayer>
    <maplayer type="vector" wkbType="NoGeometry">
      <id>sheet_id</id><datasource>./sheet.xlsx|layername=Sheet1</datasource>
      <layername>sheet</layername><provider encoding="UTF-8">ogr</provider>
    </maplayer>
    <maplayer type="vector" wkbType="Point">
      <id>virtual_id</id>
      <datasource>?layer_ref=trees_id:trees&amp;query=SELECT%20*%20FROM%20trees</datasource>
      <layername>virtual</layername><provider>virtual</provider>
    </maplayer>
    <maplayer type="vector" wkbType="MultiPolygon">
      <id>gone_id</id><datasource>../outside/x.gpkg|layername=x</datasource>
      <layername>gone</layername><provider encoding="UTF-8">ogr</provider>
    </maplayer>
    <maplayer type="raster">
      <id>ortho_id</id><datasource>C:/gis/ortho.tif</datasource>
      <layername>ortho</layername><provider>gdal</provider>
    </maplayer>
    <maplayer type="vector" wkbType="Point">
      <id>noprovider_id</id><datasource>./x.shp</datasource>
      <layername>noprovider</layername>
    </maplayer>
  </projectlayers>
  <properties>
    <Gui>
      <CanvasColorRedPart type="int">10</CanvasColorRedPart>
      <CanvasColorGreenPart type="int">20</CanvasColorGreenPart>
    </Gui>
    <SpatialRefSys><ProjectCrs type="QString">EPSG:2056</ProjectCrs></SpatialRefSys>
    <QFieldSync>
      <attachmentDirs type="QStringList">
        <value>DCIM</value><value>files/docs</value>
      </attachmentDirs>
    </QFieldSync>
  </properties>
</qgis>
"""


@pytest.fixture
def generated_project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    datagen.write_shapefile_lines(folder / "roads.shp")
    (folder / "trees.csv").write_text("fid,lon,lat\n1,7.1,46.2\n2,7.2,46.3\n")
    datagen.write_spreadsheet(folder / "sheet.xlsx", "XLSX")
    archive = folder / "generated.qgz"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("generated.qgs", GENERATED_QGS)
        handle.writestr("generated.qgd", b"")
    return archive


def test_generated_qgz_project(generated_project: Path) -> None:
    report = inspect_project(generated_project)
    details = report.details
    records = by_name(report)

    assert details["ordered_layer_ids"] == [
        "trees_id",
        "roads_id",
        "sheet_id",
        "virtual_id",
        "gone_id",
        "ortho_id",
        "noprovider_id",
    ]
    assert details["crs"] == "EPSG:2056"
    assert details["project_name"] == "Generated & old"
    assert details["background_color"] == "#0a14ff"
    assert details["extent"] == "POLYGON((0 -1.5, 10.25 -1.5, 10.25 20, 0 20, 0 -1.5))"
    assert details["attachment_dirs"] == ["DCIM", "files/docs"]

    roads = records["roads"]
    assert (roads["is_valid"], roads["wkb_type"], roads["geometry_type"]) == (
        True,
        5,
        "MultiLineString",
    )
    assert roads["qfc_source_data_pk_name"] == ""
    assert roads["read_only_reason"] == (
        "no supported primary key, the layer will be read-only in QField"
    )
    trees = records["trees"]
    assert (trees["is_valid"], trees["feature_count"], trees["wkb_type"]) == (
        True,
        2,
        1,
    )
    assert trees["qfc_source_data_pk_name"] == "fid"
    assert trees["qfs_cloud_action"] == "offline"
    assert records["sheet"]["feature_count"] == 3
    assert records["virtual"]["is_valid"] is True
    assert records["gone"]["error_summary"] == 'File "../outside/x.gpkg" missing.'
    assert records["gone"]["wkb_type"] == 6
    assert records["ortho"]["error_summary"] == 'File "C:/gis/ortho.tif" missing.'
    assert records["ortho"]["type"] == 1
    noprovider = records["noprovider"]
    assert noprovider["error_code"] == "missing_dataprovider"
    assert noprovider["datasource"] is None
    assert any("INVALID [missing_dataprovider]" in line for line in report.log_lines)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("DCIM/photo.jpg", True),
        ("DCIM/sub/photo.jpg", True),
        ("./DCIM/photo.jpg", True),
        ("DCIMx.txt", False),
        ("DCIM", False),
        ("other/DCIM/photo.jpg", False),
        ("files/docs/a.pdf", True),
        ("files/docsx/a.pdf", False),
        ("files/a.pdf", False),
        ("dcim/photo.jpg", False),
    ],
)
def test_is_attachment(path: str, expected: bool) -> None:
    assert is_attachment(path, ["DCIM", "files/docs/"]) is expected
