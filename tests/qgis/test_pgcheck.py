"""PostgreSQL layers against the local server (schema created and dropped)."""

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qfjobs.qgis.checkresult import ErrorCode, SourceCheck
from qfjobs.qgis.datasource import parse_datasource
from qfjobs.qgis.pgcheck import PgOptions, check_postgres
from qfjobs.qgis.primarykey import source_pk_name
from tests.qgis.conftest import PgSchema

LOCAL = PgOptions(timeout=3.0)


@pytest.fixture
def tables(pg_schema: PgSchema) -> PgSchema:
    s = pg_schema.schema
    pg_schema.execute(
        f"""
        CREATE TABLE "{s}".trees (id serial PRIMARY KEY, name text,
                                  geom geometry(PointZ, 2056));
        INSERT INTO "{s}".trees (name, geom) VALUES
            ('oak', 'SRID=2056;POINT Z (1 2 3)'), ('elm', NULL),
            ('ash', 'SRID=2056;POINT Z (4 5 6)');
        CREATE TABLE "{s}".nokey (a integer, geom geometry(Polygon, 4326));
        CREATE TABLE "{s}".composite (a integer, b integer, PRIMARY KEY (a, b));
        CREATE TABLE "{s}".measured (id integer PRIMARY KEY,
                                     geom geometry(LineStringM, 4326));
        CREATE VIEW "{s}".trees_view AS SELECT id, name, geom FROM "{s}".trees;
        """
    )
    return pg_schema


def conninfo(schema: PgSchema) -> str:
    p = schema.params
    port = p.get("port", "5432")
    return f"dbname='{p['dbname']}' host={p['host']} port={port} user='{p['user']}'"


def run(text: str, options: PgOptions = LOCAL) -> SourceCheck:
    return check_postgres(parse_datasource("postgres", text), options)


def test_table_with_primary_key(tables: PgSchema) -> None:
    result = run(
        f"{conninfo(tables)} srid=2056 type=PointZ "
        f'table="{tables.schema}"."trees" (geom)'
    )

    assert result.is_valid, result
    assert (result.geometry_type, result.crs, result.feature_count) == (
        "PointZ",
        "EPSG:2056",
        3,
    )
    assert result.primary_keys == ("id",)
    assert [(f.name, f.type) for f in result.fields] == [
        ("id", "integer"),
        ("name", "text"),
    ]


def test_keys(tables: PgSchema) -> None:
    base = conninfo(tables)
    s = tables.schema
    nokey = run(f'{base} table="{s}"."nokey" (geom)')
    composite = run(f'{base} table="{s}"."composite"')
    view = run(f'{base} key=\'id\' table="{s}"."trees_view" (geom)')
    view_without_key = run(f'{base} table="{s}"."trees_view" (geom)')

    assert source_pk_name(nokey.primary_keys, nokey.fields) == ""
    assert composite.primary_keys == ("a", "b")
    assert source_pk_name(composite.primary_keys, composite.fields) == ""
    assert composite.geometry_type == "NoGeometry"
    assert source_pk_name(view.primary_keys, view.fields) == "id"
    assert view_without_key.primary_keys == ()


def test_measured_geometry(tables: PgSchema) -> None:
    result = run(f'{conninfo(tables)} table="{tables.schema}"."measured" (geom)')

    assert result.geometry_type == "LineStringM"


def test_missing_table_and_column(tables: PgSchema) -> None:
    table = run(f'{conninfo(tables)} table="{tables.schema}"."gone" (geom)')
    column = run(f'{conninfo(tables)} table="{tables.schema}"."trees" (the_geom)')

    assert table.error_code is ErrorCode.INVALID_DATAPROVIDER
    assert (
        table.error_summary
        == f'Table "{tables.schema}.gone" not found in the database.'
    )
    assert column.error_summary == (
        f'Column "the_geom" not found in "{tables.schema}.trees".'
    )


