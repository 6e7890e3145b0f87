"""Deltas: field edits pushed by QField, and the deltafile uploads they came in.

A :class:`Deltafile` row is one accepted upload that brought at least one new
delta (a re-push of known deltas stores nothing). A :class:`Delta` row is one
change; its ``id`` is the delta's ``uuid``, unique on the whole server, so the
same delta is never stored or applied twice. Deltas are applied in upload
order (``Deltafile.seq``), then by their position in the file.

``job_id`` is the ``delta_apply`` job that claimed the delta last. A pending
delta whose job is no longer active can be claimed again.
"""

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qfjobs.db import Base
from qfjobs.models.timestamps import UTCDateTime, utcnow
from qfjobs.models.user import User


class DeltaStatus(enum.StrEnum):
    PENDING = "pending"
    STARTED = "started"
    APPLIED = "applied"
    CONFLICT = "conflict"
    NOT_APPLIED = "not_applied"
    ERROR = "error"
    IGNORED = "ignored"
    UNPERMITTED = "unpermitted"


class Deltafile(Base):
    __tablename__ = "deltafiles"
    __table_args__ = (Index("ix_deltafiles_project_id_id", "project_id", "id"),)

    #: Upload order on the server.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The deltafile's own ``id`` (chosen by the client; not unique).
    id: Mapped[uuid.UUID] = mapped_column(Uuid)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE")
    )
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    #: Deltas in the file, and how many of them were new.
    delta_count: Mapped[int] = mapped_column(Integer)
    stored_count: Mapped[int] = mapped_column(Integer)

    created_by: Mapped[User | None] = relationship()


class Delta(Base):
    __tablename__ = "deltas"
    __table_args__ = (
        Index("ix_deltas_project_status", "project_id", "last_status"),
        Index("ix_deltas_job_id", "job_id"),
        Index("ix_deltas_client_key", "project_id", "layer_id", "client_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE")
    )
    deltafile_seq: Mapped[int] = mapped_column(
        ForeignKey("deltafiles.seq", ondelete="CASCADE")
    )
    #: Index of the delta in its deltafile.
    position: Mapped[int] = mapped_column(Integer)
    client_id: Mapped[str] = mapped_column(String(64))
    #: ``sourceLayerId``, or ``localLayerId`` when that is empty.
    layer_id: Mapped[str] = mapped_column(String(255))
    local_pk: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(16))
    #: The delta object as received (NUL characters removed).
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    last_status: Mapped[str] = mapped_column(String(16), default=DeltaStatus.PENDING)
    last_feedback: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Server key of the feature the last attempt created, changed or deleted.
    last_modified_pk: Mapped[str | None] = mapped_column(Text)
    last_apply_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_apply_attempt_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL")
    )
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    deltafile: Mapped[Deltafile] = relationship()
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
