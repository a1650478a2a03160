"""The schema, as SQLAlchemy Core tables, portable between PostgreSQL and SQLite.

``migrations/versions`` must build exactly this schema: a test compares the migrated
database with :data:`metadata` and fails on any difference.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so that migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

VERSION_TABLE = "vecron_alembic_version"
"""Alembic's bookkeeping table; prefixed so that it cannot collide with an application's."""


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored in UTC, returned aware in UTC by every backend.

    SQLite has no time zones: SQLAlchemy would silently drop the offset and store wall
    time. Converting to UTC first keeps instants right and text comparisons ordered.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} (vecron stores aware UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def copy(self, **kw: Any) -> UtcDateTime:
        return UtcDateTime()


def _id(name: str, **kw: Any) -> Column[str]:
    return Column(name, Uuid(as_uuid=False), **kw)


jobs = Table(
    "jobs",
    metadata,
    _id("job_id", primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", Text),
    Column("minio_definition_path", Text, nullable=False),
    Column("content_hash", String(128)),
    Column("definition_version", Integer, nullable=False),
    Column("source_path", Text),
    Column("source_commit", String(64)),
    Column("schedule_type", String(32)),
    Column("schedule_expression", Text),
    Column("timezone", String(64)),
    Column("next_run_at", UtcDateTime),
    Column("webhook_id", String(128), unique=True),
    Column("webhook_secret", Text),
    Column("webhook_enabled", Boolean, nullable=False),
    Column("webhook_rate_limit", Integer),
    Column("concurrent_execution_allowed", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    _id("last_sync_id"),
    Index(None, "next_run_at"),  # the scheduler's due and next-due queries
)

# No foreign key to jobs: the history outlives the job (job_name keeps its name).
job_executions = Table(
    "job_executions",
    metadata,
    _id("execution_id", primary_key=True),
    _id("job_id", nullable=False),
    Column("job_name", String(255), nullable=False),
    Column("definition_hash", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    Column("trigger_source", String(32), nullable=False),
    Column("trigger_data", JSON, nullable=False),
    Column("idempotency_key", String(255)),
    Column("attempt", Integer, nullable=False),
    Column("scheduled_at", UtcDateTime),
    Column("queued_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Column("leased_until", UtcDateTime),
    Column("worker_id", String(255)),
    Column("error", Text),
    Column("minio_context_path", Text),
    Column("step_statuses", JSON, nullable=False),
    # NULL keys never conflict (both backends), so executions without a key are free.
    UniqueConstraint("job_id", "idempotency_key"),
    Index(None, "job_id", "queued_at"),
    Index(None, "job_name", "queued_at"),
    Index(None, "status"),
    Index(None, "queued_at"),
)

variables = Table(
    "variables",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Column("secret", Boolean, nullable=False),
    Column("source", String(16), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    _id("sync_id", primary_key=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("source", Text, nullable=False),
    Column("ref", String(255)),
    Column("commit", String(64)),
    Column("status", String(16), nullable=False),
    Column("created", Integer, nullable=False),
    Column("updated", Integer, nullable=False),
    Column("deleted", Integer, nullable=False),
    Column("disabled", Integer, nullable=False),
    Column("unchanged", Integer, nullable=False),
    Column("invalid", Integer, nullable=False),
    Column("errors", JSON, nullable=False),
    Column("message", Text),
    Index(None, "started_at"),
)

repo_files = Table(
    "repo_files",
    metadata,
    Column("path", String(1024), primary_key=True),
    Column("content_hash", String(128), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# API bearer tokens: only a SHA-256 of each token is kept (see vecron.webhook.tokens).
api_tokens = Table(
    "api_tokens",
    metadata,
    _id("token_id", primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime),
)