def test_query_layer(tables: PgSchema) -> None:
    result = run(
        f"{conninfo(tables)} key='id' "
        f'table="(SELECT id, geom FROM {tables.schema}.trees WHERE id > 1)" (geom)'
    )

    assert result.is_valid, result
    assert result.feature_count == 2
    assert result.primary_keys == ("id",)


def write_service_file(path: Path, schema: PgSchema, name: str = "fielddb") -> Path:
    p = schema.params
    path.write_text(
        f"# written by the test\n[{name}]\nhost={p['host']}\n"
        f"port={p.get('port', '5432')}\n"
        f"dbname={p['dbname']}\nuser={p['user']}\n"
    )
    return path


def service_layer(schema: PgSchema, service: str = "fielddb") -> str:
    return (
        f"service='{service}' sslmode=disable key='id' srid=2056 type=PointZ "
        f'table="{schema.schema}"."trees" (geom)'
    )


def test_service_from_file(tables: PgSchema, tmp_path: Path) -> None:
    service_file = write_service_file(tmp_path / "pg_service.conf", tables)

    result = run(service_layer(tables), PgOptions(service_file=service_file))

    assert result.is_valid, result
    assert result.feature_count == 3


def test_service_from_environment(
    tables: PgSchema, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service_file = write_service_file(tmp_path / "services.conf", tables)
    monkeypatch.setenv("PGSERVICEFILE", str(service_file))

    assert run(service_layer(tables)).is_valid


def test_undefined_service(tables: PgSchema, tmp_path: Path) -> None:
    service_file = write_service_file(tmp_path / "pg_service.conf", tables)

    result = run(service_layer(tables, "other"), PgOptions(service_file=service_file))

    assert result.error_code is ErrorCode.INVALID_DATAPROVIDER
    assert result.error_summary == 'Unable to connect to service "other".'
    assert result.error_message == 'definition of service "other" not found'


def test_no_service_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGSERVICEFILE", raising=False)

    result = run('service=\'geodb1\' table="public"."point" (geometry)')

    assert result.error_summary == 'Unable to connect to service "geodb1".'
    assert "no service file configured" in result.error_message


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_connection_refused_names_the_host() -> None:
    result = run(
        f"dbname='x' host=127.0.0.1 port={closed_port()} user='u' "
        'password=\'Sekr3tPw\' table="a"."b" (g)'
    )

    assert result.error_summary == 'Unable to connect to host "127.0.0.1".'
    assert "refused" in result.error_message.lower()
    assert "Sekr3tPw" not in result.error_message


def test_unknown_database_reason_is_given(tables: PgSchema) -> None:
    p = tables.params
    result = run(
        f"dbname='no_such_db_qfjobs' host={p['host']} port={p.get('port', '5432')} "
        f"user='{p['user']}' password='Sekr3tPw' table=\"a\".\"b\" (g)"
    )

    assert result.error_summary == f'Unable to connect to host "{p["host"]}".'
    assert "no_such_db_qfjobs" in result.error_message
    assert "Sekr3tPw" not in result.error_message


def test_hosts_outside_the_allow_list_are_not_contacted() -> None:
    result = run(
        "dbname='postgres' host=fefi.opengizzzz.ch port=5432 user='docker' "
        'password=\'Bhooo\' table="forsteingriffe"."surfacestructure" (surface)'
    )

    assert result.error_summary == 'Unable to connect to host "fefi.opengizzzz.ch".'
    assert "not allowed" in result.error_message


def test_empty_allow_list_refuses_loopback_too(tables: PgSchema) -> None:
    result = run(
        f'{conninfo(tables)} table="{tables.schema}"."trees" (geom)',
        PgOptions(allowed_hosts=frozenset()),
    )

    assert "not allowed" in result.error_message


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts TCP connections but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_connect_timeout_is_short(silent_server: int) -> None:
    started = time.monotonic()
    result = run(
        f"dbname='x' host=127.0.0.1 port={silent_server} user='u' table=\"a\".\"b\"",
        PgOptions(timeout=2.0),
    )
    elapsed = time.monotonic() - started

    assert result.error_summary == 'Unable to connect to host "127.0.0.1".'
    assert elapsed < 8
