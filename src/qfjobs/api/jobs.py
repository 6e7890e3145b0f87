"""``jobs/``: background jobs of the user's projects."""

from typing import Any

from flask import Response, current_app, jsonify
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from qfjobs.api import pagination
from qfjobs.api.answer_cache import kept_by_job_version
from qfjobs.api.auth_context import current_identity, current_user
from qfjobs.api.base import Blueprint, parse_uuid
from qfjobs.extensions import get_db, get_queue, get_redis, get_session
from qfjobs.models import Job, JobStatus, JobType
from qfjobs.services import access, job_listing
from qfjobs.services import jobs as service

URL = "jobs"
blp = Blueprint(
    "jobs",
    __name__,
    description=(
        "Background jobs. Statuses: pending (waiting to be queued), queued (waiting"
        " for a worker), started, stopped, finished, failed. Jobs of one project"
        " run one at a time in creation order."
    ),
)

JOB_TYPES = [job_type.value for job_type in JobType]
JOB_STATUSES = [status.value for status in JobStatus]


class JobSchema(Schema):
    id = fields.UUID()
    type = fields.String()
    status = fields.String()
    project_id = fields.UUID()
    created_by = fields.String(attribute="created_by_username", allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class JobDetailSchema(JobSchema):
    attempts = fields.Integer()
    output = fields.String(allow_none=True)
    feedback = fields.Dict(allow_none=True)


class JobPageSchema(Schema):
    count = fields.Integer()
    next = fields.String(allow_none=True)
    previous = fields.String(allow_none=True)
    results = fields.List(fields.Nested(JobSchema))


class JobListArgs(pagination.PaginationArgs):
    project_id = fields.UUID()
    type = fields.String(validate=validate.OneOf(JOB_TYPES))
    status = fields.String(validate=validate.OneOf(JOB_STATUSES))


class NewJobArgs(Schema):
    project_id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.OneOf(JOB_TYPES))
    force = fields.Boolean(load_default=False)


@blp.route("/")
class Jobs(MethodView):
    @kept_by_job_version
    # An instance, not the class: webargs would build a schema per request.
    @blp.arguments(JobListArgs(), location="query")
    @blp.response(200, JobPageSchema)
    def get(self, args: dict[str, Any]) -> Response:
        """List jobs, newest first (``count``, ``next``, ``previous``, ``results``).

        The QFieldCloud client (User-Agent ``sdk|py|...``) gets ``results`` alone
        as a JSON array. Paging is also in ``X-Total-Count``, ``X-Next-Page``
        and ``X-Previous-Page``.
        """
        limit, offset = args["limit"], args["offset"]
        results, total = job_listing.list_jobs(
            get_db().request_connection(),
            current_identity(),
            job_listing.JobFilter(
                project_id=args.get("project_id"),
                job_type=JobType(args["type"]) if "type" in args else None,
                status=JobStatus(args["status"]) if "status" in args else None,
            ),
            limit=limit,
            offset=offset,
        )
        next_url, previous_url = pagination.page_links(limit, offset, total)
        if pagination.is_qfieldcloud_sdk():
            response = jsonify(results)
        else:
            response = jsonify(
                count=total, next=next_url, previous=previous_url, results=results
            )
        return pagination.add_headers(response, total, next_url, previous_url)

    @blp.arguments(NewJobArgs, location="json_or_form")
    @blp.response(201, JobSchema)
    @blp.alt_response(200, schema=JobSchema, description="An active job reused")
    def post(self, args: dict[str, Any]) -> tuple[Response, int]:
        """Create a job; 200 with the active package job when one exists.

        The project must hold a ``.qgs`` or ``.qgz`` file (else 400
        ``no_qgis_project``). ``package`` jobs do not run in parallel: without
        ``force=1`` an active one is returned instead of creating another.
        """
        session = get_session()
        user = current_user()
        project = access.get_project(session, user, args["project_id"])
        job, created = service.create_job(
            session,
            get_queue(),
            user,
            project,
            JobType(args["type"]),
            force=args["force"],
            timeout=current_app.config["QFJOBS_JOB_TIMEOUT"],
        )
        return jsonify(JobSchema().dump(job)), 201 if created else 200


@blp.route("/<job_id>/")
class JobItem(MethodView):
    @blp.response(200, JobDetailSchema)
    def get(self, job_id: str) -> Job:
        """One job with its ``output`` (log) and ``feedback`` (result)."""
        return access.get_job(get_session(), current_user(), parse_uuid(job_id, "job"))


@blp.route("/<job_id>/stop/")
class JobStop(MethodView):
    @blp.response(200, JobDetailSchema)
    def post(self, job_id: str) -> Job:
        """Stop a job.

        A pending or queued job is ``stopped`` at once; a started one is ended
        by its worker at the next check (its partial work is dropped) and then
        reads ``stopped``. A job that has already ended gives 400
        ``job_not_stoppable``.
        """
        session = get_session()
        job = access.get_job(session, current_user(), parse_uuid(job_id, "job"))
        return service.stop_job(session, get_redis(), get_queue(), job)
