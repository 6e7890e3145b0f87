"""Failed-login throttling, per user name and client address.

Five failed logins in a row for one user name from one address refuse that
pair for five minutes (429 with ``Retry-After``). The pair, not the user
alone, is the key, so that someone guessing from elsewhere cannot lock the
real user out. Guessing from many addresses at once is not throttled here;
the slow password hash (argon2) is what bounds it.

The counts live in Redis, expiring by themselves, under the instance's
queue name (two instances may share one Redis). When Redis does not answer,
logins go on unthrottled, with a warning: nobody is locked out by a Redis
restart.
"""

import hashlib
import logging

from redis import Redis
from redis.exceptions import RedisError

from qfjobs.errors import TooManyRequestsError

logger = logging.getLogger(__name__)

MAX_FAILED_LOGINS = 5
LOCKOUT_SECONDS = 300


class LoginThrottle:
    def __init__(self, connection: Redis, namespace: str) -> None:
        self.connection = connection
        self.prefix = f"qfjobs:{namespace}:login-failures:"

    def check(self, username: str, address: str) -> None:
        """Raise 429 while this user name is locked out from this address."""
        key = self._key(username, address)
        try:
            failures = int(self.connection.get(key) or 0)
            if failures < MAX_FAILED_LOGINS:
                return
            retry_after = max(int(self.connection.ttl(key)), 1)
        except RedisError as exc:
            logger.warning("login throttle unavailable, not applied: %s", exc)
            return
        raise TooManyRequestsError(
            "Too many failed logins for this user from this address; try again in"
            f" {retry_after} seconds",
            retry_after=retry_after,
        )

    def failed(self, username: str, address: str) -> None:
        key = self._key(username, address)
        try:
            pipeline = self.connection.pipeline()
            pipeline.incr(key)
            pipeline.expire(key, LOCKOUT_SECONDS)
            failures, _ = pipeline.execute()
        except RedisError as exc:
            logger.warning("login throttle unavailable, failure not counted: %s", exc)
            return
        if failures == MAX_FAILED_LOGINS:
            logger.warning(
                "locked user %s out from %s after repeated failed logins",
                username,
                address,
            )

    def _key(self, username: str, address: str) -> str:
        digest = hashlib.sha256(f"{username}\0{address}".encode()).hexdigest()
        return self.prefix + digest

    def succeeded(self, username: str, address: str) -> None:
        try:
            self.connection.delete(self._key(username, address))
        except RedisError as exc:
            logger.warning("login throttle unavailable, not reset: %s", exc)
