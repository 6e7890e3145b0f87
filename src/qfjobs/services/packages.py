"""Stored packages: publishing a job's package, and reading the latest one.

Layout: ``projects/<project id>/packages/<job id>/`` holds one package, with
``.manifest.json`` listing its files (name, size, md5, sha256, etag,
last_modified). A package job copies its result into a hidden staging
folder, writes the manifest, then renames the folder into place
(:func:`publish`); the package becomes the project's latest only when the
job's ``finished`` status and ``Project.last_package_job_id`` are committed
together. Older packages are deleted after that commit
(:func:`delete_other_packages`); a failed or stopped job leaves the
previous package in place, and its own folder is removed by the next
package job.
"""

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qfjobs.errors import InvalidJobError, ObjectNotFoundError
from qfjobs.filenames import normalize_project_path
from qfjobs.models import Job, JobStatus, JobType, Project, ProjectFile
from qfjobs.models.job import ACTIVE_STATUSES
from qfjobs.models.timestamps import utcnow
from qfjobs.qgis.attachments import is_attachment
from qfjobs.storage import ProjectStorage, checksum_file

logger = logging.getLogger(__name__)

MANIFEST = ".manifest.json"


@dataclass(frozen=True)
class PackageFile:
    name: str
    size: int
    md5sum: str
    sha256: str
    etag: str
    last_modified: str
    is_attachment: bool = False

    def as_dict(self, *, with_sha256: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "size": self.size,
            "md5sum": self.md5sum,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "is_attachment": self.is_attachment,
        }
        if with_sha256:
            data["sha256"] = self.sha256
        return data


def packages_dir(storage: ProjectStorage, project_id: uuid.UUID) -> Path:
    return storage.project_dir(project_id) / "packages"


def package_dir(
    storage: ProjectStorage, project_id: uuid.UUID, job_id: uuid.UUID
) -> Path:
    return packages_dir(storage, project_id) / str(job_id)


def publish(
    storage: ProjectStorage, project_id: uuid.UUID, job_id: uuid.UUID, source: Path
) -> list[PackageFile]:
    """Copy a built package into storage under the job's id, all or nothing."""
    root = packages_dir(storage, project_id)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".staging-{job_id}"
    target = package_dir(storage, project_id, job_id)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    try:
        shutil.copytree(source, staging)
        now = utcnow().isoformat()
        files = []
        for path in sorted(staging.rglob("*")):
            if not path.is_file():
                continue
            blob = checksum_file(path)
            name = path.relative_to(staging).as_posix()
            files.append(
                PackageFile(name, blob.size, blob.md5, blob.sha256, blob.etag, now)
            )
        manifest = [item.as_dict() for item in files]
        (staging / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return files


def delete_other_packages(
    storage: ProjectStorage, project_id: uuid.UUID, keep: set[uuid.UUID]
) -> None:
    """Delete every stored package of the project except those in ``keep``."""
    root = packages_dir(storage, project_id)
    if not root.is_dir():
        return
    kept = {str(item) for item in keep}
    for item in root.iterdir():
        if item.name not in kept:
            shutil.rmtree(item, ignore_errors=True)
            logger.debug("project %s: deleted package %s", project_id, item.name)


def read_manifest(folder: Path) -> list[PackageFile]:
    try:
        raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [PackageFile(**{**item, "is_attachment": False}) for item in raw]


@dataclass(frozen=True)
class LatestPackage:
    project: Project
    job: Job
    folder: Path
    files: list[PackageFile]
    newer_job: Job | None

    @property
    def status(self) -> str:
        """``finished``, or the status of a newer package job still running."""
        if self.newer_job is not None:
            return str(self.newer_job.status)
        return str(self.job.status)


def latest_package(
    session: Session, storage: ProjectStorage, project: Project
) -> LatestPackage:
    """The last published package; 400 ``invalid_job`` when there is none."""
    job_id = project.last_package_job_id
    job = session.get(Job, job_id) if job_id else None
    if job is None or job.status != JobStatus.FINISHED:
        raise InvalidJobError("The project has no finished package yet")
    folder = package_dir(storage, project.id, job.id)
    files = read_manifest(folder)
    if not files:
        raise InvalidJobError("The project's latest package is empty or missing")
    newer = session.scalar(
        select(Job)
        .where(
            Job.project_id == project.id,
            Job.type == JobType.PACKAGE,
            Job.status.in_(ACTIVE_STATUSES),
            Job.created_at > job.created_at,
        )
        .order_by(Job.created_at.desc())
        .limit(1)
    )
    return LatestPackage(project, job, folder, files, newer)


def attachment_files(
    session: Session, project: Project, dirs: list[str], exclude: set[str]
) -> list[PackageFile]:
    """Project files in the attachment folders, as package entries."""
    rows = session.scalars(
        select(ProjectFile)
        .where(ProjectFile.project_id == project.id)
        .order_by(ProjectFile.path)
    ).all()
    return [
        _entry(row)
        for row in rows
        if row.path not in exclude and is_attachment(row.path, dirs)
    ]


def _entry(row: ProjectFile) -> PackageFile:
    modified: datetime = row.last_modified
    return PackageFile(
        row.path,
        row.size,
        row.md5,
        row.sha256,
        row.etag,
        modified.isoformat(),
        is_attachment=True,
    )


def package_layers(job: Job) -> dict[str, Any] | None:
    """The original project's layer records stored by the package job."""
    outputs = (job.feedback or {}).get("outputs") or {}
    layers = (outputs.get("qgis_layers_data") or {}).get("layers_by_id")
    return layers if isinstance(layers, dict) else None


def package_file_path(
    session: Session,
    storage: ProjectStorage,
    latest: LatestPackage,
    raw_path: str,
    dirs: list[str],
) -> tuple[Path, PackageFile]:
    """The file to serve for ``raw_path``: from the package, else an attachment."""
    name = normalize_project_path(raw_path)
    for item in latest.files:
        if item.name == name:
            return latest.folder / name, item
    if is_attachment(name, dirs):
        row = session.scalar(
            select(ProjectFile).where(
                ProjectFile.project_id == latest.project.id, ProjectFile.path == name
            )
        )
        if row is not None:
            return storage.blob_path(latest.project.id, row.sha256), _entry(row)
    raise ObjectNotFoundError(f'No file "{name}" in the latest package')
