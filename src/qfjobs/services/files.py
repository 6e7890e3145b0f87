"""Project files: upload, listing, download and deletion.

Uploading the QGIS project file, or a data file to a project that has one,
queues a ``process_projectfile`` job unless one is already waiting.
"""

import logging
from pathlib import Path
from typing import IO

from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session

from qfjobs.errors import MultipleProjectsError, ObjectNotFoundError
from qfjobs.filenames import is_qgis_project_file, normalize_project_path
from qfjobs.models import JobType, Project, ProjectFile, User
from qfjobs.models.timestamps import utcnow
from qfjobs.qgis.attachments import (
    DEFAULT_ATTACHMENT_DIRS,
    is_attachment,
    storage_attachment_dirs,
)
from qfjobs.qgis.projectfile import validate_project_upload
from qfjobs.services import jobs
from qfjobs.storage import ProjectStorage, StoredBlob

logger = logging.getLogger(__name__)


def attachment_dirs(project: Project) -> list[str]:
    """The project's attachment folders, from the storage root.

    The project names them relative to its file's folder
    (``sub/project.qgs``: ``DCIM`` is ``sub/DCIM``).
    """
    details = project.project_details or {}
    dirs = details.get("attachment_dirs")
    declared = list(dirs) if dirs else list(DEFAULT_ATTACHMENT_DIRS)
    return storage_attachment_dirs(project.project_filename, declared)


def list_files(session: Session, project: Project) -> list[ProjectFile]:
    return list(
        session.scalars(
            select(ProjectFile)
            .where(ProjectFile.project_id == project.id)
            .order_by(ProjectFile.path)
        ).all()
    )


def get_file(session: Session, project: Project, raw_path: str) -> ProjectFile:
    path = normalize_project_path(raw_path)
    row = session.scalar(
        select(ProjectFile).where(
            ProjectFile.project_id == project.id, ProjectFile.path == path
        )
    )
    if row is None:
        raise ObjectNotFoundError(f'No file "{path}" in this project')
    return row


def upload_file(
    session: Session,
    storage: ProjectStorage,
    queue: Queue,
    user: User,
    project: Project,
    raw_path: str,
    stream: IO[bytes],
    job_timeout: int,
) -> ProjectFile:
    """Store an uploaded file and trigger processing where it is due."""
    path = normalize_project_path(raw_path)
    is_project_file = is_qgis_project_file(path)
    if is_project_file:
        _check_single_project_file(project, path)

    received, blob = storage.receive(project.id, stream)
    try:
        if is_project_file:
            with received.open("rb") as payload:
                validate_project_upload(path, payload)
        created = storage.keep(project.id, received, blob)
    finally:
        received.unlink(missing_ok=True)

    try:
        row, replaced = _record_file(session, project, path, blob)
        if is_project_file:
            project.project_filename = path
        project.data_last_updated_at = utcnow()
        session.commit()
    except BaseException:
        session.rollback()
        if created:
            _discard_unreferenced(session, storage, project, blob.sha256)
        raise
    if replaced and replaced != blob.sha256:
        _discard_unreferenced(session, storage, project, replaced)
    logger.info("project %s: stored %s (%s bytes)", project.id, path, blob.size)

    if project.project_filename and not is_attachment(path, attachment_dirs(project)):
        _queue_processing(session, queue, user, project, job_timeout)
    return row


def _discard_unreferenced(
    session: Session, storage: ProjectStorage, project: Project, sha256: str
) -> None:
    still_used = session.scalar(
        select(ProjectFile.id)
        .where(ProjectFile.project_id == project.id, ProjectFile.sha256 == sha256)
        .limit(1)
    )
    if still_used is None:
        storage.discard(project.id, sha256)


def _check_single_project_file(project: Project, path: str) -> None:
    if project.project_filename and project.project_filename != path:
        raise MultipleProjectsError(
            f'The project already holds the QGIS project file "'
            f'{project.project_filename}"; delete it before uploading "{path}"'
        )


def _record_file(
    session: Session, project: Project, path: str, blob: StoredBlob
) -> tuple[ProjectFile, str | None]:
    """Point ``path`` at the blob; returns the row and the blob it replaced."""
    row = session.scalar(
        select(ProjectFile).where(
            ProjectFile.project_id == project.id, ProjectFile.path == path
        )
    )
    replaced = None
    if row is None:
        row = ProjectFile(project_id=project.id, path=path, version=0)
        session.add(row)
    else:
        replaced = row.sha256
    row.size = blob.size
    row.md5 = blob.md5
    row.sha256 = blob.sha256
    row.etag = blob.etag
    row.version = (row.version or 0) + 1
    row.last_modified = utcnow()
    return row, replaced


def _queue_processing(
    session: Session, queue: Queue, user: User, project: Project, timeout: int
) -> None:
    jobs.lock_project(session, project.id)
    if jobs.has_pending_job(session, project.id, JobType.PROCESS_PROJECTFILE):
        session.commit()
        return
    jobs.create_job(
        session, queue, user, project, JobType.PROCESS_PROJECTFILE, timeout=timeout
    )


def delete_file(
    session: Session, storage: ProjectStorage, project: Project, raw_path: str
) -> None:
    row = get_file(session, project, raw_path)
    path, sha256 = row.path, row.sha256
    session.delete(row)
    if project.project_filename == path:
        project.project_filename = None
    project.data_last_updated_at = utcnow()
    session.commit()
    _discard_unreferenced(session, storage, project, sha256)
    logger.info("project %s: deleted %s", project.id, path)


def blob_of(storage: ProjectStorage, row: ProjectFile) -> Path:
    return storage.blob_path(row.project_id, row.sha256)
