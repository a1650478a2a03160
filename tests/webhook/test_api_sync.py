"""``POST /api/v1/sync`` against a real server on both backends: with a token, with a
GitHub-signed push webhook, its refusals, and one sync at a time."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.webhook.api_harness import JOBS, Api, api, open_api, refused, write_files
from vecron.reconciler.apply import SyncResult
from vecron.stores import Stores
from vecron.webhook import api_sync
from vecron.webhook.api_common import ApiError
from vecron.webhook.api_sync import SyncRunner

__all__ = ["api"]  # the fixture, imported for pytest

NEW_JOB = """\
name: added
steps:
  - {id: s, type: http, config: {url: "${API}/echo"}}
"""


def github_signature(secret: str, body: bytes) -> str:
    """As GitHub documents it ("Validating webhook deliveries")."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def test_a_token_with_job_write_syncs_now(api: Api) -> None:
    write_files(api.repo, {"added.yaml": NEW_JOB})
    response = await api.call("POST", "/sync", role="admin")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "ok"
    assert result["wrote"] is True
    assert result["sync_id"]
    assert result["counts"] == {
        "created": 1,
        "updated": 0,
        "deleted": 0,
        "disabled": 0,
        "unchanged": len(JOBS),
        "invalid": 0,
    }
    assert result["errors"] == []
    assert str(api.repo) in result["source"]
    assert (await api.stores.database.get_job("added")).enabled

    again = (await api.call("POST", "/sync", role="admin")).json()
    assert (again["wrote"], again["sync_id"], again["counts"]["created"]) == (False, None, 0)

    write_files(api.repo, {"broken.yaml": "name: broken\nsteps: 7\n"})
    degraded = (await api.call("POST", "/sync", role="admin")).json()
    assert degraded["status"] == "degraded"
    assert degraded["counts"]["invalid"] == 1
    assert degraded["errors"][0]["path"] == "jobs/broken.yaml"

    await refused(await api.call("POST", "/sync", role="operator"), 403, "forbidden")


async def test_a_push_webhook_signed_as_github_does_syncs(api: Api) -> None:
    # GitHub's own example: this secret and body give this signature.
    body = b"Hello, World!"
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature(api_sync_secret(api), body) == signature
    write_files(api.repo, {"added.yaml": NEW_JOB})
    response = await api.call(
        "POST", "/sync", role=None, content=body, headers={"X-Hub-Signature-256": signature}
    )
    assert response.status_code == 200, response.text
    assert response.json()["counts"]["created"] == 1

    push = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()
    signed = await api.call(
        "POST",
        "/sync",
        role=None,
        content=push,
        headers={
            "X-Hub-Signature-256": github_signature(api_sync_secret(api), push),
            "X-GitHub-Event": "push",
            "Content-Type": "application/json",
        },
    )
    assert signed.status_code == 200, signed.text


def api_sync_secret(api: Api) -> str:
    secret = api.stores.settings.sync_secret
    assert secret is not None
    return secret


async def test_a_bad_signature_is_refused_and_syncs_nothing(api: Api) -> None:
    write_files(api.repo, {"added.yaml": NEW_JOB})
    body = b'{"ref": "refs/heads/main"}'
    good = github_signature(api_sync_secret(api), body)
    for signature in (
        github_signature("wrong secret", body),
        good[:-1] + ("0" if good[-1] != "0" else "1"),
        "sha1=" + good[7:],
        "sha256=xyz",
        "",
    ):
        response = await api.call(
            "POST", "/sync", role=None, content=body, headers={"X-Hub-Signature-256": signature}
        )
        await refused(response, 401, "unauthorized")
        assert good not in response.text
    # The signature is over the body exactly as sent.
    tampered = await api.call(
        "POST", "/sync", role=None, content=body + b" ", headers={"X-Hub-Signature-256": good}
    )
    await refused(tampered, 401, "unauthorized")
    # A signature opens /sync only.
    for path in ("/jobs", "/executions"):
        other = await api.call("GET", path, role=None, headers={"X-Hub-Signature-256": good})
        await refused(other, 401, "unauthorized")
    big = b"x" * (1024 * 1024 + 1)
    too_big = await api.call(
        "POST",
        "/sync",
        role=None,
        content=big,
        headers={"X-Hub-Signature-256": github_signature(api_sync_secret(api), big)},
    )
    await refused(too_big, 413, "payload_too_large")
    with pytest.raises(LookupError):
        await api.stores.database.get_job("added")


async def test_without_a_sync_secret_signed_syncs_are_refused(
    stores: Stores, tmp_path: Path
) -> None:
    async with open_api(stores, tmp_path / "repo", repo_configured=False) as api:
        body = b"{}"
        response = await api.call(
            "POST",
            "/sync",
            role=None,
            content=body,
            headers={"X-Hub-Signature-256": github_signature("", body)},
        )
        message = (await refused(response, 401, "unauthorized"))["message"]
        assert "VECRON_SYNC_SECRET" in message
        no_repo = await refused(await api.call("POST", "/sync"), 409, "no_repository")
        assert "VECRON_REPO" in no_repo["message"]


async def test_unsafe_or_unreadable_repositories_are_refused(api: Api) -> None:
    for name in JOBS:
        (api.repo / "jobs" / name).unlink()
    body = await refused(await api.call("POST", "/sync"), 409, "sync_refused")
    assert body["message"]
    assert len(await api.stores.database.list_jobs(include_disabled=False)) == 4
    shutil.rmtree(api.repo)
    await refused(await api.call("POST", "/sync"), 502, "source_error")


async def test_syncs_run_one_at_a_time(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    running = most = 0
    real = api_sync.sync_once

    async def counted(*args: Any) -> SyncResult:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.2)
            return await real(*args)
        finally:
            running -= 1

    monkeypatch.setattr(api_sync, "sync_once", counted)
    write_files(api.repo, {"added.yaml": NEW_JOB})
    responses = await asyncio.gather(*(api.call("POST", "/sync") for _ in range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert most == 1
    assert sorted(r.json()["counts"]["created"] for r in responses) == [0, 0, 1]


async def test_a_sync_that_waits_too_long_is_refused_with_retry_after(api: Api) -> None:
    runner = SyncRunner(api.app.state.vecron, wait_seconds=0.05)
    await runner.lock.acquire()
    try:
        with pytest.raises(ApiError) as refusal:
            await runner.sync()
    finally:
        runner.lock.release()
    assert (refusal.value.status, refusal.value.code) == (409, "sync_in_progress")
    assert refusal.value.headers == {"Retry-After": "1"}
    assert (await runner.sync())["status"] == "ok"
    assert not runner.lock.locked()
