"""Users, logins and API tokens."""

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from qfjobs.driver_statements import DriverStatement
from qfjobs.errors import (
    AuthenticationFailedError,
    UserAlreadyExistsError,
    ValidationError,
)
from qfjobs.models import AuthToken, User
from qfjobs.models.timestamps import utcnow
from qfjobs.services.login_throttle import LoginThrottle
from qfjobs.services.passwords import hash_password, verify_password

logger = logging.getLogger(__name__)

#: ``last_used_at`` is written at most this often, to keep reads read-only.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=5)


def create_user(
    session: Session,
    username: str,
    password: str,
    email: str = "",
    is_superuser: bool = False,
) -> User:
    if not username or len(username) > 150:
        raise ValidationError(errors={"username": ["Must be 1 to 150 characters."]})
    if len(password) < 4:
        raise ValidationError(errors={"password": ["Must be at least 4 characters."]})
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserAlreadyExistsError(f'The user "{username}" already exists')

    user = User(
        username=username,
        email=email,
        password_hash=hash_password(password),
        is_superuser=is_superuser,
    )
    session.add(user)
    session.commit()
    logger.info("created user %s", username)
    return user


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    #: The client's address, for the failed-login throttle.
    address: str


def login(
    session: Session,
    throttle: LoginThrottle,
    credentials: Credentials,
    ttl: timedelta,
) -> tuple[User, str, datetime]:
    """Check the credentials and issue a new token (returned once, in clear)."""
    user = authenticate(session, throttle, credentials)
    token = secrets.token_hex(20)
    expires_at = utcnow() + ttl
    session.add(AuthToken(user=user, key_hash=token_hash(token), expires_at=expires_at))
    session.commit()
    return user, token, expires_at


def authenticate(
    session: Session, throttle: LoginThrottle, credentials: Credentials
) -> User:
    """The user with these credentials, under the failed-login throttle.

    Every password check (API logins, the dashboard's HTTP Basic) goes
    through here so that no door lets passwords be guessed unthrottled.
    """
    username, address = credentials.username, credentials.address
    throttle.check(username, address)

    user = session.scalar(select(User).where(User.username == username))
    password_hash = user.password_hash if user is not None else None
    if not verify_password(password_hash, credentials.password) or user is None:
        throttle.failed(username, address)
        raise AuthenticationFailedError("Unable to log in with the given credentials")

    throttle.succeeded(username, address)
    return user


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a token belongs to: what access checks need, without an ORM object."""

    id: int
    username: str
    is_superuser: bool


_TOKENS = AuthToken.__table__.c
_USERS = User.__table__.c
_TIMESTAMP = _TOKENS.expires_at.type
#: Built once: the token check runs on every request. Expiry and the touch
#: are decided in SQL, so that the row holds no timestamps to convert.
_IDENTITY_FOR_TOKEN = (
    select(
        _TOKENS.id,
        _USERS.id.label("user_id"),
        _USERS.username,
        _USERS.is_superuser,
        or_(
            _TOKENS.last_used_at.is_(None),
            _TOKENS.last_used_at < bindparam("touch_before", type_=_TIMESTAMP),
        ).label("needs_touch"),
    )
    .join_from(AuthToken.__table__, User.__table__, _TOKENS.user_id == _USERS.id)
    .where(
        _TOKENS.key_hash == bindparam("key_hash"),
        _TOKENS.expires_at > bindparam("now", type_=_TIMESTAMP),
    )
)
_TOKEN_CHECK = DriverStatement(_IDENTITY_FOR_TOKEN)


def token_statement(*columns: Any) -> DriverStatement:
    """The token check with more columns, to read more in the same query.

    Run it with :func:`token_params`; give its row to :func:`identity_from_row`.
    """
    return DriverStatement(_IDENTITY_FOR_TOKEN.add_columns(*columns))


def token_params(token: str) -> dict[str, Any]:
    now = utcnow()
    return {
        "key_hash": token_hash(token),
        "now": now,
        "touch_before": now - TOKEN_TOUCH_INTERVAL,
    }


def identity_for_token(connection: Session | Connection, token: str) -> Identity | None:
    """Who a valid, unexpired token belongs to, else None."""
    return identity_from_row(
        connection, _TOKEN_CHECK.first(connection, token_params(token))
    )


def identity_from_row(connection: Session | Connection, found: Any) -> Identity | None:
    """The identity in a token statement's row (None: no valid token).

    Writes the token's ``last_used_at`` when it is due.
    """
    if found is None:
        return None

    if found.needs_touch:
        # The read ends first so that the write opens a transaction of its own:
        # on SQLite a read transaction cannot always be upgraded to a write.
        connection.commit()
        connection.execute(
            update(AuthToken)
            .where(AuthToken.id == found.id)
            .values(last_used_at=utcnow())
        )
        connection.commit()
    return Identity(found.user_id, found.username, bool(found.is_superuser))


def user_for_token(session: Session, token: str) -> User | None:
    """The user a valid, unexpired token belongs to, else None."""
    identity = identity_for_token(session, token)
    return session.get(User, identity.id) if identity is not None else None


def logout(session: Session, token: str) -> None:
    session.execute(delete(AuthToken).where(AuthToken.key_hash == token_hash(token)))
    session.commit()
