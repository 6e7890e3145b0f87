"""Job lists: totals from the trigger-kept tallies, and summaries as the schema."""

import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, delete, func, insert, select, update

from qfjobs.api.jobs import JobSchema
from qfjobs.extensions import get_db
from qfjobs.migrations import upgrade_database
from qfjobs.models import Job, JobCount, JobStatus, JobType, Project, User
from qfjobs.models.timestamps import utcnow
from qfjobs.services import job_listing
from qfjobs.services.users import Identity
from tests.helpers import MINIMAL_QGS, job_list, new_project, upload
from tests.services import empty_databases


def tallies(app: Flask) -> dict[tuple[uuid.UUID, str], int]:
    with get_db(app).new_session() as session:
        rows = session.execute(
            select(JobCount.project_id, JobCount.type, JobCount.jobs)
        )
        return {(pid, job_type): jobs for pid, job_type, jobs in rows if jobs}


def counted(app: Flask) -> dict[tuple[uuid.UUID, str], int]:
    with get_db(app).new_session() as session:
        rows = session.execute(
            select(Job.project_id, Job.type, func.count()).group_by(
                Job.project_id, Job.type
            )
        )
        return {(pid, job_type): jobs for pid, job_type, jobs in rows}


def job_rows(project_id: uuid.UUID, user_id: int, job_type: JobType, n: int) -> list:
    now = utcnow()
    return [
        {
            "id": uuid.uuid4(),
            "type": job_type,
            "status": JobStatus.FINISHED,
            "project_id": project_id,
            "created_by_id": user_id,
            "created_at": now,
            "updated_at": now,
        }
        for _ in range(n)
    ]


def test_tallies_follow_every_kind_of_write(
    app: Flask, client: FlaskClient, make_user
) -> None:
    alice = make_user("alice")
    one, two = (uuid.UUID(new_project(client, alice, name)) for name in "ab")
    for pid in (one, two):
        upload(client, alice, str(pid), "project.qgs", MINIMAL_QGS)
    client.post(
        "/api/v1/jobs/",
        data={"project_id": str(one), "type": "package"},
        headers=alice["headers"],
    )
    assert (
        tallies(app)
        == counted(app)
        == {
            (one, "process_projectfile"): 1,
            (one, "package"): 1,
            (two, "process_projectfile"): 1,
        }
    )

    with get_db(app).new_session() as session:
        user_id = session.scalar(select(User.id))
        assert user_id is not None
        session.execute(insert(Job), job_rows(one, user_id, JobType.DELTA_APPLY, 50))
        session.execute(
            update(Job)
            .where(Job.project_id == one, Job.type == JobType.PACKAGE)
            .values(project_id=two, status=JobStatus.FAILED)
        )
        session.execute(
            delete(Job)
            .where(Job.project_id == one, Job.type == JobType.DELTA_APPLY)
            .where(Job.id.in_(select(Job.id).where(Job.type == "delta_apply").limit(7)))
        )
        session.commit()
    assert tallies(app) == counted(app)
    assert job_list(client, alice, project_id=str(one))["count"] == 44
    assert (
        job_list(client, alice, project_id=str(one), type="delta_apply")["count"] == 43
    )

    with get_db(app).new_session() as session:
        session.execute(delete(Project).where(Project.id == one))
        session.commit()
    assert (
        tallies(app)
        == counted(app)
        == {
            (two, "process_projectfile"): 1,
            (two, "package"): 1,
        }
    )
    assert job_list(client, alice)["count"] == 2


def test_counts_with_filters_match_the_jobs(
    app: Flask, client: FlaskClient, make_user
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    mine = new_project(client, alice, "mine")
    theirs = new_project(client, bob, "theirs")
    for owner, pid in ((alice, mine), (bob, theirs)):
        upload(client, owner, pid, "project.qgs", MINIMAL_QGS)
        for _ in range(3):
            client.post(
                "/api/v1/jobs/",
                data={"project_id": pid, "type": "process_projectfile"},
                headers=owner["headers"],
            )

    everything = job_list(client, alice)
    assert everything["count"] == 4
    assert {job["project_id"] for job in everything["results"]} == {mine}
    by_status = {
        status: job_list(client, alice, status=status)["count"]
        for status in ("pending", "queued", "finished")
    }
    assert by_status == {"pending": 3, "queued": 1, "finished": 0}
    assert (
        job_list(client, alice, type="process_projectfile", status="queued")["count"]
        == 1
    )
    assert job_list(client, alice, type="package")["count"] == 0


def test_summaries_are_what_the_schema_dumps(app: Flask, client, make_user) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    with get_db(app).new_session() as session:
        session.execute(
            update(Job).values(
                # isoformat() leaves out a zero fraction; the list must too.
                started_at=utcnow().replace(microsecond=0),
                finished_at=None,
                status="started",
            )
        )
        session.commit()
        job = session.scalars(select(Job)).one()
        with app.test_request_context():
            identity = Identity(job.created_by_id, "alice", is_superuser=False)
            summaries, total = job_listing.list_jobs(
                session,
                identity,
                job_listing.JobFilter(project_id=job.project_id),
                limit=5,
                offset=0,
            )
        assert total == 1
        assert summaries == [JobSchema().dump(job)]


def test_tallies_of_existing_jobs_are_filled_in(tmp_path: Path) -> None:
    with empty_databases(tmp_path) as urls:
        for url in urls:
            upgrade_database(url, "0002")
            engine = create_engine(url)
            project_id = uuid.uuid4()
            with engine.begin() as connection:
                connection.execute(
                    insert(User).values(username="old", email="", password_hash="x")
                )
                user_id = connection.scalar(select(User.id))
                connection.execute(
                    insert(Project).values(id=project_id, owner_id=user_id, name="p")
                )
                connection.execute(
                    insert(Job), job_rows(project_id, user_id, JobType.PACKAGE, 12)
                )
            upgrade_database(url)
            with engine.connect() as connection:
                assert connection.execute(
                    select(JobCount.project_id, JobCount.type, JobCount.jobs)
                ).all() == [(project_id, "package", 12)]
            engine.dispose()


@pytest.mark.parametrize("offset", [0, 3])
def test_pages_past_the_end_still_count(client, make_user, offset: int) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)
    page = job_list(client, alice, project_id=pid, offset=offset)
    assert page["count"] == 1
    assert len(page["results"]) == (1 if offset == 0 else 0)
