"""Where the desired state comes from: a Git repository at one commit, or a directory.

A source produces a :class:`Snapshot`: every relevant file of the job repository
with its Git blob id, a content hash that costs nothing for Git and that a directory
computes the same way, so both kinds compare equal for equal bytes. Contents are read
only for the files a sync needs, in one batch.

Git is driven through GitPython's command wrapper: ``ls-tree`` for the listing and a
persistent ``cat-file --batch`` for contents, since walking trees object by object is
an order of magnitude slower. Remote repositories are cloned once (bare) into a cache
folder and fetched afterwards. Credentials come from the environment:
``VECRON_GIT_TOKEN`` (HTTPS, with ``VECRON_GIT_USERNAME``, default
``x-access-token``) or ``VECRON_GIT_SSH_KEY`` (a private key file for SSH).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import git

from vecron.errors import SourceError
from vecron.spec.layout import Kind, classify

_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceEntry:
    """One file of the job repository: its path relative to the repository's root."""

    path: str
    kind: Kind
    blob_id: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The job repository at one point: its files, and how to read them."""

    description: str
    commit: str | None
    entries: Mapping[str, SourceEntry]
    reader: _Reader = field(repr=False)

    def read(self, paths: Sequence[str]) -> dict[str, bytes]:
        """The contents of ``paths`` (which must be entries), read in one batch."""
        return self.reader.read([self.entries[p] for p in paths])

    def of_kind(self, kind: Kind) -> list[SourceEntry]:
        return [entry for entry in self.entries.values() if entry.kind == kind]


class _Reader(Protocol):
    def read(self, entries: Sequence[SourceEntry]) -> dict[str, bytes]: ...


class Source(Protocol):
    """A job repository that vecron syncs from.

    ``snapshot`` returns the repository's current state; it raises
    :class:`SourceError` with one clear line when the repository, the ref or the path
    cannot be read. ``describe`` names the source without credentials.
    """

    def snapshot(self) -> Snapshot: ...

    def describe(self) -> str: ...


def git_blob_id(data: bytes) -> str:
    """Git's object id for a blob with these bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def redact_url(url: str) -> str:
    """``url`` without a password or token in it."""
    parts = urlsplit(url)
    if parts.password is None and not (parts.username and parts.scheme.startswith("http")):
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


# --- a plain directory ---------------------------------------------------------------


