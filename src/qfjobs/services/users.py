"""Users, logins and API tokens."""

import hashlib
import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from qfjobs.errors import (
    AuthenticationFailedError,
    TooManyRequestsError,
    UserAlreadyExistsError,
    ValidationError,
)
from qfjobs.models import AuthToken, User
from qfjobs.models.timestamps import utcnow
from qfjobs.services.passwords import hash_password, verify_password

logger = logging.getLogger(__name__)

#: Failed logins in a row before the account is locked for a while.
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=5)
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


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def login(
    session: Session, username: str, password: str, ttl: timedelta
) -> tuple[User, str, datetime]:
    """Check the credentials and issue a new token (returned once, in clear)."""
    user = authenticate(session, username, password)
    token = secrets.token_hex(20)
    expires_at = utcnow() + ttl
    session.add(
        AuthToken(user=user, key_hash=_token_hash(token), expires_at=expires_at)
    )
    session.commit()
    return user, token, expires_at


def authenticate(session: Session, username: str, password: str) -> User:
    """The user with these credentials, under the failed-login lockout.

    Every password check (API logins, the dashboard's HTTP Basic) goes
    through here so that no door lets passwords be guessed unthrottled.
    """
    user = session.scalar(select(User).where(User.username == username))
    now = utcnow()
    if user is not None and user.locked_until is not None and user.locked_until > now:
        raise TooManyRequestsError(
            "Too many failed logins for this user; try again in a few minutes"
        )

    password_hash = user.password_hash if user is not None else None
    if not verify_password(password_hash, password) or user is None:
        if user is not None:
            _record_failed_login(session, user, now)
        raise AuthenticationFailedError("Unable to log in with the given credentials")

    if user.failed_logins or user.locked_until is not None:
        user.failed_logins = 0
        user.locked_until = None
        session.commit()
    return user


def _record_failed_login(session: Session, user: User, now: datetime) -> None:
    user.failed_logins += 1
    if user.failed_logins >= MAX_FAILED_LOGINS:
        user.locked_until = now + LOCKOUT
        user.failed_logins = 0
        logger.warning("locked user %s after repeated failed logins", user.username)
    session.commit()


def user_for_token(session: Session, token: str) -> User | None:
    """The user a valid, unexpired token belongs to, else None."""
    found = session.execute(
        select(AuthToken.id, AuthToken.expires_at, AuthToken.last_used_at, User)
        .join(User, AuthToken.user_id == User.id)
        .where(AuthToken.key_hash == _token_hash(token))
    ).first()
    now = utcnow()
    if found is None or found.expires_at <= now:
        return None

    if found.last_used_at is None or now - found.last_used_at > TOKEN_TOUCH_INTERVAL:
        # The read ends first so that the write opens a transaction of its own:
        # on SQLite a read transaction cannot always be upgraded to a write.
        session.commit()
        session.execute(
            update(AuthToken).where(AuthToken.id == found.id).values(last_used_at=now)
        )
        session.commit()
    user: User = found.User
    return user


def logout(session: Session, token: str) -> None:
    session.execute(delete(AuthToken).where(AuthToken.key_hash == _token_hash(token)))
    session.commit()
