"""Projects and the files stored in them."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qfjobs.db import Base
from qfjobs.models.timestamps import UTCDateTime, utcnow
from qfjobs.models.user import User

#: Providers of vector layers whose data is not a project file.
ONLINE_VECTOR_PROVIDERS = frozenset(
    {"postgres", "wfs", "oapif", "arcgisfeatureserver", "mssql", "oracle", "hana"}
)


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Path of the one QGIS project file inside the project, if uploaded.
    project_filename: Mapped[str | None] = mapped_column(String(1024))
    #: Result of the last successful process_projectfile job.
    project_details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    overwrite_conflicts: Mapped[bool] = mapped_column(Boolean, default=True)
    data_last_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data_last_packaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_package_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )
    #: Bumped by every writer that must serialise with others on this project
    #: (job creation, dispatch): the UPDATE takes the row lock.
    lock_version: Mapped[int] = mapped_column(Integer, default=0)

    owner: Mapped[User] = relationship()
    files: Mapped[list["ProjectFile"]] = relationship(
        back_populates="project", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def has_online_vector_data(self) -> bool:
        """Whether a vector layer reads a database or web service (from
        ``project_details``): its data can change without any upload."""
        layers = (self.project_details or {}).get("layers_by_id") or {}
        return any(
            layer.get("type") == 0
            and (layer.get("provider") or "") in ONLINE_VECTOR_PROVIDERS
            for layer in layers.values()
            if isinstance(layer, dict)
        )

    @property
    def needs_repackaging(self) -> bool:
        """False only when the latest package is at least as new as the files
        and no vector data lives online (reference section 3.9)."""
        if self.has_online_vector_data or self.last_package_job_id is None:
            return True
        if self.data_last_updated_at is None or self.data_last_packaged_at is None:
            return True
        return self.data_last_packaged_at < self.data_last_updated_at


class ProjectFile(Base):
    __tablename__ = "project_files"
    __table_args__ = (UniqueConstraint("project_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    #: Path inside the project, ``/``-separated, validated on upload.
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    #: S3-style multipart etag, as the QFieldCloud client computes it.
    etag: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    last_modified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    project: Mapped[Project] = relationship(back_populates="files")
