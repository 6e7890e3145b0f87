"""Parsing datasource text into the DataSource model, rendering and redaction."""

from pathlib import Path

import pytest

from qfjobs.qgis.datasource import (
    DataSource,
    MemoryField,
    SourceKind,
    ogr_datasource,
    parse_datasource,
    relocate,
    render_file_datasource,
)
from qfjobs.qgis.redaction import redact, redact_values
from qfjobs.qgis.uriparts import parse_conninfo

PROJECT = Path("/srv/project")


def parse(provider: str, text: str) -> DataSource:
    return parse_datasource(provider, text)


class TestOgr:
    def test_gpkg_layername(self) -> None:
        source = parse("ogr", "./testdata.gpkg|layername=points_xy")

        assert source.kind is SourceKind.FILE
        assert source.path == "./testdata.gpkg"
        assert source.layer_name == "points_xy"
        assert source.resolve_path(PROJECT) == PROJECT / "testdata.gpkg"
        assert source.raw == "./testdata.gpkg|layername=points_xy"

    def test_all_pipe_options(self) -> None:
        source = parse(
            "ogr",
            "../data/x.gpkg|layerid=2|geometrytype=Point|option:LIST_ALL_TABLES=YES"
            "|subset=\"name\" = 'a|b'",
        )

        assert source.layer_id == 2
        assert source.geometry_type == "Point"
        assert source.subset == "\"name\" = 'a|b'"
        assert source.params == {"option:LIST_ALL_TABLES": "YES"}
        assert source.resolve_path(PROJECT) == Path("/srv/data/x.gpkg")

    @pytest.mark.parametrize(
        ("text", "path"),
        [
            ("file:///home/u/a%20b.gpkg|layername=x", "/home/u/a b.gpkg"),
            ("file:///C:/gis/a.gpkg|layername=x", "C:/gis/a.gpkg"),
            ("file:./rel.gpkg|layername=x", "./rel.gpkg"),
            ("C:/gis/ortho.gpkg|layername=x", "C:/gis/ortho.gpkg"),
            ("plain.shp", "plain.shp"),
        ],
    )
    def test_paths_and_file_uris(self, text: str, path: str) -> None:
        assert parse("ogr", text).path == path

    def test_windows_paths_are_not_joined_to_the_project(self) -> None:
        source = parse("ogr", "C:/gis/ortho.gpkg|layername=x")

        assert source.is_windows_absolute
        assert source.resolve_path(PROJECT) == Path("C:/gis/ortho.gpkg")

    @pytest.mark.parametrize(
        "text",
        [
            "localized:bumblebees.gpkg|layername=apiary",
            "file:localized:bumblebees.gpkg|layername=apiary",
        ],
    )
    def test_localized(self, text: str) -> None:
        source = parse("ogr", text)

        assert source.kind is SourceKind.LOCALIZED
        assert source.is_localized
        assert source.path == "bumblebees.gpkg"
        assert source.layer_name == "apiary"

    def test_vsizip(self) -> None:
        source = parse("ogr", "/vsizip/./shapes.zip/sub/roads.shp")

        assert source.vsi_prefix == "/vsizip/"
        assert source.path == "./shapes.zip"
        assert source.archive_member == "sub/roads.shp"

    @pytest.mark.parametrize(
        "text",
        ["https://example.com/data.geojson", "/vsicurl/https://example.com/x.fgb"],
    )
    def test_remote_ogr_is_online(self, text: str) -> None:
        source = parse("ogr", text)

        assert source.kind is SourceKind.ONLINE
        assert source.url == text

    def test_pg_connection_through_ogr(self) -> None:
        source = parse("ogr", "PG:\"dbname='gis' host=db password='s3cret'\"")

        assert source.kind is SourceKind.DATABASE
        assert source.params["dbname"] == "gis"


