"""Statements read straight off the driver give what SQLAlchemy would."""

import uuid

import pytest
from flask import Flask
from sqlalchemy import bindparam, func, literal, select, text
from sqlalchemy.exc import DBAPIError

from qfjobs.driver_statements import DriverStatement
from qfjobs.extensions import get_db
from qfjobs.models import Project, User
from qfjobs.models.timestamps import utcnow

_PROJECTS = Project.__table__.c
_USERS = User.__table__.c

STATEMENT = (
    select(
        _PROJECTS.name,
        _USERS.id.label("owner_id"),
        _USERS.is_superuser,
        func.coalesce(_PROJECTS.description, literal("none")).label("description"),
        (
            _PROJECTS.created_at < bindparam("before", type_=_PROJECTS.created_at.type)
        ).label("older"),
    )
    .join_from(Project.__table__, User.__table__, _PROJECTS.owner_id == _USERS.id)
    .where(_PROJECTS.id == bindparam("project_id", type_=_PROJECTS.id.type))
)


@pytest.fixture
def project(app: Flask, client, make_user) -> uuid.UUID:
    alice = make_user("alice")
    response = client.post(
        "/api/v1/projects/",
        data={"name": "survey", "description": "roads"},
        headers=alice["headers"],
    )
    return uuid.UUID(response.json["id"])


@pytest.mark.parametrize("reads_on", ["connection", "session"])
def test_rows_match_sqlalchemys(app: Flask, project: uuid.UUID, reads_on) -> None:
    statement = DriverStatement(STATEMENT)
    values = {"project_id": project, "before": utcnow()}
    with get_db(app).engine.connect() as connection:
        expected = connection.execute(STATEMENT, values).one()
    with get_db(app).new_session() as session:
        bind = session if reads_on == "session" else session.connection()
        for _ in range(7):  # psycopg prepares from the sixth run on
            row = statement.first(bind, values)
        assert statement.first(bind, {**values, "project_id": uuid.uuid4()}) is None

    assert row._fields == ("name", "owner_id", "is_superuser", "description", "older")
    assert tuple(row[:2]) == tuple(expected[:2]) == ("survey", expected.owner_id)
    assert row.description == expected.description == "roads"
    assert bool(row.is_superuser) is expected.is_superuser is False
    assert bool(row.older) is expected.older is True


def test_a_driver_error_is_sqlalchemys_error(app: Flask, project: uuid.UUID) -> None:
    broken = DriverStatement(select(_PROJECTS.name).where(text("no_such_column = 1")))
    with get_db(app).engine.connect() as connection:
        with pytest.raises(DBAPIError):
            broken.first(connection, {})
        connection.rollback()
        assert connection.execute(text("SELECT 1")).scalar() == 1


def test_a_lost_connection_is_invalidated(app: Flask) -> None:
    statement = DriverStatement(select(literal(1).label("one")))
    engine = get_db(app).engine
    with engine.connect() as connection:
        assert statement.first(connection, {}).one == 1
        connection.connection.dbapi_connection.close()  # type: ignore[union-attr]
        with pytest.raises(DBAPIError) as raised:
            statement.first(connection, {})
        assert raised.value.connection_invalidated
        assert connection.invalidated


def test_expanding_parameters_are_refused(app: Flask) -> None:
    statement = DriverStatement(select(_PROJECTS.name).where(_PROJECTS.id.in_([1, 2])))
    with get_db(app).engine.connect() as connection:
        with pytest.raises(ValueError, match="expanding"):
            statement.first(connection, {})
