"""Job tallies: how many jobs each project holds, per job type.

The rows are kept by database triggers on ``jobs`` (migration 0003), so every
writer keeps them right, bulk inserts and cascading deletes included. Counting
a project's jobs reads a handful of rows instead of its whole index, which is
what keeps ``GET jobs/`` fast on projects with many jobs. Type is fixed for a
job's life, so status changes never touch these rows and never contend on them.
"""

import uuid

from sqlalchemy import ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from qfjobs.db import Base


class JobCount(Base):
    __tablename__ = "job_counts"

    project_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    type: Mapped[str] = mapped_column(String(32), primary_key=True)
    jobs: Mapped[int] = mapped_column(Integer, default=0)
