"""Job versions: a tag per project that every change to its jobs renews.

The rows are kept by database triggers (migration 0004): any insert, update or
delete of a job gives its project's version a fresh random value in the same
transaction, and so does renaming a user, whose name job lists show. Nothing
in Python has to remember to do it, so bulk writes, cascades and other
processes count too. The values are random rather than counted up, so that a
restored backup cannot bring a project back to a version an API process has
already seen.

A reader that reads the version and then a page of the project's jobs knows
that the page stays true for as long as the version reads the same. The API's
answer cache (:mod:`qfjobs.api.answer_cache`) is built on that. A project
whose jobs were never written has no row: its version reads 0.
"""

import uuid

from sqlalchemy import BigInteger, ForeignKey, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from qfjobs.db import Base


class JobVersion(Base):
    __tablename__ = "job_versions"

    project_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(BigInteger, default=0)
