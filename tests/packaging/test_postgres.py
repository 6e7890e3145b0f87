"""PostgreSQL layers: converted when reachable, removed when not."""

from pathlib import Path

from tests.packaging.readback import (
    check_package,
    package_folder,
    packaged_root,
    table_info,
)
from tests.packaging.test_layers import layer_xml, points, write_project
from tests.qgis.conftest import PgSchema


def pg_source(
    pg: PgSchema, table: str, *, key: str | None = "id", port: str = ""
) -> str:
    params = pg.params
    parts = [
        f"dbname='{params.get('dbname', 'test')}'",
        f"host={params.get('host', '127.0.0.1')}",
        f"port={port or params.get('port', '5432')}",
        f"user='{params.get('user', 'postgres')}'",
        "password='not-needed'",
        "sslmode=disable",
    ]
    if key:
        parts.append(f"key='{key}'")
    parts.append(f'srid=4326 type=Point table="{pg.schema}"."{table}" (geom)')
    return " ".join(parts)


def test_postgres_layers(pg_schema: PgSchema, tmp_path: Path) -> None:
    pg = pg_schema
    pg.execute(
        f'CREATE TABLE "{pg.schema}".trees (id serial PRIMARY KEY, name text, '
        "height double precision, planted date, geom geometry(PointZ, 4326))"
    )
    pg.execute(
        f'INSERT INTO "{pg.schema}".trees (name, height, planted, geom) '
        "SELECT 'tree ' || i, i * 0.5, DATE '2020-01-01' + i, "
        "ST_SetSRID(ST_MakePoint(i, i, i), 4326) FROM generate_series(1, 57) i"
    )
    pg.execute(
        f'CREATE TABLE "{pg.schema}".nokey (name text, geom geometry(Point, 4326))'
    )
    pg.execute(
        f'INSERT INTO "{pg.schema}".nokey VALUES '
        "('a', ST_SetSRID(ST_MakePoint(1, 1), 4326))"
    )
    points(tmp_path / "local.gpkg", 3, driver="GPKG")
    name = write_project(
        tmp_path,
        [
            layer_xml("trees", pg_source(pg, "trees"), "postgres", wkb="PointZ"),
            layer_xml("nokey", pg_source(pg, "nokey", key=None), "postgres"),
            layer_xml("down", pg_source(pg, "trees", port="9"), "postgres"),
            layer_xml("local", "./local.gpkg"),
        ],
        ["trees", "nokey", "down", "local"],
    )
    out = tmp_path / "out"
    original, build, packaged = package_folder(tmp_path, name, out)
    check_package(original, build, packaged, out)
    by_id = {item["id"]: item for item in build.layers}

    assert by_id["trees"]["outcome"] == "packaged_offline"
    assert by_id["trees"]["feature_count"] == 57
    assert by_id["trees"]["geometry_type"] == "Point Z"
    info = table_info(out / "data.gpkg", by_id["trees"]["table"])
    assert info["rows"] == 57
    assert {"name", "height", "planted"} <= set(info["fields"])
    assert info["crs"] == "EPSG:4326"

    assert by_id["nokey"]["outcome"] == "kept_unchanged"
    assert by_id["nokey"]["read_only"] is True
    assert by_id["down"]["outcome"] == "removed"

    root = packaged_root(out, build)
    text = (out / build.project_name).read_text()
    assert "not-needed" not in text.split("nokey</id>")[0].split("trees</id>")[1]
    trees = next(n for n in root.iter("maplayer") if n.findtext("id") == "trees")
    props = {
        o.get("name"): o.get("value")
        for o in trees.iterfind("customproperties/Option/Option")
    }
    assert props["remoteProvider"] == "postgres"
    assert "not-needed" not in props["remoteSource"]
    assert props["QFieldSync/sourceDataPrimaryKeys"] == "id"
    nokey = next(n for n in root.iter("maplayer") if n.findtext("id") == "nokey")
    assert nokey.get("readOnly") == "1"
    assert nokey.findtext("provider") == "postgres"
