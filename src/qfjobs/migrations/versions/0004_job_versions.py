"""job versions per project, renewed by triggers on every job write

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 21:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A version is a fresh random number, not a counter: a restored backup winds
# counters back, and the next writes would bring them to numbers an API
# process has already seen (and kept answers for).
#
# SQLite runs one writer at a time, so renewing a shared row cannot deadlock.
# A job deleted by its project's cascade only renews a row that is going too,
# which is why deletes update and never insert.
SQLITE_NEW = "(random() & 4611686018427387903)"
PG_NEW = "floor(random() * 4611686018427387903)::bigint"
SQLITE_TRIGGERS = (
    f"""
    CREATE TRIGGER job_versions_on_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_versions (project_id, version)
        VALUES (NEW.project_id, {SQLITE_NEW})
        ON CONFLICT (project_id) DO UPDATE SET version = {SQLITE_NEW};
    END
    """,
    f"""
    CREATE TRIGGER job_versions_on_update AFTER UPDATE ON jobs BEGIN
        INSERT INTO job_versions (project_id, version)
        VALUES (NEW.project_id, {SQLITE_NEW})
        ON CONFLICT (project_id) DO UPDATE SET version = {SQLITE_NEW};
        UPDATE job_versions SET version = {SQLITE_NEW}
        WHERE project_id = OLD.project_id
          AND OLD.project_id IS NOT NEW.project_id;
    END
    """,
    f"""
    CREATE TRIGGER job_versions_on_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_versions SET version = {SQLITE_NEW}
        WHERE project_id = OLD.project_id;
    END
    """,
    f"""
    CREATE TRIGGER job_versions_on_rename AFTER UPDATE OF username ON users
    WHEN OLD.username IS NOT NEW.username
    BEGIN
        UPDATE job_versions SET version = {SQLITE_NEW}
        WHERE project_id IN (SELECT project_id FROM jobs WHERE created_by_id = NEW.id);
    END
    """,
)

# On PostgreSQL the triggers are deferred to the commit. A transaction then
# takes its version-row locks last, after every other lock it holds, so a
# wait on a version row can never be part of a cycle with job rows or
# anything else. Two transactions that each write the jobs of the same two
# projects, in opposite orders, can still deadlock on the version rows
# themselves; PostgreSQL then fails one of them. No qfjobs transaction writes
# jobs of two projects except a user's deletion (its jobs in other users'
# projects lose their creator), and renaming a user locks the rows it renews
# in project order.
POSTGRESQL_TRIGGERS = (
    f"""
    CREATE FUNCTION renew_job_version() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE'
           OR (TG_OP = 'UPDATE' AND OLD.project_id <> NEW.project_id) THEN
            UPDATE job_versions SET version = {PG_NEW}
            WHERE project_id = OLD.project_id;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            -- The project may have gone later in this same transaction.
            INSERT INTO job_versions (project_id, version)
            SELECT id, {PG_NEW} FROM projects WHERE id = NEW.project_id
            ON CONFLICT (project_id) DO UPDATE SET version = {PG_NEW};
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE CONSTRAINT TRIGGER job_versions_follow_jobs
    AFTER INSERT OR UPDATE OR DELETE ON jobs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION renew_job_version()
    """,
    f"""
    CREATE FUNCTION renew_job_versions_of_creator() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM job_versions
        WHERE project_id IN (SELECT project_id FROM jobs WHERE created_by_id = NEW.id)
        ORDER BY project_id FOR UPDATE;
        UPDATE job_versions SET version = {PG_NEW}
        WHERE project_id IN (SELECT project_id FROM jobs WHERE created_by_id = NEW.id);
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE CONSTRAINT TRIGGER job_versions_follow_usernames
    AFTER UPDATE OF username ON users
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (OLD.username IS DISTINCT FROM NEW.username)
    EXECUTE FUNCTION renew_job_versions_of_creator()
    """,
)


def upgrade() -> None:
    op.create_table(
        "job_versions",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_job_versions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_job_versions")),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.execute(
        "INSERT INTO job_versions (project_id, version)"
        f" SELECT project_id, {PG_NEW if postgresql else SQLITE_NEW}"
        " FROM (SELECT DISTINCT project_id FROM jobs) AS projects_with_jobs"
    )
    for statement in POSTGRESQL_TRIGGERS if postgresql else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER job_versions_follow_usernames ON users")
        op.execute("DROP TRIGGER job_versions_follow_jobs ON jobs")
        op.execute("DROP FUNCTION renew_job_versions_of_creator()")
        op.execute("DROP FUNCTION renew_job_version()")
    else:
        for name in ("rename", "delete", "update", "insert"):
            op.execute(f"DROP TRIGGER job_versions_on_{name}")
    op.drop_table("job_versions")
