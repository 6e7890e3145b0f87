"""rq-dashboard, mounted at ``/rq/`` for superusers only.

Browsers log in with HTTP Basic (a superuser's name and password); scripts
may send their API token instead.
"""

import rq_dashboard
from flask import Flask, Response, request

from qfjobs.api.auth_context import request_token
from qfjobs.errors import AuthenticationFailedError, TooManyRequestsError
from qfjobs.extensions import get_login_throttle, get_session
from qfjobs.models import User
from qfjobs.services import users

URL_PREFIX = "/rq"
REALM = 'Basic realm="qfjobs rq-dashboard"'


def init_dashboard(app: Flask) -> None:
    for key in dir(rq_dashboard.default_settings):
        if key.isupper():
            app.config.setdefault(key, getattr(rq_dashboard.default_settings, key))
    app.config["RQ_DASHBOARD_REDIS_URL"] = [app.config["QFJOBS_REDIS_URL"]]
    app.config["RQ_DASHBOARD_DISABLE_DELETE"] = True

    blueprint = rq_dashboard.blueprint
    if not getattr(blueprint, "qfjobs_guarded", False):
        blueprint.before_request(_require_superuser)
        blueprint.qfjobs_guarded = True
    app.register_blueprint(blueprint, url_prefix=URL_PREFIX)


def _require_superuser() -> Response | None:
    user = _basic_auth_user() or _token_user()
    if user is not None and user.is_superuser:
        return None
    response = Response("rq-dashboard is for superusers\n", status=401)
    response.headers["WWW-Authenticate"] = REALM
    return response


def _basic_auth_user() -> User | None:
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username:
        return None
    try:
        credentials = users.Credentials(
            auth.username, auth.password or "", request.remote_addr or ""
        )
        return users.authenticate(get_session(), get_login_throttle(), credentials)
    except (AuthenticationFailedError, TooManyRequestsError):
        return None


def _token_user() -> User | None:
    token = request_token()
    return users.user_for_token(get_session(), token) if token else None
