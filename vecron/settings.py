"""Settings: one object, built at the entry point and passed explicitly.

Every backend is chosen by a URL. With none set, vecron runs embedded under
``./.vecron/``: SQLite, a local object directory, an in-process queue and in-process
locks. Field names match the constructor parameters they feed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "VECRON_"
DEFAULT_HOME = ".vecron"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Where vecron keeps its state and how it reaches its backends.

    ``home`` is the folder of the embedded defaults (``./.vecron``). ``secret_key``
    encrypts secrets at rest; when it is not set, the embedded mode keeps a generated
    key in ``home/secret.key`` (see :mod:`vecron.crypto`). ``sync_secret``
    (``VECRON_SYNC_SECRET``) lets a Git host's push webhook, signed with it in GitHub's
    scheme, start a sync through ``POST /api/v1/sync`` without an API token.
    ``redact_pattern`` (``VECRON_REDACT_PATTERN``) is a regular expression of keys whose
    values ``vecron export`` redacts too, beyond the built-in sensitive fields.
    """

    home: Path = field(default_factory=lambda: Path(DEFAULT_HOME).resolve())
    database_url: str | None = None
    object_store_url: str | None = None
    queue_url: str | None = None
    redis_url: str | None = None
    secret_key: str | None = None
    repo: str | None = None
    repo_ref: str | None = None
    repo_path: str | None = None
    sync_secret: str | None = field(default=None, repr=False)
    redact_pattern: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``VECRON_*`` variables; keyword overrides win (CLI flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        home = env.get(f"{ENV_PREFIX}HOME")
        if home:
            values["home"] = Path(home).resolve()
        for name in (
            "database_url",
            "object_store_url",
            "queue_url",
            "redis_url",
            "secret_key",
            "repo",
            "repo_ref",
            "repo_path",
            "sync_secret",
            "redact_pattern",
        ):
            value = env.get(ENV_PREFIX + name.upper())
            if value:
                values[name] = value
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def effective_database_url(self) -> str:
        """The database URL, or the embedded SQLite file under ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'vecron.db'}"

    @property
    def effective_object_store_url(self) -> str:
        """The object store URL, or the embedded directory under ``home``."""
        return self.object_store_url or (self.home / "objects").as_uri()

    @property
    def effective_queue_url(self) -> str:
        return self.queue_url or "memory://"

    @property
    def embedded(self) -> bool:
        return not (self.database_url or self.object_store_url or self.queue_url or self.redis_url)
