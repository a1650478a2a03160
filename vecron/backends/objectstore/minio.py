"""The object store on S3 through the MinIO SDK: MinIO in production, any S3 server.

URL: ``s3://ACCESS_KEY:SECRET_KEY@host[:port]/bucket[/key/prefix][?options]``
(``minio://`` is an alias). Percent-encode a key or secret that holds ``/``, ``@``,
``:`` or ``%``. Options: ``secure`` (``true``, the default: HTTPS; ``false``: HTTP),
``region`` (asked from the server when absent) and ``create_bucket`` (``true``, the
default: create the bucket on first use). Objects of this store are the keys under
``key/prefix/``, so several stores can share a bucket.

The SDK is synchronous: every call runs in a worker thread. Uploads stream in parts
of 16 MiB (one part in memory at a time); a single PUT or a completed multipart
upload is what makes a put atomic on S3, and an upload that fails or is cancelled is
aborted.
"""

from __future__ import annotations

import asyncio
import builtins
import io
import math
import os
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TypeVar, cast
from urllib.parse import parse_qs, unquote, urlsplit

import certifi
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import check_bucket_name

from vecron.backends.objectstore.base import (
    CHUNK_SIZE,
    TEMP_PREFIX,
    ObjectInfo,
    check_content_type,
    check_path,
    check_prefix,
    raise_if_cancelled,
    run_cancellable,
    write_atomically,
)
from vecron.errors import BackendUnavailable, ConfigurationError, ObjectNotFound

T = TypeVar("T")

MIB = 1024 * 1024
DEFAULT_PART_SIZE = 16 * MIB
MIN_PART_SIZE = 5 * MIB  # S3's smallest part but the last
MAX_PARTS = 10_000  # S3's most parts in one upload
DEFAULT_CONTENT_TYPE = "application/octet-stream"
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 300.0
SCHEMES = ("s3", "minio")
_OPTIONS = ("secure", "region", "create_bucket")
# Codes by which S3 servers say "not with these credentials".
_REFUSED = frozenset(
    {
        "AccessDenied",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
    }
)
_SDK_ERRORS = (S3Error, ServerError, InvalidResponseError, urllib3.exceptions.HTTPError)


