"""The SQL store: engine, session factory and the declarative base."""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, g, request
from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker

from qfjobs.read_connections import ReadConnections

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


#: True while serving a request that only reads; see :func:`reads_only`.
_reads_only: ContextVar[bool] = ContextVar("qfjobs_reads_only", default=False)


@contextmanager
def reads_only() -> Iterator[None]:
    """Open SQLite transactions in this context without taking the write lock.

    Every GET and HEAD request runs so (:meth:`Database.init_app`), so that
    readers run beside each other and beside a writer. A write inside such a
    transaction may fail with "database is locked" when another process wrote
    since it began: code that must write there commits its reads first, so the
    write opens a transaction of its own.
    """
    token = _reads_only.set(True)
    try:
        yield
    finally:
        _reads_only.reset(token)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


#: Execution option of a connection whose statements each stand alone (SQLite).
NO_TRANSACTION = "qfjobs_no_transaction"


def _configure_sqlite(engine: Engine) -> None:
    """Make SQLite safe for an API process and workers sharing one file.

    WAL lets readers run beside one writer. Every transaction starts with
    ``BEGIN IMMEDIATE`` so it holds the write lock from its first statement:
    a deferred transaction that reads and then writes can fail at once with
    "database is locked" when another process committed in between. Only
    inside :func:`reads_only` do transactions begin deferred.
    """

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(NO_TRANSACTION):
            return
        connection.exec_driver_sql("BEGIN" if _reads_only.get() else "BEGIN IMMEDIATE")


def _make_parent_dir(url: str) -> None:
    """Create the folder of an SQLite file (``instance/`` on a fresh clone)."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create the engine for ``url``; SQLite and PostgreSQL are supported."""
    if url.startswith("sqlite"):
        _make_parent_dir(url)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


class Database:
    """Holds the engine and a scoped session for one Flask app."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.engine = make_engine(url, **engine_kwargs)
        self.pid = os.getpid()
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        self.session = scoped_session(self.session_factory)
        self.read_connections = ReadConnections(self._read_connection)

    def init_app(self, app: Flask) -> None:
        app.extensions["qfjobs.db"] = self

        @app.before_request
        def defer_reads() -> None:
            if request.method in ("GET", "HEAD"):
                g.qfjobs_reads_only = _reads_only.set(True)

        @app.teardown_request
        def end_deferred_reads(_exc: BaseException | None) -> None:
            token = g.pop("qfjobs_reads_only", None)
            if token is not None:
                _reads_only.reset(token)

        @app.teardown_appcontext
        def remove_session(_exc: BaseException | None) -> None:
            connection = g.pop("qfjobs_read_connection", None)
            if connection is not None:
                self.read_connections.give_back(connection)
            self.session.remove()

    def request_connection(self) -> "Session | Connection":
        """Where the current request runs its plain (Core) SQL statements.

        GET and HEAD requests get a Core connection of their own, cheaper than
        a session for the hot reads (the token check, job lists), handed on to
        a later request when this one ends (:mod:`qfjobs.read_connections`).
        Any other request gets its session: on SQLite a second connection
        would wait on the session's write lock, or hold its own. Both execute
        statements and commit alike.
        """
        if not _reads_only.get():
            return self.session()
        connection: Connection | None = g.get("qfjobs_read_connection")
        if connection is None:
            connection = self.read_connections.take()
            g.qfjobs_read_connection = connection
        return connection

    def first_read(self, run: Callable[["Session | Connection"], T]) -> T:
        """Run a request's first statements, surviving a kept connection's death.

        A GET request's connection may have died while it waited between
        requests (the server restarted, or ended idle sessions). If ``run``
        finds it dead, the kept connections are all dropped and ``run`` goes
        once more on a fresh one, checked by the pool. ``run`` must be safe to
        repeat. Later statements of the request are not retried: by then the
        connection has just proved alive.
        """
        connection = self.request_connection()
        try:
            return run(connection)
        except DBAPIError as error:
            if not error.connection_invalidated or (
                g.get("qfjobs_read_connection") is not connection
            ):
                raise
        g.pop("qfjobs_read_connection")
        self.read_connections.give_back(connection)
        self.read_connections.close()
        return run(self.request_connection())

    def _read_connection(self) -> Connection:
        # Each statement stands alone, without BEGIN and ROLLBACK (round trips
        # on PostgreSQL): a list's total and page may see different moments,
        # as a client paging through a list does anyway.
        return self.engine.connect().execution_options(
            **{NO_TRANSACTION: True}
            if self.engine.dialect.name == "sqlite"
            else {"isolation_level": "AUTOCOMMIT"}
        )

    def after_fork(self) -> None:
        """Drop pooled connections inherited from a parent process.

        RQ runs each job in a forked work horse; sharing the parent's sockets
        or SQLite handles would corrupt both sides.
        """
        if os.getpid() != self.pid:
            self.session.remove()
            self.engine.dispose(close=False)
            self.pid = os.getpid()

    @contextmanager
    def new_session(self) -> Iterator[Session]:
        """A session of its own, outside the scoped one (threads, callbacks)."""
        session = self.session_factory()
        try:
            yield session
        finally:
            session.close()

    def dispose(self) -> None:
        self.read_connections.close()
        self.session.remove()
        self.engine.dispose()
