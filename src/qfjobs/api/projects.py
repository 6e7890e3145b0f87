"""``projects/``: the user's projects."""

from typing import Any

from flask import Response, jsonify
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from qfjobs.api import pagination
from qfjobs.api.auth_context import current_user
from qfjobs.api.base import Blueprint
from qfjobs.api.requestparts import path_project
from qfjobs.extensions import get_session, get_storage
from qfjobs.models import Project
from qfjobs.services import projects as service

URL = "projects"
blp = Blueprint("projects", __name__, description="Projects")


class ProjectSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    owner = fields.Function(lambda project: project.owner.username)
    description = fields.String()
    is_public = fields.Boolean()
    project_type = fields.Constant("regular")
    public_collaborator_role = fields.Constant(None)
    user_role = fields.Constant("admin")
    overwrite_conflicts = fields.Boolean()
    project_filename = fields.String(allow_none=True)
    status = fields.String()
    status_code = fields.String()
    project_details = fields.Dict(allow_none=True)
    data_last_updated_at = fields.DateTime(allow_none=True)
    data_last_packaged_at = fields.DateTime(allow_none=True)
    needs_repackaging = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ProjectListArgs(pagination.PaginationArgs):
    include_public = fields.String(data_key="include-public")


class NewProjectArgs(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    description = fields.String(load_default="")
    is_public = fields.Boolean(load_default=False)
    owner = fields.String()
    project_type = fields.String()
    public_collaborator_role = fields.String()
    clone_from_project = fields.String()


class ProjectChangesArgs(Schema):
    name = fields.String(validate=validate.Length(min=1, max=255))
    description = fields.String()
    is_public = fields.Boolean()
    overwrite_conflicts = fields.Boolean()
    owner = fields.String()
    project_type = fields.String()
    public_collaborator_role = fields.String()


def project_dict(project: Project) -> dict[str, Any]:
    data: dict[str, Any] = ProjectSchema().dump(project)
    state = service.project_status(get_session(), project)
    data["status"] = state.status
    data["status_code"] = state.status_code
    return data


@blp.route("/")
class Projects(MethodView):
    @blp.arguments(ProjectListArgs, location="query")
    @blp.response(200, ProjectSchema(many=True))
    def get(self, args: dict[str, Any]) -> Response:
        """The user's projects (a JSON array; paging in the headers)."""
        rows, total = service.list_projects(
            get_session(), current_user(), args["limit"], args["offset"]
        )
        next_url, previous_url = pagination.page_links(
            args["limit"], args["offset"], total
        )
        response = jsonify([project_dict(row) for row in rows])
        return pagination.add_headers(response, total, next_url, previous_url)

    @blp.arguments(NewProjectArgs, location="json_or_form")
    @blp.response(201, ProjectSchema)
    def post(self, args: dict[str, Any]) -> tuple[Response, int]:
        """Create a project owned by the user."""
        project = service.create_project(
            get_session(),
            current_user(),
            args["name"],
            args["description"],
            args["is_public"],
        )
        return jsonify(project_dict(project)), 201


@blp.route("/<project_id>/")
class ProjectItem(MethodView):
    @blp.response(200, ProjectSchema)
    def get(self, project_id: str) -> Response:
        """One project, with its project details and status."""
        return jsonify(project_dict(path_project(project_id)))

    @blp.arguments(ProjectChangesArgs, location="json_or_form")
    @blp.response(200, ProjectSchema)
    def patch(self, changes: dict[str, Any], project_id: str) -> Response:
        """Change name, description, visibility or conflict handling."""
        project = service.update_project(
            get_session(), path_project(project_id), changes
        )
        return jsonify(project_dict(project))

    @blp.response(204)
    def delete(self, project_id: str) -> None:
        """Delete the project with its files and jobs."""
        service.delete_project(get_session(), get_storage(), path_project(project_id))
