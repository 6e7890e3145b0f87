"""The HTTP API under ``/api/v1/``: one Blueprint per resource."""

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, NotFound

from qfjobs.api import (
    answer_cache,
    auth,
    deltas,
    files,
    jobs,
    packages,
    projects,
    status,
    swagger_assets,
)
from qfjobs.api.auth_context import require_authentication
from qfjobs.api.base import Api
from qfjobs.errors import QfjobsError

logger = logging.getLogger(__name__)

PREFIX = "/api/v1"


def init_api(app: Flask) -> None:
    api = Api(app, spec_kwargs={"components": {"securitySchemes": _security()}})
    for module in (auth, status, projects, files, jobs):
        api.register_blueprint(module.blp, url_prefix=f"{PREFIX}/{module.URL}")
    api.register_blueprint(auth.users_blp, url_prefix=f"{PREFIX}/users")
    api.register_blueprint(deltas.blp, url_prefix=f"{PREFIX}/{deltas.URL}")
    api.register_blueprint(packages.blp, url_prefix=f"{PREFIX}/{packages.URL}")
    app.register_blueprint(swagger_assets.blp)
    app.before_request(require_authentication)
    answer_cache.init_app(app)

    @app.errorhandler(QfjobsError)
    def handle_qfjobs_error(error: QfjobsError) -> tuple[Response, int]:
        if error.status >= 500:
            logger.error("request failed: %s: %s", error.code, error.message)
        response = jsonify(error.to_dict())
        response.headers.update(error.headers())
        return response, error.status

    @app.errorhandler(404)
    def handle_not_found(error: NotFound) -> tuple[Response, int]:
        return jsonify(code="object_not_found", message="Not found"), 404

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> tuple[Response, int]:
        if isinstance(error, HTTPException):
            return api.handle_http_exception(error)
        if app.testing:
            raise error
        logger.error("unhandled error", exc_info=error)
        return jsonify(code="unknown_error", message="Internal server error"), 500


def _security() -> dict[str, dict[str, str]]:
    return {
        "token": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>` from `POST /api/v1/auth/login/`",
        }
    }
