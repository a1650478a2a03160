"""The database role over SQLAlchemy 2: PostgreSQL via psycopg 3, SQLite via sqlite3.

:class:`SqlDatabase` is the :class:`~vecron.backends.database.base.Database`; its parts
live beside it: :mod:`.sqlcore` (engine, threads, transactions), :mod:`.sqljobs`
(jobs, variables, repository files, sync runs), :mod:`.sqlexecutions` (executions),
:mod:`.sqlschedules` (schedules) and :mod:`.sqltokens` (API tokens).
"""

from __future__ import annotations

from vecron.backends.database.sqlcore import MIGRATION_LOCK_KEY, SqlCore
from vecron.backends.database.sqljobs import JobTables
from vecron.backends.database.sqlschedules import ScheduleTables
from vecron.backends.database.sqltokens import TokenTables

__all__ = ["MIGRATION_LOCK_KEY", "SqlCore", "SqlDatabase"]


class SqlDatabase(JobTables, ScheduleTables, TokenTables):
    """The :class:`~vecron.backends.database.base.Database` over a SQLAlchemy ``Engine``.

    Give it a URL (it then owns the engine and disposes it on :meth:`close`) or a ready
    engine (left open). ``clock`` is the source of "now" for leases and timestamps,
    aware UTC; tests pass one they control.
    """
