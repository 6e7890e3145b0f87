"""Connections for read-only requests, handed on from one request to the next.

A GET request reads on a Core connection of its own (see
:meth:`qfjobs.db.Database.request_connection`). Checking one out of
SQLAlchemy's pool and back in for every request cost a quarter of a cached
job list, and on PostgreSQL a ping round trip as well. So connections are
kept checked out: a request takes an idle one and gives it back when it
ends.

They run without transactions (each statement stands alone), so a request
leaves no state behind for the next one. A connection that SQLAlchemy has
invalidated (the server went away) is closed instead of kept, and one that
sat idle for longer than :data:`MAX_IDLE_SECONDS` goes back to the pool, so
that the pool pings it before its next use. One that died in between is
found out by the request's token check, which then runs once more on a fresh
connection (:meth:`qfjobs.db.Database.first_read`).

A forked child does not reuse its parent's connections: they share sockets
and file handles with the parent. It leaves them alone, unclosed.
"""

import os
import threading
import time
from collections.abc import Callable

from sqlalchemy.engine import Connection

#: Idle connections kept at most; more are given back to the pool.
MAX_KEPT = 4
MAX_IDLE_SECONDS = 30.0


class ReadConnections:
    """A small stack of idle connections from ``connect``, safe across threads."""

    def __init__(self, connect: Callable[[], Connection]) -> None:
        self._connect = connect
        self._idle: list[tuple[Connection, float]] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        #: Connections inherited through a fork: held so that they are never
        #: garbage-collected (and closed) in the child.
        self._inherited: list[tuple[Connection, float]] = []

    def take(self) -> Connection:
        now = time.monotonic()
        stale: list[Connection] = []
        taken: Connection | None = None
        with self._lock:
            self._forget_if_forked()
            while self._idle:
                connection, since = self._idle.pop()
                if now - since <= MAX_IDLE_SECONDS:
                    taken = connection
                    break
                stale.append(connection)
        for connection in stale:
            connection.close()
        return taken if taken is not None else self._connect()

    def give_back(self, connection: Connection) -> None:
        if connection.closed or connection.invalidated:
            connection.close()
            return
        with self._lock:
            if len(self._idle) < MAX_KEPT and self._pid == os.getpid():
                self._idle.append((connection, time.monotonic()))
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            self._forget_if_forked()
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()

    def _forget_if_forked(self) -> None:
        if self._pid != os.getpid():
            self._inherited.extend(self._idle)
            self._idle = []
            self._pid = os.getpid()
