"""Layer filters in the package: kept as filters, applied at the source, or dropped.

PostGIS tests use the machine's PostgreSQL (a schema of their own, skipped
when it cannot be reached, see tests/qgis/conftest.py).
"""

from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import psycopg

from qfjobs.packaging.layerfilters import count_in_package
from tests.packaging.readback import (
    check_package,
    package_folder,
    packaged_root,
    table_info,
)
from tests.packaging.test_layers import layer_xml, points, write_project
from tests.packaging.test_postgres import pg_source
from tests.qgis.conftest import PgSchema
from tests.qgis.datagen import write_vector


def _xml(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def _with_sql(datasource: str, sql: str) -> str:
    """A postgres datasource with ``sql=``, escaped for the project XML."""
    return _xml(f"{datasource} sql={sql}")


def _pg_count(pg: PgSchema, where: str) -> int:
    with psycopg.connect(pg.dsn) as connection:
        row = connection.execute(
            f'SELECT count(*) FROM "{pg.schema}".trees WHERE {where}'.encode()
        ).fetchone()
    assert row is not None
    return int(row[0])


def _sources(root: Any) -> dict[str, str]:
    return {
        node.findtext("id"): node.findtext("datasource") or ""
        for node in root.iter("maplayer")
    }


#: layer id -> (PostgreSQL filter, expected outcome)
PG_FILTERS = {
    "ilike": ("\"name\" ILIKE 'a%'", "applied_at_source"),
    "cast": ("\"height\"::text = '1.5'", "applied_at_source"),
    "recent": ("\"seen\" > now() - interval '1 day'", "applied_at_source"),
    # valid SQLite too, but SQLite's LIKE ignores case: other rows
    "like": ("\"name\" LIKE 'a%'", "applied_at_source"),
    "both": ('"height" > 10 AND "name" <> \'Birch 1\'', "kept"),
    "dates": ("\"planted\" >= '2020-01-20' AND \"kind\" IN ('oak', 'elm')", "kept"),
}


def test_postgres_filters(pg_schema: PgSchema, tmp_path: Path) -> None:
    pg = pg_schema
    pg.execute(
        f'CREATE TABLE "{pg.schema}".trees (id serial PRIMARY KEY, name text, '
        "kind text, height double precision, planted date, seen timestamptz, "
        "geom geometry(Point, 4326))"
    )
    pg.execute(
        f'INSERT INTO "{pg.schema}".trees (name, kind, height, planted, seen, geom) '
        "SELECT (ARRAY['Apple', 'apple', 'Birch', 'ash'])[i % 4 + 1] || ' ' || i, "
        "(ARRAY['oak', 'elm', 'fir'])[i % 3 + 1], i * 0.5, "
        "DATE '2020-01-01' + i, now() - i * interval '1 hour', "
        "ST_SetSRID(ST_MakePoint(i, i), 4326) FROM generate_series(1, 60) i"
    )
    base = pg_source(pg, "trees")
    layers = [layer_xml("all", base, "postgres")]
    layers += [
        layer_xml(layer_id, _with_sql(base, sql), "postgres")
        for layer_id, (sql, _outcome) in PG_FILTERS.items()
    ]
    ids = ["all", *PG_FILTERS]
    name = write_project(tmp_path, layers, ids)
    out = tmp_path / "out"
    original, build, packaged = package_folder(tmp_path, name, out)
    check_package(original, build, packaged, out)

    by_id = {item["id"]: item for item in build.layers}
    sources = _sources(packaged_root(out, build))
    gpkg = out / "data.gpkg"
    shared = by_id["all"]["table"]
    assert by_id["all"]["feature_count"] == 60
    assert "filter" not in by_id["all"]
    tables = set()
    for layer_id, (sql, outcome) in PG_FILTERS.items():
        layer = by_id[layer_id]
        matching = _pg_count(pg, sql)
        assert layer["filter"]["outcome"] == outcome, (layer_id, layer["filter"])
        assert layer["filter"]["filter"] == sql
        assert layer["filter"]["source_matches"] == matching
        if outcome == "kept":
            # every row packaged, in the shared table; the filter stays
            assert layer["table"] == shared
            assert layer["feature_count"] == 60
            assert sources[layer_id].endswith(f"|subset={sql}")
            assert count_in_package(gpkg, shared, sql) == matching
        else:
            # only the matching rows, in a table of its own, no filter left
            assert layer["table"] != shared and layer["table"] not in tables
            tables.add(layer["table"])
            assert layer["feature_count"] == matching
            assert table_info(gpkg, layer["table"])["rows"] == matching
            assert "subset=" not in sources[layer_id]
            assert layer_id in str(build.warnings)
    assert 0 < _pg_count(pg, PG_FILTERS["like"][0]) < 60
    assert _pg_count(pg, PG_FILTERS["recent"][0]) == 23


def test_postgres_filter_of_a_single_layer_reuses_its_table(
    pg_schema: PgSchema, tmp_path: Path
) -> None:
    pg = pg_schema
    pg.execute(
        f'CREATE TABLE "{pg.schema}".trees (id serial PRIMARY KEY, name text, '
        "geom geometry(Point, 4326))"
    )
    pg.execute(
        f'INSERT INTO "{pg.schema}".trees (name, geom) SELECT '
        "(ARRAY['Ash', 'birch'])[i % 2 + 1], ST_SetSRID(ST_MakePoint(i, i), 4326) "
        "FROM generate_series(1, 9) i"
    )
    sql = "\"name\" ~* '^a'"
    name = write_project(
        tmp_path,
        [layer_xml("trees", _with_sql(pg_source(pg, "trees"), sql), "postgres")],
        ["trees"],
    )
    out = tmp_path / "out"
    _original, build, packaged = package_folder(tmp_path, name, out)
    layer = build.layers[0]
    assert layer["filter"]["outcome"] == "applied_at_source"
    assert layer["table"] == "trees"
    assert layer["feature_count"] == _pg_count(pg, sql) == 4
    assert table_info(out / "data.gpkg", "trees")["rows"] == 4
    assert packaged.layers[0].check.is_valid
    assert packaged.layers[0].check.feature_count == 4
    assert _sources(packaged_root(out, build))["trees"] == (
        "./data.gpkg|layername=trees"
    )


def test_file_filters(tmp_path: Path) -> None:
    """ogr layers: filters in the source driver's dialect; delimited text:
    QGIS expressions."""
    data = tmp_path / "data"
    data.mkdir()
    names = [f"{'Alder' if i % 2 else 'beech'} {i}" for i in range(20)]
    for filename, driver in (("trees.shp", "ESRI Shapefile"), ("trees.gpkg", "GPKG")):
        write_vector(
            data / filename,
            [f"POINT ({i} {i})" for i in range(20)],
            {"fid": list(range(1, 21)), "name": names},  # type: ignore[dict-item]
            driver=driver,
            geometry_type="Point",
        )
    points(data / "plain.gpkg", 5, driver="GPKG")
    rows = ["fid,x,y,label"] + [f"{i},{i},{i},row {i}" for i in range(1, 13)]
    (data / "sites.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")

    def csv_layer(subset: str) -> str:
        return (
            "file:./data/sites.csv?type=csv&amp;delimiter=,&amp;xField=x"
            "&amp;yField=y&amp;crs=EPSG:4326&amp;detectTypes=yes"
            f"&amp;subset={_xml(subset)}"
        )

    layers = {
        # OGR SQL knows ILIKE, SQLite does not
        "shp_ilike": layer_xml(
            "shp_ilike", "./data/trees.shp|subset=&quot;name&quot; ILIKE 'a%'"
        ),
        # SQLite on both sides: same rows
        "gpkg_like": layer_xml(
            "gpkg_like",
            "./data/trees.gpkg|layername=trees|subset=&quot;name&quot; LIKE 'a%'",
        ),
        "gpkg_all": layer_xml("gpkg_all", "./data/trees.gpkg|layername=trees"),
        "csv_ok": layer_xml("csv_ok", csv_layer('"fid" > 4'), "delimitedtext"),
        "csv_expr": layer_xml(
            "csv_expr", csv_layer("regexp_match(\"label\", 'row 1.')"), "delimitedtext"
        ),
        "plain": layer_xml("plain", "./data/plain.gpkg|subset=fid &lt;= 2"),
    }
    name = write_project(tmp_path, list(layers.values()), list(layers))
    out = tmp_path / "out"
    original, build, packaged = package_folder(tmp_path, name, out)
    check_package(original, build, packaged, out)
    by_id = {item["id"]: item for item in build.layers}
    sources = _sources(packaged_root(out, build))

    shp = by_id["shp_ilike"]
    assert shp["filter"]["outcome"] == "applied_at_source"
    assert shp["feature_count"] == shp["filter"]["source_matches"] == 10
    assert "subset=" not in sources["shp_ilike"]

    like = by_id["gpkg_like"]
    assert like["filter"]["outcome"] == "kept"
    assert like["table"] == by_id["gpkg_all"]["table"]
    assert like["feature_count"] == 20
    assert sources["gpkg_like"].endswith("|subset=\"name\" LIKE 'a%'")

    assert by_id["csv_ok"]["filter"]["outcome"] == "kept"
    assert by_id["csv_ok"]["filter"]["package_matches"] == 8
    assert sources["csv_ok"].endswith('|subset="fid" > 4')
    expr = by_id["csv_expr"]
    assert expr["filter"]["outcome"] == "dropped"
    assert expr["feature_count"] == 12
    assert "subset=" not in sources["csv_expr"]
    assert any("csv_expr" in warning for warning in build.warnings)

    assert by_id["plain"]["filter"]["outcome"] == "kept"
    assert sources["plain"].endswith("|subset=fid <= 2")
