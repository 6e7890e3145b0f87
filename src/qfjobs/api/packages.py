"""``packages/<project_id>/latest/``: the latest package, as QField reads it."""

from typing import Any

from flask import Response, jsonify, request, send_file
from flask.views import MethodView
from marshmallow import Schema, fields

from qfjobs.api.base import Blueprint
from qfjobs.api.requestparts import none_match, path_project
from qfjobs.extensions import get_session, get_storage
from qfjobs.services import files as file_service
from qfjobs.services import packages as service

URL = "packages"
blp = Blueprint(
    "packages",
    __name__,
    description=(
        "Packages made by package jobs. The latest package lists its files and,"
        " from project storage, the files of the attachment folders (DCIM...)."
    ),
)


class PackageFileSchema(Schema):
    name = fields.String()
    size = fields.Integer()
    md5sum = fields.String()
    sha256 = fields.String()
    etag = fields.String()
    last_modified = fields.String()
    is_attachment = fields.Boolean()


class LatestPackageSchema(Schema):
    status = fields.String()
    package_id = fields.UUID()
    packaged_at = fields.DateTime(allow_none=True)
    data_last_updated_at = fields.DateTime(allow_none=True)
    needs_repackaging = fields.Boolean()
    files = fields.List(fields.Nested(PackageFileSchema))
    layers = fields.Dict(allow_none=True)


@blp.route("/<project_id>/latest/")
class LatestPackage(MethodView):
    @blp.response(200, LatestPackageSchema)
    def get(self, project_id: str) -> Response:
        """The latest finished package; 400 ``invalid_job`` when there is none.

        ``status`` is ``finished``, or the status of a newer package job that
        is still pending, queued or started (clients then wait for it).
        ``?skip_metadata=1`` leaves out ``sha256``.
        """
        project = path_project(project_id)
        session = get_session()
        latest = service.latest_package(session, get_storage(), project)
        dirs = file_service.attachment_dirs(project)
        names = {item.name for item in latest.files}
        attachments = service.attachment_files(session, project, dirs, names)
        with_sha = request.args.get("skip_metadata", "0") not in ("1", "true")
        body: dict[str, Any] = {
            "status": latest.status,
            "package_id": str(latest.job.id),
            "packaged_at": _iso(project.data_last_packaged_at),
            "data_last_updated_at": _iso(project.data_last_updated_at),
            "needs_repackaging": project.needs_repackaging,
            "files": [
                item.as_dict(with_sha256=with_sha)
                for item in [*latest.files, *attachments]
            ],
            "layers": service.package_layers(latest.job),
        }
        return jsonify(body)


@blp.route("/<project_id>/latest/files/<anypath:filename>/")
class LatestPackageFile(MethodView):
    @blp.response(200)
    def get(self, project_id: str, filename: str) -> Response:
        """Download one file of the latest package (or an attachment).

        Answers 304 when ``If-None-Match`` holds the file's etag or md5.
        """
        project = path_project(project_id)
        session = get_session()
        latest = service.latest_package(session, get_storage(), project)
        path, entry = service.package_file_path(
            session,
            get_storage(),
            latest,
            filename,
            file_service.attachment_dirs(project),
        )
        if none_match(entry.etag, entry.md5sum):
            response = Response(status=304)
        else:
            response = send_file(
                path,
                as_attachment=True,
                download_name=entry.name.rsplit("/", 1)[-1],
                conditional=False,
                etag=False,
                max_age=0,
            )
        response.set_etag(entry.etag)
        return response


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