class TestGdal:
    def test_geotiff(self) -> None:
        source = parse("gdal", "./osmgrey.tif")

        assert (source.kind, source.path) == (SourceKind.FILE, "./osmgrey.tif")

    def test_gpkg_raster_table(self) -> None:
        source = parse("gdal", "GPKG:./rasters.gpkg:ortho")

        assert source.driver_prefix == "GPKG"
        assert source.path == "./rasters.gpkg"
        assert source.layer_name == "ortho"

    def test_gpkg_raster_with_windows_path(self) -> None:
        source = parse("gdal", "GPKG:C:/data/rasters.gpkg:ortho")

        assert source.path == "C:/data/rasters.gpkg"
        assert source.layer_name == "ortho"

    def test_quoted_netcdf_subdataset(self) -> None:
        source = parse("gdal", 'NETCDF:"./climate data.nc":tas')

        assert (source.path, source.layer_name) == ("./climate data.nc", "tas")

    def test_mbtiles(self) -> None:
        assert parse("gdal", "./tiles.mbtiles").path == "./tiles.mbtiles"


class TestDelimitedText:
    def test_xy_csv(self) -> None:
        source = parse(
            "delimitedtext",
            "file:///home/u/trees%20list.csv?type=csv&delimiter=%3B&xField=lon"
            "&yField=lat&crs=EPSG:4326&spatialIndex=no&subsetIndex=no",
        )

        assert source.kind is SourceKind.FILE
        assert source.path == "/home/u/trees list.csv"
        assert source.params["delimiter"] == ";"
        assert source.params["xField"] == "lon"
        assert source.geometry_type == "Point"

    def test_relative_wkt_csv(self) -> None:
        source = parse("delimitedtext", "file:./shapes.csv?type=csv&wktField=wkt")

        assert source.path == "./shapes.csv"
        assert source.geometry_type is None
        assert source.params["wktField"] == "wkt"

    def test_windows_csv(self) -> None:
        source = parse("delimitedtext", "file:///C:/data/x.csv?type=csv&geomType=none")

        assert source.path == "C:/data/x.csv"
        assert source.geometry_type == "NoGeometry"

    def test_localized_csv(self) -> None:
        source = parse("delimitedtext", "file:localized:x.csv?type=csv")

        assert source.kind is SourceKind.LOCALIZED
        assert source.path == "x.csv"


class TestConnInfo:
    def test_postgres_full(self) -> None:
        source = parse(
            "postgres",
            "dbname='gis' host=db.example.org port=5433 user='bob' "
            "password='p\\'w d' sslmode=require authcfg=abc1234 key='id' srid=2056 "
            'type=MultiPolygonZ checkPrimaryKeyUnicity=\'1\' table="my ""s"""."tab" '
            "(geom) sql=\"kind\" = 'x' AND a > 1",
        )

        assert source.kind is SourceKind.DATABASE
        assert source.params["password"] == "p'w d"
        assert source.params["port"] == "5433"
        assert source.host == "db.example.org"
        table = source.table
        assert table is not None
        assert (table.schema, table.table, table.geometry_column) == (
            'my "s"',
            "tab",
            "geom",
        )
        assert (table.key, table.srid, table.wkb_type) == (
            "id",
            "2056",
            "MultiPolygonZ",
        )
        assert table.sql == "\"kind\" = 'x' AND a > 1"
        assert source.geometry_type == "MultiPolygonZ"

    def test_postgres_service(self) -> None:
        source = parse(
            "postgres",
            "service='geodb1' sslmode=disable key='id' srid=2056 type=Point "
            'checkPrimaryKeyUnicity=\'0\' table="public"."point" (geometry)',
        )

        assert source.service == "geodb1"
        assert source.table is not None
        assert source.table.qualified_name == '"public"."point"'

    def test_bare_table_and_no_geometry(self) -> None:
        info = parse_conninfo("dbname=gis table=public.plain")

        assert info.table is not None
        assert (info.table.schema, info.table.table) == ("public", "plain")
        assert info.table.geometry_column is None

    def test_query_layer(self) -> None:
        info = parse_conninfo('dbname=gis key=id table="(SELECT * FROM t)" (geom)')

        assert info.table is not None
        assert info.table.is_query

    def test_spatialite(self) -> None:
        source = parse(
            "spatialite", "dbname='./spatialite.db' table=\"somepolydata\" (geom)"
        )

        assert source.kind is SourceKind.FILE
        assert source.path == "./spatialite.db"
        assert source.layer_name == "somepolydata"
        assert source.table is not None and source.table.geometry_column == "geom"


