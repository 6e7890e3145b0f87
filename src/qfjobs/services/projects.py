"""Projects: creation, listing, changes, deletion and their derived status."""

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qfjobs.errors import ProjectAlreadyExistsError, ValidationError
from qfjobs.models import Job, JobStatus, Project, User
from qfjobs.services.access import readable_projects_clause
from qfjobs.storage import ProjectStorage

logger = logging.getLogger(__name__)

EDITABLE_FIELDS = ("name", "description", "is_public", "overwrite_conflicts")


@dataclass(frozen=True)
class ProjectStatus:
    status: str
    status_code: str


def create_project(
    session: Session, owner: User, name: str, description: str, is_public: bool
) -> Project:
    _check_name_free(session, owner, name)
    project = Project(
        owner=owner, name=name, description=description, is_public=is_public
    )
    session.add(project)
    session.commit()
    logger.info("project %s created by %s", project.id, owner.username)
    return project


def _check_name_free(
    session: Session, owner: User, name: str, exclude: uuid.UUID | None = None
) -> None:
    if not name.strip():
        raise ValidationError(errors={"name": ["Must not be blank."]})
    query = select(Project.id).where(Project.owner_id == owner.id, Project.name == name)
    if exclude is not None:
        query = query.where(Project.id != exclude)
    if session.scalar(query) is not None:
        raise ProjectAlreadyExistsError()


def list_projects(
    session: Session, user: User, limit: int, offset: int
) -> tuple[list[Project], int]:
    clause = readable_projects_clause(user)
    total = session.scalar(select(func.count()).select_from(Project).where(clause))
    rows = session.scalars(
        select(Project)
        .where(clause)
        .order_by(Project.created_at, Project.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total or 0


def update_project(
    session: Session, project: Project, changes: dict[str, Any]
) -> Project:
    if "name" in changes:
        _check_name_free(session, project.owner, changes["name"], exclude=project.id)
    for field in EDITABLE_FIELDS:
        if field in changes:
            setattr(project, field, changes[field])
    session.commit()
    return project


def delete_project(session: Session, storage: ProjectStorage, project: Project) -> None:
    """Delete the project, its files and its jobs.

    Jobs still queued in RQ find no row when they start and end at once.
    """
    project_id = project.id
    session.delete(project)
    session.commit()
    storage.delete_project(project_id)
    logger.info("project %s deleted", project_id)


def project_status(session: Session, project: Project) -> ProjectStatus:
    busy = session.scalar(
        select(Job.id)
        .where(
            Job.project_id == project.id,
            Job.status.in_((JobStatus.QUEUED, JobStatus.STARTED)),
        )
        .limit(1)
    )
    if busy is not None:
        return ProjectStatus("busy", "busy")
    if not project.project_filename:
        return ProjectStatus("failed", "missing_projectfile")
    if project.project_details is None:
        return ProjectStatus("failed", "failed_process_projectfile")
    return ProjectStatus("ok", "ok")