class MinioObjectStore:
    """Objects in one S3 bucket, under an optional key prefix.

    Give it a ready :class:`minio.Minio` client (it stays yours: :meth:`close` leaves
    it alone) or build one with :meth:`from_url` (then :meth:`close` closes its HTTP
    pool). ``endpoint`` (``host:port``) only names the store in messages.
    """

    def __init__(
        self,
        client: Minio,
        bucket: str,
        *,
        prefix: str = "",
        create_bucket: bool = True,
        endpoint: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        check_bucket_name(bucket, strict=True)
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes")
        prefix = prefix.strip("/")
        self._client = client
        self._bucket = bucket
        self._prefix = f"{check_path(prefix)}/" if prefix else ""
        self._create_bucket = create_bucket
        self._endpoint = endpoint
        self._part_size = part_size
        self._owned_http: urllib3.PoolManager | None = None
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> MinioObjectStore:
        """A store and its own client from an ``s3://`` or ``minio://`` URL."""
        shown = redact_url(url)
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ConfigurationError(f"not an s3:// object store URL: {shown}")
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            raise ConfigurationError(f"bad port in object store URL {shown}") from None
        if not host:
            raise ConfigurationError(f"object store URL {shown} has no host")
        if not parts.username or not parts.password:
            raise ConfigurationError(
                f"object store URL {shown} has no credentials: "
                "s3://ACCESS_KEY:SECRET_KEY@host:port/bucket"
            )
        bucket, _, prefix = parts.path.lstrip("/").partition("/")
        if not bucket:
            raise ConfigurationError(f"object store URL {shown} names no bucket")
        options = _options(parts.query, shown)
        secure = _flag(options, "secure", True, shown)
        create_bucket = _flag(options, "create_bucket", True, shown)
        region = options.get("region") or None
        endpoint = f"[{host}]" if ":" in host else host
        if port is not None:
            endpoint = f"{endpoint}:{port}"

        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(
                total=3, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)
            ),
        )
        try:
            client = Minio(
                endpoint,
                access_key=unquote(parts.username),
                secret_key=unquote(parts.password),
                secure=secure,
                region=region,
                http_client=http,
            )
            store = cls(
                client,
                bucket,
                prefix=unquote(prefix),
                create_bucket=create_bucket,
                endpoint=endpoint,
            )
        except ValueError as error:
            http.clear()
            raise ConfigurationError(f"object store URL {shown}: {error}") from None
        store._owned_http = http
        return store

    def describe(self) -> str:
        where = f"{self._endpoint}/{self._bucket}" if self._endpoint else self._bucket
        return f"s3://{where}/{self._prefix}".rstrip("/")

    def __repr__(self) -> str:
        return f"MinioObjectStore({self.describe()!r})"

    async def close(self) -> None:
        http, self._owned_http = self._owned_http, None
        if http is not None:
            http.clear()

    # -- writing ---------------------------------------------------------------------

    async def put(
        self, path: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> None:
        key = self._key(path)
        check_content_type(content_type)
        payload = data if isinstance(data, bytes) else bytes(data)

        def upload(cancelled: threading.Event) -> None:
            self._client.put_object(
                self._bucket,
                key,
                _reader(io.BytesIO(payload), cancelled),
                len(payload),
                content_type=content_type,
                part_size=self._part_size_for(len(payload)),
                num_parallel_uploads=1,
            )

        await run_cancellable(lambda cancelled: self._guarded(lambda: upload(cancelled), path))

    async def put_file(
        self, path: str, source: Path, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> None:
        key = self._key(path)
        check_content_type(content_type)

        def upload(cancelled: threading.Event) -> None:
            with open(source, "rb") as file:
                size_hint = os.fstat(file.fileno()).st_size
                # length -1: read until EOF, part by part, so memory stays at one part
                # whatever the file does meanwhile (grows, or is a pipe).
                self._client.put_object(
                    self._bucket,
                    key,
                    _reader(file, cancelled),
                    -1,
                    content_type=content_type,
                    part_size=self._part_size_for(size_hint),
                    num_parallel_uploads=1,
                )

        await run_cancellable(lambda cancelled: self._guarded(lambda: upload(cancelled), path))

    def _part_size_for(self, size: int) -> int:
        needed = math.ceil(size / (MAX_PARTS - 1) / MIB) * MIB  # room for a growing file
        return max(self._part_size, needed)

    # -- reading ---------------------------------------------------------------------

    async def get(self, path: str) -> bytes:
        key = self._key(path)

        def download() -> bytes:
            response = self._client.get_object(self._bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return await asyncio.to_thread(self._guarded, download, path)

    async def get_file(self, path: str, destination: Path) -> None:
        key = self._key(path)
        destination = Path(destination)

        def download(cancelled: threading.Event) -> None:
            response = self._client.get_object(self._bucket, key)
            try:
                write_atomically(
                    destination,
                    response.stream(CHUNK_SIZE),
                    temp_prefix=TEMP_PREFIX,
                    cancelled=cancelled,
                )
            finally:
                response.close()
                response.release_conn()

        await run_cancellable(lambda cancelled: self._guarded(lambda: download(cancelled), path))

    async def stat(self, path: str) -> ObjectInfo:
        key = self._key(path)

        def info() -> ObjectInfo:
            found = self._client.stat_object(self._bucket, key)
            return ObjectInfo(
                path=path,
                size=found.size or 0,
                etag=found.etag or "",
                modified=_utc(found.last_modified),
                content_type=found.content_type or DEFAULT_CONTENT_TYPE,
            )

        return await asyncio.to_thread(self._guarded, info, path)

    async def exists(self, path: str) -> bool:
        try:
            await self.stat(path)
        except ObjectNotFound:
            return False
        return True

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        check_prefix(prefix)
        found = await asyncio.to_thread(self._guarded, lambda: self._list_sorted(prefix))
        for info in found:
            yield info

    def _list_sorted(self, prefix: str) -> builtins.list[ObjectInfo]:
        # Not every server lists in key order (SeaweedFS walks folders depth first,
        # putting "a/x" before "a-b"), so the listing is collected and sorted here.
        found = []
        for item in self._client.list_objects(
            self._bucket, prefix=self._prefix + prefix, recursive=True
        ):
            name = item.object_name
            if not name or item.is_dir or not name.startswith(self._prefix):
                continue
            path = name[len(self._prefix) :]
            try:
                check_path(path)
            except ValueError:
                continue  # written by someone else under a name no object here can have
            found.append(
                ObjectInfo(
                    path=path,
                    size=item.size or 0,
                    etag=item.etag or "",
                    # Listings carry milliseconds, HEAD whole seconds: keep stat's.
                    modified=_utc(item.last_modified).replace(microsecond=0),
                )
            )
        found.sort(key=lambda info: info.path)
        return found

    # -- deleting --------------------------------------------------------------------

    async def delete(self, path: str) -> None:
        key = self._key(path)
        await asyncio.to_thread(
            self._guarded, lambda: self._client.remove_object(self._bucket, key), path
        )

    async def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix, allow_empty=False)

        def remove_all() -> int:
            keys = [self._prefix + info.path for info in self._list_sorted(prefix)]
            failed = builtins.list(
                self._client.remove_objects(self._bucket, (DeleteObject(key) for key in keys))
            )
            if failed:
                first = failed[0]
                raise BackendUnavailable(
                    f"object store {self.describe()} did not delete {len(failed)} of "
                    f"{len(keys)} objects under {prefix!r} (first: {first.name!r}, {first.code})"
                )
            return len(keys)

        return await asyncio.to_thread(self._guarded, remove_all)

    # -- plumbing --------------------------------------------------------------------

    def _key(self, path: str) -> str:
        return self._prefix + check_path(path)

    def _guarded(self, call: Callable[[], T], path: str | None = None) -> T:
        """Run one blocking SDK call (in a worker thread), with the bucket ensured and
        SDK errors turned into vecron's."""
        try:
            self._ensure_bucket()
            return call()
        except _SDK_ERRORS as error:
            mapped = self._translate(error, path)
            if mapped is error:
                raise
            raise mapped from (None if isinstance(mapped, ObjectNotFound) else error)

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return
            if not self._client.bucket_exists(self._bucket):
                if not self._create_bucket:
                    raise ConfigurationError(
                        f"bucket {self._bucket!r} does not exist at {self.describe()}"
                    )
                try:
                    self._client.make_bucket(self._bucket)
                except S3Error as error:  # made by someone else meanwhile
                    if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
            self._bucket_ready = True

    def _translate(self, error: Exception, path: str | None) -> Exception:
        where = self.describe()
        if isinstance(error, S3Error):
            if error.code in ("NoSuchKey", "NoSuchObject") and path is not None:
                return ObjectNotFound(path)
            # MinIO keeps objects as files, like the local store, and refuses alike.
            if error.code == "XMinioParentIsObject" and path is not None:
                return ValueError(f"cannot put {path!r}: a folder on its path is an object")
            if error.code == "XMinioObjectExistsAsDirectory" and path is not None:
                return ValueError(f"cannot put {path!r}: it is a folder of other objects")
            if error.code == "NoSuchBucket":
                self._bucket_ready = False  # deleted behind our back: recreate next time
                return BackendUnavailable(f"bucket {self._bucket!r} vanished from {where}")
            if error.code in _REFUSED:
                return BackendUnavailable(
                    f"object store {where} refused the credentials or access "
                    f"({error.code}: {error.message})"
                )
            return error
        if isinstance(error, ServerError):
            return BackendUnavailable(f"object store {where} failed: HTTP {error.status_code}")
        if isinstance(error, InvalidResponseError):
            return BackendUnavailable(f"object store {where} did not answer like S3: {error}")
        reason = getattr(error, "reason", None) or error
        return BackendUnavailable(f"object store {where} is unreachable: {reason}")


def redact_url(url: str) -> str:
    """``url`` without its credentials, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


class _CancellableReader(io.RawIOBase):
    """A source that stops an upload when its coroutine is cancelled."""

    def __init__(self, source: BinaryIO, cancelled: threading.Event) -> None:
        super().__init__()
        self._source = source
        self._cancelled = cancelled

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        raise_if_cancelled(self._cancelled)
        data = self._source.read(size)
        # Checked again after the read: a source that ends early because its writer
        # gave up must not be mistaken for a complete one.
        raise_if_cancelled(self._cancelled)
        return data


def _reader(source: BinaryIO, cancelled: threading.Event) -> BinaryIO:
    return cast(BinaryIO, _CancellableReader(source, cancelled))


def _options(query: str, shown: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigurationError(f"bad query in object store URL {shown}") from None
    unknown = sorted(set(parsed) - set(_OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"unknown option {unknown[0]!r} in object store URL {shown} "
            f"(known: {', '.join(_OPTIONS)})"
        )
    return {name: values[-1] for name, values in parsed.items()}


def _flag(options: dict[str, str], name: str, default: bool, shown: str) -> bool:
    value = options.get(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"option {name}={value!r} in {shown} is not true or false")


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.fromtimestamp(0, UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