class TestWebMemoryVirtual:
    def test_xyz(self) -> None:
        source = parse(
            "wms",
            "crs=EPSG:3857&format&type=xyz&url=https://tile.openstreetmap.org/"
            "%7Bz%7D/%7Bx%7D/%7By%7D.png&zmax=19&zmin=0",
        )

        assert source.kind is SourceKind.ONLINE
        assert source.url == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
        assert source.params["format"] == ""

    def test_wmts(self) -> None:
        source = parse(
            "wms",
            "contextualWMSLegend=0&crs=EPSG:2056&dpiMode=7&featureCount=10"
            "&format=image/png&layers=ch.swisstopo&styles=default&tileMatrixSet=2056"
            "&url=https://wmts.geo.admin.ch/EPSG/2056/1.0.0/WMTSCapabilities.xml",
        )

        assert source.kind is SourceKind.ONLINE
        assert source.params["tileMatrixSet"] == "2056"

    def test_wfs_conninfo_style(self) -> None:
        source = parse(
            "wfs",
            "pagingEnabled='true' srsname='EPSG:2056' typename='ms:trees' "
            "url='https://example.com/wfs' version='auto'",
        )

        assert (source.kind, source.url) == (
            SourceKind.ONLINE,
            "https://example.com/wfs",
        )

    def test_arcgis(self) -> None:
        source = parse(
            "arcgisfeatureserver",
            "crs='EPSG:3857' url='https://example.com/FeatureServer/0'",
        )

        assert source.kind is SourceKind.ONLINE

    def test_local_vector_tiles(self) -> None:
        source = parse("vectortile", "type=mbtiles&url=./tiles.mbtiles")

        assert (source.kind, source.path) == (SourceKind.FILE, "./tiles.mbtiles")

    def test_localized_url(self) -> None:
        source = parse("vectortile", "type=mbtiles&url=file:localized:tiles.mbtiles")

        assert source.is_localized
        assert source.path == "tiles.mbtiles"

    def test_memory(self) -> None:
        source = parse(
            "memory",
            "memory?geometry=Point&crs=EPSG:4326&field=name:string(255,0)"
            "&field=size:integer(10,0)&field=note:string&field=a%20b:double(10,3)",
        )

        assert source.kind is SourceKind.MEMORY
        assert source.geometry_type == "Point"
        assert source.memory_fields == (
            MemoryField("name", "string", 255, 0),
            MemoryField("size", "integer", 10, 0),
            MemoryField("note", "string"),
            MemoryField("a b", "double", 10, 3),
        )

    def test_memory_qgis2_and_no_geometry(self) -> None:
        assert parse("memory", "Point?crs=EPSG:4326").geometry_type == "Point"
        assert parse("memory", "memory?geometry=None").geometry_type == "NoGeometry"

    def test_virtual(self) -> None:
        source = parse(
            "virtual",
            "?layer_ref=points_c27:input1&layer=ogr:.%252Fdata.gpkg%257Clayername%253Da"
            ":embedded:UTF-8&query=SELECT%20*%20FROM%20input1&geometry=geom:Point:4326",
        )

        assert source.kind is SourceKind.VIRTUAL
        assert source.referenced_layer_ids == ("points_c27",)
        assert source.geometry_type == "Point"
        (embedded,) = source.embedded_sources
        assert embedded.provider == "ogr"
        assert (embedded.path, embedded.layer_name) == ("./data.gpkg", "a")

    def test_missing_and_unknown_providers(self) -> None:
        assert parse_datasource(None, "x").kind is SourceKind.NONE
        assert parse_datasource("", "").kind is SourceKind.NONE
        assert parse("grass", "/x/y").kind is SourceKind.UNKNOWN
        assert parse("oracle", 'dbname=\'x\' table="a"."b"').kind is SourceKind.DATABASE


