"""``deltas/``: field edits pushed by QField and their application.

``POST deltas/<project_id>/`` takes a deltafile (multipart field ``file``, as
``qfieldcloud-sdk``'s ``push_delta`` sends it), ``GET`` lists the project's
deltas in apply order, ``GET deltas/<project_id>/<deltafile_id>/`` the deltas
of one deltafile, ``POST deltas/apply/<project_id>/`` queues the
application of every pending delta, and ``POST deltas/status/<project_id>/``
sets deltas back to ``pending`` or aside (``ignored``).
"""

from typing import Any

from flask import Response, current_app, jsonify
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from qfjobs.api import pagination
from qfjobs.api.auth_context import current_user
from qfjobs.api.base import Blueprint, parse_uuid
from qfjobs.api.requestparts import path_project, single_upload
from qfjobs.errors import (
    NoQGISProjectError,
    PayloadTooLargeError,
)
from qfjobs.extensions import get_queue, get_session, get_storage
from qfjobs.geodata.deltafile import DEFAULT_LIMITS
from qfjobs.models import Delta, Deltafile, DeltaStatus
from qfjobs.services import deltas as service
from qfjobs.services.jobs import APPLY_DELTAS_LIMIT

URL = "deltas"
blp = Blueprint(
    "deltas",
    __name__,
    description=(
        "Field edits (deltas). Statuses: pending, started, applied, conflict,"
        " not_applied, error, ignored, unpermitted."
    ),
)


class DeltaSchema(Schema):
    id = fields.UUID()
    deltafile_id = fields.UUID()
    project_id = fields.UUID()
    status = fields.String()
    output = fields.Dict(allow_none=True)
    last_modified_pk = fields.String(allow_none=True)
    job_id = fields.UUID(allow_none=True)
    created_by = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    content = fields.Dict()


class PushResultSchema(Schema):
    deltafile_id = fields.String()
    received = fields.Integer()
    stored = fields.Integer()
    job_ids = fields.List(fields.UUID())


class StatusChangeArgs(Schema):
    status = fields.String(
        required=True,
        validate=validate.OneOf([str(status) for status in service.SETTABLE_FROM]),
    )
    delta_ids = fields.List(
        fields.UUID(),
        required=True,
        validate=validate.Length(min=1, max=APPLY_DELTAS_LIMIT),
    )


class StatusChangeSchema(Schema):
    status = fields.String()
    changed = fields.List(fields.UUID())
    unchanged = fields.List(fields.UUID())


def delta_dict(delta: Delta, deltafile: Deltafile) -> dict[str, Any]:
    data: dict[str, Any] = DeltaSchema().dump(
        {
            "id": delta.id,
            "deltafile_id": deltafile.id,
            "project_id": delta.project_id,
            "status": delta.last_status,
            "output": delta.last_feedback,
            "last_modified_pk": delta.last_modified_pk,
            "job_id": delta.job_id,
            "created_by": delta.created_by.username if delta.created_by else None,
            "created_at": delta.created_at,
            "updated_at": delta.updated_at,
            "content": delta.content,
        }
    )
    return data


