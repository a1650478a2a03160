"""The database role: jobs, executions, variables, sync runs and synced repository files.

:func:`open_database` picks the implementation from the URL; PostgreSQL and SQLite are
both served by :class:`SqlDatabase`. The contract is :class:`Database` (``base.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from vecron.backends.database.base import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    MASK,
    SYNC_COUNTS,
    Database,
    ExecutionRecord,
    ExecutionStatus,
    FireResult,
    JobRecord,
    RepoFileRecord,
    ScheduledFire,
    SyncRecord,
    SyncStatus,
    TokenRecord,
    TriggerSource,
    VariableRecord,
    VariableSource,
    new_id,
    strip_credentials,
    utc_now,
)
from vecron.backends.database.engine import (
    create_database_engine,
    normalize_database_url,
    prepare_engine,
)
from vecron.backends.database.sql import SqlDatabase
from vecron.crypto import SecretBox
from vecron.errors import AlreadyExists

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "MASK",
    "SYNC_COUNTS",
    "AlreadyExists",
    "Database",
    "ExecutionRecord",
    "ExecutionStatus",
    "FireResult",
    "JobRecord",
    "RepoFileRecord",
    "ScheduledFire",
    "SqlDatabase",
    "SyncRecord",
    "SyncStatus",
    "TokenRecord",
    "TriggerSource",
    "VariableRecord",
    "VariableSource",
    "create_database_engine",
    "new_id",
    "normalize_database_url",
    "open_database",
    "prepare_engine",
    "strip_credentials",
    "utc_now",
]


def open_database(
    url: str, *, secret_box: SecretBox, clock: Callable[[], datetime] = utc_now
) -> Database:
    """The database at ``url`` (``postgresql://…`` or ``sqlite:///…``; plain and async
    driver forms both work). Nothing connects until the first call; call
    :meth:`Database.migrate` at start-up and :meth:`Database.close` at shut-down.
    ``clock`` (aware UTC "now") is for tests."""
    return SqlDatabase(url, secret_box=secret_box, clock=clock)
