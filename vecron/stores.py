"""Opening the stores a command needs, from the settings, with one owner for clean-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from vecron.backends.database import Database, open_database
from vecron.backends.objectstore import ObjectStore, open_object_store
from vecron.crypto import SecretBox
from vecron.settings import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Stores:
    """The database and the object store of one running vecron."""

    settings: Settings
    database: Database
    objects: ObjectStore
    secret_box: SecretBox


@asynccontextmanager
async def open_stores(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Stores]:
    """Open (and, by default, migrate) the database and the object store.

    In embedded mode the folder ``settings.home`` is created first. Both stores are
    closed on the way out, whatever happens inside.
    """
    if settings.embedded or not (settings.database_url and settings.object_store_url):
        settings.home.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        secret_box = SecretBox.from_settings(settings)
        database = open_database(settings.effective_database_url, secret_box=secret_box)
        stack.push_async_callback(database.close)
        if migrate:
            await database.migrate()
        objects = open_object_store(settings.effective_object_store_url)
        stack.push_async_callback(objects.close)
        yield Stores(settings=settings, database=database, objects=objects, secret_box=secret_box)
