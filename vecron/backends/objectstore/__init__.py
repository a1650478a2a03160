"""The object store: definitions, Job Contexts and files, by path.

:class:`ObjectStore` is the contract (``base.py``); :func:`open_object_store` picks the
implementation by URL scheme:

- ``file:///abs/dir`` → :class:`LocalObjectStore`, a directory (the embedded default);
- ``s3://KEY:SECRET@host:port/bucket[/prefix][?secure=false&region=…]`` (or
  ``minio://…``) → :class:`MinioObjectStore`, S3 through the MinIO SDK.

The MinIO SDK takes a quarter of a second to import, so it is loaded only when an
S3 store is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from vecron.backends.objectstore.base import ObjectInfo, ObjectStore
from vecron.backends.objectstore.local import LocalObjectStore
from vecron.errors import ConfigurationError

if TYPE_CHECKING:
    from vecron.backends.objectstore.minio import MinioObjectStore

__all__ = [
    "LocalObjectStore",
    "MinioObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "open_object_store",
]


def open_object_store(url: str) -> ObjectStore:
    """The object store at ``url``; it owns what it opens, so close it when done.

    Raises :class:`~vecron.errors.ConfigurationError` for an unknown scheme or a
    malformed URL (the message never repeats credentials). Nothing is contacted
    yet: a missing S3 bucket is created, or reported, on first use.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return LocalObjectStore.from_url(url)
    if scheme in ("s3", "minio"):
        from vecron.backends.objectstore.minio import MinioObjectStore

        return MinioObjectStore.from_url(url)
    raise ConfigurationError(
        f"unsupported object store URL scheme {scheme or '(none)'!r}: "
        "use file:///absolute/dir or s3://KEY:SECRET@host:port/bucket"
    )


def __getattr__(name: str) -> object:
    if name == "MinioObjectStore":
        from vecron.backends.objectstore.minio import MinioObjectStore

        return MinioObjectStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
