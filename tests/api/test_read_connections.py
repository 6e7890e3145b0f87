"""Read connections handed from one GET request to the next."""

import os
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import Connection

from qfjobs import read_connections
from qfjobs.extensions import get_db
from qfjobs.read_connections import ReadConnections


@pytest.fixture
def connections(app: Flask) -> Iterator[ReadConnections]:
    made: list[Connection] = []

    def connect() -> Connection:
        made.append(get_db(app).engine.connect())
        return made[-1]

    store = ReadConnections(connect)
    yield store
    store.close()
    # Taken and not given back: on SQLite, one that ran a statement holds
    # the write lock until it is closed.
    for connection in made:
        connection.close()


def test_requests_reuse_one_connection(app: Flask, client: FlaskClient, make_user):
    seen: set[int] = set()

    @app.after_request
    def note(response):  # type: ignore[no-untyped-def]
        connection = get_db().request_connection()
        seen.add(id(connection))
        return response

    alice = make_user("alice")
    seen.clear()
    for _ in range(5):
        assert client.get("/api/v1/projects/", headers=alice["headers"]).status_code
    assert len(seen) == 1


def test_a_given_back_connection_is_taken_again(connections) -> None:
    first = connections.take()
    connections.give_back(first)
    assert connections.take() is first


def test_an_invalidated_connection_is_closed_not_kept(connections) -> None:
    first = connections.take()
    first.invalidate()
    connections.give_back(first)
    second = connections.take()
    assert second is not first and first.closed
    assert second.execute(text("SELECT 1")).scalar() == 1


def test_idle_connections_go_back_to_the_pool(connections, monkeypatch) -> None:
    first = connections.take()
    connections.give_back(first)
    monkeypatch.setattr(read_connections, "MAX_IDLE_SECONDS", -1.0)
    second = connections.take()
    assert second is not first and first.closed


def test_only_a_few_are_kept(connections) -> None:
    taken = [connections.take() for _ in range(read_connections.MAX_KEPT + 2)]
    for connection in taken:
        connections.give_back(connection)
    assert sum(c.closed for c in taken) == 2


def test_a_forked_child_leaves_its_parents_connections_alone(connections) -> None:
    parent = connections.take()
    connections.give_back(parent)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # The child: report whether it was handed the parent's.
        child: Connection = connections.take()
        os.write(write, b"same" if child is parent else b"new")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 8) == b"new"
    assert connections.take() is parent
    assert parent.execute(text("SELECT 1")).scalar() == 1


@pytest.mark.parametrize("path", ["/api/v1/auth/user/", "/api/v1/jobs/"])
def test_a_kept_connection_that_died_costs_no_failed_request(
    app: Flask, client: FlaskClient, make_user, path: str
) -> None:
    alice = make_user("alice")
    query = {"project_id": str(uuid.uuid4())} if path.endswith("jobs/") else {}
    assert client.get("/api/v1/auth/user/", headers=alice["headers"]).status_code
    kept = get_db(app).read_connections.take()
    get_db(app).read_connections.give_back(kept)
    # As when the server restarts, or ends sessions that sat idle.
    kept.connection.dbapi_connection.close()  # type: ignore[union-attr]

    response = client.get(path, query_string=query, headers=alice["headers"])
    assert response.status_code == (404 if query else 200), response.json
    assert kept.closed