@blp.route("/<project_id>/")
class DeltaList(MethodView):
    @blp.arguments(pagination.PaginationArgs, location="query")
    @blp.response(200, DeltaSchema(many=True))
    def get(self, args: dict[str, Any], project_id: str) -> Response:
        """The project's deltas in apply order (a JSON array; paging headers)."""
        project = path_project(project_id)
        limit, offset = args["limit"], args["offset"]
        rows, total = service.list_deltas(
            get_session(), project, limit=limit, offset=offset
        )
        next_url, previous_url = pagination.page_links(limit, offset, total)
        response = jsonify([delta_dict(delta, upload) for delta, upload in rows])
        return pagination.add_headers(response, total, next_url, previous_url)

    @blp.response(200, PushResultSchema)
    @blp.alt_response(400, response="BAD_REQUEST")
    def post(self, project_id: str) -> Response:
        """Push a deltafile (multipart field ``file``).

        Answers 400 ``invalid_deltafile`` with the reason when the file is not a
        valid deltafile 1.0, names another project, or has a delta for a layer
        the project does not have; nothing is stored then. Deltas already
        received are skipped (pushing again is harmless). New deltas queue
        ``delta_apply`` jobs, whose ids are returned.
        """
        project = path_project(project_id)
        data = _read_upload()
        result = service.push_deltafile(
            get_session(),
            get_storage(),
            get_queue(),
            current_user(),
            project,
            data,
            current_app.config["QFJOBS_JOB_TIMEOUT"],
        )
        return jsonify(
            PushResultSchema().dump(
                {
                    "deltafile_id": result.deltafile_id,
                    "received": result.received,
                    "stored": result.stored,
                    "job_ids": [job.id for job in result.jobs],
                }
            )
        )


@blp.route("/<project_id>/<deltafile_id>/")
class DeltafileItem(MethodView):
    @blp.response(200, DeltaSchema(many=True))
    def get(self, project_id: str, deltafile_id: str) -> Response:
        """The deltas of one deltafile, in file order."""
        project = path_project(project_id)
        rows = service.deltafile_deltas(
            get_session(), project, parse_uuid(deltafile_id, "deltafile")
        )
        return jsonify([delta_dict(delta, upload) for delta, upload in rows])


@blp.route("/apply/<project_id>/")
class DeltaApply(MethodView):
    @blp.response(200, PushResultSchema)
    def post(self, project_id: str) -> Response:
        """Queue ``delta_apply`` jobs for the pending deltas no job holds yet.

        400 ``no_qgis_project`` when the project has no QGIS file. Answers 200
        with the new jobs' ids (none when nothing waits).
        """
        project = path_project(project_id)
        session = get_session()
        if not project.project_filename:
            raise NoQGISProjectError()
        created = service.queue_apply_jobs(
            session,
            get_queue(),
            current_user(),
            project,
            current_app.config["QFJOBS_JOB_TIMEOUT"],
        )
        return jsonify({"job_ids": [str(job.id) for job in created]})


@blp.route("/status/<project_id>/")
class DeltaStatusChange(MethodView):
    @blp.arguments(StatusChangeArgs, location="json_or_form")
    @blp.response(200, StatusChangeSchema)
    def post(self, args: dict[str, Any], project_id: str) -> Response:
        """Set deltas back to ``pending`` or aside (``ignored``); project owner.

        ``delta_ids`` (up to 10,000; repeated form fields or a JSON list) and
        ``status``: ``pending`` from ``error``, ``not_applied``, ``conflict``,
        ``unpermitted`` or ``ignored``, so that the next ``delta_apply`` job
        applies them (``POST deltas/apply/<project_id>/``); ``ignored`` from
        those or ``pending``. All or nothing: 400 ``delta_status_not_settable``
        for an ``applied`` delta (it is never applied twice), 400
        ``deltas_in_active_job`` for deltas a pending, queued or started apply
        job holds (stop it or let it end), 404 for a delta not in the project.
        Answers the ids changed and those already in that status.
        """
        project = path_project(project_id)
        change = service.set_status(
            get_session(), project, args["delta_ids"], DeltaStatus(args["status"])
        )
        return jsonify(
            StatusChangeSchema().dump(
                {
                    "status": change.status,
                    "changed": change.changed,
                    "unchanged": change.unchanged,
                }
            )
        )


def _read_upload() -> bytes:
    upload = single_upload("Deltafile")
    data: bytes = upload.stream.read(DEFAULT_LIMITS.max_bytes + 1)
    if len(data) > DEFAULT_LIMITS.max_bytes:
        raise PayloadTooLargeError(
            f"A deltafile may have at most {DEFAULT_LIMITS.max_bytes} bytes"
        )
    return data
