"""The ledger of applied deltas in a PostGIS data database: exactly once.

The crash window: a PostGIS layer commits in its own database, then the job's
results go to the qfjobs store. The tests crash the job right after the data
commit (``_store_changed`` raising what no handler catches, as a killed
worker would leave it: job and deltas ``started``), then run the lost-worker
handling, re-apply, and read the table back.

They need the machine's PostgreSQL with PostGIS and run only when
``QFJOBS_TEST_DATABASE_URL`` names it (its host, port, database and user are
used for the data too); the ledger rows they make are removed afterwards.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.engine import make_url

from qfjobs.errors import DataSourceError
from qfjobs.extensions import get_db
from qfjobs.geodata.deltas_ledger import QUALIFIED
from qfjobs.models import Delta, Job, JobStatus, JobType
from qfjobs.services import jobs as job_service
from qfjobs.services.reconcile import handle_lost_worker
from qfjobs.tasks import delta_apply
from tests.deltas.helpers import new_uuid, push
from tests.helpers import new_project, upload

LAYER_ID = "plots_pg_0001"
CLIENT = "5d0c1e2f-3a4b-4c5d-8e6f-708192a3b4c5"


class _WorkerDeath(BaseException):
    """Ends the job where a SIGKILL could: no handler of the runner sees it."""


@pytest.fixture
def data_params() -> dict[str, str]:
    url = os.environ.get("QFJOBS_TEST_DATABASE_URL")
    if not url:
        pytest.skip("QFJOBS_TEST_DATABASE_URL is not set: no PostGIS data database")
    parsed = make_url(url)
    params = {
        "host": parsed.host or "127.0.0.1",
        "port": str(parsed.port or 5432),
        "dbname": parsed.database or "postgres",
        "user": parsed.username or "postgres",
    }
    if parsed.password:
        params["password"] = parsed.password
    return params


def conninfo(params: dict[str, str]) -> str:
    return " ".join(f"{key}={value}" for key, value in params.items())


@dataclass
class DataTable:
    params: dict[str, str]
    schema: str
    #: Delta ids whose ledger rows are removed at the end.
    delta_ids: list[str] = field(default_factory=list)


@pytest.fixture
def table(data_params: dict[str, str]) -> Iterator[DataTable]:
    """A schema with a ``plots`` table of two rows."""
    try:
        connection = psycopg.connect(
            conninfo(data_params), autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as exc:
        pytest.skip(f"The database of QFJOBS_TEST_DATABASE_URL does not answer: {exc}")
    data = DataTable(data_params, f"qfjobs_ledger_{uuid.uuid4().hex[:10]}")
    try:
        try:
            connection.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.Error as exc:
            pytest.skip(f"PostGIS cannot be had (scripts/ensure-postgres): {exc}")
        connection.execute(f'CREATE SCHEMA "{data.schema}"')
        connection.execute(
            f'CREATE TABLE "{data.schema}".plots (fid serial PRIMARY KEY,'
            " name text NOT NULL, crop text, geom geometry(Point, 2056))"
        )
        connection.execute(
            f'INSERT INTO "{data.schema}".plots (name, crop, geom) VALUES '
            "('north', 'wheat', ST_GeomFromText('POINT (2600000 1200000)', 2056)),"
            "('south', 'maize', ST_GeomFromText('POINT (2600100 1200000)', 2056))"
        )
        yield data
    finally:
        connection.execute(f'DROP SCHEMA IF EXISTS "{data.schema}" CASCADE')
        if data.delta_ids and ledger_rows(connection, data.delta_ids) is not None:
            connection.execute(
                f"DELETE FROM {QUALIFIED} WHERE delta_id = ANY(%s::uuid[])",
                (data.delta_ids,),
            )
        connection.close()


def ledger_rows(
    connection: psycopg.Connection[Any], delta_ids: list[str]
) -> dict[str, tuple[Any, ...]] | None:
    """delta id → (job id, modified pk) in the ledger; None without ledger."""
    found = connection.execute("SELECT to_regclass(%s)", (QUALIFIED,)).fetchone()
    if found is None or found[0] is None:
        return None
    rows = connection.execute(
        f"SELECT delta_id::text, job_id::text, modified_pk FROM {QUALIFIED}"
        " WHERE delta_id = ANY(%s::uuid[])",
        (delta_ids,),
    ).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


@pytest.fixture
def limited_role(table: DataTable) -> Iterator[str]:
    """A login role that may edit ``plots`` but not create a schema."""
    role = f"qfjobs_limited_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(conninfo(table.params), autocommit=True) as connection:
        connection.execute(f'CREATE ROLE "{role}" LOGIN')
        connection.execute(f'GRANT USAGE ON SCHEMA "{table.schema}" TO "{role}"')
        connection.execute(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{table.schema}".plots'
            f' TO "{role}"'
        )
        connection.execute(
            f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{table.schema}" TO "{role}"'
        )
    try:
        yield role
    finally:
        with psycopg.connect(conninfo(table.params), autocommit=True) as connection:
            connection.execute(f'DROP OWNED BY "{role}"')
            connection.execute(f'DROP ROLE "{role}"')


def project_xml(schema: str, params: dict[str, str]) -> bytes:
    source = (
        f"dbname='{params['dbname']}' host={params['host']} port={params['port']} "
        f"user='{params['user']}' sslmode=disable key='fid' srid=2056 type=Point "
        f'table="{schema}"."plots" (geom)'
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis projectname="" version="3.34.0-Prizren">
  <projectCrs><spatialrefsys><authid>EPSG:2056</authid></spatialrefsys></projectCrs>
  <projectlayers>
    <maplayer type="vector" geometry="Point" wkbType="Point">
      <id>{LAYER_ID}</id>
      <datasource>{source}</datasource>
      <layername>plots</layername>
      <srs><spatialrefsys><authid>EPSG:2056</authid></spatialrefsys></srs>
      <provider encoding="UTF-8">postgres</provider>
    </maplayer>
  </projectlayers>
</qgis>
""".encode()


