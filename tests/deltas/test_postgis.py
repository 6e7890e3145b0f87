"""Deltas applied to a layer whose data lives in a PostGIS schema.

The test creates its own schema and table in the PostgreSQL at
127.0.0.1:5432 (database ``test``), points a QGIS project at it, pushes
deltas through the API and runs the real ``delta_apply`` job. It is skipped,
with the reason, only when PostgreSQL or the PostGIS extension is missing.
"""

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient

from qfjobs.geodata.deltas_ledger import QUALIFIED
from tests.deltas.helpers import new_uuid, push
from tests.helpers import new_project, upload

CONNINFO = "host=127.0.0.1 port=5432 dbname=test user=postgres"
LAYER_ID = "trees_pg_0001"
CLIENT = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
#: Ids of the deltas the tests made: their rows in the data database's ledger
#: of applied deltas are removed after each test.
MADE_DELTA_IDS: list[str] = []


@pytest.fixture
def pg_schema() -> Iterator[str]:
    try:
        connection = psycopg.connect(CONNINFO, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 does not answer: {exc}")
    schema = f"qfjobs_deltas_{uuid.uuid4().hex[:10]}"
    try:
        try:
            connection.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.Error as exc:
            pytest.skip(f"PostGIS cannot be had (scripts/ensure-postgres): {exc}")
        connection.execute(f'CREATE SCHEMA "{schema}"')
        connection.execute(
            f'CREATE TABLE "{schema}".trees ('
            " fid serial PRIMARY KEY, name text NOT NULL, height double precision,"
            " planted date, geom geometry(PointZ, 2056))"
        )
        connection.execute(
            f'INSERT INTO "{schema}".trees (name, height, planted, geom) VALUES '
            "('oak', 12.5, '2001-04-01', "
            "ST_GeomFromText('POINT Z (2600000 1200000 400)', 2056)), "
            "('ash', 8.0, NULL, ST_GeomFromText('POINT Z (2600010 1200010 401)', 2056))"
        )
        yield schema
    finally:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        if MADE_DELTA_IDS and connection.execute(
            "SELECT to_regclass(%s)", (QUALIFIED,)
        ).fetchone() != (None,):
            connection.execute(
                f"DELETE FROM {QUALIFIED} WHERE delta_id = ANY(%s::uuid[])",
                (MADE_DELTA_IDS,),
            )
        MADE_DELTA_IDS.clear()
        connection.close()


def postgis_project(schema: str) -> bytes:
    source = (
        "dbname='test' host=127.0.0.1 port=5432 user='postgres' sslmode=disable "
        f'key=\'fid\' srid=2056 type=PointZ table="{schema}"."trees" (geom)'
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis projectname="" version="3.34.0-Prizren">
  <projectCrs><spatialrefsys><authid>EPSG:2056</authid></spatialrefsys></projectCrs>
  <projectlayers>
    <maplayer type="vector" geometry="Point" wkbType="PointZ">
      <id>{LAYER_ID}</id>
      <datasource>{source}</datasource>
      <layername>trees</layername>
      <srs><spatialrefsys><authid>EPSG:2056</authid></spatialrefsys></srs>
      <provider encoding="UTF-8">postgres</provider>
    </maplayer>
  </projectlayers>
</qgis>
""".encode()


def delta(method: str, **fields: Any) -> dict[str, Any]:
    MADE_DELTA_IDS.append(new_uuid())
    return {
        "uuid": MADE_DELTA_IDS[-1],
        "clientId": CLIENT,
        "localLayerId": LAYER_ID,
        "sourceLayerId": LAYER_ID,
        "method": method,
        **fields,
    }


def rows(schema: str) -> dict[int, tuple[Any, ...]]:
    with psycopg.connect(CONNINFO) as connection:
        result = connection.execute(
            "SELECT fid, name, height, planted::text, ST_AsText(geom) "
            f'FROM "{schema}".trees ORDER BY fid'
        ).fetchall()
    return {row[0]: tuple(row[1:]) for row in result}


def test_deltas_applied_to_a_postgis_layer(
    client: FlaskClient,
    user: dict[str, Any],
    run_jobs: Callable[[], None],
    pg_schema: str,
) -> None:
    pid = new_project(client, user, "postgis")
    response = upload(client, user, pid, "project.qgs", postgis_project(pg_schema))
    assert response.status_code == 201
    run_jobs()
    deltas = [
        delta(
            "patch",
            localPk="1",
            sourcePk="1",
            old={"attributes": {"height": 12.5, "name": "oak"}},
            new={
                "attributes": {"height": 13.0},
                "geometry": "POINT Z (2600001 1200001 400.5)",
            },
        ),
        delta(
            "create",
            localPk="-1",
            sourcePk="",
            new={
                "attributes": {"name": "elm", "height": 3.5, "planted": "2024-05-06"},
                "geometry": "POINT Z (2600020 1200020 nan)",
            },
        ),
        delta(
            "patch",
            localPk="-1",
            sourcePk="",
            old={"attributes": {"height": 3.5}},
            new={"attributes": {"height": 4.0}},
        ),
        delta("delete", localPk="2", sourcePk="2", old={"attributes": {"name": "ash"}}),
        delta(
            "patch",
            localPk="1",
            sourcePk="1",
            old={"attributes": {"name": "oak"}},
            new={"attributes": {"name": None}},
        ),
    ]
    document = {
        "version": "1.0",
        "id": new_uuid(),
        "project": pid,
        "files": [],
        "deltas": deltas,
    }
    pushed = push(client, user, pid, document)
    assert pushed.status_code == 200, pushed.json
    run_jobs()

    listed = client.get(f"/api/v1/deltas/{pid}/", headers=user["headers"]).json
    assert [d["status"] for d in listed] == [
        "applied",
        "applied",
        "applied",
        "applied",
        "not_applied",
    ], [d["output"] for d in listed]
    new_fid = int(listed[1]["last_modified_pk"])
    assert listed[2]["last_modified_pk"] == str(new_fid)
    # NOT NULL refused the last patch: the delta failed, nothing else did.
    assert "violates not-null constraint" in listed[4]["output"]["msg"]
    assert rows(pg_schema) == {
        1: ("oak", 13.0, "2001-04-01", "POINT Z (2600001 1200001 400.5)"),
        new_fid: ("elm", 4.0, "2024-05-06", "POINT Z (2600020 1200020 0)"),
    }
    # PostGIS data is edited in place: no project file gets a new version.
    files = client.get(f"/api/v1/files/{pid}/", headers=user["headers"]).json
    assert [f["version"] for f in files] == [1]
