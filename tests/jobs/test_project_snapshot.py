"""A job's copy of the project when a file is replaced while it is taken."""

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from qfjobs.extensions import get_db, get_storage
from qfjobs.models import Job, Project
from qfjobs.storage import ProjectStorage
from qfjobs.tasks.base import JobContext
from qfjobs.tasks.feedback import Feedback, Workflow
from tests.helpers import MINIMAL_QGS, new_project, upload


class UploadingFirst(ProjectStorage):
    """Real storage; before its first snapshot, the user replaces a file."""

    def __init__(self, root: Path, replace: Callable[[], None]) -> None:
        super().__init__(root)
        self.replace = replace
        self.snapshots = 0

    def materialize(self, *args: Any, **kwargs: Any) -> None:
        self.snapshots += 1
        if self.snapshots == 1:
            self.replace()
        super().materialize(*args, **kwargs)


def test_a_file_replaced_during_the_copy_is_copied_as_it_is_now(
    app: Flask, client: FlaskClient, make_user, tmp_path: Path
) -> None:
    alice = make_user("alice")
    pid = new_project(client, alice)
    upload(client, alice, pid, "points.csv", b"x,y\n1,2\n")
    upload(client, alice, pid, "project.qgs", MINIMAL_QGS)

    def replace() -> None:
        response = upload(client, alice, pid, "points.csv", b"x,y\n3,4\n")
        assert response.status_code == 201

    # The job's session is its own, as in a worker: the upload's session
    # cannot clear the rows it has read.
    with app.app_context(), get_db().new_session() as session:
        job = session.scalars(select(Job).where(Job.project_id == uuid.UUID(pid))).one()
        project = session.get(Project, uuid.UUID(pid))
        assert project is not None
        storage = UploadingFirst(get_storage().root, replace)
        ctx = JobContext(
            job=job,
            project=project,
            session=session,
            storage=storage,
            workdir=tmp_path / "work",
            feedback=Feedback(Workflow(job.type, job.type, ())),
            config=dict(app.config),
        )
        rows = ctx.download_project()

    assert storage.snapshots == 2
    assert (ctx.files_dir / "points.csv").read_bytes() == b"x,y\n3,4\n"
    assert sorted(row.path for row in rows) == ["points.csv", "project.qgs"]
