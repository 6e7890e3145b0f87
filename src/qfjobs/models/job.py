"""Jobs: one row per background job; the row is the truth about the job."""

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qfjobs.db import Base
from qfjobs.models.project import Project
from qfjobs.models.timestamps import UTCDateTime, utcnow
from qfjobs.models.user import User


class JobType(enum.StrEnum):
    PACKAGE = "package"
    DELTA_APPLY = "delta_apply"
    PROCESS_PROJECTFILE = "process_projectfile"


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    STARTED = "started"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"


ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.STARTED)
FINAL_STATUSES = (JobStatus.STOPPED, JobStatus.FINISHED, JobStatus.FAILED)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_project_status", "project_id", "status"),
        # Pages of a project's jobs, newest first, are read straight off this.
        Index("ix_jobs_project_created", "project_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE")
    )
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    force: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    output: Mapped[str | None] = mapped_column(Text)
    feedback: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Seconds the job may run before it is failed with a timeout.
    timeout: Mapped[int] = mapped_column(Integer, default=600)
    #: How many times a worker began this job (retries after a lost worker).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_name: Mapped[str | None] = mapped_column(String(255))

    project: Mapped[Project] = relationship()
    created_by: Mapped[User | None] = relationship()

    @property
    def created_by_username(self) -> str | None:
        return self.created_by.username if self.created_by else None
