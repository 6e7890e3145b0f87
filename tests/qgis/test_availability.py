"""Checking file, raster, spatialite, memory, virtual and web sources for real."""

import os
import shutil
from pathlib import Path

import pytest

from qfjobs.qgis.availability import SourceChecker
from qfjobs.qgis.checkresult import ErrorCode, SourceCheck
from qfjobs.qgis.datasource import parse_datasource
from qfjobs.qgis.primarykey import source_pk_name
from tests.qgis import datagen
from tests.qgis.conftest import data_folder


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def check(
    project_dir: Path,
    provider: str,
    text: str,
    *,
    layer_type: str = "vector",
    data_root: Path | None = None,
) -> SourceCheck:
    with SourceChecker(project_dir, data_root=data_root) as checker:
        return checker.check(parse_datasource(provider, text), layer_type=layer_type)


def pk_name(result: SourceCheck) -> str:
    return source_pk_name(result.primary_keys, result.fields)


class TestOgrFiles:
    def test_delta_gpkg_layers(self) -> None:
        folder = data_folder("qfieldcloud-delta")
        before = sorted(os.listdir(folder))
        expected = {
            "points_xy": ("Point", 3),
            "points_xyz": ("PointZ", 3),
            "points_xyzm": ("PointZM", 3),
            "polygons": ("Polygon", 2),
            "special_data_types": ("NoGeometry", 1),
        }

        for layer, (geometry, count) in expected.items():
            result = check(folder, "ogr", f"./testdata.gpkg|layername={layer}")
            assert result.is_valid, result
            assert (result.geometry_type, result.feature_count) == (geometry, count)
            assert pk_name(result) == "fid"
            assert result.driver == "GPKG"

        assert sorted(os.listdir(folder)) == before

    def test_fields_include_the_fid_column_and_types(self) -> None:
        result = check(
            data_folder("qfieldcloud-delta"),
            "ogr",
            "./testdata.gpkg|layername=special_data_types",
        )

        assert [(f.name, f.type) for f in result.fields] == [
            ("fid", "Integer64"),
            ("col_date", "Date"),
            ("col_datetime", "DateTime"),
            ("col_binary", "Binary"),
        ]
        assert result.crs is None

    def test_missing_layer_name(self) -> None:
        result = check(
            data_folder("qfieldcloud-delta"), "ogr", "./testdata.gpkg|layername=nope"
        )

        assert result.error_code is ErrorCode.INVALID_DATAPROVIDER
        assert result.error_summary == 'Layer "nope" not found in "testdata.gpkg".'
        assert "points_xy" in result.error_message

    def test_layer_id_picks_by_index(self) -> None:
        result = check(
            data_folder("qfieldcloud-delta"), "ogr", "./testdata.gpkg|layerid=0"
        )

        assert result.is_valid
        assert result.geometry_type == "Polygon"

    def test_shapefile_without_fid_has_no_key(self, project_dir: Path) -> None:
        datagen.write_shapefile_lines(project_dir / "roads.shp")

        result = check(project_dir, "ogr", "./roads.shp")

        assert result.is_valid
        # QGIS reports shapefile lines as multi-lines.
        assert result.geometry_type == "MultiLineString"
        assert result.feature_count == 2
        assert result.crs == "EPSG:4326"
        assert pk_name(result) == ""

    def test_geojson_with_fid_property(self) -> None:
        result = check(data_folder("qfieldcloud-delta"), "ogr", "./points.geojson")

        assert (result.geometry_type, result.feature_count) == ("Point", 3)
        assert pk_name(result) == "fid"

    @pytest.mark.parametrize(("suffix", "driver"), [(".xlsx", "XLSX"), (".ods", "ODS")])
    def test_spreadsheets(self, project_dir: Path, suffix: str, driver: str) -> None:
        datagen.write_spreadsheet(project_dir / f"sheet{suffix}", driver)

        result = check(project_dir, "ogr", f"./sheet{suffix}|layername=Sheet1")

        assert result.is_valid, result
        assert (result.geometry_type, result.feature_count) == ("NoGeometry", 3)
        assert [f.name for f in result.fields] == ["name", "count"]
        assert result.driver == driver

    def test_wal_geopackage_leaves_no_side_files(self, project_dir: Path) -> None:
        target = project_dir / "wal.gpkg"
        shutil.copyfile(data_folder("qfieldcloud-delta") / "testdata.gpkg", target)
        datagen.set_wal_mode(target)
        for leftover in project_dir.glob("wal.gpkg-*"):
            leftover.unlink()

        result = check(project_dir, "ogr", "./wal.gpkg|layername=points_xyzm")

        assert result.is_valid
        assert result.geometry_type == "PointZM"
        assert sorted(p.name for p in project_dir.iterdir()) == ["wal.gpkg"]

    def test_vsizip_member(self, project_dir: Path, tmp_path: Path) -> None:
        datagen.write_shapefile_lines(tmp_path / "roads.shp")
        shutil.make_archive(str(project_dir / "roads"), "zip", tmp_path, None)

        result = check(project_dir, "ogr", "/vsizip/./roads.zip/roads.shp")

        assert result.is_valid, result
        assert result.feature_count == 2


