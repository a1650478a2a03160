"""The object store conformance suite: every test runs against every implementation.

``object_store`` is parametrized over ``local`` (a temporary directory) and ``s3``
(SeaweedFS through the MinIO SDK, each test under its own key prefix). Tests at the
end cover what only one implementation has: URLs, credentials, a root directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.services.seaweed import S3Server
from vecron.backends.objectstore import (
    LocalObjectStore,
    ObjectInfo,
    ObjectStore,
    open_object_store,
)
from vecron.backends.objectstore.base import TEMP_PREFIX, check_path
from vecron.backends.objectstore.minio import MinioObjectStore
from vecron.errors import BackendUnavailable, ConfigurationError, ObjectNotFound

MIB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def listed(store: ObjectStore, prefix: str = "") -> list[ObjectInfo]:
    return [info async for info in store.list(prefix)]


async def paths(store: ObjectStore, prefix: str = "") -> list[str]:
    return [info.path for info in await listed(store, prefix)]


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, MIB))
            digest.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


class Fifo:
    """A named pipe fed by a thread, to hold a ``put_file`` half-way for as long as a
    test needs: ``feed(n)`` writes ``n`` bytes and returns once the store read them
    (all but the pipe's buffer), ``finish()`` closes the writing end."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self._chunks: list[bytes | None] = []
        self._ready = threading.Condition()
        self._fed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self.path.open("wb") as pipe:  # blocks until the store opens the pipe
            while True:
                with self._ready:
                    self._ready.wait_for(lambda: bool(self._chunks))
                    chunk = self._chunks.pop(0)
                if chunk is None:
                    return
                pipe.write(chunk)
                pipe.flush()
                self._fed.set()

    async def feed(self, data: bytes) -> None:
        self._fed.clear()
        with self._ready:
            self._chunks.append(data)
            self._ready.notify()
        assert await asyncio.to_thread(self._fed.wait, 60), "the store stopped reading"

    def finish(self) -> None:
        with self._ready:
            self._chunks.append(None)
            self._ready.notify()

    def join(self) -> None:
        self._thread.join(10)


# -- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"hello", bytes(range(256)) * 4, b"\x00\xff\r\n" * 1000],
    ids=["empty", "text", "all-bytes", "binary"],
)
async def test_put_then_get_returns_the_same_bytes(object_store: ObjectStore, data: bytes) -> None:
    await object_store.put("jobs/j1/definition.json", data)

    assert await object_store.get("jobs/j1/definition.json") == data
    assert (await object_store.stat("jobs/j1/definition.json")).size == len(data)


