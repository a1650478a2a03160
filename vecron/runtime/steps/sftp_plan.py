"""An ``sftp`` step's config rendered for one run, and what keeps its credentials out.

Everything is rendered before anything can fail, so that every secret is known to the
redactor by the time a message is written. The redactor masks the run's secrets and
the credentials themselves (the password, the passphrase, the key and each of its
lines), even when the config spells them out instead of referring to secrets.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vecron.errors import StepFailed
from vecron.runtime.steps.base import StepRun
from vecron.runtime.steps.sftp_keys import Credentials
from vecron.runtime.steps.sftp_session import Endpoint
from vecron.runtime.values import MASK
from vecron.spec.models import SftpConfig, SftpKeyAuth

MAX_SOURCES = 10_000
"""An upload refuses to send more files than this in one step."""
_MIN_CREDENTIAL_CHARS = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class SftpPlan:
    """A config rendered for one run."""

    endpoint: Endpoint
    credentials: Credentials
    remote_path: str
    host_key: str | None
    known_hosts_path: str | None
    redact: Callable[[str], str]
    secrets: tuple[str, ...]  # the credentials and secrets this run uses, to mask in logs

    @property
    def label(self) -> str:
        """``sftp://user@host:port`` for log lines, with any secret in it masked."""
        return self.redact(self.endpoint.label)


def render_plan(config: SftpConfig, run: StepRun) -> SftpPlan:
    """Render ``config`` for ``run``; StepFailed for a host or path that cannot work."""
    values = run.values
    auth = config.auth
    host = values.render_text(config.host)
    username = values.render_text(auth.username)
    credentials: list[str] = []
    if isinstance(auth, SftpKeyAuth):
        key = values.render_text(auth.private_key) if auth.private_key is not None else None
        key_path = (
            values.render_text(auth.private_key_path) if auth.private_key_path is not None else None
        )
        passphrase = values.render_text(auth.passphrase) if auth.passphrase is not None else None
        secret = Credentials(private_key=key, private_key_path=key_path, passphrase=passphrase)
        credentials += [key or "", passphrase or ""]
        if key:
            credentials += [line.strip() for line in key.splitlines()]
    else:
        password = values.render_text(auth.password)
        secret = Credentials(password=password)
        credentials.append(password)
    remote_path = values.render_text(config.remote_path)
    host_key = values.render_text(config.host_key) if config.host_key is not None else None
    known_hosts = (
        values.render_text(config.known_hosts_path) if config.known_hosts_path is not None else None
    )
    needles = sorted(
        {c for c in credentials if len(c) >= _MIN_CREDENTIAL_CHARS and not c.startswith("-----")},
        key=len,
        reverse=True,
    )

    def redact(text: str) -> str:
        text = values.scrub(text)
        for needle in needles:
            text = text.replace(needle, MASK)
        return text

    if not host or any(char.isspace() or char in "/@" for char in host):
        raise StepFailed(f"sftp: invalid host {redact(host)!r}")
    if not remote_path:
        raise StepFailed("sftp: remote_path is empty")
    endpoint = Endpoint(
        host=host.removeprefix("[").removesuffix("]"),
        port=config.port,
        username=username,
        timeout_seconds=config.timeout_seconds,
    )
    return SftpPlan(
        endpoint=endpoint,
        credentials=secret,
        remote_path=remote_path,
        host_key=host_key,
        known_hosts_path=known_hosts,
        redact=redact,
        secrets=(*needles, *values.secrets_used),
    )


def upload_sources(value: Any) -> list[tuple[str, str]]:
    """``(object path, file name)`` for each file ``source_path`` rendered to."""
    items = value if isinstance(value, list) else [value]
    found: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("files"), list):
            found += upload_sources(item["files"])
            continue
        path = item.get("path") if isinstance(item, dict) else item
        if not isinstance(path, str) or not path:
            raise StepFailed(
                "source_path must render to an object path, a file entry {path, …}, an "
                f"output with files, or a list of these; got {type(item).__name__}"
            )
        name = item.get("filename") if isinstance(item, dict) else None
        found.append((path, name if isinstance(name, str) and name else posixpath.basename(path)))
    if not found:
        raise StepFailed("source_path names no file")
    if len(found) > MAX_SOURCES:
        raise StepFailed(f"source_path names more than {MAX_SOURCES} files")
    return found
