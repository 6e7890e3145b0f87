"""``auth/`` and ``users/``: logins, tokens and accounts."""

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from flask import current_app, request
from flask.views import MethodView
from marshmallow import Schema, fields

from qfjobs.api.auth_context import current_user, request_token
from qfjobs.api.base import Blueprint
from qfjobs.errors import PermissionDeniedError
from qfjobs.extensions import get_login_throttle, get_session
from qfjobs.models import User
from qfjobs.services import users

P = ParamSpec("P")
R = TypeVar("R")

URL = "auth"
blp = Blueprint("auth", __name__, description="Log in and out")


class LoginArgs(Schema):
    username = fields.String(required=True)
    password = fields.String(required=True)


class UserSchema(Schema):
    username = fields.String()
    email = fields.String()
    type = fields.Constant(1)
    first_name = fields.Constant("")
    last_name = fields.Constant("")
    full_name = fields.Function(
        lambda user: user["username"] if isinstance(user, dict) else user.username
    )
    avatar_url = fields.Constant(None)
    is_superuser = fields.Boolean()


class TokenSchema(UserSchema):
    token = fields.String()
    expires_at = fields.DateTime()


class NewUserArgs(Schema):
    username = fields.String(required=True)
    password = fields.String(required=True, load_only=True)
    email = fields.String(load_default="")


@blp.route("/login/")
class Login(MethodView):
    @blp.arguments(LoginArgs, location="json_or_form")
    @blp.response(200, TokenSchema)
    def post(self, args: dict[str, str]) -> dict[str, Any]:
        """Log in with username and password; returns a token."""
        ttl = timedelta(days=current_app.config["QFJOBS_TOKEN_TTL_DAYS"])
        credentials = users.Credentials(
            args["username"], args["password"], request.remote_addr or ""
        )
        user, token, expires_at = users.login(
            get_session(), get_login_throttle(), credentials, ttl
        )
        return {**_user_dict(user), "token": token, "expires_at": expires_at}


@blp.route("/logout/")
class Logout(MethodView):
    @blp.response(200)
    def post(self) -> dict[str, str]:
        """Revoke the token of this request."""
        current_user()
        token = request_token()
        if token:
            users.logout(get_session(), token)
        return {"detail": "Successfully logged out."}


@blp.route("/user/")
class CurrentUser(MethodView):
    @blp.response(200, UserSchema)
    def get(self) -> User:
        """The authenticated user."""
        return current_user()


users_blp = Blueprint("users", __name__, description="User accounts")


def superuser_only(view: Callable[P, R]) -> Callable[P, R]:
    """Refuse non-superusers before the body is parsed (no schema hints)."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not current_user().is_superuser:
            raise PermissionDeniedError("Only superusers may create users")
        return view(*args, **kwargs)

    return wrapper


@users_blp.route("/")
class Users(MethodView):
    @superuser_only
    @users_blp.arguments(NewUserArgs, location="json_or_form")
    @users_blp.response(201, UserSchema)
    def post(self, args: dict[str, str]) -> User:
        """Create a user (superusers only)."""
        return users.create_user(
            get_session(), args["username"], args["password"], args["email"]
        )


def _user_dict(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "email": user.email,
        "is_superuser": user.is_superuser,
    }
