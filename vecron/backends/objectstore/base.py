"""The object store contract, shared by every implementation.

The object store keeps what is too large or too free-form for the database: job
definitions, Job Contexts, files a run wrote and the job repository's ``files/``
(DESIGN.md, "Stores"; paths are built in :mod:`vecron.paths`). Implementations are
:class:`~vecron.backends.objectstore.local.LocalObjectStore` (a directory, the
embedded default) and :class:`~vecron.backends.objectstore.minio.MinioObjectStore`
(S3 through the MinIO SDK). One conformance suite, ``tests/backends/test_objectstore.py``,
runs against both.

Besides the Protocol this module holds the few helpers both implementations need to
keep it identically: path validation, atomic file writes and cancellable threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pathlib
import re
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")

MAX_PATH_BYTES = 1024
"""S3's limit for a key, in UTF-8 bytes (the store's key prefix counts too)."""
MAX_SEGMENT_BYTES = 255
"""The usual file-name limit, so that every path fits a local directory too."""
TEMP_PREFIX = ".vecron-tmp-"
"""Names of in-flight temporary files start with this; no path segment may."""
CHUNK_SIZE = 1024 * 1024
"""Bytes read or written at a time when streaming files."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectInfo:
    """What a store knows about one object.

    ``size`` is in bytes. ``etag`` is an opaque version tag: it changes whenever
    different content is stored at the path (an S3 ETag; for the local store a tag
    derived from the file's identity and modification time), so compare etags of one
    store only. ``modified`` is an aware UTC datetime; its precision is the store's
    (whole seconds on S3). ``content_type`` is what the object was put with; listings
    leave it ``None`` where the store does not return it cheaply (S3).
    """

    path: str
    size: int
    etag: str
    modified: datetime
    content_type: str | None = None


