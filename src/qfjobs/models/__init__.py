"""SQLAlchemy models of the SQL store."""

from qfjobs.models.delta import Delta, Deltafile, DeltaStatus
from qfjobs.models.job import ACTIVE_STATUSES, Job, JobStatus, JobType
from qfjobs.models.job_count import JobCount
from qfjobs.models.job_version import JobVersion
from qfjobs.models.project import Project, ProjectFile
from qfjobs.models.user import AuthToken, User

__all__ = [
    "ACTIVE_STATUSES",
    "AuthToken",
    "Delta",
    "DeltaStatus",
    "Deltafile",
    "Job",
    "JobCount",
    "JobStatus",
    "JobType",
    "JobVersion",
    "Project",
    "ProjectFile",
    "User",
]
