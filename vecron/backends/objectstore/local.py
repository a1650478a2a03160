"""The object store in a local directory: the embedded default, ``file:///abs/dir``.

An object ``a/b.json`` is the file ``<root>/a/b.json``, so the store can be read with
ordinary tools. Writes go to a temporary file in the same folder (``.vecron-tmp-…``),
are fsynced and renamed over the target (``os.replace``), so readers see the old file
or the new one. The content type is kept in the extended attribute
``user.vecron.content_type`` where the file system has them (else it is guessed from
the name). Folders left empty by deletes are removed. Symbolic links inside the root
are the operator's business: links to files are followed, linked folders are not
listed.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import itertools
import mimetypes
import os
import stat as stat_module
import sys
import threading
from collections.abc import AsyncIterator, Generator, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from vecron.backends.objectstore.base import (
    TEMP_PREFIX,
    ObjectInfo,
    check_content_type,
    check_path,
    check_prefix,
    read_chunks,
    run_cancellable,
    write_atomically,
)
from vecron.errors import BackendUnavailable, ConfigurationError, ObjectNotFound

CONTENT_TYPE_XATTR = "user.vecron.content_type"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_LIST_BATCH = 256


class LocalObjectStore:
    """Objects as files under ``root``; see the module docstring."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        # abspath, not resolve(): normalise the spelling without following links.
        self._root = Path(os.path.abspath(root))

    @classmethod
    def from_url(cls, url: str) -> LocalObjectStore:
        """``file:///abs/dir`` (percent-encoded, as :meth:`pathlib.Path.as_uri` writes)."""
        parts = urlsplit(url)
        if parts.scheme != "file":
            raise ConfigurationError(f"not a file:// URL: {url!r}")
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(
                f"object store URL {url!r} names a host; use file:///absolute/dir"
            )
        if parts.query or parts.fragment:
            raise ConfigurationError(f"object store URL {url!r} takes no query or fragment")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ConfigurationError(f"object store URL {url!r} needs an absolute path")
        return cls(path)

    @property
    def root(self) -> Path:
        return self._root

    def describe(self) -> str:
        return self._root.as_uri()

    def __repr__(self) -> str:
        return f"LocalObjectStore({self.describe()!r})"

    async def close(self) -> None:
        return None

    # -- writing ---------------------------------------------------------------------

    async def put(
        self, path: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> None:
        target = self._file(path)
        check_content_type(content_type)
        payload = data if isinstance(data, bytes) else bytes(data)

        def write(cancelled: threading.Event) -> None:
            self._write(path, target, (payload,), content_type, cancelled)

        await run_cancellable(write)

    async def put_file(
        self, path: str, source: Path, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> None:
        target = self._file(path)
        check_content_type(content_type)

        def write(cancelled: threading.Event) -> None:
            with open(source, "rb") as reader:
                self._write(path, target, read_chunks(reader, cancelled), content_type, cancelled)

        await run_cancellable(write)

    def _write(
        self,
        path: str,
        target: Path,
        chunks: Iterable[bytes],
        content_type: str,
        cancelled: threading.Event,
    ) -> None:
        self._make_room(path, target)
        try:
            write_atomically(
                target,
                chunks,
                temp_prefix=TEMP_PREFIX,
                cancelled=cancelled,
                before_commit=functools.partial(_write_content_type, content_type),
            )
        except (IsADirectoryError, NotADirectoryError, FileExistsError):
            # Someone stored ``path/…`` (or a parent of path) since _make_room looked.
            raise self._conflict(path, target) from None
        except PermissionError as error:
            raise BackendUnavailable(
                f"object store {self.describe()} refused to store {path!r}: {error.strerror}"
            ) from error

    def _make_room(self, path: str, target: Path) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (NotADirectoryError, FileExistsError):
            raise self._conflict(path, target) from None
        except PermissionError as error:
            raise BackendUnavailable(
                f"object store {self.describe()} refused to store {path!r}: {error.strerror}"
            ) from error
        if target.is_dir() and not target.is_symlink():
            # A folder left empty by a crash gives way; one holding objects does not.
            try:
                target.rmdir()
            except OSError:
                raise self._conflict(path, target) from None

    def _conflict(self, path: str, target: Path) -> Exception:
        if not self._root.is_dir():
            return BackendUnavailable(f"object store {self.describe()} is not a directory")
        if target.is_dir():
            return ValueError(f"cannot put {path!r}: it is a folder of other objects")
        return ValueError(f"cannot put {path!r}: a folder on its path is an object")

    # -- reading ---------------------------------------------------------------------

    async def get(self, path: str) -> bytes:
        target = self._file(path)

        def read() -> bytes:
            with self._open(path, target) as reader:
                return reader.read()

        return await asyncio.to_thread(read)

    async def get_file(self, path: str, destination: Path) -> None:
        target = self._file(path)
        destination = Path(destination)

        def copy(cancelled: threading.Event) -> None:
            with self._open(path, target) as reader:
                write_atomically(
                    destination,
                    read_chunks(reader, cancelled),
                    temp_prefix=TEMP_PREFIX,
                    cancelled=cancelled,
                )

        await run_cancellable(copy)

    def _open(self, path: str, target: Path) -> BinaryIO:
        try:
            return open(target, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(path) from None

    async def stat(self, path: str) -> ObjectInfo:
        target = self._file(path)

        def info() -> ObjectInfo:
            found = self._stat(target)
            if found is None:
                raise ObjectNotFound(path)
            return _info(path, target, found)

        return await asyncio.to_thread(info)

    async def exists(self, path: str) -> bool:
        target = self._file(path)
        return await asyncio.to_thread(lambda: self._stat(target) is not None)

    @staticmethod
    def _stat(target: Path) -> os.stat_result | None:
        try:
            found = os.stat(target)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return found if stat_module.S_ISREG(found.st_mode) else None

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        check_prefix(prefix)
        walker = self._walk(prefix)
        try:
            while True:
                batch = await asyncio.to_thread(_take, walker, _LIST_BATCH)
                for info in batch:
                    yield info
                if len(batch) < _LIST_BATCH:
                    return
        finally:
            walker.close()

    def _walk(self, prefix: str) -> Generator[ObjectInfo, None, None]:
        *folders, start = prefix.split("/")
        key_prefix = "".join(f"{folder}/" for folder in folders)
        yield from self._walk_folder(self._root.joinpath(*folders), key_prefix, start)

    def _walk_folder(self, folder: Path, key_prefix: str, start: str = "") -> Iterator[ObjectInfo]:
        try:
            with os.scandir(folder) as scan:
                found = [
                    entry
                    for entry in scan
                    if entry.name.startswith(start) and not entry.name.startswith(TEMP_PREFIX)
                ]
        except (FileNotFoundError, NotADirectoryError):
            return
        # Sorting folders as "name/" makes the walk yield keys in plain string order
        # ("a-b" < "a/x" < "a0"), which is what S3 listings do.
        entries: builtins.list[tuple[str, os.DirEntry[str], bool]] = []
        for entry in found:
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            entries.append((f"{entry.name}/" if is_folder else entry.name, entry, is_folder))
        entries.sort(key=lambda item: item[0])
        for _, entry, is_folder in entries:
            key = key_prefix + entry.name
            if is_folder:
                yield from self._walk_folder(Path(entry.path), f"{key}/")
                continue
            try:
                check_path(key)
                found_stat = entry.stat()
            except (ValueError, FileNotFoundError):
                continue  # a name no object can have, or deleted meanwhile
            if stat_module.S_ISREG(found_stat.st_mode):
                yield _info(key, Path(entry.path), found_stat)

    # -- deleting --------------------------------------------------------------------

    async def delete(self, path: str) -> None:
        target = self._file(path)

        def remove() -> None:
            try:
                os.unlink(target)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return
            self._prune(target.parent)

        await asyncio.to_thread(remove)

    async def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix, allow_empty=False)

        def remove_all() -> int:
            count = 0
            folders: set[Path] = set()
            for info in self._walk(prefix):
                target = self._file(info.path)
                try:
                    os.unlink(target)
                except FileNotFoundError:
                    continue
                count += 1
                folders.add(target.parent)
            for folder in sorted(folders, key=lambda item: len(item.parts), reverse=True):
                self._prune(folder)
            return count

        return await asyncio.to_thread(remove_all)

    def _prune(self, folder: Path) -> None:
        """Remove ``folder`` and its parents while they are empty, up to the root."""
        while folder != self._root and self._root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    # -- paths -----------------------------------------------------------------------

    def _file(self, path: str) -> Path:
        # check_path refuses "..", ".", empty segments, absolute paths and
        # backslashes, so the joined path cannot leave the root.
        return self._root.joinpath(*check_path(path).split("/"))


def _take(iterator: Iterator[ObjectInfo], count: int) -> builtins.list[ObjectInfo]:
    return builtins.list(itertools.islice(iterator, count))


def _info(path: str, file: Path, found: os.stat_result) -> ObjectInfo:
    seconds, nanoseconds = divmod(found.st_mtime_ns, 1_000_000_000)
    modified = datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanoseconds // 1000)
    return ObjectInfo(
        path=path,
        size=found.st_size,
        # A new inode for every put (temp file + rename), so the tag changes with it.
        etag=f"{found.st_ino:x}-{found.st_mtime_ns:x}-{found.st_size:x}",
        modified=modified,
        content_type=_read_content_type(file, path),
    )


def _write_content_type(content_type: str, fd: int) -> None:
    if sys.platform == "linux":
        with contextlib.suppress(OSError):  # no user xattrs here: guessed on read
            os.setxattr(fd, CONTENT_TYPE_XATTR, content_type.encode("ascii"))


def _read_content_type(file: Path, path: str) -> str:
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            return os.getxattr(file, CONTENT_TYPE_XATTR).decode("ascii", "replace")
    return mimetypes.guess_type(path, strict=False)[0] or DEFAULT_CONTENT_TYPE
