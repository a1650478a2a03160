"""The ``sftp`` step: download files into the object store, or upload from it, over SFTP.

Config (DESIGN.md, "Step configs and outputs"; docs/sftp.md for the whole story):

- ``host``, ``port``, ``auth`` (password, or a private key as text or a path, with an
  optional passphrase), ``remote_path``, ``source_path``, ``host_key`` and
  ``known_hosts_path`` are rendered at run time; credentials usually are
  ``${secret:…}``. A password, passphrase or key never reaches the output, the logs or
  an error message (they are masked like secrets even when written literally).
- Host keys are checked before any credential is sent
  (:mod:`~vecron.runtime.steps.sftp_hostkeys`); ``verify_host_key: false`` turns that
  off and logs a warning on every run.
- ``timeout_seconds`` bounds connecting, the SSH handshake and authentication, and
  any single wait for the server during a transfer (a stalled transfer fails after it);
  the whole step is bounded by the step's own ``timeout_seconds``, as for every step.

Download: the files ``remote_path`` names (one file, a directory's files, or a wildcard
in the last segment; ``recursive`` walks subdirectories) are streamed, one at a time,
into a temporary file and stored (while the next one downloads) at
``jobs/{job_id}/executions/{execution_id}/output/{relative path}``. No match fails the
step unless ``on_no_match: succeed``. A failed or cancelled step deletes the objects it
already stored and never leaves a partial one.

Upload: ``source_path`` renders to an object path, a file entry of an earlier step's
output (``{path, …}``), a whole output with ``files``, or a list of these. Each file is
fetched from the store (the next one while the previous uploads) and goes to
``remote_path`` (a directory when it ends in ``/``, is one, or several files go),
atomically, through a temporary name (:mod:`~vecron.runtime.steps.sftp_transfer`).
With ``overwrite: false`` an existing target fails the step before anything is sent.

Output: ``{files: [{path, filename, size, remote_path}], file_count, remote_path}``,
where ``path`` is the object path and ``size`` is in bytes.

Circuit breaker: with one (:mod:`vecron.backends.breaker`), a step first asks the
breaker of its target (``sftp://host:port``) and fails fast with
:class:`~vecron.errors.CircuitOpen`, without connecting, while it is open. A failure to
connect (DNS, refused, no answer within ``timeout_seconds``, no SSH banner, a broken
key exchange) counts as the target's failure; once the server spoke SSH the step is
the target's success, whatever follows (a refused login, a host key mismatch, a
missing file, a transfer that breaks). An error before connecting (a private key or
``known_hosts`` file that cannot be read, a missing upload source) counts neither way.

paramiko blocks, so every network call runs on this executor's own thread pool; a
cancelled step stops its thread at the next chunk (or, after
:data:`CANCEL_GRACE_SECONDS`, by closing the connection) before ``run`` returns.
"""

from __future__ import annotations

import asyncio
import posixpath
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import paramiko

from vecron.backends.breaker import CircuitBreaker, guarded, network_target
from vecron.backends.objectstore.base import OperationCancelled
from vecron.errors import CircuitOpen, ObjectNotFound, SpecError, StepFailed, VecronError
from vecron.logs import register_secrets
from vecron.paths import output_file_path
from vecron.runtime.steps.base import StepRun
from vecron.runtime.steps.sftp_plan import SftpPlan, render_plan, upload_sources
from vecron.runtime.steps.sftp_session import Abort, Connection, Endpoint, open_connection
from vecron.runtime.steps.sftp_transfer import (
    download_file,
    find_files,
    refuse_overwrite,
    stat_or_none,
    upload_file,
    upload_targets,
)
from vecron.spec.models import SftpConfig, SftpDownloadConfig, SftpUploadConfig

T = TypeVar("T")

THREADS = 32
CANCEL_GRACE_SECONDS = 2.0
"""How long a cancelled transfer may take to stop by itself before its connection is
closed under it (which may leave an upload's temporary file on the server)."""


