"""job tallies per project and type, kept by triggers

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 18:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER jobs_counted_on_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_counts (project_id, type, jobs)
        VALUES (NEW.project_id, NEW.type, 1)
        ON CONFLICT (project_id, type) DO UPDATE SET jobs = jobs + 1;
    END
    """,
    """
    CREATE TRIGGER jobs_counted_on_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_counts SET jobs = jobs - 1
        WHERE project_id = OLD.project_id AND type = OLD.type;
    END
    """,
    """
    CREATE TRIGGER jobs_counted_on_move AFTER UPDATE OF project_id, type ON jobs
    WHEN OLD.project_id IS NOT NEW.project_id OR OLD.type IS NOT NEW.type
    BEGIN
        UPDATE job_counts SET jobs = jobs - 1
        WHERE project_id = OLD.project_id AND type = OLD.type;
        INSERT INTO job_counts (project_id, type, jobs)
        VALUES (NEW.project_id, NEW.type, 1)
        ON CONFLICT (project_id, type) DO UPDATE SET jobs = jobs + 1;
    END
    """,
)

POSTGRESQL_TRIGGERS = (
    """
    CREATE FUNCTION count_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            UPDATE job_counts SET jobs = jobs - 1
            WHERE project_id = OLD.project_id AND type = OLD.type;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO job_counts (project_id, type, jobs)
            VALUES (NEW.project_id, NEW.type, 1)
            ON CONFLICT (project_id, type)
            DO UPDATE SET jobs = job_counts.jobs + 1;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER jobs_counted AFTER INSERT OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION count_jobs()
    """,
    """
    CREATE TRIGGER jobs_counted_on_move AFTER UPDATE OF project_id, type ON jobs
    FOR EACH ROW
    WHEN (OLD.project_id IS DISTINCT FROM NEW.project_id
          OR OLD.type IS DISTINCT FROM NEW.type)
    EXECUTE FUNCTION count_jobs()
    """,
)


def upgrade() -> None:
    op.create_table(
        "job_counts",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_job_counts_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "type", name=op.f("pk_job_counts")),
    )
    op.execute(
        "INSERT INTO job_counts (project_id, type, jobs)"
        " SELECT project_id, type, count(*) FROM jobs GROUP BY project_id, type"
    )
    triggers = (
        POSTGRESQL_TRIGGERS
        if op.get_bind().dialect.name == "postgresql"
        else SQLITE_TRIGGERS
    )
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER jobs_counted_on_move ON jobs")
        op.execute("DROP TRIGGER jobs_counted ON jobs")
        op.execute("DROP FUNCTION count_jobs()")
    else:
        for name in ("move", "delete", "insert"):
            op.execute(f"DROP TRIGGER jobs_counted_on_{name}")
    op.drop_table("job_counts")
