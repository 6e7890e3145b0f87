"""The parts of a request several resources read the same way.

The project named in the path (the user's own, else 404), the one uploaded
file of a multipart body, and the ``If-None-Match`` header of a download.
"""

from flask import request
from werkzeug.datastructures import FileStorage

from qfjobs.api.auth_context import current_user
from qfjobs.api.base import parse_uuid
from qfjobs.errors import EmptyContentError, ValidationError
from qfjobs.extensions import get_session
from qfjobs.models import Project
from qfjobs.services import access


def path_project(raw_id: str) -> Project:
    """The project ``raw_id`` names, if the caller may read it; else 404."""
    return access.get_project(
        get_session(), current_user(), parse_uuid(raw_id, "project")
    )


def single_upload(what: str) -> FileStorage:
    """The one multipart field ``file``; ``what`` names it in the messages."""
    if not request.mimetype.startswith("multipart/form-data"):
        raise ValidationError(
            f"{what} must be sent as multipart/form-data with a field named 'file'",
            errors={"file": ["Missing data for required field."]},
        )
    uploads = request.files.getlist("file")
    if not uploads:
        raise EmptyContentError("The request holds no multipart field 'file'")
    if len(uploads) > 1 or len(request.files) > 1:
        raise ValidationError(
            f"Send exactly one {what.lower()} per request",
            errors={"file": ["Only one file is accepted."]},
        )
    return uploads[0]


def none_match(*tags: str) -> bool:
    """Whether ``If-None-Match`` names one of ``tags`` (or ``*``)."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    sent = {tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")}
    return bool(sent & {*tags, "*"})
