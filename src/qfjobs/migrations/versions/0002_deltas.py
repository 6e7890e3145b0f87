"""deltas and deltafiles

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 15:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import qfjobs.models.timestamps

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> qfjobs.models.timestamps.UTCDateTime:
    return qfjobs.models.timestamps.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deltafiles",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("delta_count", sa.Integer(), nullable=False),
        sa.Column("stored_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_deltafiles_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_deltafiles_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_deltafiles")),
    )
    with op.batch_alter_table("deltafiles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deltafiles_project_id_id", ["project_id", "id"], unique=False
        )

    op.create_table(
        "deltas",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("deltafile_seq", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("layer_id", sa.String(length=255), nullable=False),
        sa.Column("local_pk", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("last_status", sa.String(length=16), nullable=False),
        sa.Column("last_feedback", sa.JSON(), nullable=True),
        sa.Column("last_modified_pk", sa.Text(), nullable=True),
        sa.Column("last_apply_attempt_at", _utc(), nullable=True),
        sa.Column("last_apply_attempt_by_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_deltas_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["deltafile_seq"],
            ["deltafiles.seq"],
            name=op.f("fk_deltas_deltafile_seq_deltafiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_deltas_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["last_apply_attempt_by_id"],
            ["users.id"],
            name=op.f("fk_deltas_last_apply_attempt_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_deltas_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deltas")),
    )
    with op.batch_alter_table("deltas", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deltas_client_key", ["project_id", "layer_id", "client_id"]
        )
        batch_op.create_index("ix_deltas_job_id", ["job_id"])
        batch_op.create_index("ix_deltas_project_status", ["project_id", "last_status"])


def downgrade() -> None:
    with op.batch_alter_table("deltas", schema=None) as batch_op:
        batch_op.drop_index("ix_deltas_project_status")
        batch_op.drop_index("ix_deltas_job_id")
        batch_op.drop_index("ix_deltas_client_key")

    op.drop_table("deltas")
    with op.batch_alter_table("deltafiles", schema=None) as batch_op:
        batch_op.drop_index("ix_deltafiles_project_id_id")

    op.drop_table("deltafiles")
