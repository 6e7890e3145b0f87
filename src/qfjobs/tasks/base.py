"""What every job type's task is given, and what it gives back."""

import logging
import shutil
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

logger = logging.getLogger(__name__)

#: Snapshots of a project's files tried before a job gives up on copying it.
SNAPSHOT_ATTEMPTS = 5

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
                select(ProjectFile)
                .where(ProjectFile.project_id == self.project.id)
                # Rows read before hold what they held then: read them afresh.
                .execution_options(populate_existing=True)
            ).all()
        )
        # Tasks run for long; a transaction left open would hold SQLite's
        # write lock (or a PostgreSQL snapshot) for all that time.
        self.session.commit()
        return rows

    def download_project(self, *, writable: bool = False) -> list[ProjectFile]:
        """Lay the project's current files out in ``files_dir``.

        An upload may replace a file, and remove the blob it replaced, between
        the reading of the file list and the linking of its blobs. The
        snapshot is then taken again from a fresh list: blobs are removed only
        after the list stopped naming them.
        """
        attempt = 1
        while True:
            rows = self.project_files()
            try:
                self.storage.materialize(
                    self.project.id,
                    [(row.path, row.sha256) for row in rows],
                    self.files_dir,
                    writable=writable,
                )
                return rows
            except FileNotFoundError:
                if attempt == SNAPSHOT_ATTEMPTS:
                    raise
            logger.info(
                "%s: a file was replaced while the project was copied; copying again",
                self.job_id,
            )
            shutil.rmtree(self.files_dir, ignore_errors=True)
            attempt += 1


class Task(Protocol):
    workflow: Workflow

    def __call__(self, ctx: JobContext) -> None: ...
