"""`vecron token create|list|revoke` as a user runs them: real processes on an embedded
home, and the token they make working against a real server over that home."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.webhook.serving import served
from vecron.backends.queue import MemoryQueue
from vecron.runtime.metrics import Metrics
from vecron.settings import Settings
from vecron.stores import open_stores
from vecron.webhook.app import create_app
from vecron.webhook.tokens import hash_token, looks_like_token


def vecron(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECRON_")}
    return subprocess.run(
        [sys.executable, "-m", "vecron", *args],
        input="",
        capture_output=True,
        text=True,
        env={**env, "VECRON_HOME": str(home)},
        timeout=120,
        check=False,
    )


def stored_bytes(home: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(home.rglob("*")) if path.is_file())


def test_create_prints_the_token_alone_and_stores_only_its_hash(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = vecron(home, "token", "create", "ci", "--role", "operator")
    assert result.returncode == 0, result.stderr
    token = result.stdout.removesuffix("\n")
    assert result.stdout == token + "\n"
    assert looks_like_token(token)
    assert "shown once" in result.stderr
    assert "Authorization: Bearer" in result.stderr
    assert token not in result.stderr
    stored = stored_bytes(home)
    assert token.encode() not in stored
    assert token[4:].encode() not in stored

    second = vecron(home, "token", "create", "deploy", "--role", "admin")
    assert second.stdout != result.stdout

    listing = vecron(home, "token", "list", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    assert [(r["name"], r["role"]) for r in rows] == [("ci", "operator"), ("deploy", "admin")]
    assert set(rows[0]) == {"name", "role", "created_at", "last_used_at"}
    assert rows[0]["last_used_at"] is None
    text = vecron(home, "token", "list").stdout
    assert text.splitlines()[0].split() == [
        "NAME",
        "ROLE",
        "CREATED",
        "(UTC)",
        "LAST",
        "USED",
        "(UTC)",
    ]
    for shown in (listing.stdout, text):
        assert token not in shown
        assert hash_token(token) not in shown


def test_refusals_and_exit_codes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert vecron(home, "token", "list").stdout.startswith("no tokens")
    assert vecron(home, "token", "create", "ci", "--role", "viewer").returncode == 0

    taken = vecron(home, "token", "create", "ci", "--role", "admin")
    assert taken.returncode == 1
    assert taken.stdout == ""
    assert "exists" in taken.stderr

    for bad in (["bad name"], ["-x"], ["é"], ["a" * 65], [".hidden"]):
        result = vecron(home, "token", "create", *bad, "--role", "viewer")
        assert result.returncode == 2, (bad, result.stderr)
        assert result.stdout == ""
    assert vecron(home, "token", "create", "x", "--role", "root").returncode == 2
    assert vecron(home, "token", "create", "x").returncode == 2  # --role is required

    missing = vecron(home, "token", "revoke", "ghost")
    assert missing.returncode == 1
    assert "no token named 'ghost'" in missing.stderr
    revoked = vecron(home, "token", "revoke", "ci")
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith("revoked ci")
    assert json.loads(vecron(home, "token", "list", "--format", "json").stdout) == []


async def test_a_created_token_works_against_the_server_until_revoked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    token = vecron(home, "token", "create", "ci", "--role", "viewer").stdout.strip()
    queue = MemoryQueue()
    async with open_stores(Settings(home=home)) as stores:
        app = create_app(stores=stores, queue=queue, metrics=Metrics())
        async with served(app) as url, httpx.AsyncClient() as client:
            headers = {"Authorization": f"Bearer {token}"}
            response = await client.get(f"{url}/api/v1/jobs", headers=headers)
            assert response.status_code == 200, response.text
            assert response.json() == {"jobs": []}
            forbidden = await client.post(f"{url}/api/v1/sync", headers=headers)
            assert forbidden.status_code == 403
            listing = vecron(home, "token", "list", "--format", "json")
            assert json.loads(listing.stdout)[0]["last_used_at"] is not None
            assert vecron(home, "token", "revoke", "ci").returncode == 0
            for _ in range(40):  # within the second of the server's lookup cache
                response = await client.get(f"{url}/api/v1/jobs", headers=headers)
                if response.status_code == 401:
                    break
                await asyncio.sleep(0.05)
            assert response.status_code == 401
    await queue.close()
