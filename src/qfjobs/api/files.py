"""``files/<project_id>/``: the files of a project."""

from typing import Any

from flask import Response, current_app, jsonify, send_file
from flask.views import MethodView
from marshmallow import Schema, fields

from qfjobs.api.auth_context import current_user
from qfjobs.api.base import Blueprint
from qfjobs.api.requestparts import none_match, path_project, single_upload
from qfjobs.extensions import get_queue, get_session, get_storage
from qfjobs.models import ProjectFile
from qfjobs.qgis.attachments import is_attachment
from qfjobs.services import files as service

URL = "files"
blp = Blueprint("files", __name__, description="Project files")


#: The upload body, documented by hand: the view reads ``request.files``
#: itself to stream the part to disk.
UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        }
    },
}


class FileSchema(Schema):
    name = fields.String(attribute="path")
    size = fields.Integer()
    md5sum = fields.String(attribute="md5")
    sha256 = fields.String()
    etag = fields.String()
    version = fields.Integer()
    last_modified = fields.DateTime()
    is_attachment = fields.Boolean()


def file_dict(row: ProjectFile, attachment_dirs: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = FileSchema().dump(row)
    data["is_attachment"] = is_attachment(row.path, attachment_dirs)
    return data


@blp.route("/<project_id>/")
class FileList(MethodView):
    @blp.response(200, FileSchema(many=True))
    def get(self, project_id: str) -> Response:
        """All files of the project (a JSON array, not paginated)."""
        project = path_project(project_id)
        dirs = service.attachment_dirs(project)
        rows = service.list_files(get_session(), project)
        return jsonify([file_dict(row, dirs) for row in rows])


@blp.route("/<project_id>/<anypath:filename>/")
class FileItem(MethodView):
    @blp.response(200)
    def get(self, project_id: str, filename: str) -> Response:
        """Download a file; 304 when ``If-None-Match`` has its etag."""
        project = path_project(project_id)
        row = service.get_file(get_session(), project, filename)
        if none_match(row.etag, row.md5):
            response = Response(status=304)
        else:
            response = send_file(
                service.blob_of(get_storage(), row),
                as_attachment=True,
                download_name=row.path.rsplit("/", 1)[-1],
                conditional=False,
                etag=False,
                last_modified=row.last_modified,
                max_age=0,
            )
        response.set_etag(row.etag)
        return response

    @blp.doc(requestBody=UPLOAD_BODY)
    @blp.response(201, FileSchema)
    @blp.alt_response(400, response="BAD_REQUEST")
    def post(self, project_id: str, filename: str) -> tuple[Response, int]:
        """Upload a file (multipart field ``file``), replacing any same name."""
        project = path_project(project_id)
        upload = single_upload("File")
        row = service.upload_file(
            get_session(),
            get_storage(),
            get_queue(),
            current_user(),
            project,
            filename,
            upload.stream,
            current_app.config["QFJOBS_JOB_TIMEOUT"],
        )
        return jsonify(file_dict(row, service.attachment_dirs(project))), 201

    @blp.response(204)
    def delete(self, project_id: str, filename: str) -> None:
        """Delete a file."""
        project = path_project(project_id)
        service.delete_file(get_session(), get_storage(), project, filename)
