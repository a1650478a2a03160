"""Fixtures of the distributed failure tests: a cluster over the shared services, and
a local HTTP target the jobs call."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.db_fixtures import throwaway_pg_database
from tests.distributed.cluster import Cluster, cluster_env
from tests.runtime.http_target import HttpTarget, serve_http_target
from vecron.backends.queue.nats import NatsQueue


@pytest.fixture
def target() -> Iterator[HttpTarget]:
    with serve_http_target() as served:
        yield served


def stream_url(nats_url: str, **options: object) -> str:
    """A queue URL with a stream of the test's own."""
    query = "&".join(
        f"{k}={v}" for k, v in {"stream": f"D{secrets.token_hex(6).upper()}", **options}.items()
    )
    return f"{nats_url}?{query}"


def delete_streams(queue_url: str) -> None:
    async def delete() -> None:
        queue = NatsQueue.from_url(queue_url)
        try:
            await queue.delete_streams()
        finally:
            await queue.close()

    asyncio.run(delete())


@pytest.fixture
def cluster(tmp_path: Path, s3_url: str, nats_url: str, redis_server: str) -> Iterator[Cluster]:
    """Roles over the shared PostgreSQL (a database of the test's own), S3, NATS (a
    stream of its own, 3 s ack wait) and Redis; a test may swap one for a private
    server in ``cluster.env``."""
    queue_url = stream_url(nats_url, ack_wait=3)
    with throwaway_pg_database() as database_url:
        env = cluster_env(
            tmp_path,
            database_url=database_url,
            object_store_url=s3_url,
            queue_url=queue_url,
            redis_url=redis_server,
        )
        cluster = Cluster(root=tmp_path, env=env)
        try:
            yield cluster
        finally:
            cluster.stop_all()
            if queue_url == cluster.env["VECRON_QUEUE_URL"]:  # not swapped for a private one
                delete_streams(queue_url)
