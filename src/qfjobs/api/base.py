"""Thin local subclasses of flask-smorest's Api and Blueprint.

Project-wide API behaviour lives here: request bodies are read from JSON or
from form fields (the QFieldCloud client sends forms), and every error leaves
as ``{"code", "message"}`` JSON.
"""

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import flask_smorest
import marshmallow as ma
from flask import Request, Response, jsonify
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from qfjobs.errors import ObjectNotFoundError

logger = logging.getLogger(__name__)

#: HTTP statuses flask/werkzeug raise on their own, as our error codes.
HTTP_CODES = {
    400: "validation_error",
    401: "not_authenticated",
    403: "permission_denied",
    404: "object_not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


class ErrorSchema(ma.Schema):
    """The error body every route answers, as the OpenAPI document shows it.

    Only documentation: errors are rendered by ``Api.handle_http_exception``
    and ``QfjobsError.to_dict`` (which may add fields such as ``reason``).
    """

    class Meta:
        unknown = ma.INCLUDE

    code = ma.fields.String(
        required=True, metadata={"description": "Error code, e.g. validation_error"}
    )
    message = ma.fields.String(required=True)
    errors = ma.fields.Dict(
        metadata={"description": "Messages per field (validation_error only)"}
    )


class ArgumentsParser(FlaskParser):
    """webargs' Flask parser, refusing NUL characters in any argument.

    Invalid arguments answer 400 ``validation_error`` (webargs' default is
    422); flask-smorest documents each ``@blp.arguments`` route with this
    parser's status, so the OpenAPI document says 400 as well.

    PostgreSQL text cannot hold NUL (U+0000) and no name, description or
    password needs one: refusing them here gives a 400 naming the field on
    every route, instead of a database error.
    """

    DEFAULT_VALIDATION_STATUS = 400

    def _load_location_data(
        self, *, schema: ma.Schema, req: Request, location: str
    ) -> Any:
        data = super()._load_location_data(schema=schema, req=req, location=location)
        refused = _fields_with_nul(data)
        if refused:
            raise ma.ValidationError(
                {name: ["NUL characters are not allowed."] for name in refused}
            )
        return data


def _fields_with_nul(data: Any) -> list[str]:
    raw = getattr(data, "data", data)  # webargs wraps multidicts in a proxy
    if hasattr(raw, "lists"):
        items = list(raw.lists())
    elif isinstance(raw, Mapping):
        items = list(raw.items())
    else:
        return ["_schema"] if _has_nul(raw) else []
    return [
        str(key).replace("\x00", "\\0")
        for key, value in items
        if _has_nul(key) or _has_nul(value)
    ]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = ArgumentsParser()

    # Bodies are parsed from JSON or form fields; OpenAPI documents them as
    # JSON (flask-smorest emits one content type per location).
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "json_or_form": "application/json",
    }


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> tuple[Response, int]:
        """Render werkzeug and webargs errors in the one error shape."""
        status = error.code or 500
        body: dict[str, Any] = {
            "code": HTTP_CODES.get(status, "unknown_error"),
            "message": error.description or error.name,
        }
        messages = getattr(error, "data", {}).get("messages")
        if messages:
            body["message"] = "Validation error"
            body["errors"] = _flatten_locations(messages)
        return jsonify(body), status


def _flatten_locations(messages: dict[str, Any]) -> dict[str, Any]:
    """webargs nests errors by location (json, form, query); drop that level."""
    errors: dict[str, Any] = {}
    for location_errors in messages.values():
        if isinstance(location_errors, dict):
            errors.update(location_errors)
    return errors or messages


def parse_uuid(raw: str, what: str) -> uuid.UUID:
    """An id from a URL path; anything that is not a UUID names no object."""
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise ObjectNotFoundError(f'No {what} with id "{raw}"') from exc
