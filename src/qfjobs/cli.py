"""The ``qfjobs`` command: schema, users, workers, delta statuses and the
development server."""

import logging
import sys
import time
import uuid

import click

from qfjobs.app import create_app
from qfjobs.errors import ObjectNotFoundError, QfjobsError, ValidationError
from qfjobs.extensions import get_db, get_queue, get_redis
from qfjobs.migrations import upgrade_database
from qfjobs.models import DeltaStatus, Project
from qfjobs.services import deltas, users
from qfjobs.services.deltas import SETTABLE_FROM as SETTABLE_DELTA_STATUSES
from qfjobs.services.reconcile import reconcile as reconcile_jobs
from qfjobs.tasks.joblog import configure_process_logging
from qfjobs.tasks.worker import build_worker

logger = logging.getLogger(__name__)


@click.group()
def main() -> None:
    """qfjobs: background jobs for QGIS field projects."""
    configure_process_logging()


@main.command("init-db")
def init_db() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    app = create_app()
    upgrade_database(app.config["QFJOBS_DATABASE_URL"])
    click.echo("database schema is up to date")


@main.command("create-user")
@click.argument("name")
@click.option("--password", required=True, help="The user's password.")
@click.option("--email", default="", help="The user's e-mail address.")
@click.option("--superuser", is_flag=True, help="May manage users and see /rq/.")
def create_user(name: str, password: str, email: str, superuser: bool) -> None:
    """Add a user; fails if the name is taken."""
    app = create_app()
    with app.app_context():
        try:
            users.create_user(get_db().session(), name, password, email, superuser)
        except QfjobsError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)
    click.echo(f"created user {name}" + (" (superuser)" if superuser else ""))


@main.command()
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@click.option("--name", default=None, help="Worker name shown in rq-dashboard.")
def worker(burst: bool, name: str | None) -> None:
    """Run an RQ worker on the job queue."""
    app = create_app()
    with app.app_context():
        build_worker(app, name=name).work(burst=burst, with_scheduler=False)


@main.command()
@click.option(
    "--every", type=int, default=0, help="Repeat every N seconds (0: run once)."
)
def reconcile(every: int) -> None:
    """Fix jobs whose worker died or whose queue entry was lost."""
    app = create_app()
    while True:
        with app.app_context(), get_db().new_session() as session:
            report = reconcile_jobs(
                session,
                get_redis(),
                get_queue(),
                heartbeat_ttl=app.config["QFJOBS_HEARTBEAT_TTL"],
            )
        click.echo(
            f"re-queued {len(report.requeued)}, run again {len(report.retried)}, "
            f"failed {len(report.failed)}, dispatched {len(report.dispatched)}"
        )
        if every <= 0:
            return
        time.sleep(every)


@main.command("set-delta-status")
@click.argument("project_id", type=click.UUID)
@click.argument("status", type=click.Choice([str(s) for s in SETTABLE_DELTA_STATUSES]))
@click.argument("delta_ids", nargs=-1, type=click.UUID)
@click.option(
    "--from-status",
    type=click.Choice([str(s) for s in DeltaStatus]),
    help="Take every delta of the project in this status (besides DELTA_IDS).",
)
def set_delta_status(
    project_id: uuid.UUID,
    status: str,
    delta_ids: tuple[uuid.UUID, ...],
    from_status: str | None,
) -> None:
    """Set deltas back to pending (the next delta_apply applies them) or ignored.

    The rules of POST deltas/status/<project_id>/: all or nothing, never an
    applied delta, never deltas an active delta_apply job holds.
    """
    app = create_app()
    with app.app_context(), get_db().new_session() as session:
        project = session.get(Project, project_id)
        try:
            if project is None:
                raise ObjectNotFoundError(f'No project with id "{project_id}"')
            ids = list(delta_ids)
            if from_status is not None:
                ids += deltas.ids_with_status(
                    session, project.id, DeltaStatus(from_status)
                )
            if not ids:
                raise ValidationError("No deltas named or found")
            change = deltas.set_status(session, project, ids, DeltaStatus(status))
        except QfjobsError as exc:
            click.echo(f"error: {exc.code}: {exc.message}", err=True)
            sys.exit(1)
    click.echo(
        f"{len(change.changed)} deltas set to {status},"
        f" {len(change.unchanged)} already were"
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def run(host: str, port: int) -> None:
    """Run the development server."""
    app = create_app()
    app.run(host=host, port=port, threaded=True)


if __name__ == "__main__":
    main()
