"""The file operations of the ``sftp`` step on an open session: find, download, upload.

Everything here blocks and runs in the step's threads; each loop checks the
:class:`~vecron.runtime.steps.sftp_session.Abort` between chunks.

- :func:`find_files` turns ``remote_path`` into files: one file; every file in a
  directory; or the names matching a wildcard (``*``, ``?``, ``[…]``) in the last
  segment, where, as in a shell, a wildcard matches a leading dot only when the pattern
  starts with one. ``recursive`` walks subdirectories too (with a wildcard, not hidden
  ones; symbolic links to directories are not followed, links to files are). Sorted by
  path.
- :func:`download_file` streams a file into a local file with paramiko's prefetch:
  every read request goes out at once and the answers are consumed in order, so memory
  stays within the SSH window whatever the file's size.
- :func:`upload_file` writes ``.<name>.<random>.vecron-part`` beside the target with
  pipelined writes, checks its size, then renames it over the target: readers see the
  old file or the whole new one, never a part. ``overwrite: false`` uses the plain SFTP
  rename, which OpenSSH performs with ``link()`` and so never replaces a file, even one
  created meanwhile; ``overwrite: true`` uses ``posix-rename@openssh.com`` (an atomic
  replace), or removes and renames where a server lacks it. On failure or cancellation
  the temporary file is removed while the connection still works.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import posixpath
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import paramiko

from vecron.errors import StepFailed
from vecron.runtime.steps.sftp_session import (
    Abort,
    Connection,
    Endpoint,
    broken_connection,
)

WILDCARDS = frozenset("*?[")
MAX_FILES = 10_000
"""A download refuses to fetch more files than this in one step."""
TEMP_SUFFIX = ".vecron-part"


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteFile:
    """A file to download: its remote ``path``, its ``relative`` path under what
    ``remote_path`` named (``/``-separated; just the name outside recursive walks), and its
    ``size`` in bytes."""

    path: str
    relative: str
    size: int


def split_wildcard(remote_path: str) -> tuple[str, str | None]:
    """``(directory, pattern)`` when the last segment has a wildcard, else ``(path, None)``."""
    directory, name = posixpath.split(remote_path)
    if WILDCARDS & set(directory):
        raise StepFailed(
            f"remote_path {remote_path!r}: a wildcard may only appear in the last segment"
        )
    if WILDCARDS & set(name):
        return directory or ".", name
    return remote_path, None


def find_files(
    conn: Connection, endpoint: Endpoint, remote_path: str, *, recursive: bool, abort: Abort
) -> list[RemoteFile]:
    """The files ``remote_path`` names (see the module docstring); an empty list when a
    wildcard or a directory holds none. StepFailed when the path or directory is missing."""
    base, pattern = split_wildcard(remote_path)
    if pattern is None:
        attributes = _stat(conn, endpoint, base, "reading")
        if not stat.S_ISDIR(attributes.st_mode or 0):
            if not stat.S_ISREG(attributes.st_mode or 0):
                raise StepFailed(f"{endpoint.label}: {base} is not a regular file")
            name = posixpath.basename(base.rstrip("/")) or base
            return [RemoteFile(path=base, relative=name, size=attributes.st_size or 0)]
    found: list[RemoteFile] = []
    folders = [(base.rstrip("/") or "/", "")]
    while folders:
        folder, prefix = folders.pop()
        for entry in _listdir(conn, endpoint, folder, abort):
            name = entry.filename
            path = posixpath.join(folder, name)
            mode = entry.st_mode or 0
            if stat.S_ISDIR(mode):
                if recursive and not (pattern is not None and _hidden(name, pattern)):
                    folders.append((path, f"{prefix}{name}/"))
                continue
            if pattern is not None and not _matches(name, pattern):
                continue
            size = entry.st_size or 0
            if stat.S_ISLNK(mode):
                try:
                    target = conn.sftp.stat(path)
                except (OSError, EOFError, paramiko.SSHException) as exc:
                    if broken_connection(exc) or not isinstance(exc, OSError):
                        raise remote_error(conn, endpoint, exc, "reading", path) from None
                    continue  # a dangling link
                mode, size = target.st_mode or 0, target.st_size or 0
            if stat.S_ISREG(mode):
                found.append(RemoteFile(path=path, relative=prefix + name, size=size))
                if len(found) > MAX_FILES:
                    raise StepFailed(
                        f"{endpoint.label}: {remote_path} names more than {MAX_FILES} files; "
                        "narrow the wildcard"
                    )
    return sorted(found, key=lambda file: file.relative)


def _matches(name: str, pattern: str) -> bool:
    return not _hidden(name, pattern) and fnmatch.fnmatchcase(name, pattern)


def _hidden(name: str, pattern: str) -> bool:
    """A dot name that a pattern skips, as a shell glob does (and a recursive walk with
    a pattern does not enter such a directory)."""
    return name.startswith(".") and not pattern.startswith(".")


def _listdir(
    conn: Connection, endpoint: Endpoint, folder: str, abort: Abort
) -> list[paramiko.SFTPAttributes]:
    abort.check()
    try:
        return conn.sftp.listdir_attr(folder)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise remote_error(conn, endpoint, exc, "listing the directory", folder) from None


def _stat(conn: Connection, endpoint: Endpoint, path: str, doing: str) -> paramiko.SFTPAttributes:
    try:
        return conn.sftp.stat(path)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise remote_error(conn, endpoint, exc, doing, path) from None


def stat_or_none(conn: Connection, endpoint: Endpoint, path: str) -> paramiko.SFTPAttributes | None:
    try:
        return conn.sftp.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise remote_error(conn, endpoint, exc, "checking", path) from None
    except (EOFError, paramiko.SSHException) as exc:
        raise remote_error(conn, endpoint, exc, "checking", path) from None


def download_file(
    conn: Connection, endpoint: Endpoint, file: RemoteFile, destination: Path, abort: Abort
) -> int:
    """Stream ``file`` into ``destination`` (a new local file); return the bytes read.

    Reads the size the listing showed (a file that grows meanwhile is read up to it;
    one that shrank, up to its end), which spares a round trip per file for the end.
    Files larger than one request are prefetched. On any failure the connection is
    closed at once rather than drained of the outstanding read answers: the step
    fails anyway.
    """
    abort.check()
    try:
        remote = conn.sftp.open(file.path, "rb")
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise remote_error(conn, endpoint, exc, "reading", file.path) from None
    done = False
    written = 0
    try:
        remote.MAX_REQUEST_SIZE = conn.read_size
        if file.size > conn.read_size:
            _quiet_prefetch(remote)
            remote.prefetch(file.size)
        with destination.open("xb") as out:
            while written < file.size:
                abort.check()
                try:
                    chunk = remote.read(min(conn.read_size, file.size - written))
                except (OSError, EOFError, paramiko.SSHException) as exc:
                    raise remote_error(conn, endpoint, exc, "reading", file.path) from None
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise StepFailed(
                        f"{endpoint.label}: cannot write {file.path} to the worker's temporary "
                        f"folder ({exc.strerror or exc})"
                    ) from None
                written += len(chunk)
        done = True
    finally:
        if done:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                remote.close()
        else:
            conn.drop()
    return written


def _quiet_prefetch(remote: paramiko.SFTPFile) -> None:
    """Keep paramiko's prefetch thread from raising into the void (and the thread
    exception hook) when the connection drops while it still sends read requests: the
    reader gets the error anyway. No ``max_concurrent_requests`` either: with it, that
    thread polls forever after a disconnect; without it, it sends every request (a few
    dozen bytes each) at once and ends, while the SSH window bounds the data in flight."""
    send_requests = cast(Any, remote)._prefetch_thread

    def quietly(*args: Any) -> None:
        with contextlib.suppress(Exception):
            send_requests(*args)

    cast(Any, remote)._prefetch_thread = quietly


def upload_targets(
    conn: Connection,
    endpoint: Endpoint,
    remote_path: str,
    names: list[str],
    *,
    create_directories: bool,
) -> list[str]:
    """The remote file each of ``names`` goes to. ``remote_path`` is a directory when it
    ends in ``/``, when it is one on the server, or when there are several files."""
    base = remote_path.rstrip("/") or "/"
    into_directory = remote_path.endswith("/") or len(names) > 1
    if not into_directory:
        found = stat_or_none(conn, endpoint, base)
        into_directory = found is not None and stat.S_ISDIR(found.st_mode or 0)
    if into_directory:
        directory, targets = base, [posixpath.join(base, name) for name in names]
    else:
        directory, targets = posixpath.dirname(base) or ".", [base]
    if len(set(targets)) != len(targets):
        raise StepFailed(f"{endpoint.label}: two source files have the same name in {directory}")
    if create_directories:
        make_directories(conn, endpoint, directory)
        return targets
    found = stat_or_none(conn, endpoint, directory)
    if found is None:
        raise StepFailed(
            f"{endpoint.label}: remote directory {directory} does not exist "
            "(create_directories: true creates it)"
        )
    if not stat.S_ISDIR(found.st_mode or 0):
        raise StepFailed(f"{endpoint.label}: {directory} is not a directory")
    return targets


def make_directories(conn: Connection, endpoint: Endpoint, directory: str) -> None:
    """``mkdir -p directory`` on the server."""
    parts = [part for part in directory.split("/") if part and part != "."]
    current = "/" if directory.startswith("/") else ""
    for part in parts:
        current = posixpath.join(current, part) if current else part
        found = stat_or_none(conn, endpoint, current)
        if found is not None:
            if not stat.S_ISDIR(found.st_mode or 0):
                raise StepFailed(f"{endpoint.label}: {current} exists and is not a directory")
            continue
        try:
            conn.sftp.mkdir(current)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            again = stat_or_none(conn, endpoint, current)  # created meanwhile?
            if again is None or not stat.S_ISDIR(again.st_mode or 0):
                raise remote_error(conn, endpoint, exc, "creating the directory", current) from None


def upload_file(
    conn: Connection,
    endpoint: Endpoint,
    source: Path,
    target: str,
    *,
    overwrite: bool,
    abort: Abort,
) -> int:
    """Upload the local file ``source`` to ``target`` atomically; return its size."""
    directory, name = posixpath.split(target)
    temp = posixpath.join(directory, f".{name[:180]}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    abort.check()
    try:
        remote = conn.sftp.open(temp, "wb")
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise remote_error(conn, endpoint, exc, "writing to", directory) from None
    committed = False
    size = 0
    try:
        remote.MAX_REQUEST_SIZE = conn.write_size
        remote.set_pipelined(True)
        try:
            with source.open("rb") as local:
                while chunk := local.read(conn.write_size):
                    abort.check()
                    remote.write(chunk)
                    size += len(chunk)
            remote.close()  # raises the error of any pipelined write: all were stored
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise remote_error(conn, endpoint, exc, "writing", target) from None
        abort.check()
        _commit(conn, endpoint, temp, target, overwrite=overwrite)
        committed = True
        return size
    finally:
        if not committed and conn.transport.is_active():
            with contextlib.suppress(Exception):
                remote.close()
            with contextlib.suppress(Exception):
                conn.sftp.remove(temp)


def _commit(
    conn: Connection, endpoint: Endpoint, temp: str, target: str, *, overwrite: bool
) -> None:
    sftp = conn.sftp
    try:
        if not overwrite:
            sftp.rename(temp, target)  # link() + unlink(): never replaces a file
            return
        try:
            sftp.posix_rename(temp, target)
            return
        except OSError as exc:
            if "unsupported" not in str(exc).lower():
                raise
        if stat_or_none(conn, endpoint, target) is not None:
            sftp.remove(target)
        sftp.rename(temp, target)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        exists = not overwrite and not broken_connection(exc)
        if exists and stat_or_none(conn, endpoint, target) is not None:
            raise refuse_overwrite(endpoint, target) from None
        raise remote_error(conn, endpoint, exc, "renaming the upload to", target) from None


def refuse_overwrite(endpoint: Endpoint, target: str) -> StepFailed:
    return StepFailed(f"{endpoint.label}: {target} already exists and overwrite is false")


def remote_error(
    conn: Connection, endpoint: Endpoint, exc: BaseException, doing: str, path: str
) -> StepFailed:
    """A StepFailed for a failed remote operation: a missing path, a refusal, or a
    connection that broke (which is said so, with the timeout when it stalled). A broken
    or stalled connection is dropped: nothing more can be done on it."""
    if broken_connection(exc) or not conn.transport.is_active():
        conn.drop()
        if isinstance(exc, TimeoutError) or "timed out" in str(exc).lower():
            return StepFailed(
                f"{endpoint.label}: no answer for {endpoint.timeout_seconds:g} s "
                f"(timeout_seconds) while {doing} {path}"
            )
        detail = str(exc).split("\n")[0][:200] or type(exc).__name__
        return StepFailed(f"{endpoint.label}: the connection broke while {doing} {path} ({detail})")
    code = exc.errno if isinstance(exc, OSError) else None
    if code == errno.ENOENT:
        return StepFailed(f"{endpoint.label}: {path} does not exist")
    if code == errno.EACCES:
        return StepFailed(f"{endpoint.label}: permission denied {doing} {path}")
    detail = str(exc).split("\n")[0][:200] or type(exc).__name__
    return StepFailed(f"{endpoint.label}: {doing} {path} failed ({detail})")