class TestPaths:
    def test_missing_file(self, project_dir: Path) -> None:
        result = check(project_dir, "ogr", "./data/missing.gpkg|layername=a")

        assert result.error_code is ErrorCode.INVALID_DATAPROVIDER
        assert result.error_summary == 'File "data/missing.gpkg" missing.'
        assert result.filename == str(project_dir / "data" / "missing.gpkg")

    def test_file_outside_the_project_is_never_opened(
        self, project_dir: Path, tmp_path: Path
    ) -> None:
        (tmp_path / "elsewhere").mkdir()
        shutil.copyfile(
            data_folder("qfieldcloud-delta") / "testdata.gpkg",
            tmp_path / "elsewhere" / "b.gpkg",
        )

        result = check(project_dir, "ogr", "../elsewhere/b.gpkg|layername=polygons")

        assert not result.is_valid
        assert result.error_summary == 'File "../elsewhere/b.gpkg" missing.'
        assert "outside the project folder" in result.error_message

    def test_data_root_above_the_project_file(self, tmp_path: Path) -> None:
        (tmp_path / "sub").mkdir()
        shutil.copyfile(
            data_folder("qfieldcloud-delta") / "testdata.gpkg", tmp_path / "b.gpkg"
        )

        result = check(
            tmp_path / "sub", "ogr", "../b.gpkg|layername=polygons", data_root=tmp_path
        )

        assert result.is_valid

    def test_absolute_system_file_is_not_read(self, project_dir: Path) -> None:
        result = check(
            project_dir, "delimitedtext", "file:///etc/passwd?type=csv&delimiter=:"
        )

        assert result.error_summary == 'File "/etc/passwd" missing.'
        assert result.fields == ()

    def test_symlink_leading_out_is_refused(
        self, project_dir: Path, tmp_path: Path
    ) -> None:
        secret = tmp_path / "secret.csv"
        secret.write_text("password,user\nx,y\n")
        (project_dir / "link.csv").symlink_to(secret)

        result = check(project_dir, "ogr", "./link.csv")

        assert not result.is_valid
        assert "links outside" in result.error_message

    def test_windows_path(self, project_dir: Path) -> None:
        result = check(project_dir, "gdal", "C:/gis/ortho.tif", layer_type="raster")

        assert result.error_summary == 'File "C:/gis/ortho.tif" missing.'

    def test_vrt_content_is_refused(self, project_dir: Path) -> None:
        (project_dir / "evil.geojson").write_text(
            "<OGRVRTDataSource><OGRVRTLayer name='x'>"
            "<SrcDataSource>/etc/passwd</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>"
        )

        result = check(project_dir, "ogr", "./evil.geojson")

        assert not result.is_valid
        assert "virtual dataset" in result.error_summary

    def test_unsupported_extension_is_refused(self, project_dir: Path) -> None:
        (project_dir / "layer.vrt").write_text("<OGRVRTDataSource/>")

        result = check(project_dir, "ogr", "./layer.vrt")

        assert "not supported by the server checks" in result.error_summary

    def test_garbage_gpkg(self, project_dir: Path) -> None:
        (project_dir / "broken.gpkg").write_bytes(b"not a database at all")

        result = check(project_dir, "ogr", "./broken.gpkg|layername=a")

        assert result.error_summary == 'GDAL cannot open "broken.gpkg".'
        assert str(project_dir) not in result.error_message


