"""Job versions: every write to a project's jobs renews its version, on both
databases, whoever writes (migration 0004's triggers)."""

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, delete, insert, select, text, update
from sqlalchemy.orm import Session

from qfjobs.extensions import get_db
from qfjobs.migrations import upgrade_database
from qfjobs.models import Job, JobStatus, JobType, JobVersion, Project, User
from qfjobs.models.timestamps import utcnow
from qfjobs.services import job_listing
from tests.helpers import MINIMAL_QGS, new_project, upload
from tests.services import empty_databases


def versions(app: Flask) -> dict[uuid.UUID, int]:
    with get_db(app).new_session() as session:
        rows = session.execute(select(JobVersion.project_id, JobVersion.version))
        return {pid: version for pid, version in rows}


def job_row(project_id: uuid.UUID, user_id: int | None) -> dict:
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "type": JobType.PACKAGE,
        "status": JobStatus.FINISHED,
        "project_id": project_id,
        "created_by_id": user_id,
        "created_at": now,
        "updated_at": now,
    }


@pytest.fixture
def two_projects(
    app: Flask, client: FlaskClient, make_user
) -> tuple[uuid.UUID, uuid.UUID, int, int]:
    """Alice's projects one and two, each with a job; alice's id and bob's."""
    alice = make_user("alice")
    make_user("bob")
    one, two = (uuid.UUID(new_project(client, alice, name)) for name in "ab")
    for pid in (one, two):
        upload(client, alice, str(pid), "project.qgs", MINIMAL_QGS)
    with get_db(app).new_session() as session:
        ids = {
            name: uid for name, uid in session.execute(select(User.username, User.id))
        }
    return one, two, ids["alice"], ids["bob"]


WRITES: dict[str, Callable[[Session, uuid.UUID, uuid.UUID, int, int], None]] = {
    "insert": lambda s, one, two, alice, bob: s.execute(
        insert(Job), [job_row(one, alice)]
    ),
    "status change": lambda s, one, two, alice, bob: s.execute(
        update(Job).where(Job.project_id == one).values(status=JobStatus.FAILED)
    ),
    "delete": lambda s, one, two, alice, bob: s.execute(
        delete(Job).where(Job.project_id == one)
    ),
    "creator renamed": lambda s, one, two, alice, bob: s.execute(
        update(User).where(User.id == alice).values(username="alicia")
    ),
}


@pytest.mark.parametrize("write", WRITES)
def test_each_kind_of_write_renews_only_its_projects_version(
    app: Flask, two_projects, write: str
) -> None:
    one, two, alice, bob = two_projects
    with get_db(app).new_session() as session:
        session.execute(
            update(Job).where(Job.project_id == two).values(created_by_id=bob)
        )
        session.commit()
    before = versions(app)

    with get_db(app).new_session() as session:
        WRITES[write](session, one, two, alice, bob)
        session.commit()

    after = versions(app)
    assert after[one] != before[one]
    assert after[two] == before[two]


def test_moving_a_job_renews_both_projects(app: Flask, two_projects) -> None:
    one, two, _, _ = two_projects
    before = versions(app)
    with get_db(app).new_session() as session:
        session.execute(update(Job).where(Job.project_id == one).values(project_id=two))
        session.commit()
    after = versions(app)
    assert after[one] != before[one] and after[two] != before[two]


def test_deleting_a_creator_renews_the_projects_of_their_jobs(
    app: Flask, two_projects
) -> None:
    # Bob's jobs in alice's project lose their creator (ON DELETE SET NULL),
    # which changes what the list shows.
    one, two, _, bob = two_projects
    with get_db(app).new_session() as session:
        session.execute(insert(Job), [job_row(one, bob)])
        session.commit()
    before = versions(app)
    with get_db(app).new_session() as session:
        session.execute(delete(User).where(User.id == bob))
        session.commit()
    after = versions(app)
    assert after[one] != before[one]
    assert after[two] == before[two]


def test_a_deleted_project_takes_its_version_along(app: Flask, two_projects) -> None:
    one, two, _, _ = two_projects
    with get_db(app).new_session() as session:
        session.execute(delete(Project).where(Project.id == one))
        session.commit()
    assert set(versions(app)) == {two}


def test_a_project_without_jobs_reads_version_zero(
    app: Flask, client: FlaskClient, make_user
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    pid = uuid.UUID(new_project(client, alice))
    with get_db(app).new_session() as session:
        found = job_listing.identity_and_jobs_version(session, alice["token"], pid)
        assert found[0] is not None and found[1] == 0
        unknown = job_listing.identity_and_jobs_version(
            session, alice["token"], uuid.uuid4()
        )
        assert unknown[0] is not None and unknown[1] is None
        stranger = job_listing.identity_and_jobs_version(session, bob["token"], pid)
        assert stranger[0] is not None and stranger[1] is None
        assert job_listing.identity_and_jobs_version(session, "nope", pid) == (
            None,
            None,
        )


def test_versions_of_existing_jobs_are_filled_in(tmp_path: Path) -> None:
    with empty_databases(tmp_path) as urls:
        for url in urls:
            upgrade_database(url, "0003")
            engine = create_engine(url)
            project_id, empty_id = uuid.uuid4(), uuid.uuid4()
            with engine.begin() as connection:
                connection.execute(
                    insert(User).values(username="old", email="", password_hash="x")
                )
                user_id = connection.scalar(select(User.id))
                for pid in (project_id, empty_id):
                    connection.execute(
                        insert(Project).values(id=pid, owner_id=user_id, name=str(pid))
                    )
                connection.execute(insert(Job), [job_row(project_id, user_id)])
            upgrade_database(url)
            with engine.connect() as connection:
                rows = connection.execute(
                    select(JobVersion.project_id, JobVersion.version)
                ).all()
            assert [pid for pid, _ in rows] == [project_id]
            engine.dispose()


def test_postgresql_renews_versions_at_commit_so_job_locks_cannot_deadlock(
    app: Flask, two_projects
) -> None:
    # Transaction A writes job 1, B writes job 2 and commits, then A writes job
    # 2 too. Had A's first write locked the project's version row, B's commit
    # would wait for A while A waited for B's row.
    engine = get_db(app).engine
    if engine.dialect.name != "postgresql":
        pytest.skip("deferred triggers are PostgreSQL's; SQLite has one writer")
    one, _, alice, _ = two_projects
    with engine.begin() as connection:
        connection.execute(insert(Job), [job_row(one, alice)])
        first, second = connection.scalars(
            select(Job.id).where(Job.project_id == one)
        ).all()
    before = versions(app)

    with engine.connect() as a, engine.connect() as b:
        for connection in (a, b):
            connection.execute(text("SET lock_timeout = '3s'"))
            connection.commit()
        a.execute(update(Job).where(Job.id == first).values(status="failed"))
        b.execute(update(Job).where(Job.id == second).values(status="failed"))
        b.commit()
        a.execute(update(Job).where(Job.id == second).values(status="stopped"))
        a.commit()

    assert versions(app)[one] != before[one]


def test_versions_never_come_back(app: Flask, two_projects) -> None:
    # Counted versions would repeat after a restored backup; random ones do not.
    one, _, _, _ = two_projects
    seen = {versions(app)[one]}
    for status in ("failed", "stopped", "finished") * 10:
        with get_db(app).new_session() as session:
            session.execute(
                update(Job).where(Job.project_id == one).values(status=status)
            )
            session.commit()
        seen.add(versions(app)[one])
    assert len(seen) == 31
    assert all(0 < version < 2**62 for version in seen)