async def test_put_file_and_get_file_stream_20_mb(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    digest = random_file(source, 20 * MIB)

    await object_store.put_file("jobs/j1/executions/e1/output/big.bin", source)
    destination = tmp_path / "down" / "deeper" / "big.bin"
    await object_store.get_file("jobs/j1/executions/e1/output/big.bin", destination)

    assert file_sha256(destination) == digest
    assert (await object_store.stat("jobs/j1/executions/e1/output/big.bin")).size == 20 * MIB
    assert sha256(await object_store.get("jobs/j1/executions/e1/output/big.bin")) == digest
    assert [p.name for p in destination.parent.iterdir()] == ["big.bin"]  # no temp left


async def test_put_file_and_get_file_use_bounded_memory(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    source = tmp_path / "huge.bin"
    digest = random_file(source, 96 * MIB)
    tracemalloc.start()
    try:
        await object_store.put_file("huge", source)
        put_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        await object_store.get_file("huge", tmp_path / "copy.bin")
        get_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert file_sha256(tmp_path / "copy.bin") == digest
    # S3 holds one 16 MiB part, copied up to three times by the SDK; locally 1 MiB chunks.
    assert put_peak < 56 * MIB, put_peak
    assert get_peak < 8 * MIB, get_peak


async def test_put_file_and_get_file_of_an_empty_file(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    source = tmp_path / "empty"
    source.write_bytes(b"")

    await object_store.put_file("e", source, content_type="text/plain")
    await object_store.get_file("e", tmp_path / "copy")

    assert (tmp_path / "copy").read_bytes() == b""
    assert (await object_store.stat("e")).content_type == "text/plain"


async def test_get_file_replaces_an_existing_destination(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    destination = tmp_path / "out.txt"
    destination.write_bytes(b"previous content that is longer")
    await object_store.put("x", b"new")

    await object_store.get_file("x", destination)

    assert destination.read_bytes() == b"new"


async def test_put_overwrites_content_and_content_type(object_store: ObjectStore) -> None:
    await object_store.put("a/b", b"first version", content_type="text/plain")
    first = await object_store.stat("a/b")

    await object_store.put("a/b", b"second", content_type="application/json")

    assert await object_store.get("a/b") == b"second"
    second = await object_store.stat("a/b")
    assert (second.size, second.content_type) == (6, "application/json")
    assert second.etag != first.etag
    assert await paths(object_store) == ["a/b"]


async def test_stat_reports_size_etag_time_and_content_type(object_store: ObjectStore) -> None:
    before = datetime.now(UTC)
    await object_store.put("ctx/context.json", b'{"a": 1}', content_type="application/json")
    await object_store.put("raw.bin", b"\x00\x01")
    after = datetime.now(UTC)

    info = await object_store.stat("ctx/context.json")

    assert info.path == "ctx/context.json"
    assert info.size == 8
    assert isinstance(info.etag, str)
    assert info.etag
    assert info.modified.utcoffset() == timedelta(0)
    # S3 keeps whole seconds; allow for that and nothing more.
    assert before - timedelta(seconds=1) <= info.modified <= after + timedelta(seconds=1)
    assert info.content_type == "application/json"
    assert (await object_store.stat("raw.bin")).content_type == "application/octet-stream"


async def test_object_info_is_a_frozen_value(object_store: ObjectStore) -> None:
    await object_store.put("v", b"1")
    info = await object_store.stat("v")

    with pytest.raises(FrozenInstanceError):
        info.size = 2  # type: ignore[misc]
    assert info == await object_store.stat("v")
    assert isinstance(object_store, ObjectStore)


async def test_exists_is_true_only_for_stored_objects(object_store: ObjectStore) -> None:
    assert not await object_store.exists("a/b.txt")
    await object_store.put("a/b.txt", b"x")

    assert await object_store.exists("a/b.txt")
    assert not await object_store.exists("a")  # a folder of objects is not an object
    assert not await object_store.exists("a/b")
    await object_store.delete("a/b.txt")
    assert not await object_store.exists("a/b.txt")


async def test_missing_objects_raise_object_not_found(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    await object_store.put("present/x", b"x")
    destination = tmp_path / "kept.txt"
    destination.write_bytes(b"untouched")

    for path in ("missing", "present", "present/x/deeper"):
        with pytest.raises(ObjectNotFound) as raised:
            await object_store.get(path)
        assert raised.value.path == path
        with pytest.raises(ObjectNotFound):
            await object_store.stat(path)
        with pytest.raises(ObjectNotFound):
            await object_store.get_file(path, destination)
        with pytest.raises(ObjectNotFound):
            await object_store.get_file(path, tmp_path / "never" / "created")

    assert destination.read_bytes() == b"untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


# -- deleting -------------------------------------------------------------------------


async def test_delete_is_idempotent(object_store: ObjectStore) -> None:
    await object_store.put("d/x", b"1")

    await object_store.delete("d/x")
    await object_store.delete("d/x")
    await object_store.delete("never/was")
    await object_store.delete("d")

    assert await paths(object_store) == []


async def test_a_deleted_folder_can_become_an_object(object_store: ObjectStore) -> None:
    await object_store.put("a/b/c", b"deep")
    await object_store.delete("a/b/c")

    await object_store.put("a", b"now a file")

    assert await object_store.get("a") == b"now a file"
    assert await paths(object_store) == ["a"]


async def test_delete_prefix_removes_only_matching_paths(object_store: ObjectStore) -> None:
    for path in ("a/1", "a/2/x", "a/2/y", "ab/x", "a-b", "b/a/1"):
        await object_store.put(path, path.encode())

    assert await object_store.delete_prefix("a/2/") == 2
    assert await object_store.delete_prefix("a/") == 1
    assert await object_store.delete_prefix("a/") == 0
    assert await object_store.delete_prefix("nothing/") == 0

    assert await paths(object_store) == ["a-b", "ab/x", "b/a/1"]
    assert await object_store.delete_prefix("a") == 2
    assert await paths(object_store) == ["b/a/1"]


async def test_delete_prefix_refuses_the_empty_prefix(object_store: ObjectStore) -> None:
    await object_store.put("keep", b"1")

    with pytest.raises(ValueError, match="empty"):
        await object_store.delete_prefix("")

    assert await paths(object_store) == ["keep"]


# -- listing --------------------------------------------------------------------------

# Inserted out of order; "-" and "0" sort around "/" (0x2d < 0x2f < 0x30), so a store
# that walked folders depth first would get "a/x" in the wrong place.
UNORDERED = ["z/y/x", "a0", "é/1", "a/x", "A", "a-b", "a/x-y/z", "a.txt", "ab/c", "日本/x"]


async def test_list_is_recursive_and_sorted_by_path(object_store: ObjectStore) -> None:
    for path in UNORDERED:
        await object_store.put(path, path.encode())

    assert await paths(object_store) == sorted(UNORDERED)


async def test_list_filters_by_plain_string_prefix(object_store: ObjectStore) -> None:
    for path in UNORDERED:
        await object_store.put(path, path.encode())

    assert await paths(object_store, "a/") == ["a/x", "a/x-y/z"]
    assert await paths(object_store, "a") == ["a-b", "a.txt", "a/x", "a/x-y/z", "a0", "ab/c"]
    assert await paths(object_store, "a/x-") == ["a/x-y/z"]
    assert await paths(object_store, "z/y/x") == ["z/y/x"]
    assert await paths(object_store, "q") == []
    assert await paths(object_store, "nope/deeper/") == []


async def test_listing_agrees_with_stat(object_store: ObjectStore) -> None:
    await object_store.put("l/one", b"1", content_type="text/plain")
    await object_store.put("l/two", b"22")

    for info in await listed(object_store, "l/"):
        stat = await object_store.stat(info.path)
        assert (info.path, info.size, info.etag, info.modified) == (
            stat.path,
            stat.size,
            stat.etag,
            stat.modified,
        )
        assert info.content_type in (None, stat.content_type)


async def test_list_of_an_empty_store_is_empty(object_store: ObjectStore) -> None:
    assert await paths(object_store) == []
    assert await paths(object_store, "jobs/") == []


# -- paths ----------------------------------------------------------------------------

BAD_PATHS = [
    "",
    "/etc/passwd",
    "../outside",
    "a/../../outside",
    "a/..",
    "..",
    ".",
    "a/./b",
    "a//b",
    "a/",
    "a\\..\\b",
    "a\x00b",
    "line\nbreak",
    f"a/{TEMP_PREFIX}123",
    "x" * 256,
    "/".join(["abcd"] * 206),  # 1029 bytes
]


@pytest.mark.parametrize("path", BAD_PATHS)
async def test_invalid_paths_are_refused_before_any_io(
    object_store: ObjectStore, path: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"x")
    calls: list[Callable[[], object]] = [
        lambda: object_store.put(path, b"x"),
        lambda: object_store.put_file(path, source),
        lambda: object_store.get(path),
        lambda: object_store.get_file(path, tmp_path / "dest"),
        lambda: object_store.stat(path),
        lambda: object_store.exists(path),
        lambda: object_store.delete(path),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="invalid object path") as raised:
            await call()  # type: ignore[misc]
        assert repr(path) in str(raised.value)

    assert not (tmp_path / "dest").exists()
    assert await paths(object_store) == []


@pytest.mark.parametrize("prefix", ["/a", "../", "a/../", "a//", "a\\b", "x\ny"])
async def test_invalid_prefixes_are_refused(object_store: ObjectStore, prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid object path prefix"):
        await listed(object_store, prefix)
    with pytest.raises(ValueError, match="invalid object path prefix"):
        await object_store.delete_prefix(prefix)


@pytest.mark.parametrize(
    "path", ["a b/c d", "ü/日本語.txt", "q?x", "h#x", "pct%20x", "plus+x", "...", "a..b/.c"]
)
async def test_unusual_but_valid_paths_round_trip(object_store: ObjectStore, path: str) -> None:
    await object_store.put(path, path.encode())

    assert await object_store.get(path) == path.encode()
    assert await paths(object_store) == [path]


# -- atomicity ------------------------------------------------------------------------


async def test_readers_see_whole_versions_while_a_writer_overwrites(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    versions = [os.urandom(5 * MIB), os.urandom(5 * MIB)]
    digests = {sha256(version) for version in versions}
    source = tmp_path / "v1"
    source.write_bytes(versions[1])
    await object_store.put("hot", versions[0])
    done = asyncio.Event()
    seen: list[str] = []

    async def writer() -> None:
        try:
            for round_ in range(16):
                if round_ % 2:
                    await object_store.put("hot", versions[0])
                else:
                    await object_store.put_file("hot", source)
        finally:
            done.set()

    async def reader() -> None:
        while not done.is_set():
            seen.append(sha256(await object_store.get("hot")))

    async def file_reader(name: str) -> None:
        while not done.is_set():
            await object_store.get_file("hot", tmp_path / name)
            seen.append(file_sha256(tmp_path / name))

    await asyncio.gather(writer(), reader(), file_reader("copy"))

    assert seen
    assert set(seen) <= digests
    assert await paths(object_store) == ["hot"]


async def test_cancelled_put_file_leaves_the_old_object(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    await object_store.put("doc", b"old content", content_type="text/plain")
    fifo = Fifo(tmp_path / "source")
    task = asyncio.create_task(object_store.put_file("doc", fifo.path))
    try:
        # More than one 16 MiB part: S3 has a multipart upload going, to be aborted.
        await fifo.feed(os.urandom(17 * MIB))
        # Let the store drain the pipe and wait in read(): the end of input that the
        # cancellation brings must not pass for the end of the file.
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.sleep(0.05)
    finally:
        fifo.finish()
    with pytest.raises(asyncio.CancelledError):
        await task
    fifo.join()

    assert await object_store.get("doc") == b"old content"
    assert (await object_store.stat("doc")).content_type == "text/plain"
    assert await paths(object_store) == ["doc"]


async def test_failed_put_file_leaves_the_old_object(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    await object_store.put("doc", b"old content")

    with pytest.raises(FileNotFoundError):
        await object_store.put_file("doc", tmp_path / "missing")
    with pytest.raises(IsADirectoryError):
        await object_store.put_file("doc", tmp_path)
    with pytest.raises(FileNotFoundError):
        await object_store.put_file("new", tmp_path / "missing")

    assert await object_store.get("doc") == b"old content"
    assert await paths(object_store) == ["doc"]


async def test_put_in_flight_is_invisible_and_does_not_block_the_loop(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    """While a put_file waits for its source the event loop keeps serving others,
    and nothing of the half-written object shows."""
    await object_store.put("other", b"1")
    fifo = Fifo(tmp_path / "source")
    task = asyncio.create_task(object_store.put_file("slow/object", fifo.path))
    try:
        await fifo.feed(b"x" * (2 * MIB))
        # Were put_file blocking the loop, none of these could run.
        assert await paths(object_store) == ["other"]
        assert not await object_store.exists("slow/object")
        assert await object_store.get("other") == b"1"
        await fifo.feed(b"y" * 10)
    finally:
        fifo.finish()
    await asyncio.wait_for(task, 60)
    fifo.join()

    assert await paths(object_store) == ["other", "slow/object"]
    assert (await object_store.stat("slow/object")).size == 2 * MIB + 10


# -- property -------------------------------------------------------------------------

_segment = st.text(alphabet="abzAZ09-_. é日", min_size=1, max_size=6).filter(
    lambda segment: segment not in (".", "..")
)
_path = st.lists(_segment, min_size=1, max_size=3).map("/".join)


def _no_object_is_a_folder(objects: dict[str, bytes]) -> bool:
    return not any(other.startswith(f"{path}/") for path in objects for other in objects)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    objects=st.dictionaries(_path, st.binary(max_size=300), min_size=1, max_size=8).filter(
        _no_object_is_a_folder
    )
)
async def test_whatever_is_put_is_listed_and_read_back(
    object_store: ObjectStore, objects: dict[str, bytes]
) -> None:
    base = f"h{secrets.token_hex(4)}/"  # the fixture's store lives across examples
    for path, data in objects.items():
        await object_store.put(base + path, data)

    infos = await listed(object_store, base)

    assert [info.path for info in infos] == sorted(base + path for path in objects)
    assert [info.size for info in infos] == [len(objects[i.path[len(base) :]]) for i in infos]
    for path, data in objects.items():
        assert await object_store.get(base + path) == data
    assert await object_store.delete_prefix(base) == len(objects)


# -- URLs -----------------------------------------------------------------------------


def test_open_object_store_reads_a_file_url(tmp_path: Path) -> None:
    root = tmp_path / "with space" / "objects"

    store = open_object_store(root.as_uri())

    assert isinstance(store, LocalObjectStore)
    assert store.root == root
    assert store.describe() == root.as_uri()
    assert isinstance(open_object_store(f"file://localhost{root}"), LocalObjectStore)


def test_open_object_store_reads_s3_urls() -> None:
    store = open_object_store(
        "s3://AKIA%2Fkey:s3cr%40t%2Fpart@minio.internal:9000/vecron/team/a?secure=false"
    )
    alias = open_object_store("minio://k:s@[::1]:9000/bucket")
    default_port = open_object_store("s3://k:s@s3.example.com/bucket?region=eu-west-1")

    assert isinstance(store, MinioObjectStore)
    assert store.describe() == "s3://minio.internal:9000/vecron/team/a"
    assert "s3cr" not in repr(store)
    assert alias.describe() == "s3://[::1]:9000/bucket"
    assert default_port.describe() == "s3://s3.example.com/bucket"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/dir", "unsupported object store URL scheme 'ftp'"),
        ("/var/lib/vecron/objects", "unsupported object store URL scheme '(none)'"),
        ("file://host/dir", "names a host"),
        ("file:relative/dir", "absolute path"),
        ("file:///dir?x=1", "no query"),
        ("s3://host:9000/bucket", "no credentials"),
        ("s3://:hunter2@host:9000/bucket", "no credentials"),
        ("s3://key@host:9000/bucket", "no credentials"),
        ("s3://k:hunter2@host:9000", "names no bucket"),
        ("s3://k:hunter2@host:9000/", "names no bucket"),
        ("s3://k:hunter2@:9000/bucket", "no host"),
        ("s3://k:hunter2@host:99999/bucket", "bad port"),
        ("s3://k:hunter2@host/bucket?secure=maybe", "not true or false"),
        ("s3://k:hunter2@host/bucket?secur=false", "unknown option 'secur'"),
        ("s3://k:hunter2@host/Bad_Bucket", "invalid bucket name"),
        ("s3://k:hunter2@host/bucket/a/../b", "invalid object path"),
    ],
)
def test_open_object_store_rejects_bad_urls_without_echoing_secrets(url: str, message: str) -> None:
    with pytest.raises(
        ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")
    ) as raised:
        open_object_store(url)

    assert "hunter2" not in str(raised.value)


# -- S3 only --------------------------------------------------------------------------


async def test_s3_unreachable_server_is_backend_unavailable(s3_server: S3Server) -> None:
    with closed_port() as port:
        store = open_object_store(s3_server.url("p", port=port))
        started = time.monotonic()
        try:
            with pytest.raises(BackendUnavailable) as raised:
                await store.put("x", b"1")
            with pytest.raises(BackendUnavailable):
                await store.get("x")
        finally:
            await store.close()

    message = str(raised.value)
    assert store.describe() in message
    assert f"127.0.0.1:{port}" in message
    assert s3_server.secret_key not in message
    assert s3_server.secret_key not in repr(store)
    assert time.monotonic() - started < 20


async def test_s3_wrong_credentials_are_refused_clearly(s3_server: S3Server) -> None:
    for url in (
        s3_server.url("p", secret_key="not-the-secret"),
        s3_server.url("p", access_key="nobody", secret_key="not-the-secret"),
    ):
        store = open_object_store(url)
        try:
            with pytest.raises(BackendUnavailable, match="refused") as raised:
                await store.put("x", b"1")
        finally:
            await store.close()
        assert store.describe() in str(raised.value)
        assert "not-the-secret" not in str(raised.value)


async def test_s3_bucket_is_created_on_first_use(s3_server: S3Server) -> None:
    bucket = f"vecron-new-{secrets.token_hex(4)}"
    store = open_object_store(s3_server.url(bucket=bucket))
    try:
        await store.put("x", b"1")
        assert await store.get("x") == b"1"
    finally:
        await store.close()
    client = s3_server.client()
    assert client.bucket_exists(bucket)
    client.remove_object(bucket, "x")
    client.remove_bucket(bucket)


async def test_s3_missing_bucket_is_reported_when_not_to_be_created(s3_server: S3Server) -> None:
    bucket = f"vecron-absent-{secrets.token_hex(4)}"
    store = open_object_store(s3_server.url(bucket=bucket) + "&create_bucket=false")
    try:
        with pytest.raises(ConfigurationError, match=bucket):
            await store.put("x", b"1")
    finally:
        await store.close()
    assert not s3_server.client().bucket_exists(bucket)


async def test_s3_prefixes_isolate_stores_in_one_bucket(s3_server: S3Server) -> None:
    team = f"iso-{secrets.token_hex(4)}"
    one = open_object_store(s3_server.url(f"{team}/one"))
    two = open_object_store(s3_server.url(f"{team}/two"))
    try:
        await one.put("same/path", b"1")
        await two.put("same/path", b"2")
        assert await one.get("same/path") == b"1"
        assert await paths(two) == ["same/path"]
        assert await one.delete_prefix("same/") == 1
        assert await two.get("same/path") == b"2"
        await two.delete("same/path")
    finally:
        await one.close()
        await two.close()


async def test_s3_store_leaves_a_given_client_open(s3_server: S3Server) -> None:
    client = s3_server.client()
    prefix = f"given-{secrets.token_hex(4)}"
    store = MinioObjectStore(client, s3_server.bucket, prefix=prefix)

    await store.put("x", b"1")
    await store.close()

    assert store.describe() == f"s3://{s3_server.bucket}/{prefix}"
    response = client.get_object(s3_server.bucket, f"{prefix}/x")  # the client still works
    try:
        assert response.read() == b"1"
    finally:
        response.close()
        response.release_conn()
    client.remove_object(s3_server.bucket, f"{prefix}/x")


# -- local only -----------------------------------------------------------------------


async def test_local_store_never_writes_outside_its_root(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "root"
    store = LocalObjectStore(root)
    tricky = [*BAD_PATHS, "..\\x", "a/..\\..\\x", "~/x"]

    for path in tricky:
        try:
            await store.put(path, b"escaped?")
        except ValueError:
            continue
        assert path == "~/x"  # a literal "~" folder inside the root

    outside = [p for p in tmp_path.rglob("*") if p.is_file() and root not in p.parents]
    assert outside == []
    assert await paths(store) == ["~/x"]


async def test_local_store_keeps_files_readable_by_ordinary_tools(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "root")

    await store.put("jobs/j1/definition.json", b"{}", content_type="application/json")
    await store.delete("gone")

    assert (tmp_path / "root" / "jobs" / "j1" / "definition.json").read_bytes() == b"{}"
    assert not [p for p in (tmp_path / "root").rglob("*") if p.name.startswith(TEMP_PREFIX)]


async def test_local_store_prunes_folders_left_empty(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "root")
    await store.put("a/b/c/d", b"1")
    await store.put("a/keep", b"2")

    await store.delete("a/b/c/d")
    assert sorted(p.name for p in (tmp_path / "root" / "a").iterdir()) == ["keep"]
    assert await store.delete_prefix("a/") == 1
    assert list((tmp_path / "root").iterdir()) == []


async def test_local_store_refuses_an_object_that_is_also_a_folder(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "root")
    await store.put("a", b"file")
    await store.put("b/c", b"file")

    with pytest.raises(ValueError, match="'a/b'"):
        await store.put("a/b", b"below a file")
    with pytest.raises(ValueError, match="folder of other objects"):
        await store.put("b", b"over a folder")

    assert await paths(store) == ["a", "b/c"]


async def test_local_store_ignores_temp_files_and_odd_names(tmp_path: Path) -> None:
    root = tmp_path / "root"
    store = LocalObjectStore(root)
    await store.put("a/real", b"1")
    (root / "a" / f"{TEMP_PREFIX}0123").write_bytes(b"in flight")
    (root / "a" / "back\\slash").write_bytes(b"not a valid path")
    (root / "empty-folder").mkdir()

    assert await paths(store) == ["a/real"]
    assert await store.delete_prefix("a/") == 1


async def test_local_store_lists_lazily(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "root")
    for index in range(600):
        await store.put(f"many/{index:04}", b"")

    first = []
    async for info in store.list("many/"):
        first.append(info.path)
        if len(first) == 3:
            break

    assert first == ["many/0000", "many/0001", "many/0002"]
    assert len(await paths(store, "many/")) == 600


def test_path_checks_are_shared_by_all_stores() -> None:
    assert check_path("jobs/j1/executions/e1/output/report.csv") == (
        "jobs/j1/executions/e1/output/report.csv"
    )
    with pytest.raises(TypeError):
        check_path(b"bytes")  # type: ignore[arg-type]


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that is bound but never listens: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port