class TestDelimitedText:
    def test_xy_csv(self, project_dir: Path) -> None:
        (project_dir / "trees.csv").write_text(
            "id;name;lon;lat\n1;oak;7.1;46.2\n2;elm;7.2;46.3\n\n3;ash;7,3;46.4\n"
        )

        result = check(
            project_dir,
            "delimitedtext",
            "file:./trees.csv?type=csv&delimiter=%3B&xField=lon&yField=lat"
            "&crs=EPSG:4326",
        )

        assert result.is_valid, result
        assert (result.geometry_type, result.feature_count) == ("Point", 3)
        assert result.crs == "EPSG:4326"
        assert [(f.name, f.type) for f in result.fields] == [
            ("id", "Integer"),
            ("name", "String"),
            ("lon", "String"),
            ("lat", "Real"),
        ]

    def test_missing_coordinate_field(self, project_dir: Path) -> None:
        (project_dir / "trees.csv").write_text("x,y\n1,2\n")

        result = check(
            project_dir,
            "delimitedtext",
            "file:./trees.csv?type=csv&xField=lon&yField=y",
        )

        assert result.error_summary == 'Field "lon" not found in "trees.csv".'
        assert result.error_message == "the file has the fields: x, y"

    def test_wkt_csv_with_quotes(self, project_dir: Path) -> None:
        (project_dir / "shapes.csv").write_text(
            'fid,wkt\n1,"LINESTRING Z (0 0 1, 1 1 2)"\n'
            '2,"LINESTRING Z (1 1 0, 2 2 0)"\n'
        )

        result = check(
            project_dir, "delimitedtext", "file:./shapes.csv?type=csv&wktField=wkt"
        )

        assert (result.geometry_type, result.feature_count) == ("LineStringZ", 2)
        assert pk_name(result) == "fid"

    def test_tab_separated_without_header(self, project_dir: Path) -> None:
        (project_dir / "plain.txt").write_text("a\t1\nb\t2\n")

        result = check(
            project_dir,
            "delimitedtext",
            "file:./plain.txt?type=csv&delimiter=%5Ct&useHeader=no",
        )

        assert result.feature_count == 2
        assert [f.name for f in result.fields] == ["field_1", "field_2"]
        assert result.geometry_type == "NoGeometry"


