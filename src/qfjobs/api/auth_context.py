"""Token authentication for API requests.

``Authorization: Token <key>`` (scheme case-insensitive, as DRF clients send
``token``) is resolved once per request; views ask for the user with
:func:`current_user`.
"""

from flask import g, request

from qfjobs.errors import AuthenticationFailedError, NotAuthenticatedError
from qfjobs.extensions import get_session
from qfjobs.models import User
from qfjobs.services import users


def request_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() not in ("token", "bearer") or not key.strip():
        return None
    return key.strip()


def current_user() -> User:
    """The authenticated user; 401 without a valid token."""
    cached: User | None = g.get("qfjobs_user")
    if cached is not None:
        return cached
    token = request_token()
    if token is None:
        raise NotAuthenticatedError()
    user = users.user_for_token(get_session(), token)
    if user is None:
        raise AuthenticationFailedError("Invalid or expired token")
    g.qfjobs_user = user
    return user
