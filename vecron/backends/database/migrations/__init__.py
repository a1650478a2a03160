"""Schema migrations (Alembic), run in code: no ``alembic.ini`` is needed.

:meth:`SqlDatabase.migrate <vecron.backends.database.sql.SqlDatabase.migrate>` calls
:func:`upgrade` inside its own transaction (under a PostgreSQL advisory lock), so that
two processes starting at once migrate one after the other.

A developer adds a revision with Alembic's command API::

    from alembic import command
    from vecron.backends.database.migrations import alembic_config
    command.revision(alembic_config("sqlite:///scratch.db"), message="…", autogenerate=True)

then edits it so that it works on PostgreSQL and SQLite (``op.batch_alter_table``).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic configuration for this folder, for ``url`` or an open ``connection``.

    With a ``connection`` (already in a transaction), ``env.py`` migrates on it and
    leaves the commit to the caller.
    """
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    if url is not None:
        # ConfigParser interpolation: a literal % must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade the database behind ``connection`` to ``revision``, in its transaction."""
    command.upgrade(alembic_config(connection=connection), revision)


def current(connection: Connection) -> str | None:
    """The revision the database is at, or ``None`` before the first migration."""
    from alembic.runtime.migration import MigrationContext

    from vecron.backends.database.tables import VERSION_TABLE

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()