def plot_rows(data: DataTable) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo(data.params)) as connection:
        return connection.execute(
            f'SELECT fid, name, crop, ST_AsText(geom) FROM "{data.schema}".plots'
            " ORDER BY fid"
        ).fetchall()


def deltafile(project_id: str, data: DataTable) -> dict[str, Any]:
    """A patch, a create, a patch of that create and a delete."""
    deltas = [
        {
            "method": "patch",
            "localPk": "1",
            "sourcePk": "1",
            "old": {"attributes": {"crop": "wheat"}},
            "new": {"attributes": {"crop": "barley"}},
        },
        {
            "method": "create",
            "localPk": "-7",
            "sourcePk": "",
            "new": {
                "attributes": {"name": "east", "crop": "rye"},
                "geometry": "POINT (2600200 1200050)",
            },
        },
        {
            "method": "patch",
            "localPk": "-7",
            "sourcePk": "",
            "old": {"attributes": {"crop": "rye"}},
            "new": {"attributes": {"crop": "oats"}},
        },
        {
            "method": "delete",
            "localPk": "2",
            "sourcePk": "2",
            "old": {"attributes": {"name": "south"}},
        },
    ]
    for item in deltas:
        item.update(
            uuid=new_uuid(),
            clientId=CLIENT,
            localLayerId=LAYER_ID,
            sourceLayerId=LAYER_ID,
        )
        data.delta_ids.append(item["uuid"])
    return {
        "version": "1.0",
        "id": new_uuid(),
        "project": project_id,
        "files": [],
        "deltas": deltas,
    }


def expected_rows(new_fid: int) -> list[tuple[Any, ...]]:
    return [
        (1, "north", "barley", "POINT(2600000 1200000)"),
        (new_fid, "east", "oats", "POINT(2600200 1200050)"),
    ]


def setup_project(
    client: FlaskClient,
    user: dict[str, Any],
    run_jobs: Callable[[], None],
    data: DataTable,
    role: str | None = None,
) -> str:
    pid = new_project(client, user, "ledger")
    params = data.params if role is None else {**data.params, "user": role}
    xml = project_xml(data.schema, params)
    assert upload(client, user, pid, "project.qgs", xml).status_code == 201
    run_jobs()
    return pid