class SftpStepExecutor:
    """Runs ``sftp`` steps; one connection per run, on a thread pool of its own.

    ``work_dir`` is where downloads and uploads are staged between the server and the
    object store (the system's temporary folder when None). ``breaker`` guards every
    target (none: no breaker).
    """

    step_type: ClassVar[str] = "sftp"

    def __init__(
        self,
        *,
        max_threads: int = THREADS,
        work_dir: Path | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._breaker = breaker
        self._max_threads = max_threads
        self._work_dir = work_dir
        self._threads: ThreadPoolExecutor | None = None
        self._aborts: set[Abort] = set()

    async def run(self, config: SftpConfig, run: StepRun) -> dict[str, Any]:
        plan = render_plan(config, run)
        register_secrets(plan.secrets)  # paramiko's log lines, and ours, never show them
        if not config.verify_host_key:
            run.log.warning(
                "sftp %s: verify_host_key is false: the server's identity is not checked, "
                "so whoever answers at this address gets the credentials",
                plan.label,
            )
        abort = Abort()
        self._aborts.add(abort)
        work = Path(
            await asyncio.to_thread(tempfile.mkdtemp, prefix="vecron-sftp-", dir=self._work_dir)
        )
        target = network_target("sftp", plan.endpoint.host, plan.endpoint.port)
        try:
            async with guarded(self._breaker, target) as guard:
                try:
                    if isinstance(config, SftpDownloadConfig):
                        return await self._download(config, plan, run, abort, work)
                    return await self._upload(config, plan, run, abort, work)
                except Exception:
                    if not abort.dialed:  # a key, a known_hosts file, a missing source
                        guard.unreached()
                    elif not abort.answered:
                        guard.failed()
                    raise
        except CircuitOpen:
            raise
        except StepFailed as exc:
            raise StepFailed(plan.redact(str(exc)), output=exc.output) from None
        except VecronError:  # the object store's own errors, a missing reference
            raise
        except OperationCancelled:  # close() stopped the executor under this run
            raise StepFailed(f"{plan.label}: stopped: the worker is shutting down") from None
        except (OSError, EOFError, ValueError, RuntimeError, paramiko.SSHException) as exc:
            # a failure nobody named: still a step error, still without credentials
            cause = plan.redact(str(exc).split("\n")[0][:200]) or type(exc).__name__
            raise StepFailed(f"{plan.label}: {type(exc).__name__}: {cause}") from None
        finally:
            self._aborts.discard(abort)
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def close(self) -> None:
        for abort in list(self._aborts):
            abort.close_connection()
        threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=False, cancel_futures=True)

    # --- download ------------------------------------------------------------------

    async def _download(
        self, config: SftpDownloadConfig, plan: SftpPlan, run: StepRun, abort: Abort, work: Path
    ) -> dict[str, Any]:
        endpoint, remote_path = plan.endpoint, plan.remote_path
        started = time.monotonic()
        stored: list[str] = []
        storing: asyncio.Task[None] | None = None
        conn = await self._connect(config, plan, run, abort)
        try:
            files = await self._call(
                abort,
                partial(
                    find_files, conn, endpoint, remote_path, recursive=config.recursive, abort=abort
                ),
            )
            if not files:
                if config.on_no_match == "fail":
                    raise StepFailed(
                        f"{endpoint.label}: no file matches {remote_path} "
                        "(on_no_match: succeed accepts zero files)"
                    )
                run.log.info("sftp %s: no file matches %s", plan.label, plan.redact(remote_path))
            entries: list[dict[str, Any]] = []
            for index, file in enumerate(files):
                try:
                    object_path = output_file_path(run.job_id, run.execution_id, file.relative)
                except SpecError as exc:
                    raise StepFailed(
                        f"{endpoint.label}: {file.path} cannot be stored ({exc})"
                    ) from None
                local = work / f"download-{index}"
                size = await self._call(
                    abort, partial(download_file, conn, endpoint, file, local, abort)
                )
                if storing is not None:
                    await storing  # one file stored while the next one downloads
                stored.append(object_path)  # before the put: a late cancel is cleaned up too
                storing = asyncio.create_task(_store(run, object_path, local, plan, file.path))
                entries.append(
                    {
                        "path": object_path,
                        "filename": posixpath.basename(file.relative),
                        "size": size,
                        "remote_path": file.path,
                    }
                )
            if storing is not None:
                await storing
        except BaseException:
            if storing is not None:
                storing.cancel()
                await asyncio.wait([storing])
            await _forget(run, stored)
            raise
        finally:
            await asyncio.to_thread(conn.close)
        _log_done(run, "download", plan, entries=entries, started=started)
        return {"files": entries, "file_count": len(entries), "remote_path": remote_path}

    # --- upload --------------------------------------------------------------------

    async def _upload(
        self, config: SftpUploadConfig, plan: SftpPlan, run: StepRun, abort: Abort, work: Path
    ) -> dict[str, Any]:
        endpoint, remote_path = plan.endpoint, plan.remote_path
        started = time.monotonic()
        sources = upload_sources(run.values.render(config.source_path))
        for path, _ in sources:  # every source exists before anything is sent
            try:
                await run.objects.stat(path)
            except ObjectNotFound:
                raise StepFailed(f"source_path: no object {path!r} in the object store") from None
            except ValueError as exc:
                raise StepFailed(f"source_path: {exc}") from None
        fetching: asyncio.Task[Path] | None = None
        conn = await self._connect(config, plan, run, abort)
        try:
            names = [name for _, name in sources]
            targets = await self._call(
                abort,
                partial(
                    upload_targets,
                    conn,
                    endpoint,
                    remote_path,
                    names,
                    create_directories=config.create_directories,
                ),
            )
            if not config.overwrite:
                await self._call(abort, partial(_refuse_existing, conn, endpoint, targets))
            entries: list[dict[str, Any]] = []
            fetching = asyncio.create_task(_fetch(run, sources[0][0], work / "upload-0"))
            for index, ((path, name), target) in enumerate(zip(sources, targets, strict=True)):
                local = await fetching
                if index + 1 < len(sources):  # the next file is fetched during this upload
                    following = work / f"upload-{index + 1}"
                    fetching = asyncio.create_task(_fetch(run, sources[index + 1][0], following))
                size = await self._call(
                    abort,
                    partial(
                        upload_file,
                        conn,
                        endpoint,
                        local,
                        target,
                        overwrite=config.overwrite,
                        abort=abort,
                    ),
                )
                await asyncio.to_thread(local.unlink)
                entries.append(
                    {"path": path, "filename": name, "size": size, "remote_path": target}
                )
        finally:
            if fetching is not None and not fetching.done():
                fetching.cancel()
                await asyncio.wait([fetching])
            await asyncio.to_thread(conn.close)
        _log_done(run, "upload", plan, entries=entries, started=started)
        return {"files": entries, "file_count": len(entries), "remote_path": remote_path}

    # --- threads -------------------------------------------------------------------

    async def _connect(
        self, config: SftpConfig, plan: SftpPlan, run: StepRun, abort: Abort
    ) -> Connection:
        conn = await self._call(
            abort,
            partial(
                open_connection,
                plan.endpoint,
                plan.credentials,
                host_key=plan.host_key,
                known_hosts_path=plan.known_hosts_path,
                verify_host_key=config.verify_host_key,
                abort=abort,
            ),
        )
        run.log.info(
            "sftp %s: connected (host key %s, %d KiB requests)",
            plan.label,
            conn.presented_key,
            conn.read_size // 1024,
        )
        return conn

    async def _call(self, abort: Abort, function: Callable[[], T]) -> T:
        """``function()`` on the thread pool; when cancelled, stop it before re-raising."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self._max_threads, thread_name_prefix="vecron-sftp")
        future = asyncio.get_running_loop().run_in_executor(self._threads, function)
        future.add_done_callback(_retrieve)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            abort.cancel()
            _, pending = await asyncio.wait([future], timeout=CANCEL_GRACE_SECONDS)
            if pending:
                abort.close_connection()
                await asyncio.wait([future])
            raise


def _refuse_existing(conn: Connection, endpoint: Endpoint, targets: list[str]) -> None:
    for target in targets:
        if stat_or_none(conn, endpoint, target) is not None:
            raise refuse_overwrite(endpoint, target)


async def _store(run: StepRun, path: str, local: Path, plan: SftpPlan, remote: str) -> None:
    try:
        await run.objects.put_file(path, local)
    except ValueError as exc:  # a remote name the object store cannot hold
        raise StepFailed(f"{plan.endpoint.label}: {remote} cannot be stored ({exc})") from None
    await asyncio.to_thread(local.unlink)


async def _fetch(run: StepRun, path: str, local: Path) -> Path:
    try:
        await run.objects.get_file(path, local)
    except ObjectNotFound:
        raise StepFailed(f"source_path: {path!r} was deleted meanwhile") from None
    return local


async def _forget(run: StepRun, stored: list[str]) -> None:
    """Delete what a failed download stored; its step's output will not list it."""
    for path in stored:
        try:
            await run.objects.delete(path)
        except Exception as exc:  # the step's own error matters more
            run.log.warning("sftp: could not delete %s after a failure: %s", path, exc)


def _log_done(
    run: StepRun,
    operation: str,
    plan: SftpPlan,
    *,
    entries: list[dict[str, Any]],
    started: float,
) -> None:
    seconds = time.monotonic() - started
    total = sum(entry["size"] for entry in entries)
    path = plan.redact(plan.remote_path)
    run.log.info(
        "sftp %s %s%s: %d files, %d bytes in %.2f s (%.1f MB/s)",
        operation,
        plan.label,
        path if path.startswith("/") else f"/{path}",
        len(entries),
        total,
        seconds,
        total / 1e6 / seconds if seconds > 0 else 0.0,
    )


def _retrieve(future: asyncio.Future[Any]) -> None:
    # After a cancellation nobody awaits the thread's result; its error is expected.
    if not future.cancelled():
        future.exception()
