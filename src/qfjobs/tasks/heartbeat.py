"""Liveness of a running job: a Redis key its work horse keeps fresh.

A thread in the process that runs the job refreshes ``qfjobs:heartbeat:<id>``
every few seconds with a short expiry. If the process dies (SIGKILL, the
machine goes away), the key expires and the reconciler fails the job.
"""

import logging
import threading
import uuid

from redis import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

KEY_PREFIX = "qfjobs:heartbeat:"


def heartbeat_key(job_id: uuid.UUID | str) -> str:
    return f"{KEY_PREFIX}{job_id}"


class Heartbeat:
    def __init__(self, connection: Redis, job_id: uuid.UUID, ttl: int) -> None:
        self.connection = connection
        self.key = heartbeat_key(job_id)
        self.ttl = ttl
        self.interval = max(ttl / 3, 0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat-{job_id}", daemon=True
        )

    def __enter__(self) -> "Heartbeat":
        self._touch()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 1)
        try:
            self.connection.delete(self.key)
        except RedisError:
            pass

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self._touch()

    def _touch(self) -> None:
        try:
            self.connection.set(self.key, "1", ex=self.ttl)
        except RedisError as exc:
            # Redis away: the reconciler sees no heartbeat and waits for one.
            logger.warning("%s: heartbeat not written: %s", self.key, exc)


def is_alive(connection: Redis, job_id: uuid.UUID) -> bool:
    return bool(connection.exists(heartbeat_key(job_id)))