def statuses(app: Flask) -> dict[str, tuple[str, str | None]]:
    with app.app_context(), get_db().new_session() as session:
        rows = session.execute(
            select(Delta.id, Delta.last_status, Delta.last_modified_pk)
        ).all()
    return {str(row[0]): (row[1], row[2]) for row in rows}


def apply_job(app: Flask) -> uuid.UUID:
    with app.app_context(), get_db().new_session() as session:
        job_id = session.scalar(
            select(Job.id)
            .where(Job.type == JobType.DELTA_APPLY)
            .order_by(Job.created_at.desc())
            .limit(1)
        )
    assert job_id is not None
    return job_id


def crash_after_data_commit(
    monkeypatch: pytest.MonkeyPatch,
    client: FlaskClient,
    user: dict[str, Any],
    run_jobs: Callable[[], None],
    app: Flask,
    document: dict[str, Any],
) -> uuid.UUID:
    """Push ``document`` and run its job until just after the data commit."""

    def die(*_args: Any) -> None:
        raise _WorkerDeath()

    with monkeypatch.context() as patched:
        patched.setattr(delta_apply, "_store_changed", die)
        assert push(client, user, document["project"], document).status_code == 200
        run_jobs()
    job_id = apply_job(app)
    with app.app_context(), get_db().new_session() as session:
        job = session.get_one(Job, job_id)
        assert job.status == JobStatus.STARTED  # as a killed worker leaves it
    assert {status for status, _ in statuses(app).values()} == {"started"}
    return job_id


def test_lost_job_after_the_data_commit_reads_applied(
    monkeypatch: pytest.MonkeyPatch,
    app: Flask,
    client: FlaskClient,
    user: dict[str, Any],
    run_jobs: Callable[[], None],
    table: DataTable,
) -> None:
    pid = setup_project(client, user, run_jobs, table)
    document = deltafile(pid, table)
    job_id = crash_after_data_commit(monkeypatch, client, user, run_jobs, app, document)
    crashed_rows = plot_rows(table)
    new_fid = crashed_rows[-1][0]
    assert crashed_rows == expected_rows(new_fid)

    with app.app_context(), get_db().new_session() as session:
        job = session.get_one(Job, job_id)
        assert handle_lost_worker(session, job, "The worker died") is False
        session.refresh(job)
        assert job.status == JobStatus.FAILED

    ids = table.delta_ids
    found = statuses(app)
    assert [found[i][0] for i in ids] == ["applied"] * 4
    assert [found[i][1] for i in ids] == ["1", str(new_fid), str(new_fid), "2"]
    listed = client.get(f"/api/v1/deltas/{pid}/", headers=user["headers"]).json
    assert all("ledger" in d["output"]["msg"] for d in listed), listed
    assert plot_rows(table) == expected_rows(new_fid)


def test_reapplying_after_a_crash_writes_nothing_twice(
    monkeypatch: pytest.MonkeyPatch,
    app: Flask,
    client: FlaskClient,
    user: dict[str, Any],
    run_jobs: Callable[[], None],
    table: DataTable,
) -> None:
    pid = setup_project(client, user, run_jobs, table)
    document = deltafile(pid, table)
    job_id = crash_after_data_commit(monkeypatch, client, user, run_jobs, app, document)
    new_fid = plot_rows(table)[-1][0]
    # Failed without reading the ledger (as a stop does): the deltas read error.
    with app.app_context(), get_db().new_session() as session:
        assert job_service.set_status(
            session, job_id, JobStatus.FAILED, expect=(JobStatus.STARTED,)
        )
    assert {s for s, _ in statuses(app).values()} == {"error"}

    reset = client.post(
        f"/api/v1/deltas/status/{pid}/",
        json={"status": "pending", "delta_ids": table.delta_ids},
        headers=user["headers"],
    )
    assert reset.status_code == 200, reset.json
    applied = client.post(f"/api/v1/deltas/apply/{pid}/", headers=user["headers"])
    assert applied.status_code == 200, applied.json
    run_jobs()

    found = statuses(app)
    ids = table.delta_ids
    assert [found[i][0] for i in ids] == ["applied"] * 4
    assert [found[i][1] for i in ids] == ["1", str(new_fid), str(new_fid), "2"]
    assert plot_rows(table) == expected_rows(new_fid)


