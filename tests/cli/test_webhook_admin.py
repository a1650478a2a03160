"""`vecron webhook url|rotate` as a user runs them: real processes on an embedded home,
and a real server that answers the old and the new address."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.cli.test_vars import vecron
from tests.webhook.serving import served
from vecron.backends.queue import MemoryQueue
from vecron.runtime.metrics import Metrics
from vecron.settings import Settings
from vecron.stores import open_stores
from vecron.webhook.app import create_app
from vecron.webhook.signing import sign

JOBS = {
    "generated.yaml": """\
name: generated
allow_concurrent: true
triggers: {webhook: {}}
steps: [{id: s, type: http, config: {url: "https://example.invalid/"}}]
""",
    "named.yaml": """\
name: named
triggers: {webhook: {secret: "${secret:HOOK}"}}
steps: [{id: s, type: http, config: {url: "https://example.invalid/"}}]
""",
    "plain.yaml": """\
name: plain
steps: [{id: s, type: http, config: {url: "https://example.invalid/"}}]
""",
}


def synced(tmp_path: Path) -> Path:
    home, repo = tmp_path / "home", tmp_path / "repo"
    repo.mkdir()
    for name, text in JOBS.items():
        (repo / name).write_text(text)
    result = vecron(home, "sync", "--repo", str(repo))
    assert result.returncode == 0, result.stderr
    return home


def test_url_prints_the_address_and_on_request_the_generated_secret(tmp_path: Path) -> None:
    home = synced(tmp_path)
    result = vecron(home, "webhook", "url", "generated", "--show-secret")
    assert result.returncode == 0, result.stderr
    url, secret = result.stdout.splitlines()
    assert url.startswith("http://127.0.0.1:8080/webhooks/")
    assert len(url.rsplit("/", 1)[1]) >= 32
    assert len(secret) >= 32
    public = vecron(home, "webhook", "url", "generated", VECRON_PUBLIC_URL="https://hooks.example/")
    assert public.stdout.strip() == f"https://hooks.example/webhooks/{url.rsplit('/', 1)[1]}"
    named = vecron(home, "webhook", "url", "named", "--show-secret")
    assert named.returncode == 0
    assert len(named.stdout.splitlines()) == 1
    assert "${secret:HOOK}" in named.stderr


def test_url_of_a_job_without_a_webhook_or_of_no_job_fails(tmp_path: Path) -> None:
    home = synced(tmp_path)
    plain = vecron(home, "webhook", "url", "plain")
    assert plain.returncode == 2
    assert "no webhook trigger" in plain.stderr
    missing = vecron(home, "webhook", "url", "nope")
    assert missing.returncode == 1
    assert "nope" in missing.stderr


async def test_rotate_gives_a_new_address_and_secret_and_the_old_one_is_404(
    tmp_path: Path,
) -> None:
    home = synced(tmp_path)
    before = vecron(home, "webhook", "url", "generated", "--show-secret").stdout.splitlines()
    async with open_stores(Settings(home=home)) as stores:
        queue = MemoryQueue()
        app = create_app(stores=stores, queue=queue, metrics=Metrics())
        async with served(app) as base, httpx.AsyncClient() as client:

            async def post(url: str, secret: str) -> int:
                path = url.split("/webhooks/", 1)[1]
                headers = {"Content-Type": "application/json", **sign(secret, b"{}")}
                response = await client.post(
                    f"{base}/webhooks/{path}", content=b"{}", headers=headers
                )
                return response.status_code

            assert await post(*before) == 202
            rotated = vecron(home, "webhook", "rotate", "generated")
            assert rotated.returncode == 0, rotated.stderr
            assert "new secret" in rotated.stderr
            after = vecron(home, "webhook", "url", "generated", "--show-secret").stdout.splitlines()
            assert after[0] == rotated.stdout.strip()
            assert after[0] != before[0]
            assert after[1] != before[1]
            assert await post(*before) == 404
            assert await post(after[0], before[1]) == 401  # the old secret no longer signs
            assert await post(*after) == 202
        await queue.close()
    # A sync keeps the rotated id and secret.
    resynced = vecron(home, "sync", "--repo", str(tmp_path / "repo"))
    assert resynced.returncode == 0, resynced.stderr
    assert vecron(home, "webhook", "url", "generated", "--show-secret").stdout.splitlines() == after


def test_rotate_keeps_a_secret_the_file_names(tmp_path: Path) -> None:
    home = synced(tmp_path)
    before = vecron(home, "webhook", "url", "named").stdout.strip()
    rotated = vecron(home, "webhook", "rotate", "named")
    assert rotated.returncode == 0, rotated.stderr
    assert "the secret is the file's" in rotated.stderr
    assert rotated.stdout.strip() != before