class TestRasters:
    def test_geotiff(self, project_dir: Path) -> None:
        (project_dir / "ortho.tif").write_bytes(datagen.tiff_bytes())

        result = check(project_dir, "gdal", "./ortho.tif", layer_type="raster")

        assert result.is_valid
        assert result.driver == "GTiff"
        assert result.warnings == ()

    def test_corpus_geotiff(self) -> None:
        corpus = os.environ.get("QFJOBS_CORPUS_DIR")
        if not corpus:
            pytest.skip("QFJOBS_CORPUS_DIR not set")
        folder = Path(corpus) / "training-john_snow_2_16"

        result = check(folder, "gdal", "./osmgrey.tif", layer_type="raster")

        assert (result.is_valid, result.driver) == (True, "GTiff")

    def test_tif_that_is_not_a_tiff(self, project_dir: Path) -> None:
        (project_dir / "fake.tif").write_text("hello")

        result = check(project_dir, "gdal", "./fake.tif", layer_type="raster")

        assert result.error_summary == 'Raster "fake.tif" is not a valid GTiff file.'

    def test_truncated_tiff(self, project_dir: Path) -> None:
        (project_dir / "cut.tif").write_bytes(
            b"II*\x00" + b"\xff\xff\x00\x00" + b"\0" * 8
        )

        assert not check(project_dir, "gdal", "./cut.tif", layer_type="raster").is_valid

    def test_empty_raster(self, project_dir: Path) -> None:
        (project_dir / "empty.png").write_bytes(b"")

        result = check(project_dir, "gdal", "./empty.png", layer_type="raster")

        assert result.error_summary == 'Raster "empty.png" is empty.'

    def test_unknown_format_is_accepted_with_a_warning(self, project_dir: Path) -> None:
        (project_dir / "odd.xyz").write_bytes(b"\x01\x02 some binary raster")

        result = check(project_dir, "gdal", "./odd.xyz", layer_type="raster")

        assert result.is_valid
        assert "not verified" in result.warnings[0]

    def test_mbtiles(self, project_dir: Path) -> None:
        datagen.write_mbtiles(project_dir / "ok.mbtiles")
        datagen.write_mbtiles(project_dir / "bad.mbtiles", with_tiles=False)

        assert check(project_dir, "gdal", "./ok.mbtiles", layer_type="raster").is_valid
        bad = check(project_dir, "gdal", "./bad.mbtiles", layer_type="raster")
        assert bad.error_summary == 'No raster tile table found in "bad.mbtiles".'

    def test_local_mbtiles_through_wms_provider(self, project_dir: Path) -> None:
        datagen.write_mbtiles(project_dir / "ok.mbtiles")

        result = check(
            project_dir,
            "wms",
            "type=mbtiles&url=file://./ok.mbtiles",
            layer_type="raster",
        )

        assert result.is_valid, result

    def test_gpkg_raster_table(self, project_dir: Path) -> None:
        datagen.write_gpkg_raster(project_dir / "rasters.gpkg", "ortho")

        ok = check(
            project_dir, "gdal", "GPKG:./rasters.gpkg:ortho", layer_type="raster"
        )
        missing = check(
            project_dir, "gdal", "GPKG:./rasters.gpkg:dem", layer_type="raster"
        )

        assert ok.is_valid
        assert (
            missing.error_summary == 'Raster table "dem" not found in "rasters.gpkg".'
        )


class TestSpatialite:
    def test_table_with_primary_key(self, project_dir: Path) -> None:
        datagen.write_spatialite_like(project_dir / "spatialite.db")

        result = check(
            project_dir,
            "spatialite",
            "dbname='./spatialite.db' table=\"somepolydata\" (geom)",
        )

        assert result.is_valid, result
        assert (result.geometry_type, result.feature_count) == ("MultiPolygonZ", 2)
        assert result.crs == "EPSG:2056"
        assert pk_name(result) == "pk"
        assert [f.name for f in result.fields] == ["pk", "name"]

    def test_key_from_uri_and_no_table_pk(self, project_dir: Path) -> None:
        datagen.write_spatialite_like(project_dir / "s.db", with_pk=False)

        without = check(
            project_dir, "spatialite", "dbname='./s.db' table=\"somepolydata\" (geom)"
        )
        with_key = check(
            project_dir,
            "spatialite",
            "dbname='./s.db' key='pk' table=\"somepolydata\" (geom)",
        )

        assert pk_name(without) == ""
        assert pk_name(with_key) == "pk"

    def test_missing_table_and_geometry(self, project_dir: Path) -> None:
        datagen.write_spatialite_like(project_dir / "s.db")

        table = check(
            project_dir, "spatialite", "dbname='./s.db' table=\"nope\" (geom)"
        )
        column = check(
            project_dir, "spatialite", "dbname='./s.db' table=\"somepolydata\" (g2)"
        )

        assert table.error_summary == 'Table "nope" not found in "s.db".'
        assert "is not registered" in column.error_summary

    def test_not_a_database(self, project_dir: Path) -> None:
        (project_dir / "s.db").write_text("plain text")

        result = check(project_dir, "spatialite", "dbname='./s.db' table=\"t\" (geom)")

        assert "not a readable SQLite database" in result.error_summary