def test_a_normal_apply_records_every_applied_delta(
    app: Flask,
    client: FlaskClient,
    user: dict[str, Any],
    run_jobs: Callable[[], None],
    table: DataTable,
) -> None:
    pid = setup_project(client, user, run_jobs, table)
    document = deltafile(pid, table)
    assert push(client, user, pid, document).status_code == 200
    run_jobs()

    job_id = str(apply_job(app))
    found = statuses(app)
    ids = table.delta_ids
    assert [found[i][0] for i in ids] == ["applied"] * 4
    new_fid = plot_rows(table)[-1][0]
    assert plot_rows(table) == expected_rows(new_fid)
    with psycopg.connect(conninfo(table.params)) as connection:
        recorded = ledger_rows(connection, ids)
    assert recorded == {
        ids[0]: (job_id, "1"),
        ids[1]: (job_id, str(new_fid)),
        ids[2]: (job_id, str(new_fid)),
        ids[3]: (job_id, "2"),
    }


def test_a_job_failing_after_the_data_commit_keeps_those_deltas_applied(
    monkeypatch: pytest.MonkeyPatch,
    app: Flask,
    client: FlaskClient,
    user: dict[str, Any],
    run_jobs: Callable[[], None],
    table: DataTable,
) -> None:
    pid = setup_project(client, user, run_jobs, table)
    document = deltafile(pid, table)

    def refuse(*_args: Any) -> None:
        raise DataSourceError("The storage refused the files")

    with monkeypatch.context() as patched:
        patched.setattr(delta_apply, "_store_changed", refuse)
        assert push(client, user, pid, document).status_code == 200
        run_jobs()

    with app.app_context(), get_db().new_session() as session:
        job = session.get_one(Job, apply_job(app))
        assert job.status == JobStatus.FAILED
    new_fid = plot_rows(table)[-1][0]
    found = statuses(app)
    ids = table.delta_ids
    assert [found[i] for i in ids] == [
        ("applied", "1"),
        ("applied", str(new_fid)),
        ("applied", str(new_fid)),
        ("applied", "2"),
    ]
    assert plot_rows(table) == expected_rows(new_fid)


def test_a_role_without_ledger_applies_as_before_and_says_so(
    app: Flask,
    client: FlaskClient,
    user: dict[str, Any],
    run_jobs: Callable[[], None],
    table: DataTable,
    limited_role: str,
) -> None:
    pid = setup_project(client, user, run_jobs, table, role=limited_role)
    document = deltafile(pid, table)
    assert push(client, user, pid, document).status_code == 200
    run_jobs()

    with app.app_context(), get_db().new_session() as session:
        job = session.get_one(Job, apply_job(app))
        assert job.status == JobStatus.FINISHED, job.feedback
        notes = job.feedback["outputs"]["apply_deltas"]["data_notes"]
        output = job.output or ""
    assert len(notes) == 1 and "keeps no ledger" in notes[0], notes
    assert f"{job.id}: " in output and "keeps no ledger" in output
    found = statuses(app)
    assert [found[i][0] for i in table.delta_ids] == ["applied"] * 4
    with psycopg.connect(conninfo(table.params)) as connection:
        assert not ledger_rows(connection, table.delta_ids)


def test_a_job_stopped_after_the_data_commit_reads_applied(
    monkeypatch: pytest.MonkeyPatch,
    app: Flask,
    client: FlaskClient,
    user: dict[str, Any],
    run_jobs: Callable[[], None],
    table: DataTable,
) -> None:
    pid = setup_project(client, user, run_jobs, table)
    document = deltafile(pid, table)
    job_id = crash_after_data_commit(monkeypatch, client, user, run_jobs, app, document)
    new_fid = plot_rows(table)[-1][0]

    # What the stopped callback does once the work horse was ended.
    with app.app_context(), get_db().new_session() as session:
        assert job_service.mark_stopped(session, job_id, expect=(JobStatus.STARTED,))

    found = statuses(app)
    assert [found[i] for i in table.delta_ids] == [
        ("applied", "1"),
        ("applied", str(new_fid)),
        ("applied", str(new_fid)),
        ("applied", "2"),
    ]
    assert plot_rows(table) == expected_rows(new_fid)