class DirectorySource:
    """A job repository as files in a directory (development, ``vecron up``)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    def describe(self) -> str:
        return str(self.root)

    def snapshot(self) -> Snapshot:
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: not a directory")
        entries: dict[str, SourceEntry] = {}
        contents: dict[str, bytes] = {}
        for current, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                absolute = Path(current, name)
                relative = absolute.relative_to(self.root).as_posix()
                kind = classify(relative)
                if kind is None or not absolute.is_file():
                    continue
                data = absolute.read_bytes()
                contents[relative] = data
                entries[relative] = SourceEntry(
                    path=relative, kind=kind, blob_id=git_blob_id(data), size=len(data)
                )
        return Snapshot(
            description=self.describe(),
            commit=None,
            entries=entries,
            reader=_MemoryReader(contents),
        )


@dataclass(frozen=True, slots=True)
class _MemoryReader:
    contents: Mapping[str, bytes]

    def read(self, entries: Sequence[SourceEntry]) -> dict[str, bytes]:
        return {entry.path: self.contents[entry.path] for entry in entries}


# --- Git --------------------------------------------------------------------------------


class GitSource:
    """A job repository in Git: ``url`` (remote URL or local path), ``ref``, ``path``.

    ``ref`` is a branch, a tag or a commit (default: the remote's HEAD); ``path`` is
    the job repository's folder inside the Git repository (default: its root).
    Remote repositories are cloned into ``cache_dir`` once and fetched afterwards;
    a local repository is read in place.
    """

    def __init__(
        self,
        url: str,
        *,
        ref: str | None = None,
        path: str | None = None,
        cache_dir: Path,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.ref = ref
        self.path = (path or "").strip("/")
        self.cache_dir = Path(cache_dir)
        self._env = dict(os.environ if environ is None else environ)
        self._repo: git.Repo | None = None

    def describe(self) -> str:
        where = redact_url(self.url)
        if self.ref:
            where += f"@{self.ref}"
        if self.path:
            where += f":{self.path}"
        return where

    def snapshot(self) -> Snapshot:
        repo = self._open()
        commit = self._resolve(repo)
        listing = self._ls_tree(repo, commit)
        if self.path and not listing:
            raise SourceError(f"{self.describe()}: no folder {self.path!r} at commit {commit[:12]}")
        entries: dict[str, SourceEntry] = {}
        for relative, blob_id, size in listing:
            kind = classify(relative)
            if kind is not None:
                entries[relative] = SourceEntry(
                    path=relative, kind=kind, blob_id=blob_id, size=size
                )
        return Snapshot(
            description=self.describe(),
            commit=commit,
            entries=entries,
            reader=_GitReader(repo),
        )

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    # -- helpers ----------------------------------------------------------------------

    def _git_env(self) -> dict[str, str]:
        env: dict[str, str] = {"GIT_TERMINAL_PROMPT": "0"}
        token = self._env.get("VECRON_GIT_TOKEN")
        if token:
            user = self._env.get("VECRON_GIT_USERNAME", "x-access-token")
            basic = base64.b64encode(f"{user}:{token}".encode()).decode()
            # A header, not the URL: the token never lands in .git/config or messages.
            env.update(
                {
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": "http.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
                }
            )
        key = self._env.get("VECRON_GIT_SSH_KEY")
        if key:
            env["GIT_SSH_COMMAND"] = f"ssh -i {shlex.quote(key)} -o IdentitiesOnly=yes"
        return env

    def _is_local(self) -> bool:
        return "://" not in self.url and not re.match(r"^[\w.-]+@[\w.-]+:", self.url)

    def _open(self) -> git.Repo:
        if self._repo is not None:
            self._fetch(self._repo)
            return self._repo
        try:
            if self._is_local():
                local = Path(self.url).expanduser()
                if not local.exists():
                    raise SourceError(f"{self.url}: no such repository")
                self._repo = git.Repo(local, search_parent_directories=False)
                return self._repo
            target = self.cache_dir / hashlib.sha256(redact_url(self.url).encode()).hexdigest()[:16]
            if (target / "HEAD").exists():
                self._repo = git.Repo(target)
                self._fetch(self._repo)
            else:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".partial")
                if partial.exists():
                    _remove_tree(partial)
                git.Repo.clone_from(self.url, partial, bare=True, env=self._git_env())
                partial.rename(target)  # a half clone never looks like a cache
                self._repo = git.Repo(target)
            return self._repo
        except git.GitCommandError as exc:
            raise SourceError(f"{self.describe()}: {_git_message(exc)}") from None
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise SourceError(f"{self.describe()}: not a Git repository") from None

    def _fetch(self, repo: git.Repo) -> None:
        if self._is_local():
            return
        try:
            with repo.git.custom_environment(**self._git_env()):
                repo.git.fetch(
                    "--prune",
                    "--force",
                    "origin",
                    "+refs/heads/*:refs/heads/*",
                    "+refs/tags/*:refs/tags/*",
                )
        except git.GitCommandError as exc:
            raise SourceError(f"{self.describe()}: fetch failed: {_git_message(exc)}") from None

    def _resolve(self, repo: git.Repo) -> str:
        ref = self.ref or "HEAD"
        try:
            sha = str(repo.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}"))
        except git.GitCommandError:
            sha = ""
        if not _SHA.match(sha):
            branches = ", ".join(sorted(h.name for h in repo.heads)[:10]) or "none"
            raise SourceError(
                f"{self.describe()}: ref {ref!r} does not exist (branches: {branches})"
            )
        return sha

    def _ls_tree(self, repo: git.Repo, commit: str) -> list[tuple[str, str, int]]:
        args = ["-r", "-z", "-l", "--full-tree", commit]
        if self.path:
            args += ["--", self.path + "/"]
        try:
            output = str(repo.git.ls_tree(*args, strip_newline_in_stdout=False))
        except git.GitCommandError as exc:
            raise SourceError(f"{self.describe()}: {_git_message(exc)}") from None
        prefix = self.path + "/" if self.path else ""
        listing: list[tuple[str, str, int]] = []
        for record in output.split("\0"):
            if not record:
                continue
            meta, _, name = record.partition("\t")
            mode, kind, blob_id, size = meta.split()
            if kind != "blob" or mode == "120000":  # symlinks are not followed
                continue
            listing.append((name[len(prefix) :], blob_id, int(size)))
        return listing


@dataclass(frozen=True, slots=True)
class _GitReader:
    repo: git.Repo

    def read(self, entries: Sequence[SourceEntry]) -> dict[str, bytes]:
        odb = self.repo.odb
        return {entry.path: odb.stream(bytes.fromhex(entry.blob_id)).read() for entry in entries}


def _git_message(exc: git.GitCommandError) -> str:
    stderr = str(exc.stderr or "").strip().strip("'").strip()
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = lines[-1] if lines else f"git exited with {exc.status}"
    return redact_url(text.removeprefix("stderr: ").removeprefix("fatal: "))


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def open_source(
    repo: str,
    *,
    ref: str | None = None,
    path: str | None = None,
    cache_dir: Path,
) -> Source:
    """The source for ``repo``: a Git URL, a local Git repository with ``ref``, or a folder.

    A local folder without ``ref`` is read as it is on disk (uncommitted changes
    included), which is what a developer and a pull request's CI want; ``path`` then
    selects a sub-folder.
    """
    if "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo) or ref is not None:
        return GitSource(repo, ref=ref, path=path, cache_dir=cache_dir)
    root = Path(repo).expanduser()
    if path:
        root = root / path
    return DirectorySource(root)
