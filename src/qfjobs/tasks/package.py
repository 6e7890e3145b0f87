"""The ``package`` job: the project converted for offline use in QField.

Steps (QFieldCloud's ``package_project`` workflow):

1. lay the project's files out in the work folder (a snapshot; its time is
   what ``data_last_packaged_at`` records, so files uploaded while the job
   runs still make the project need repackaging);
2. ``qgis_layers_data``: read and check every layer as ``process_projectfile``
   does; outputs the original project's layer records;
3. ``package_project``: decide per layer, convert, copy and rewrite
   (:func:`qfjobs.packaging.builder.build_package`) into a private folder;
   outputs what was done to each layer and why, with feature counts;
4. ``qfield_layer_data``: check the packaged project's layers the same way;
   outputs their records;
5. ``upload_packaged_project``: copy the package into storage under the
   job's id. It becomes the project's latest package in the same
   transaction that marks the job ``finished``; older packages are deleted
   only after that commit. A failed or stopped job publishes nothing
   visible and leaves the previous package in place.
"""

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from qfjobs.errors import NoQGISProjectError, PackagingError, ProjectFileNotFoundError
from qfjobs.models import Project
from qfjobs.models.timestamps import utcnow
from qfjobs.packaging.builder import build_package
from qfjobs.qgis.inspect import ProjectReport, inspect_project
from qfjobs.qgis.pgcheck import LOOPBACK_HOSTS, PgOptions
from qfjobs.services import packages
from qfjobs.tasks.base import JobContext
from qfjobs.tasks.feedback import Workflow

logger = logging.getLogger(__name__)


class Package:
    workflow = Workflow(
        "package_project",
        "Package Project",
        (
            ("download_project_directory", "Download Project Directory"),
            ("qgis_layers_data", "QGIS Layers Data"),
            ("package_project", "Package Project"),
            ("qfield_layer_data", "Packaged Layers Data"),
            ("upload_packaged_project", "Upload Packaged Project"),
        ),
    )

    def __call__(self, ctx: JobContext) -> None:
        job_id = ctx.job_id
        project_id = ctx.project.id
        keep = {job_id}
        if ctx.project.last_package_job_id:
            keep.add(ctx.project.last_package_job_id)
        packages.delete_other_packages(ctx.storage, project_id, keep)

        with ctx.feedback.step("download_project_directory"):
            snapshot_at = utcnow()
            rows = ctx.download_project()
            logger.info("%s: %s project files laid out", job_id, len(rows))
            filename = ctx.project.project_filename
            if not filename:
                raise NoQGISProjectError()
            project_file = ctx.files_dir.joinpath(*filename.split("/"))
            if not project_file.is_file():
                raise ProjectFileNotFoundError(
                    f'Project file "{filename}" does not exist'
                )

        pg_options = _pg_options(ctx.config)
        with ctx.feedback.step("qgis_layers_data") as outputs:
            report = _inspect(ctx, project_file, ctx.files_dir)
            outputs["layers_by_id"] = report.details["layers_by_id"]

        export_dir = ctx.workdir / "export"
        export_dir.mkdir()
        with ctx.feedback.step("package_project") as outputs:
            build = build_package(
                report, filename, ctx.files_dir, export_dir, pg_options, str(job_id)
            )
            for line in _summary(build.layers):
                logger.info("%s: %s", job_id, line)
            for warning in build.warnings:
                logger.warning("%s: %s", job_id, warning)
            outputs["qfield_project_filename"] = build.project_name
            outputs["layers"] = build.layers
            outputs["files"] = build.files
            outputs["warnings"] = build.warnings

        with ctx.feedback.step("qfield_layer_data") as outputs:
            packaged_file = export_dir.joinpath(*build.project_name.split("/"))
            if not packaged_file.is_file() or packaged_file.stat().st_size == 0:
                raise PackagingError("The packaged QGIS project file is empty")
            packaged = _inspect(ctx, packaged_file, export_dir)
            outputs["layers_by_id"] = packaged.details["layers_by_id"]
            _check_packaged(report, packaged, build.layers)

        with ctx.feedback.step("upload_packaged_project") as outputs:
            files = packages.publish(ctx.storage, project_id, job_id, export_dir)
            outputs["files"] = [item.name for item in files]
            logger.info("%s: package of %s files stored", job_id, len(files))

        storage = ctx.storage

        def make_latest(session: Session, project: Project) -> None:
            project.last_package_job_id = job_id
            project.data_last_packaged_at = snapshot_at

            def cleanup(_session: Session) -> None:
                packages.delete_other_packages(storage, project_id, {job_id})

            event.listen(session, "after_commit", cleanup, once=True)

        ctx.on_success.append(make_latest)


def _pg_options(config: dict[str, Any]) -> PgOptions:
    service = config.get("QFJOBS_PG_SERVICE_FILE")
    allowed = config.get("QFJOBS_PG_ALLOWED_HOSTS", LOOPBACK_HOSTS)
    return PgOptions(
        service_file=Path(service) if service else None,
        timeout=float(config.get("QFJOBS_PG_TIMEOUT", 3)),
        allowed_hosts=None
        if allowed is None
        else frozenset(host.lower() for host in allowed),
    )


def _inspect(ctx: JobContext, project_file: Path, data_root: Path) -> ProjectReport:
    report = inspect_project(
        project_file,
        pg_service_file=ctx.config.get("QFJOBS_PG_SERVICE_FILE"),
        pg_timeout=float(ctx.config["QFJOBS_PG_TIMEOUT"]),
        pg_allowed_hosts=ctx.config["QFJOBS_PG_ALLOWED_HOSTS"],
        data_root=data_root,
    )
    for line in report.log_lines:
        logger.info("%s: %s", ctx.job_id, line)
    return report


def _summary(layers: list[dict[str, Any]]) -> list[str]:
    lines = []
    for layer in layers:
        text = f'layer "{layer["name"]}" ({layer["id"]}): {layer["outcome"]}'
        if "feature_count" in layer:
            text += f', {layer["feature_count"]} feature(s) into "{layer["table"]}"'
        if layer["read_only"]:
            text += ", read-only"
        lines.append(f"{text} - {layer['reason']}")
    return lines


def _check_packaged(
    original: ProjectReport, packaged: ProjectReport, layers: list[dict[str, Any]]
) -> None:
    """Every layer that was valid and kept must be valid in the package."""
    packaged_by_id = {item.layer_id: item for item in packaged.layers}
    broken = []
    for layer in layers:
        if layer["outcome"] == "removed":
            continue
        before = next(i for i in original.layers if i.layer_id == layer["id"])
        after = packaged_by_id.get(layer["id"])
        if before.check.is_valid and (after is None or not after.check.is_valid):
            reason = after.check.error_summary if after else "missing"
            broken.append(f'"{layer["name"]}" ({reason})')
    if broken:
        raise PackagingError(
            "Layers valid in the project are not valid in the package: "
            + ", ".join(broken)
        )