@runtime_checkable
class ObjectStore(Protocol):
    """A flat store of byte objects under ``/``-separated paths.

    Paths are relative keys such as ``jobs/invoice-import/definition.json``: not
    empty, no leading ``/``, no empty, ``.`` or ``..`` segments, no backslashes or
    control characters, at most 255 UTF-8 bytes a segment and 1024 in all, and no
    segment starting with ``.vecron-tmp-`` (reserved for temporary files). Any other
    path is refused with a :class:`ValueError` that names it, by every method, before
    any I/O; a store therefore never reads or writes outside its own space (the local
    store never leaves its root directory). A path is either an object or a folder of
    objects, never both: the local store (a file system) and MinIO refuse to put
    ``a/b`` while ``a`` is an object, or ``a`` while ``a/b`` is, with a
    :class:`ValueError`; other S3 servers accept it, so portable callers never do it
    (the paths of :mod:`vecron.paths` never do).

    Guarantees every implementation keeps:

    - **Atomic writes.** :meth:`put` and :meth:`put_file` replace the object whole: a
      concurrent reader gets the old object or the new one, never a part, and a put
      that fails or is cancelled before it completes leaves the old object (or no
      object) in place. (A cancellation that arrives after the new object was stored
      cannot undo it: a put is over once the store has it.)
    - **Bounded memory.** :meth:`put_file` and :meth:`get_file` stream: memory use does
      not grow with the object's size (a few 1 MiB buffers locally; on S3 one upload
      part of 16 MiB, which the SDK copies up to three times).
    - **Atomic downloads.** :meth:`get_file` writes a temporary file beside the
      destination and renames it into place, so the destination holds either its old
      content or the whole object; its parent folders are created.
    - **Idempotent deletes.** Deleting a missing object is not an error.
    - **Listings** are recursive, sorted by path (in code point order, which is UTF-8
      byte order, as S3 sorts keys), filtered by a plain string prefix (``a/`` does
      not match ``ab/x``; ``a`` matches both), and never show temporary files of
      in-flight writes.
    - **Never blocks the event loop.** Blocking I/O (file system calls, the
      synchronous MinIO SDK) runs in worker threads.
    - **Errors.** A missing object raises :class:`~vecron.errors.ObjectNotFound` from
      :meth:`get`, :meth:`get_file` and :meth:`stat`. A store that cannot be reached,
      or that refuses the credentials, raises
      :class:`~vecron.errors.BackendUnavailable` whose message names the store by
      :meth:`describe`. Secrets never appear in messages or reprs.
    - **Ownership.** :meth:`close` releases only what the store opened itself (an
      HTTP pool it created from a URL, not a client it was given).
    """

    async def put(
        self, path: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        """Store ``data`` at ``path``, atomically replacing any object there."""
        ...

    async def put_file(
        self,
        path: str,
        source: pathlib.Path,
        *,
        content_type: str = "application/octet-stream",
    ) -> None:
        """Store the content of the local file ``source`` at ``path``, streaming.

        Atomic like :meth:`put`. A missing or unreadable ``source`` raises the
        :class:`OSError` of opening it, and the object is left as it was.
        """
        ...

    async def get(self, path: str) -> bytes:
        """The whole object at ``path``; :class:`~vecron.errors.ObjectNotFound` if none."""
        ...

    async def get_file(self, path: str, destination: pathlib.Path) -> None:
        """Stream the object at ``path`` into the local file ``destination``.

        The destination is replaced atomically (temporary file + rename) and is left
        untouched when the object is missing (:class:`~vecron.errors.ObjectNotFound`)
        or the download fails.
        """
        ...

    async def stat(self, path: str) -> ObjectInfo:
        """Size, etag, time and content type of the object at ``path``."""
        ...

    async def exists(self, path: str) -> bool:
        """Whether an object is stored at ``path`` (a folder of objects is not one)."""
        ...

    async def delete(self, path: str) -> None:
        """Remove the object at ``path``; nothing happens when there is none."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose path starts with ``prefix``; return how many.

        The prefix must not be empty: emptying a whole store takes a deliberate loop.
        """
        ...

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose path starts with ``prefix``, recursively, sorted by path."""
        ...

    async def close(self) -> None:
        """Release what this store opened itself. Idempotent."""
        ...

    def describe(self) -> str:
        """Where the store is, for messages and logs, without credentials.

        For example ``s3://127.0.0.1:9000/vecron/prefix`` or ``file:///srv/vecron/objects``.
        """
        ...


def check_path(path: str) -> str:
    """``path`` if it is a valid object path (see :class:`ObjectStore`), else ValueError."""
    if not isinstance(path, str):
        raise TypeError(f"an object path must be a str, not {type(path).__name__}")
    if not path:
        raise ValueError("invalid object path '': it is empty")
    problem = _problem(path, partial_last=False)
    if problem:
        raise ValueError(f"invalid object path {path!r}: {problem}")
    return path


def check_prefix(prefix: str, *, allow_empty: bool = True) -> str:
    """``prefix`` if it can start object paths, else ValueError.

    Every segment but the last must be valid; the last may be empty (``jobs/``) or
    the start of a name (``jobs/inv``).
    """
    if not isinstance(prefix, str):
        raise TypeError(f"a prefix must be a str, not {type(prefix).__name__}")
    if not prefix:
        if allow_empty:
            return prefix
        raise ValueError("the prefix must not be empty")
    problem = _problem(prefix, partial_last=True)
    if problem:
        raise ValueError(f"invalid object path prefix {prefix!r}: {problem}")
    return prefix


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _problem(text: str, *, partial_last: bool) -> str | None:
    if text.startswith("/"):
        return "it must be relative (no leading '/')"
    if "\\" in text:
        return "it must not contain a backslash"
    if _CONTROL.search(text):
        return "it must not contain control characters"
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return f"it is longer than {MAX_PATH_BYTES} bytes"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode text"
    segments = text.split("/")
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if index == last and partial_last:
            if segment.startswith(TEMP_PREFIX):
                return f"names starting with {TEMP_PREFIX!r} are reserved"
            continue
        if not segment:
            return "it has an empty segment ('//' or a trailing '/')"
        if segment in (".", ".."):
            return f"it has a {segment!r} segment"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"a segment is longer than {MAX_SEGMENT_BYTES} bytes"
        if segment.startswith(TEMP_PREFIX):
            return f"names starting with {TEMP_PREFIX!r} are reserved"
    return None


def check_content_type(content_type: str) -> str:
    """``content_type`` if it can be sent as an HTTP header value, else ValueError."""
    if (
        not isinstance(content_type, str)
        or not content_type
        or len(content_type) > 255
        or not content_type.isascii()
        or any(ord(char) < 0x20 or ord(char) == 0x7F for char in content_type)
    ):
        raise ValueError(f"invalid content type {content_type!r}")
    return content_type


class OperationCancelled(Exception):
    """Raised inside a worker thread when the coroutine that started it was cancelled."""


async def run_cancellable(function: Callable[[threading.Event], T]) -> T:
    """Run ``function(cancelled)`` in a worker thread; on cancellation, set
    ``cancelled``, wait for the thread to finish (so it can clean up its temporary
    files) and re-raise. ``function`` checks the event between chunks and before it
    commits, raising :class:`OperationCancelled`."""
    cancelled = threading.Event()
    future = asyncio.ensure_future(asyncio.to_thread(function, cancelled))
    future.add_done_callback(_retrieve)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        cancelled.set()
        await asyncio.wait([future])
        raise


def _retrieve(future: asyncio.Future[Any]) -> None:
    # After a cancellation nobody awaits the thread's result; its OperationCancelled
    # (or any error) is expected and must not be reported as "never retrieved".
    if not future.cancelled():
        future.exception()


def raise_if_cancelled(cancelled: threading.Event | None) -> None:
    if cancelled is not None and cancelled.is_set():
        raise OperationCancelled


def write_atomically(
    destination: pathlib.Path,
    chunks: Iterable[bytes],
    *,
    temp_prefix: str,
    cancelled: threading.Event | None = None,
    before_commit: Callable[[int], None] | None = None,
) -> None:
    """Write ``chunks`` to a temporary file beside ``destination``, fsync it and
    rename it over ``destination``: readers see the old file or the new one.

    ``before_commit(fd)`` runs on the finished temporary file (to set attributes).
    On any failure or cancellation the temporary file is removed and ``destination``
    is untouched. Missing parent folders are created.
    """
    fd, temp = _create_temp(destination.parent, temp_prefix)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                raise_if_cancelled(cancelled)
                out.write(chunk)
            out.flush()
            if before_commit is not None:
                before_commit(out.fileno())
            os.fsync(out.fileno())
        raise_if_cancelled(cancelled)
        os.replace(temp, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_directory(destination.parent)


def _create_temp(folder: pathlib.Path, prefix: str) -> tuple[int, pathlib.Path]:
    # Not tempfile.mkstemp: that makes the file 0600 whatever the umask; the final
    # object should get the same mode as any file the process creates.
    for attempt in itertools.count():
        temp = folder / f"{prefix}{secrets.token_hex(8)}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        except FileNotFoundError:
            # The folder is missing, or a concurrent delete just pruned it as empty.
            if attempt >= 5:
                raise
            folder.mkdir(parents=True, exist_ok=True)
            continue
        return fd, temp
    raise AssertionError("unreachable")


def fsync_directory(folder: pathlib.Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_chunks(
    file: _Readable, cancelled: threading.Event | None = None, size: int = CHUNK_SIZE
) -> Iterable[bytes]:
    """The content of an open binary file, ``size`` bytes at a time."""
    while True:
        raise_if_cancelled(cancelled)
        chunk = file.read(size)
        if not chunk:
            return
        yield chunk


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
