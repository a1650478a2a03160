"""Alembic's environment for vecron: run by Alembic, never imported.

Online, it migrates on the connection that :func:`vecron.backends.database.migrations.upgrade`
hands over (``config.attributes["connection"]``), inside the caller's transaction; with a
URL only, it opens the async engine itself and runs the migrations through
``connection.run_sync``. Offline (``--sql``), it prints the SQL.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from vecron.backends.database.tables import VERSION_TABLE, metadata

config = context.config


def _configure(**options: Any) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
        **options,
    )


def run_migrations_offline() -> None:
    _configure(
        url=config.get_main_option("sqlalchemy.url"),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    _configure(connection=connection)
    # On a connection already in a transaction this joins it: the caller commits.
    with context.begin_transaction():
        context.run_migrations()


def _run_with_own_engine(url: str) -> None:
    from vecron.backends.database.engine import create_database_engine

    engine = create_database_engine(url)
    try:
        with engine.begin() as connection:
            _run_on(connection)
    finally:
        engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or pass a connection to migrate")
    _run_with_own_engine(url)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
