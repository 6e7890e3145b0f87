"""Limit/offset pagination with the headers QFieldCloud clients follow.

The client reads ``X-Next-Page`` (and needs both ``limit`` and ``offset`` in
its query); it must be absent on the last page or the client never stops.
"""

from urllib.parse import urlencode

from flask import Response, request
from marshmallow import Schema, fields, validate

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
#: Far beyond any real list; bigger numbers overflow the databases' integers.
MAX_OFFSET = 2**31 - 1


class PaginationArgs(Schema):
    limit = fields.Integer(
        load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT)
    )
    offset = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET)
    )


def page_url(limit: int, offset: int) -> str:
    params = request.args.to_dict(flat=True)
    params.update({"limit": str(limit), "offset": str(offset)})
    return f"{request.base_url}?{urlencode(params)}"


def page_links(limit: int, offset: int, total: int) -> tuple[str | None, str | None]:
    next_url = page_url(limit, offset + limit) if offset + limit < total else None
    previous_url = page_url(limit, max(offset - limit, 0)) if offset > 0 else None
    return next_url, previous_url


def add_headers(
    response: Response, total: int, next_url: str | None, previous_url: str | None
) -> Response:
    response.headers["X-Total-Count"] = str(total)
    if next_url:
        response.headers["X-Next-Page"] = next_url
    if previous_url:
        response.headers["X-Previous-Page"] = previous_url
    return response


def is_qfieldcloud_sdk() -> bool:
    """The official client wants list bodies as bare JSON arrays."""
    return request.headers.get("User-Agent", "").startswith("sdk|py|")
