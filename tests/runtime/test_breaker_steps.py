"""Circuit breakers in the step executors, against real local servers.

Requests are counted at the HTTP target (tests/runtime/http_target.py), one fresh
server per test, so "fails fast" means "the server never saw it". The in-process
breaker runs on a clock that moves only when told to; Redis keeps its own time.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import TypeAdapter
from sqlalchemy.engine import make_url

from tests.runtime.http_target import HttpTarget, free_port, serve_http_target, serve_raw_tcp
from tests.runtime.sftp_fixtures import download, put_remote, remote, sshd
from tests.runtime.sftp_fixtures import step_run as sftp_step_run
from tests.runtime.steprun import make_step_run
from tests.services.sshd import SshServer
from tests.support import redis_key_prefix, require
from vecron.backends.breaker import (
    CircuitBreaker,
    MemoryCircuitBreaker,
    RedisCircuitBreaker,
    open_breaker,
)
from vecron.backends.breaker.redis import KEY_PREFIX
from vecron.errors import CircuitOpen, StepFailed
from vecron.runtime.metrics import Metrics
from vecron.runtime.steps import default_executors
from vecron.runtime.steps.base import StepRun
from vecron.runtime.steps.database import DatabaseStepExecutor, breaker_target
from vecron.runtime.steps.http import HttpStepExecutor
from vecron.runtime.steps.sftp import SftpStepExecutor
from vecron.spec.models import DatabaseConfig, HttpConfig, SftpConfig

REDIS_URL = os.environ.get("VECRON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
THRESHOLD = 3
COOLDOWN = 30.0
SFTP_CONFIG = TypeAdapter[Any](SftpConfig)

__all__ = ["remote", "sshd"]  # the fixtures, imported so that pytest finds them here


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> MemoryCircuitBreaker:
    return MemoryCircuitBreaker(failure_threshold=THRESHOLD, cooldown_seconds=COOLDOWN, clock=clock)


@pytest.fixture
async def executor(breaker: MemoryCircuitBreaker) -> AsyncIterator[HttpStepExecutor]:
    executor = HttpStepExecutor(breaker=breaker)
    yield executor
    await executor.close()


@pytest.fixture
def target() -> Iterator[HttpTarget]:
    with serve_http_target() as served:
        yield served


def step_run(root: Path, secrets: dict[str, str] | None = None) -> StepRun:
    return make_step_run(root, job_name="breaker-test", step_id="call", secrets=secrets)


def http(url: str, **config: Any) -> HttpConfig:
    return HttpConfig.model_validate({"url": url, **config})


async def fail_times(executor: HttpStepExecutor, url: str, root: Path, times: int) -> None:
    for _ in range(times):
        with pytest.raises(StepFailed) as caught:
            await executor.run(http(url), step_run(root))
        assert not isinstance(caught.value, CircuitOpen)


# --- http ----------------------------------------------------------------------------


async def test_consecutive_5xx_open_the_breaker_and_calls_fail_fast(
    executor: HttpStepExecutor, target: HttpTarget, tmp_path: Path
) -> None:
    await fail_times(executor, target.url("/status/503"), tmp_path, THRESHOLD)
    assert target.hits("/status/503") == THRESHOLD
    for _ in range(5):
        with pytest.raises(CircuitOpen) as caught:
            await executor.run(http(target.url("/echo")), step_run(tmp_path))
    assert target.hits("/echo") == 0  # no connection attempt reached the server
    message = str(caught.value)
    assert target.base_url in message  # http://127.0.0.1:PORT, the target
    assert f"{THRESHOLD} consecutive failures" in message
    assert f"{COOLDOWN:g} s cool-down" in message
    assert caught.value.target == target.base_url


async def test_after_the_cool_down_one_probe_goes_through_and_its_success_closes_it(
    executor: HttpStepExecutor,
    clock: FakeClock,
    breaker: MemoryCircuitBreaker,
    target: HttpTarget,
    tmp_path: Path,
) -> None:
    await fail_times(executor, target.url("/status/500"), tmp_path, THRESHOLD)
    clock.now += COOLDOWN
    results = await asyncio.gather(
        *(
            executor.run(http(target.url("/slow?seconds=0.3")), step_run(tmp_path))
            for _ in range(6)
        ),
        return_exceptions=True,
    )
    assert target.hits("/slow") == 1  # exactly one half-open probe
    assert sum(isinstance(r, dict) for r in results) == 1
    refusals = [r for r in results if isinstance(r, CircuitOpen)]
    assert len(refusals) == 5
    assert all(r.probing for r in refusals)
    assert await breaker.states() == {}  # closed again
    for _ in range(THRESHOLD):  # and for good: every call goes through
        output = await executor.run(http(target.url("/echo")), step_run(tmp_path))
        assert output["status"] == 200
    assert target.hits("/echo") == THRESHOLD


async def test_a_failed_probe_opens_it_for_another_cool_down(
    executor: HttpStepExecutor, clock: FakeClock, target: HttpTarget, tmp_path: Path
) -> None:
    await fail_times(executor, target.url("/status/502"), tmp_path, THRESHOLD)
    clock.now += COOLDOWN
    await fail_times(executor, target.url("/status/502"), tmp_path, 1)  # the probe
    assert target.hits("/status/502") == THRESHOLD + 1
    clock.now += COOLDOWN / 2
    with pytest.raises(CircuitOpen) as caught:
        await executor.run(http(target.url("/echo")), step_run(tmp_path))
    assert not caught.value.probing
    assert caught.value.retry_after_seconds == pytest.approx(COOLDOWN / 2)
    assert target.hits("/echo") == 0


async def test_4xx_and_invalid_configs_do_not_count(
    executor: HttpStepExecutor, breaker: MemoryCircuitBreaker, target: HttpTarget, tmp_path: Path
) -> None:
    for code in (400, 401, 404, 429) * 2:
        with pytest.raises(StepFailed, match=f"HTTP {code}"):
            await executor.run(http(target.url(f"/status/{code}")), step_run(tmp_path))
    for _ in range(THRESHOLD):
        with pytest.raises(StepFailed, match="invalid header name"):
            await executor.run(
                http(target.url("/echo"), headers={"bad name": "x"}), step_run(tmp_path)
            )
    assert await breaker.states() == {}
    assert (await executor.run(http(target.url("/echo")), step_run(tmp_path)))["status"] == 200


async def test_any_success_resets_the_count(
    executor: HttpStepExecutor, breaker: MemoryCircuitBreaker, target: HttpTarget, tmp_path: Path
) -> None:
    for _ in range(3):
        await fail_times(executor, target.url("/status/500"), tmp_path, THRESHOLD - 1)
        await executor.run(http(target.url("/echo")), step_run(tmp_path))
    assert await breaker.states() == {}
    assert target.hits("/status/500") == 3 * (THRESHOLD - 1)


async def test_refused_connections_and_timeouts_count(
    executor: HttpStepExecutor, target: HttpTarget, tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/x"
    await fail_times(executor, nobody, tmp_path, THRESHOLD)
    with pytest.raises(CircuitOpen, match=r"circuit breaker for http://127\.0\.0\.1:"):
        await executor.run(http(nobody), step_run(tmp_path))

    slow = http(target.url("/slow?seconds=5"), timeout_seconds=0.2)
    for _ in range(THRESHOLD):
        with pytest.raises(StepFailed, match=r"timed out|timeout"):
            await executor.run(slow, step_run(tmp_path))
    with pytest.raises(CircuitOpen):
        await executor.run(slow, step_run(tmp_path))
    assert target.hits("/slow") == THRESHOLD


async def test_the_target_is_scheme_host_and_port_without_credentials(
    executor: HttpStepExecutor, breaker: MemoryCircuitBreaker, target: HttpTarget, tmp_path: Path
) -> None:
    host = target.base_url.removeprefix("http://")
    url = f"http://user:${{secret:PW}}@{host}/status/500?token=${{secret:PW}}"
    run = step_run(tmp_path, secrets={"PW": "hunter2-secret"})
    for _ in range(THRESHOLD):
        with pytest.raises(StepFailed):
            await executor.run(http(url), run)
    assert list(await breaker.states()) == [target.base_url]
    with pytest.raises(CircuitOpen) as caught:
        await executor.run(http(target.url("/other/path")), step_run(tmp_path))
    assert "hunter2-secret" not in str(caught.value)


async def test_the_oauth2_token_endpoint_is_guarded_too(
    executor: HttpStepExecutor, target: HttpTarget, tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    config = http(
        target.url("/oauth/protected"),
        auth={
            "type": "oauth2",
            "token_url": f"{nobody}/token",
            "client_id": "c",
            "client_secret": "s3cret-client",
        },
    )
    for _ in range(THRESHOLD):
        with pytest.raises(StepFailed, match="oauth2 token request"):
            await executor.run(config, step_run(tmp_path))
    with pytest.raises(CircuitOpen, match=re.escape(nobody)):
        await executor.run(config, step_run(tmp_path))
    assert target.hits("/oauth/protected") == 0


# --- shared through Redis --------------------------------------------------------------


@pytest.fixture
def redis_prefix(redis_server: str) -> Iterator[str]:
    with redis_key_prefix(redis_server, KEY_PREFIX) as prefix:
        yield prefix


def redis_breaker(prefix: str) -> RedisCircuitBreaker:
    return RedisCircuitBreaker.from_url(
        REDIS_URL, prefix=prefix, failure_threshold=THRESHOLD, cooldown_seconds=COOLDOWN
    )


async def test_a_second_worker_sharing_redis_sees_the_open_state(
    redis_prefix: str, target: HttpTarget, tmp_path: Path
) -> None:
    first, second = redis_breaker(redis_prefix), redis_breaker(redis_prefix)
    one = HttpStepExecutor(breaker=first)
    other = default_executors(breaker=second)["http"]
    try:
        await fail_times(one, target.url("/status/503"), tmp_path, THRESHOLD)
        with pytest.raises(CircuitOpen) as caught:
            await other.run(http(target.url("/echo")), step_run(tmp_path))
        assert caught.value.target == target.base_url
        assert 0 < caught.value.retry_after_seconds <= COOLDOWN
        assert target.hits("/echo") == 0

        metrics = Metrics(breaker=second)  # e.g. the serve role, which runs no steps
        await metrics.refresh()
        text = metrics.render().decode()
        labels = f'state="open",target="{target.base_url}"'
        assert f"circuit_breaker_state{{{labels}}} 1.0" in text
        closed = f'state="closed",target="{target.base_url}"'
        assert f"circuit_breaker_state{{{closed}}} 0.0" in text
        failures = f'circuit_breaker_consecutive_failures{{target="{target.base_url}"}}'
        assert f"{failures} {float(THRESHOLD)}" in text
    finally:
        await one.close()
        await other.close()
        await first.close()
        await second.close()


SECOND_PROCESS = """
import asyncio, sys
from pathlib import Path
from tests.runtime.steprun import make_step_run
from vecron.backends.breaker import RedisCircuitBreaker
from vecron.errors import CircuitOpen
from vecron.runtime.steps import default_executors
from vecron.spec.models import HttpConfig

