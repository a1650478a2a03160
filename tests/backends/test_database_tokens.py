"""The database conformance suite, API tokens: stored by hash, unique by name and hash."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.backends.db_fixtures import Harness, database_template, db
from vecron.backends.database import SqlDatabase, TokenRecord
from vecron.errors import AlreadyExists
from vecron.webhook.tokens import hash_token, new_token

__all__ = ["database_template", "db"]  # fixtures, imported for pytest


def token(name: str = "ci", role: str = "operator") -> tuple[str, TokenRecord]:
    secret = new_token()
    return secret, TokenRecord(name=name, role=role, token_hash=hash_token(secret))


def test_a_token_is_found_by_the_hash_of_its_secret_only(db: Harness) -> None:
    secret, record = token()

    async def body(store: SqlDatabase) -> None:
        await store.create_token(record)
        found = await store.token_by_hash(hash_token(secret))
        assert found is not None
        assert (found.name, found.role, found.token_id) == ("ci", "operator", record.token_id)
        assert await store.token_by_hash(hash_token(new_token())) is None
        assert await store.token_by_hash(secret) is None  # the secret itself is no key

    db.run(body)
    stored = db.raw("SELECT name, token_hash FROM api_tokens")
    assert stored == [("ci", hash_token(secret))]
    assert secret not in repr(stored)


def test_a_taken_name_is_refused_and_nothing_changes(db: Harness) -> None:
    _, first = token("deploy", "admin")
    _, second = token("deploy", "viewer")

    async def body(store: SqlDatabase) -> list[TokenRecord]:
        await store.create_token(first)
        with pytest.raises(AlreadyExists, match="deploy"):
            await store.create_token(second)
        return await store.list_tokens()

    tokens = db.run(body)
    assert [(t.name, t.role) for t in tokens] == [("deploy", "admin")]


def test_tokens_list_by_name_delete_and_record_their_last_use(db: Harness) -> None:
    records = [token(name)[1] for name in ("zeta", "alpha", "mid")]
    used = datetime(2026, 11, 29, 1, 2, 3, 456789, tzinfo=UTC)

    async def body(store: SqlDatabase) -> tuple[list[str], TokenRecord | None, bool, bool]:
        for record in records:
            await store.create_token(record)
        await store.touch_token(records[0].token_id, used)
        names = [t.name for t in await store.list_tokens()]
        touched = await store.token_by_hash(records[0].token_hash)
        return names, touched, await store.delete_token("mid"), await store.delete_token("mid")

    names, touched, first, again = db.run(body)
    assert names == ["alpha", "mid", "zeta"]
    assert touched is not None
    assert touched.last_used_at == used
    assert (first, again) == (True, False)
    assert [row[0] for row in db.raw("SELECT name FROM api_tokens ORDER BY name")] == [
        "alpha",
        "zeta",
    ]
