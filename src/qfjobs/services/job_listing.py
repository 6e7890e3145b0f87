"""Pages of jobs, newest first, with their total: what ``GET jobs/`` shows.

This is the hottest read of the service (clients poll it), so its statements
are built once per filter combination with bound parameters and run as plain
Core queries, and totals come from the per-type tallies in ``job_counts``
rather than from counting the jobs index. Only a ``status`` filter counts jobs
themselves, through the (project, status) index.
"""

import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    ScalarSelect,
    Select,
    bindparam,
    func,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from qfjobs.errors import ObjectNotFoundError
from qfjobs.models import (
    Job,
    JobCount,
    JobStatus,
    JobType,
    JobVersion,
    Project,
    User,
)
from qfjobs.models.jsontext import TimestampText, UuidText
from qfjobs.services import access, users

_JOBS = Job.__table__.c
_COUNTS = JobCount.__table__.c
_PROJECTS = Project.__table__.c
_USERS = User.__table__.c
_VERSIONS = JobVersion.__table__.c

#: What a job list shows of each job, named as in the API and as JSON text: no
#: output or feedback, the creator's name.
SUMMARY_COLUMNS = (
    UuidText(_JOBS.id).label("id"),
    _JOBS.type,
    _JOBS.status,
    UuidText(_JOBS.project_id).label("project_id"),
    _USERS.username.label("created_by"),
    TimestampText(_JOBS.created_at).label("created_at"),
    TimestampText(_JOBS.updated_at).label("updated_at"),
    TimestampText(_JOBS.started_at).label("started_at"),
    TimestampText(_JOBS.finished_at).label("finished_at"),
)


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a list shows: one project's or every readable one's."""

    project_id: uuid.UUID | None = None
    job_type: JobType | None = None
    status: JobStatus | None = None

    def shape(self) -> tuple[bool, bool, bool]:
        """Which filters are set: statements are cached per shape."""
        return (
            self.project_id is not None,
            self.job_type is not None,
            self.status is not None,
        )

    def params(self, reader: access.Reader) -> dict[str, Any]:
        return {
            "reader_id": reader.id,
            "project_id": self.project_id,
            "type": self.job_type,
            "status": self.status,
        }


def _filter_conditions(by_type: bool, by_status: bool) -> list[Any]:
    conditions = []
    if by_type:
        conditions.append(_JOBS.type == bindparam("type", type_=_JOBS.type.type))
    if by_status:
        conditions.append(_JOBS.status == bindparam("status", type_=_JOBS.status.type))
    return conditions


def _job_conditions(by_project: bool, by_type: bool, by_status: bool) -> list[Any]:
    if by_project:
        scope = _JOBS.project_id == bindparam("project_id", type_=_JOBS.project_id.type)
    else:
        readable = access.readable_by(bindparam("reader_id"))
        scope = _JOBS.project_id.in_(select(_PROJECTS.id).where(readable))
    return [scope, *_filter_conditions(by_type, by_status)]


def _tally(by_type: bool) -> Select[Any]:
    """The sum of the tallies of the project in ``project_id``."""
    query = select(func.coalesce(func.sum(_COUNTS.jobs), 0)).where(
        _COUNTS.project_id == _PROJECTS.id
    )
    if by_type:
        query = query.where(_COUNTS.type == bindparam("type", type_=_COUNTS.type.type))
    return query


@cache
def _count_statement(by_project: bool, by_type: bool, by_status: bool) -> Select[Any]:
    """The total; for one project, NULL (no row) when the reader may not read it.

    Readability and the count come in one query: the project row is selected
    under the read rule, its total as a subquery of that row.
    """
    if by_status:
        counted: ScalarSelect[Any] | Any = (
            select(func.count())
            .select_from(Job.__table__)
            .where(_JOBS.project_id == _PROJECTS.id)
            .where(*_filter_conditions(by_type, True))
            .scalar_subquery()
        )
    else:
        counted = _tally(by_type).scalar_subquery()
    readable = access.readable_by(bindparam("reader_id"))
    if by_project:
        return select(counted).where(
            _PROJECTS.id == bindparam("project_id", type_=_PROJECTS.id.type), readable
        )
    return select(func.coalesce(func.sum(counted), 0)).where(readable)


@cache
def _page_statement(by_project: bool, by_type: bool, by_status: bool) -> Select[Any]:
    """The page, each row also carrying the total (NULL: project not readable).

    The total is an uncorrelated subquery, computed once per statement, so a
    page and its count cost one round trip. A page past the end has no rows
    to carry it: the count is then asked on its own.
    """
    total = _count_statement(by_project, by_type, by_status).scalar_subquery()
    return (
        select(*SUMMARY_COLUMNS, total.label("total"))
        .outerjoin_from(Job.__table__, User.__table__, _JOBS.created_by_id == _USERS.id)
        .where(*_job_conditions(by_project, by_type, by_status))
        .order_by(_JOBS.created_at.desc(), _JOBS.id.desc())
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


def list_jobs(
    connection: Session | Connection,
    reader: access.Reader,
    jobs: JobFilter,
    *,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Summaries of the jobs the reader may read, newest first, and their count.

    Each summary is a dict of JSON-ready values named as the API shows them. A
    ``project_id`` the reader may not read is 404, like everywhere else.
    """
    params = jobs.params(reader)

    result = connection.execute(
        _page_statement(*jobs.shape()), {**params, "limit": limit, "offset": offset}
    )
    *names, _ = result.keys()
    rows = result.all()
    total = (
        rows[0][-1]
        if rows
        else connection.execute(_count_statement(*jobs.shape()), params).scalar()
    )
    if total is None:
        raise ObjectNotFoundError(f'No project with id "{jobs.project_id}"')

    summaries = [dict(zip(names, row[:-1], strict=True)) for row in rows]
    return summaries, int(total)


#: The token check and, as a row's last column, the version of the project in
#: ``project_id`` (NULL when the token's user may not read it).
_IDENTITY_AND_VERSION = users.token_statement(
    select(func.coalesce(_VERSIONS.version, 0))
    .outerjoin_from(
        Project.__table__, JobVersion.__table__, _VERSIONS.project_id == _PROJECTS.id
    )
    .where(
        _PROJECTS.id == bindparam("project_id", type_=_PROJECTS.id.type),
        access.readable_by(_USERS.id),
    )
    .scalar_subquery()
    .label("jobs_version")
)


def identity_and_jobs_version(
    connection: Session | Connection, token: str, project_id: uuid.UUID
) -> tuple[users.Identity | None, int | None]:
    """:func:`~qfjobs.services.users.identity_for_token`, and the version of the
    project's jobs (:class:`~qfjobs.models.JobVersion`) in one query.

    The version is None when that identity may not read the project, or there
    is no such project.
    """
    found = _IDENTITY_AND_VERSION.first(
        connection, {**users.token_params(token), "project_id": project_id}
    )
    identity = users.identity_from_row(connection, found)
    if identity is None or found is None:
        return None, None
    version: int | None = found.jobs_version
    return identity, version