class TestRender:
    def test_ogr_datasource(self) -> None:
        assert ogr_datasource("./data.gpkg", "x") == "./data.gpkg|layername=x"
        assert (
            ogr_datasource("./a.shp", layer_id=0, subset='"a" = 1')
            == './a.shp|layerid=0|subset="a" = 1'
        )

    def test_round_trip_of_ogr_text(self) -> None:
        text = "./data.gpkg|layername=points|subset=\"a\" = 'x|y'"
        assert render_file_datasource(parse("ogr", text)) == text

    def test_relocate_keeps_layer_and_subset(self) -> None:
        moved = relocate(
            parse("ogr", "../far/away.gpkg|layername=pts|subset=a>1"), "./data.gpkg"
        )

        assert moved.raw == "./data.gpkg|layername=pts|subset=a>1"
        assert moved.path == "./data.gpkg"

    def test_relocate_gpkg_raster_and_vsizip(self) -> None:
        assert relocate(parse("gdal", "GPKG:/x/r.gpkg:ortho"), "./r.gpkg").raw == (
            "GPKG:./r.gpkg:ortho"
        )
        assert relocate(parse("ogr", "/vsizip//x/a.zip/b.shp"), "./a.zip").raw == (
            "/vsizip/./a.zip/b.shp"
        )

    def test_relocate_spatialite(self) -> None:
        moved = relocate(
            parse("spatialite", "dbname='/x/s.db' key='pk' table=\"t\" (geom)"),
            "./s.db",
        )

        assert moved.raw == "dbname='./s.db' key='pk' table=\"t\" (geom)"
        assert parse("spatialite", moved.raw).path == "./s.db"

    def test_relocate_delimited_text(self) -> None:
        moved = relocate(
            parse("delimitedtext", "file:///x/a.csv?type=csv&xField=x"), "./a.csv"
        )

        assert moved.raw == "file:./a.csv?type=csv&xField=x"

    def test_online_sources_cannot_be_rendered_as_files(self) -> None:
        with pytest.raises(ValueError, match="cannot render"):
            render_file_datasource(parse("wms", "type=xyz&url=https://x/{z}"))


class TestRedaction:
    @pytest.mark.parametrize(
        ("text", "secret"),
        [
            ("dbname='x' host=h user='u' password='Bhooo' sslmode=disable", "Bhooo"),
            ("dbname=x password=plain123 table=t", "plain123"),
            ("dbname=x password='with \\' quote' key=id", "with"),
            ("dbname=x authcfg=abc1234 table=t", "abc1234"),
            ("url=https://bob:hunter22@example.com/wms&type=xyz", "hunter22"),
            ("url='https://bob:hunter22@example.com/wfs' version=auto", "hunter22"),
            ("type=xyz&url=https%3A%2F%2Fbob%3Ahunter22%40example.com%2F", "hunter22"),
            ("crs=EPSG:3857&password=pw999&username=bob&url=https://x", "pw999"),
            ("url=https://x&http-header:Authorization=Bearer%20tok123", "tok123"),
            ("url=https://x/?api_key=k3y789&format=png", "k3y789"),
        ],
    )
    def test_secrets_are_masked(self, text: str, secret: str) -> None:
        masked = redact(text)

        assert secret not in masked
        assert "***" in masked

    def test_other_parts_survive(self) -> None:
        text = "dbname='gis' host=db password='x1y2' key='id' table=\"a\".\"b\" (geom)"

        assert redact(text) == (
            "dbname='gis' host=db password='***' key='id' table=\"a\".\"b\" (geom)"
        )

    def test_redacted_text_still_parses(self) -> None:
        source = parse("postgres", redact("dbname=gis password='x1y2' table=\"t\" (g)"))

        assert source.params["password"] == "***"
        assert source.table is not None and source.table.table == "t"

    def test_key_and_sslkey_are_not_secrets(self) -> None:
        text = "dbname=gis key='id' sslkey=/etc/k.pem table=t"
        assert redact(text) == text

    def test_known_values_are_masked_in_messages(self) -> None:
        message = 'connection failed for password "Zz9-secret"'
        assert "Zz9-secret" not in redact_values(message, ["Zz9-secret", None])
