"""The Flask application factory."""

import logging
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import NullSession, SessionInterface, SessionMixin
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import PathConverter

from qfjobs.api import init_api
from qfjobs.api.jsonprovider import OrjsonProvider
from qfjobs.config import load_config
from qfjobs.dashboard import init_dashboard
from qfjobs.extensions import init_extensions

logger = logging.getLogger(__name__)


class AnyPathConverter(PathConverter):
    """Like ``path`` but also matches names with a leading slash.

    Such names, and names holding a newline, must reach the file-name rules
    to be refused with a 400 rather than miss the route.
    """

    regex = "[\\s\\S]+?"
    part_isolating = False


class NoCookieSessions(SessionInterface):
    """No cookie sessions: the API authenticates each request by its token.

    Flask's default interface builds a signer on every request to read a
    cookie nothing here writes.
    """

    def open_session(self, app: Flask, request: Request) -> NullSession:
        return self.make_null_session(app)

    def save_session(
        self, app: Flask, session: SessionMixin, response: Response
    ) -> None:
        return None


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the app from the ``QFJOBS_*`` environment, then ``overrides``."""
    app = Flask("qfjobs", instance_relative_config=False)
    app.config.update(load_config())
    if overrides:
        app.config.update(overrides)
    app.json = OrjsonProvider(app)
    app.session_interface = NoCookieSessions()
    # Never answer a missing trailing slash with a redirect: clients do not
    # follow redirects on POST.
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    app.url_map.converters["anypath"] = AnyPathConverter

    proxies = int(app.config["QFJOBS_TRUSTED_PROXIES"])
    if proxies:
        # The client's address (login throttling) comes from X-Forwarded-For,
        # set by as many reverse proxies as are trusted, and only then.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )

    init_extensions(app)
    init_api(app)
    init_dashboard(app)
    return app
