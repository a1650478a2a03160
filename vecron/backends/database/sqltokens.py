"""The SQL store's API tokens: name, role and the SHA-256 of the secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError

from vecron.backends.database.base import TokenRecord
from vecron.backends.database.sqlcore import SqlCore, canonical_id, require_id, violated
from vecron.backends.database.tables import api_tokens
from vecron.errors import AlreadyExists


class TokenTables(SqlCore):
    """API tokens."""

    async def create_token(self, token: TokenRecord) -> None:
        values = {
            "token_id": require_id(token.token_id, "token_id"),
            "name": token.name,
            "role": token.role,
            "token_hash": token.token_hash,
            "created_at": token.created_at,
            "last_used_at": token.last_used_at,
        }
        try:
            await self._run(lambda connection: connection.execute(api_tokens.insert(), values))
        except IntegrityError as exc:
            if violated(exc, api_tokens, ["name"]):
                raise AlreadyExists("token", token.name) from None
            raise

    async def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        query = self._statement(
            "token by hash",
            lambda: select(api_tokens).where(api_tokens.c.token_hash == bindparam("token_hash")),
        )
        row = await self._run(
            lambda connection: connection.execute(query, {"token_hash": token_hash}).first(),
            write=False,
        )
        return None if row is None else _token(row)

    async def list_tokens(self) -> list[TokenRecord]:
        rows = await self._rows(select(api_tokens).order_by(api_tokens.c.name))
        return [_token(row) for row in rows]

    async def delete_token(self, name: str) -> bool:
        statement = delete(api_tokens).where(api_tokens.c.name == name)
        return await self._write_first(statement.returning(api_tokens.c.name)) is not None

    async def touch_token(self, token_id: str, when: datetime) -> None:
        canonical = canonical_id(token_id)
        if canonical is None:
            return
        statement = (
            update(api_tokens).where(api_tokens.c.token_id == canonical).values(last_used_at=when)
        )
        await self._run(lambda connection: connection.execute(statement))


def _token(row: Row[Any]) -> TokenRecord:
    return TokenRecord(**row._mapping)
