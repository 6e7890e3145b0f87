"""The ``process_projectfile`` job: read, validate and describe the QGIS project.

It lays the project's files out in a work folder, parses the project file
with the hardened parser, checks every layer's data source for real and
stores the resulting ``project_details`` on the project. A project that
cannot be read fails the job and clears the project's details.
"""

import logging
from typing import Any

from sqlalchemy.orm import Session

from qfjobs.errors import NoQGISProjectError, ProjectFileNotFoundError
from qfjobs.models import Project
from qfjobs.qgis.inspect import inspect_project
from qfjobs.tasks.base import JobContext
from qfjobs.tasks.feedback import Workflow

logger = logging.getLogger(__name__)


class ProcessProjectfile:
    workflow = Workflow(
        "process_projectfile",
        "Process Projectfile",
        (
            ("download_project_directory", "Download Project Directory"),
            ("project_validity_check", "Project Validity Check"),
            ("project_details", "Project Details"),
        ),
    )

    def __call__(self, ctx: JobContext) -> None:
        ctx.on_failure.append(_clear_details)
        with ctx.feedback.step("download_project_directory"):
            rows = ctx.download_project()
            logger.info("%s: %s project files laid out", ctx.job_id, len(rows))

        with ctx.feedback.step("project_validity_check"):
            filename = ctx.project.project_filename
            if not filename:
                raise NoQGISProjectError()
            project_file = ctx.files_dir.joinpath(*filename.split("/"))
            if not project_file.is_file():
                raise ProjectFileNotFoundError(
                    f'Project file "{filename}" does not exist'
                )

        with ctx.feedback.step("project_details") as outputs:
            report = inspect_project(
                project_file,
                pg_service_file=ctx.config.get("QFJOBS_PG_SERVICE_FILE"),
                pg_timeout=float(ctx.config["QFJOBS_PG_TIMEOUT"]),
                pg_allowed_hosts=ctx.config["QFJOBS_PG_ALLOWED_HOSTS"],
                data_root=ctx.files_dir,
            )
            for line in report.log_lines:
                logger.info("%s: %s", ctx.job_id, line)
            details: dict[str, Any] = report.details
            outputs["project_details"] = details

        ctx.on_success.append(lambda session, project: _store(project, details))


def _store(project: Project, details: dict[str, Any]) -> None:
    project.project_details = details


def _clear_details(_session: Session, project: Project) -> None:
    project.project_details = None
