"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-12-03 22:32:15.177810
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import qfjobs.models.timestamps

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("is_superuser", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            qfjobs.models.timestamps.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "auth_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            qfjobs.models.timestamps.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "expires_at",
            qfjobs.models.timestamps.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "last_used_at",
            qfjobs.models.timestamps.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_auth_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_tokens")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_auth_tokens_key_hash")),
    )
    with op.batch_alter_table("auth_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_auth_tokens_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "projects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("project_filename", sa.String(length=1024), nullable=True),
        sa.Column("project_details", sa.JSON(), nullable=True),
        sa.Column("overwrite_conflicts", sa.Boolean(), nullable=False),
        sa.Column(
            "data_last_updated_at",
            qfjobs.models.timestamps.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column(
            "data_last_packaged_at",
            qfjobs.models.timestamps.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("last_package_job_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            qfjobs.models.timestamps.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            qfjobs.models.timestamps.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column("lock_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_projects_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("owner_id", "name", name=op.f("uq_projects_owner_id")),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_projects_owner_id"), ["owner_id"], unique=False
        )

    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("force", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            qfjobs.models.timestamps.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            qfjobs.models.timestamps.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "queued_at",
            qfjobs.models.timestamps.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column(
            "started_at",
            qfjobs.models.timestamps.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column(
            "finished_at",
            qfjobs.models.timestamps.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("feedback", sa.JSON(), nullable=True),
        sa.Column("timeout", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker_name", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_jobs_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_jobs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_project_created",
            ["project_id", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_jobs_project_status", ["project_id", "status"], unique=False
        )

    op.create_table(
        "project_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "last_modified",
            qfjobs.models.timestamps.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_files_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_files")),
        sa.UniqueConstraint(
            "project_id", "path", name=op.f("uq_project_files_project_id")
        ),
    )
    with op.batch_alter_table("project_files", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_project_files_project_id"), ["project_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("project_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_files_project_id"))

    op.drop_table("project_files")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_project_status")
        batch_op.drop_index("ix_jobs_project_created")

    op.drop_table("jobs")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_projects_owner_id"))

    op.drop_table("projects")
    with op.batch_alter_table("auth_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_tokens_user_id"))

    op.drop_table("auth_tokens")
    op.drop_table("users")
