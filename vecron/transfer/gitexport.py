"""Export to Git: redacted job files committed on a branch of the job repository.

The repository is cloned into a temporary folder (credentials as for syncs:
``VECRON_GIT_TOKEN`` or ``VECRON_GIT_SSH_KEY``, never in a URL or ``.git/config``).
The export branch (``vecron/export`` unless told otherwise) continues where it is on
the remote, or starts from the base branch. Each job goes to the file that already
defines its name, else to the path it was synced from, else to ``jobs/{name}.json``.
A job whose file already holds the same definition is not rewritten, so an export
that changes nothing makes no commit and pushes nothing. The commit message lists the
files added and updated and the secrets the jobs need (names only). The branch is
pushed to the repository it was cloned from.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import git

from vecron.errors import SourceError
from vecron.reconciler.sources import GitSource, _git_message, redact_url
from vecron.spec.loader import load_text
from vecron.spec.models import Job, dump_definition
from vecron.spec.validate import discover
from vecron.transfer.export import ExportedJob, ExportMetadata, repo_path
from vecron.transfer.formats import Format, dumps, format_of

DEFAULT_BRANCH = "vecron/export"
FALLBACK_AUTHOR = {"name": "vecron", "email": "vecron@localhost"}


@dataclass(frozen=True, slots=True, kw_only=True)
class GitChange:
    action: Literal["added", "updated"]
    path: str  # in the Git repository, /-separated
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GitExportResult:
    """What an export to Git did; ``commit`` is None when nothing had changed."""

    branch: str
    commit: str | None
    pushed: bool
    changes: tuple[GitChange, ...]
    unchanged: tuple[str, ...]
    message: str | None = None


def export_to_git(
    jobs: Sequence[ExportedJob],
    *,
    repo: str,
    meta: ExportMetadata,
    branch: str = DEFAULT_BRANCH,
    base: str | None = None,
    path: str | None = None,
    fmt: Format = "json",
    push: bool = True,
    clone_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> GitExportResult:
    """Commit ``jobs`` on ``branch`` of ``repo`` (a URL or a local repository) and push.

    ``base`` is the branch a new export branch starts from (the remote's HEAD when
    None); ``path`` the job repository's folder inside the Git repository. Without
    ``push`` the commit stays in ``clone_dir``, which must then be given. Raises
    :class:`SourceError` with a message free of credentials when Git fails.
    """
    if not push and clone_dir is None:
        raise ValueError("an export that is not pushed needs a clone_dir to keep it")
    env = GitSource(repo, cache_dir=Path(tempfile.gettempdir()), environ=environ)._git_env()
    work = clone_dir or Path(tempfile.mkdtemp(prefix="vecron-export-"))
    where = redact_url(repo)
    try:
        clone = _clone(repo, work, env, where)
        with clone:
            _checkout(clone, branch, base, where)
            prefix = (path or "").strip("/")
            root = work / prefix if prefix else work
            changes, unchanged = _write_jobs(jobs, root, prefix, fmt)
            if not changes:
                return GitExportResult(
                    branch=branch, commit=None, pushed=False, changes=(), unchanged=unchanged
                )
            message = commit_message(changes, unchanged, jobs, meta)
            try:
                clone.git.add("--", *(change.path for change in changes))
                clone.git.commit("--quiet", "-m", message, env=_author_env(clone))
                if push:
                    refspec = f"HEAD:refs/heads/{branch}"
                    clone.git.push("--quiet", "origin", refspec, env=env)
            except git.GitCommandError as exc:
                raise SourceError(f"{where}: {_git_message(exc)}") from None
            return GitExportResult(
                branch=branch,
                commit=clone.head.commit.hexsha,
                pushed=push,
                changes=changes,
                unchanged=unchanged,
                message=message,
            )
    finally:
        if clone_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _clone(repo: str, work: Path, env: Mapping[str, str], where: str) -> git.Repo:
    try:
        return git.Repo.clone_from(repo, work, env=dict(env))
    except git.GitCommandError as exc:
        raise SourceError(f"{where}: clone failed: {_git_message(exc)}") from None


def _checkout(clone: git.Repo, branch: str, base: str | None, where: str) -> None:
    remote = {ref.remote_head for ref in clone.remotes.origin.refs}
    if branch in remote:
        start = f"origin/{branch}"  # the export branch goes on where it is
    elif base is not None:
        if base not in remote:
            raise SourceError(f"{where}: no branch {base!r} to start the export from")
        start = f"origin/{base}"
    else:
        start = "HEAD"
    try:
        clone.git.checkout("--quiet", "-B", branch, start)
    except git.GitCommandError as exc:
        raise SourceError(f"{where}: {_git_message(exc)}") from None


def _write_jobs(
    jobs: Sequence[ExportedJob], root: Path, prefix: str, fmt: Format
) -> tuple[tuple[GitChange, ...], tuple[str, ...]]:
    existing = job_files_by_name(root)
    others = set(existing.values())  # files of other jobs are never overwritten
    changes: list[GitChange] = []
    unchanged: list[str] = []
    for job in jobs:
        relative = existing.get(job.name) or _free_path(repo_path(job, fmt), others)
        others.add(relative)
        target = root / relative
        if target.is_file() and same_job(target, job.definition):
            unchanged.append(job.name)
            continue
        action: Literal["added", "updated"] = "updated" if target.exists() else "added"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(dumps(job.definition, format_of(relative)))
        in_repo = str(PurePosixPath(prefix, relative)) if prefix else relative
        changes.append(GitChange(action=action, path=in_repo, name=job.name))
    return tuple(changes), tuple(unchanged)


def _free_path(relative: str, taken: set[str]) -> str:
    if relative not in taken:
        return relative
    stem, dot, ext = relative.rpartition(".")
    counter = 2
    while f"{stem}-{counter}{dot}{ext}" in taken:
        counter += 1
    return f"{stem}-{counter}{dot}{ext}"


def job_files_by_name(root: Path) -> dict[str, str]:
    """Job name -> its file (relative to ``root``) for every readable job file."""
    found: dict[str, str] = {}
    if not root.is_dir():
        return found
    for path in discover([root]):
        try:
            data = load_text(path.read_text("utf-8-sig"), json_file=path.suffix == ".json")
        except (ValueError, OSError):
            continue
        name = data.get("name") if isinstance(data, dict) else None
        if isinstance(name, str):
            found.setdefault(name, path.relative_to(root).as_posix())
    return found


def same_job(path: Path, definition: Mapping[str, Any]) -> bool:
    """Whether the file at ``path`` defines exactly ``definition`` (defaults filled in)."""
    try:
        data = load_text(path.read_text("utf-8-sig"), json_file=path.suffix == ".json")
        current = dump_definition(Job.model_validate(data))
        wanted = dump_definition(Job.model_validate(dict(definition)))
    except (ValueError, OSError):  # unreadable or invalid: rewrite it
        return False
    return current == wanted


def commit_message(
    changes: Sequence[GitChange],
    unchanged: Sequence[str],
    jobs: Sequence[ExportedJob],
    meta: ExportMetadata,
) -> str:
    """The commit message: what changed, the secrets needed (names), who exported."""
    added = sum(change.action == "added" for change in changes)
    updated = len(changes) - added
    counts = [f"{added} added"] if added else []
    counts += [f"{updated} updated"] if updated else []
    lines = [f"vecron export: {', '.join(counts)}", ""]
    width = max(len(change.action) for change in changes)
    lines += [f"{c.action.ljust(width)}  {c.path} (job {c.name})" for c in changes]
    if unchanged:
        lines += ["", f"unchanged: {', '.join(unchanged)}"]
    changed_names = {change.name for change in changes}
    needed = sorted({p.name for job in jobs if job.name in changed_names for p in job.placeholders})
    if needed:
        lines += ["", "Secrets these jobs need (vecron vars set --secret NAME):"]
        lines += [f"  {name}" for name in needed]
    lines += [
        "",
        f"Exported by {meta.exported_by} at {meta.export_date.isoformat()} "
        f"with {meta.system_version}.",
    ]
    return "\n".join(lines) + "\n"


def _author_env(clone: git.Repo) -> dict[str, str]:
    reader = clone.config_reader()
    if reader.has_option("user", "email") and reader.has_option("user", "name"):
        return {}
    name, email = FALLBACK_AUTHOR["name"], FALLBACK_AUTHOR["email"]
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
