"""Commands on API tokens: ``token create``, ``token list``, ``token revoke``.

``create`` prints the token once, alone on stdout (``export VECRON_TOKEN=$(vecron
token create ci --role operator)`` works); the database keeps only its SHA-256. There
is no way to show a token again: a lost one is revoked and replaced. A revoked token
stops working on a running server within a second (its lookup cache).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime
from typing import Any

from vecron.cli.output import print_table, when
from vecron.errors import AlreadyExists, UsageError, VecronError
from vecron.settings import Settings
from vecron.webhook.tokens import ROLE_PERMISSIONS, Role

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


def register(commands: Any) -> None:
    tokens = commands.add_parser(
        "token",
        help="API tokens: create, list, revoke",
        description="Bearer tokens for the API under /api/v1. Roles: "
        + "; ".join(
            f"{role.value}: {', '.join(sorted(p.value for p in ROLE_PERMISSIONS[role]))}"
            for role in Role
        )
        + ".",
    )
    actions = tokens.add_subparsers(dest="token_command", metavar="COMMAND")
    actions.required = True

    create = actions.add_parser(
        "create",
        help="make a token and print it once",
        description="Make a token and print it, alone, on stdout: it is shown once, and "
        "vecron keeps only its hash.",
    )
    create.add_argument("name", metavar="NAME")
    create.add_argument(
        "--role", required=True, choices=[role.value for role in Role], help="what it may do"
    )
    create.set_defaults(handler=_create)

    list_ = actions.add_parser("list", help="list the tokens (never the tokens themselves)")
    list_.add_argument("--format", choices=("text", "json"), default="text")
    list_.set_defaults(handler=_list)

    revoke = actions.add_parser("revoke", help="delete a token; it stops working at once")
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(handler=_revoke)


def _create(args: argparse.Namespace) -> int:
    from vecron.backends.database import TokenRecord
    from vecron.stores import open_stores
    from vecron.webhook.tokens import hash_token, new_token

    name = _checked_name(args.name)
    role = Role(args.role)
    token = new_token()
    settings = Settings.from_env()

    async def run() -> None:
        async with open_stores(settings) as stores:
            record = TokenRecord(name=name, role=role.value, token_hash=hash_token(token))
            try:
                await stores.database.create_token(record)
            except AlreadyExists:
                raise VecronError(
                    f"a token named {name!r} exists; revoke it first or choose another name"
                ) from None

    asyncio.run(run())
    print(token, flush=True)
    permissions = ", ".join(sorted(p.value for p in ROLE_PERMISSIONS[role]))
    print(
        f"created token {name!r} (role {role.value}: {permissions}). It is shown once: "
        "vecron keeps only its hash. Use it as\n"
        '  curl -H "Authorization: Bearer $VECRON_TOKEN" http://127.0.0.1:8080/api/v1/jobs',
        file=sys.stderr,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from vecron.stores import open_stores

    settings = Settings.from_env()

    async def run() -> Any:
        async with open_stores(settings) as stores:
            return await stores.database.list_tokens()

    records = asyncio.run(run())
    rows = [
        {
            "name": r.name,
            "role": r.role,
            "created_at": _iso(r.created_at),
            "last_used_at": _iso(r.last_used_at),
        }
        for r in records
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("no tokens (create one with `vecron token create NAME --role viewer`)")
        return 0
    table = [("NAME", "ROLE", "CREATED (UTC)", "LAST USED (UTC)")]
    for r in records:
        table.append((r.name, r.role, when(r.created_at), when(r.last_used_at)))
    print_table(table)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from vecron.stores import open_stores

    name = _checked_name(args.name)
    settings = Settings.from_env()

    async def run() -> bool:
        async with open_stores(settings) as stores:
            return await stores.database.delete_token(name)

    if not asyncio.run(run()):
        raise VecronError(f"no token named {name!r}")
    print(f"revoked {name} (running servers refuse it within a second)")
    return 0


def _checked_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"invalid token name {name!r}: use letters, digits, '.', '_' and '-', starting "
            "with a letter or digit, at most 64 characters"
        )
    return name


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()
