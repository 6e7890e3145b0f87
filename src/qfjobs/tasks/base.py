"""What every job type's task is given, and what it gives back."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from qfjobs.models import Job, Project, ProjectFile
from qfjobs.storage import ProjectStorage
from qfjobs.tasks.feedback import Feedback, Workflow

#: Applied to the project in the transaction that marks the job finished.
ProjectUpdate = Callable[[Session, Project], None]


@dataclass
class JobContext:
    job: Job
    project: Project
    session: Session
    storage: ProjectStorage
    workdir: Path
    feedback: Feedback
    config: dict[str, Any]
    on_success: list[ProjectUpdate] = field(default_factory=list)
    on_failure: list[ProjectUpdate] = field(default_factory=list)

    @property
    def job_id(self) -> uuid.UUID:
        return self.job.id

    @property
    def files_dir(self) -> Path:
        return self.workdir / "files"

    def project_files(self) -> list[ProjectFile]:
        rows = list(
            self.session.scalars(
                select(ProjectFile).where(ProjectFile.project_id == self.project.id)
            ).all()
        )
        # Tasks run for long; a transaction left open would hold SQLite's
        # write lock (or a PostgreSQL snapshot) for all that time.
        self.session.commit()
        return rows

    def download_project(self, *, writable: bool = False) -> list[ProjectFile]:
        """Lay the project's current files out in ``files_dir``."""
        rows = self.project_files()
        self.storage.materialize(
            self.project.id,
            [(row.path, row.sha256) for row in rows],
            self.files_dir,
            writable=writable,
        )
        return rows


class Task(Protocol):
    workflow: Workflow

    def __call__(self, ctx: JobContext) -> None: ...