async def main(redis_url, prefix, url, root):
    breaker = RedisCircuitBreaker.from_url(redis_url, prefix=prefix)
    http = default_executors(breaker=breaker)["http"]
    run = make_step_run(Path(root), job_name="other", step_id="call")
    try:
        await http.run(HttpConfig.model_validate({"url": url}), run)
    except CircuitOpen as exc:
        print(exc)
        return 3
    finally:
        await http.close()
        await breaker.close()
    return 0

sys.exit(asyncio.run(main(*sys.argv[1:])))
"""


async def test_another_process_sharing_redis_fails_fast_too(
    redis_prefix: str, target: HttpTarget, tmp_path: Path
) -> None:
    breaker = redis_breaker(redis_prefix)
    executor = HttpStepExecutor(breaker=breaker)
    try:
        await fail_times(executor, target.url("/status/500"), tmp_path, THRESHOLD)
    finally:
        await executor.close()
        await breaker.close()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SECOND_PROCESS,
        REDIS_URL,
        redis_prefix,
        target.url("/echo"),
        str(tmp_path),
        cwd=Path(__file__).resolve().parents[2],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 3, err.decode()
    assert f"circuit breaker for {target.base_url} is open" in out.decode()
    assert target.hits("/echo") == 0


async def test_with_redis_unreachable_steps_run_unguarded(
    target: HttpTarget, tmp_path: Path
) -> None:
    breaker = open_breaker(f"redis://127.0.0.1:{free_port()}/0", failure_threshold=1)
    executor = HttpStepExecutor(breaker=breaker)
    try:
        await fail_times(executor, target.url("/status/500"), tmp_path, THRESHOLD)
        output = await executor.run(http(target.url("/echo")), step_run(tmp_path))
        assert output["status"] == 200
        assert target.hits("/status/500") == THRESHOLD  # none refused: failing open
        metrics = Metrics(breaker=breaker)
        await metrics.refresh()  # logs, does not raise
        assert b"circuit_breaker_state{" not in metrics.render()
    finally:
        await executor.close()
        await breaker.close()


# --- metrics, wiring ---------------------------------------------------------------------


async def test_metrics_show_each_targets_state(
    executor: HttpStepExecutor,
    breaker: MemoryCircuitBreaker,
    clock: FakeClock,
    target: HttpTarget,
    tmp_path: Path,
) -> None:
    metrics = Metrics(breaker=breaker)
    await fail_times(executor, target.url("/status/500"), tmp_path, 1)
    await metrics.refresh()
    text = metrics.render().decode()
    assert f'circuit_breaker_state{{state="closed",target="{target.base_url}"}} 1.0' in text
    await fail_times(executor, target.url("/status/500"), tmp_path, THRESHOLD - 1)
    clock.now += COOLDOWN
    await metrics.refresh()
    text = metrics.render().decode()
    assert f'circuit_breaker_state{{state="half_open",target="{target.base_url}"}} 1.0' in text
    await executor.run(http(target.url("/echo")), step_run(tmp_path))  # the probe
    await metrics.refresh()
    assert target.base_url not in metrics.render().decode()


def test_default_executors_share_one_breaker() -> None:
    executors = default_executors()
    guarded = [executors[kind]._breaker for kind in ("http", "database", "sftp")]  # type: ignore[attr-defined]
    assert isinstance(guarded[0], MemoryCircuitBreaker)
    assert all(b is guarded[0] for b in guarded)
    given: CircuitBreaker = MemoryCircuitBreaker()
    executors = default_executors(breaker=given)
    assert all(
        executors[kind]._breaker is given  # type: ignore[attr-defined]
        for kind in ("http", "database", "sftp")
    )


# --- database ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql+psycopg://app:s3cret@DB.example/sales?password=s3cret&sslmode=require",
            "postgresql://app@db.example:5432/sales",
        ),
        ("postgres://app:s3cret@db:6432/sales", "postgresql://app@db:6432/sales"),
        ("mysql+pymysql://root:s3cret@127.0.0.1/shop", "mysql://root@127.0.0.1:3306/shop"),
        ("mariadb://u%40x:s3cret@[::1]:3307/shop", "mysql://u%40x@[::1]:3307/shop"),
        (
            "oracle+oracledb://scott:s3cret@ora:1521/?service_name=ORCL",
            "oracle://scott@ora:1521/ORCL",
        ),
        ("sqlite:////var/data/app.db", "sqlite:///var/data/app.db"),
    ],
)
def test_a_database_target_is_its_dsn_without_the_password(url: str, expected: str) -> None:
    assert breaker_target(make_url(url)) == expected


def database(query: str = "SELECT 1", **config: Any) -> DatabaseConfig:
    """A PostgreSQL step whose connection string is the secret ``DSN``."""
    return DatabaseConfig.model_validate(
        {
            "database_type": "postgresql",
            "connection_string": "${secret:DSN}",
            "query": query,
            **config,
        }
    )


def require_postgres() -> None:
    try:
        psycopg.connect(PG_URL, connect_timeout=2).close()
        reachable = True
    except psycopg.Error:
        reachable = False
    require(reachable, "no PostgreSQL at 127.0.0.1:5432")


async def test_an_unreachable_database_opens_its_breaker_without_showing_the_password(
    breaker: MemoryCircuitBreaker, tmp_path: Path
) -> None:
    port = free_port()
    dsn = f"postgresql://app:pw-{secrets.token_hex(4)}@127.0.0.1:{port}/sales"
    password = dsn.split(":")[2].split("@", maxsplit=1)[0]
    executor = DatabaseStepExecutor(breaker=breaker)
    run = step_run(tmp_path, secrets={"DSN": dsn})
    try:
        for _ in range(THRESHOLD):
            with pytest.raises(StepFailed, match="cannot connect"):
                await executor.run(database(), run)
        with pytest.raises(CircuitOpen) as caught:
            await executor.run(database(), run)
    finally:
        await executor.close()
    expected = f"postgresql://app@127.0.0.1:{port}/sales"
    assert caught.value.target == expected
    assert list(await breaker.states()) == [expected]
    assert password not in str(caught.value)


async def test_answers_from_the_database_server_do_not_count(
    breaker: MemoryCircuitBreaker, tmp_path: Path
) -> None:
    require_postgres()
    executor = DatabaseStepExecutor(breaker=breaker)
    unknown = "postgresql://postgres:pw@127.0.0.1:5432/vecron_no_such_database"
    try:
        for _ in range(THRESHOLD + 1):
            with pytest.raises(StepFailed, match="syntax error"):
                await executor.run(database("SELEC 1"), step_run(tmp_path, {"DSN": PG_URL}))
            with pytest.raises(StepFailed, match="does not exist"):
                await executor.run(database(), step_run(tmp_path, {"DSN": unknown}))
        assert await breaker.states() == {}
        output = await executor.run(database(), step_run(tmp_path, {"DSN": PG_URL}))
        assert output["rows"] == [{"?column?": 1}]
    finally:
        await executor.close()


async def test_a_statement_timeout_counts(breaker: MemoryCircuitBreaker, tmp_path: Path) -> None:
    require_postgres()
    executor = DatabaseStepExecutor(breaker=breaker)
    run = step_run(tmp_path, {"DSN": PG_URL})
    try:
        for _ in range(THRESHOLD):
            with pytest.raises(StepFailed, match="timeout_seconds"):
                await executor.run(database("SELECT pg_sleep(5)", timeout_seconds=0.2), run)
        with pytest.raises(CircuitOpen, match=re.escape(breaker_target(make_url(PG_URL)))):
            await executor.run(database(), run)
    finally:
        await executor.close()


# --- sftp ------------------------------------------------------------------------------------


def sftp(port: int, **config: Any) -> SftpConfig:
    doc = {
        "operation": "download",
        "host": "127.0.0.1",
        "port": port,
        "auth": {"type": "password", "username": "u", "password": "${secret:PW}"},
        "remote_path": "/x",
        "verify_host_key": False,
        "timeout_seconds": 2,
        **config,
    }
    result: SftpConfig = SFTP_CONFIG.validate_python(doc)
    return result


async def test_sftp_connection_failures_open_the_breaker(
    breaker: MemoryCircuitBreaker, tmp_path: Path
) -> None:
    executor = SftpStepExecutor(breaker=breaker, work_dir=tmp_path)
    run = step_run(tmp_path, secrets={"PW": "sftp-pass-4711"})
    port = free_port()
    try:
        for _ in range(THRESHOLD):
            with pytest.raises(StepFailed, match="connection refused"):
                await executor.run(sftp(port), run)
        with pytest.raises(CircuitOpen) as caught:
            await executor.run(sftp(port), run)
        assert caught.value.target == f"sftp://127.0.0.1:{port}"

        with serve_raw_tcp(b"HTTP/1.1 400 Bad Request\r\n\r\n") as url:
            raw_port = int(url.rsplit(":", 1)[1])
            for _ in range(THRESHOLD):  # it answers, but not SSH: the target is broken
                with pytest.raises(StepFailed) as failed:
                    await executor.run(sftp(raw_port), run)
                assert not isinstance(failed.value, CircuitOpen)
            with pytest.raises(CircuitOpen):
                await executor.run(sftp(raw_port), run)
    finally:
        await executor.close()


async def test_sftp_errors_before_connecting_do_not_count(
    breaker: MemoryCircuitBreaker, tmp_path: Path
) -> None:
    executor = SftpStepExecutor(breaker=breaker, work_dir=tmp_path)
    run = step_run(tmp_path, secrets={"PW": "sftp-pass-4711"})
    bad_key = {"type": "ssh_key", "username": "u", "private_key": "not a key"}
    port = free_port()
    try:
        await breaker.record(f"sftp://127.0.0.1:{port}", ok=False)
        for _ in range(THRESHOLD + 1):
            with pytest.raises(StepFailed) as caught:
                await executor.run(sftp(port, auth=bad_key), run)
            assert not isinstance(caught.value, CircuitOpen)
    finally:
        await executor.close()
    statuses = await breaker.states()  # neither counted nor a success that resets
    assert statuses[f"sftp://127.0.0.1:{port}"].failures == 1


async def test_sftp_answers_from_the_server_do_not_count(
    breaker: MemoryCircuitBreaker, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    hello = put_remote(sshd, remote / "hello.txt", b"hello")
    executor = SftpStepExecutor(breaker=breaker, work_dir=tmp_path)
    wrong = sftp_step_run(tmp_path, sshd, secrets={"SFTP_PASSWORD": "not-the-password-4711"})
    try:
        for _ in range(THRESHOLD):
            with pytest.raises(StepFailed, match="authentication"):
                await executor.run(download(sshd, hello), wrong)
            with pytest.raises(StepFailed, match="no file matches"):
                await executor.run(
                    download(sshd, remote / "missing-*"), sftp_step_run(tmp_path, sshd)
                )
        assert await breaker.states() == {}
        output = await executor.run(download(sshd, hello), sftp_step_run(tmp_path, sshd))
        assert output["file_count"] == 1
    finally:
        await executor.close()
