"""Token authentication for API requests.

``Authorization: Token <key>`` (scheme case-insensitive, as DRF clients send
``token``) is resolved once per request; views ask for the user with
:func:`current_user`.
"""

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request
from sqlalchemy.orm import Session

from qfjobs.api.base import parse_uuid
from qfjobs.errors import AuthenticationFailedError, NotAuthenticatedError
from qfjobs.extensions import get_db, get_session
from qfjobs.models import User
from qfjobs.services import access, users


def request_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() not in ("token", "bearer") or not key.strip():
        return None
    return key.strip()


def current_identity() -> users.Identity:
    """Who is calling; 401 without a valid token. Checked once per request."""
    cached: users.Identity | None = g.get("qfjobs_identity")
    if cached is not None:
        return cached
    token = required_token()
    return accept_identity(
        get_db().first_read(
            lambda connection: users.identity_for_token(connection, token)
        )
    )


def required_token() -> str:
    """The request's token; 401 without one."""
    token = request_token()
    if token is None:
        raise NotAuthenticatedError()
    return token


def accept_identity(identity: users.Identity | None) -> users.Identity:
    """Take a token check's result as the caller's identity; 401 for None."""
    if identity is None:
        raise AuthenticationFailedError("Invalid or expired token")
    g.qfjobs_identity = identity
    return identity


def current_user() -> User:
    """The authenticated user as a model, for views that write or show it."""
    cached: User | None = g.get("qfjobs_user")
    if cached is not None:
        return cached
    user = get_session().get(User, current_identity().id)
    if user is None:
        # Deleted since the token was checked.
        raise AuthenticationFailedError("Invalid or expired token")
    g.qfjobs_user = user
    return user


API_PREFIX = "/api/v1/"
#: Path parameters naming a resource, and the access check for their kind.
PATH_RESOURCES: dict[
    str, tuple[str, Callable[[Session, access.Reader, uuid.UUID], object]]
] = {
    "project_id": ("project", access.get_project),
    "job_id": ("job", access.get_job),
}
#: Endpoints anyone may call; every other API endpoint needs a valid token.
PUBLIC_ENDPOINTS = frozenset(
    {
        "auth.Login",
        "status.Status",
        "api-docs.openapi_json",
        "api-docs.openapi_swagger_ui",
    }
)


ViewFunction = TypeVar("ViewFunction", bound=Callable[..., Any])


def checks_token_itself(view: ViewFunction) -> ViewFunction:
    """Mark a view method that authenticates the caller itself.

    :func:`require_authentication` then leaves the token to the view, which
    may check it together with what it reads first (one query instead of
    two). The view must authenticate on every path before anything else, and
    its route may have no ``project_id`` or ``job_id`` in its path.
    """
    view.qfjobs_checks_token_itself = True  # type: ignore[attr-defined]
    return view


def _checks_token_itself() -> bool:
    if any(name in (request.view_args or {}) for name in PATH_RESOURCES):
        return False
    view = current_app.view_functions.get(request.endpoint or "")
    method = getattr(getattr(view, "view_class", None), request.method.lower(), None)
    return getattr(method, "qfjobs_checks_token_itself", False) is True


def require_authentication() -> None:
    """``before_request`` hook: authenticate and authorize before parsing.

    Secure by default: a route added later needs a token unless its endpoint
    is listed in :data:`PUBLIC_ENDPOINTS` (or its view checks the token first
    itself, see :func:`checks_token_itself`), and any ``project_id`` or
    ``job_id`` in its path must name a resource the user may read (the one
    check per kind in :mod:`qfjobs.services.access`), else 404. Anonymous
    callers get 401 and other users 404 whatever the body holds, never a
    validation error that reveals the route's rules. Views still look their
    resources up themselves; this is the guard, not the lookup.
    """
    if request.endpoint is None or request.method == "OPTIONS":
        return
    if not request.path.startswith(API_PREFIX):
        return
    if request.endpoint in PUBLIC_ENDPOINTS or _checks_token_itself():
        return
    identity = current_identity()
    view_args = request.view_args or {}
    for name, (what, lookup) in PATH_RESOURCES.items():
        if name in view_args:
            lookup(get_session(), identity, parse_uuid(str(view_args[name]), what))
