"""The initial schema: jobs, job_executions, variables, sync_runs, repo_files.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Uuid[str]:
    return sa.Uuid(as_uuid=False)


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", _id(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text()),
        sa.Column("minio_definition_path", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(128)),
        sa.Column("definition_version", sa.Integer(), nullable=False),
        sa.Column("source_path", sa.Text()),
        sa.Column("source_commit", sa.String(64)),
        sa.Column("schedule_type", sa.String(32)),
        sa.Column("schedule_expression", sa.Text()),
        sa.Column("timezone", sa.String(64)),
        sa.Column("next_run_at", _when()),
        sa.Column("webhook_id", sa.String(128)),
        sa.Column("webhook_secret", sa.Text()),
        sa.Column("webhook_enabled", sa.Boolean(), nullable=False),
        sa.Column("webhook_rate_limit", sa.Integer()),
        sa.Column("concurrent_execution_allowed", sa.Boolean(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
        sa.Column("last_sync_id", _id()),
        sa.PrimaryKeyConstraint("job_id", name="pk_jobs"),
        sa.UniqueConstraint("name", name="uq_jobs_name"),
        sa.UniqueConstraint("webhook_id", name="uq_jobs_webhook_id"),
    )
    op.create_table(
        "job_executions",
        sa.Column("execution_id", _id(), nullable=False),
        sa.Column("job_id", _id(), nullable=False),
        sa.Column("job_name", sa.String(255), nullable=False),
        sa.Column("definition_hash", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("trigger_source", sa.String(32), nullable=False),
        sa.Column("trigger_data", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("scheduled_at", _when()),
        sa.Column("queued_at", _when(), nullable=False),
        sa.Column("started_at", _when()),
        sa.Column("finished_at", _when()),
        sa.Column("leased_until", _when()),
        sa.Column("worker_id", sa.String(255)),
        sa.Column("error", sa.Text()),
        sa.Column("minio_context_path", sa.Text()),
        sa.Column("step_statuses", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("execution_id", name="pk_job_executions"),
        sa.UniqueConstraint(
            "job_id", "idempotency_key", name="uq_job_executions_job_id_idempotency_key"
        ),
    )
    op.create_index("ix_job_executions_job_id_queued_at", "job_executions", ["job_id", "queued_at"])
    op.create_index(
        "ix_job_executions_job_name_queued_at", "job_executions", ["job_name", "queued_at"]
    )
    op.create_index("ix_job_executions_status", "job_executions", ["status"])
    op.create_index("ix_job_executions_queued_at", "job_executions", ["queued_at"])
    op.create_table(
        "variables",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("secret", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_variables"),
    )
    op.create_table(
        "sync_runs",
        sa.Column("sync_id", _id(), nullable=False),
        sa.Column("started_at", _when(), nullable=False),
        sa.Column("finished_at", _when()),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("ref", sa.String(255)),
        sa.Column("commit", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("disabled", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("invalid", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text()),
        sa.PrimaryKeyConstraint("sync_id", name="pk_sync_runs"),
    )
    op.create_index("ix_sync_runs_started_at", "sync_runs", ["started_at"])
    op.create_table(
        "repo_files",
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("content_hash", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("path", name="pk_repo_files"),
    )


def downgrade() -> None:
    op.drop_table("repo_files")
    op.drop_index("ix_sync_runs_started_at", table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_table("variables")
    for index in ("queued_at", "status", "job_name_queued_at", "job_id_queued_at"):
        op.drop_index(f"ix_job_executions_{index}", table_name="job_executions")
    op.drop_table("job_executions")
    op.drop_table("jobs")