class TestOtherKinds:
    def test_memory_layer_is_valid(self, project_dir: Path) -> None:
        result = check(
            project_dir,
            "memory",
            "memory?geometry=Point&crs=EPSG:4326&field=name:string(255,0)",
        )

        assert result.is_valid
        assert (result.geometry_type, result.feature_count) == ("Point", 0)
        assert [f.name for f in result.fields] == ["name"]

    def test_web_layers_are_valid_without_contact(self, project_dir: Path) -> None:
        result = check(
            project_dir,
            "wms",
            "type=xyz&url=http://192.0.2.1/%7Bz%7D/%7Bx%7D/%7By%7D.png",
            layer_type="raster",
        )

        assert result.is_valid
        assert result.filename == ""

    def test_localized(self, project_dir: Path) -> None:
        result = check(project_dir, "ogr", "localized:bees.gpkg|layername=apiary")

        assert result.error_code is ErrorCode.LOCALIZED_DATAPROVIDER
        assert result.filename == "bees.gpkg"

    def test_unknown_provider(self, project_dir: Path) -> None:
        result = check(project_dir, "grass", "/x/y/z")

        assert result.error_code is ErrorCode.MISSING_DATAPROVIDER

    def test_virtual_layer_follows_its_references(self, project_dir: Path) -> None:
        good = SourceCheck(is_valid=True)
        bad = SourceCheck(is_valid=False, error_code=ErrorCode.INVALID_DATAPROVIDER)
        source = parse_datasource("virtual", "?layer_ref=a:input1&query=SELECT%201")

        with SourceChecker(project_dir) as checker:
            assert checker.check_virtual(source, {"a": good}).is_valid
            assert not checker.check_virtual(source, {"a": bad}).is_valid
            missing = checker.check_virtual(source, {})

        assert 'referenced layer "a" does not exist' in missing.error_message

    def test_virtual_layer_with_embedded_file(self, project_dir: Path) -> None:
        shutil.copyfile(
            data_folder("qfieldcloud-delta") / "testdata.gpkg", project_dir / "d.gpkg"
        )
        ok = parse_datasource(
            "virtual", "?layer=ogr:.%252Fd.gpkg%257Clayername%253Dpolygons:p:UTF-8"
        )
        broken = parse_datasource(
            "virtual", "?layer=ogr:.%252Fgone.gpkg%257Clayername%253Dpolygons:p:UTF-8"
        )

        with SourceChecker(project_dir) as checker:
            assert checker.check_virtual(ok, {}).is_valid
            result = checker.check_virtual(broken, {})

        assert result.error_message == 'File "gone.gpkg" missing.'


class TestNonAsciiNames:
    @pytest.mark.parametrize(
        "text",
        [
            "./data/Übersichtskarte.gpkg|layername=polygons",
            "file:///{root}/data/%C3%9Cbersichtskarte.gpkg|layername=polygons",
        ],
    )
    def test_non_ascii_file_name(self, project_dir: Path, text: str) -> None:
        (project_dir / "data").mkdir()
        shutil.copyfile(
            data_folder("qfieldcloud-delta") / "testdata.gpkg",
            project_dir / "data" / "Übersichtskarte.gpkg",
        )

        result = check(
            project_dir, "ogr", text.format(root=str(project_dir).lstrip("/"))
        )

        assert result.is_valid, result
        assert result.feature_count == 2
