"""Who may reach what: one authorization check per resource kind.

Every lookup of a project, a file or a job by a user goes through here. A
resource the user may not see answers exactly like one that does not exist
(404), so ids of other users' resources cannot be probed.
"""

import uuid
from typing import Protocol

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from qfjobs.errors import ObjectNotFoundError
from qfjobs.models import Job, Project


class Reader(Protocol):
    """Whoever asks: a :class:`~qfjobs.models.User` or a token's identity."""

    @property
    def id(self) -> int: ...


def readable_projects_clause(user: Reader) -> ColumnElement[bool]:
    """SQL condition selecting the projects ``user`` may read."""
    return readable_by(user.id)


def readable_by(reader_id: int | ColumnElement[int]) -> ColumnElement[bool]:
    """The one read rule; with a bound parameter (or a column of the enclosing
    query), statements using it can be built once and cached."""
    return Project.__table__.c.owner_id == reader_id


def get_project(session: Session, user: Reader, project_id: uuid.UUID) -> Project:
    project = session.scalar(
        select(Project).where(Project.id == project_id, readable_projects_clause(user))
    )
    if project is None:
        raise ObjectNotFoundError(f'No project with id "{project_id}"')
    return project


def get_job(session: Session, user: Reader, job_id: uuid.UUID) -> Job:
    job = session.scalar(
        select(Job)
        .join(Project, Job.project_id == Project.id)
        .where(Job.id == job_id, readable_projects_clause(user))
    )
    if job is None:
        raise ObjectNotFoundError(f'No job with id "{job_id}"')
    return job
