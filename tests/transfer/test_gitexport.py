"""Export to Git: a commit on a branch, pushed, with no secret in any Git object, and
no commit at all when the repository already matches."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.reconciler.gitrepo import GitRepo
from tests.runtime.http_target import HttpTarget
from tests.transfer.planted import (
    CUSTOM_PATTERN,
    JOB_NAME,
    PlantedJob,
    leaks,
    planted_job,
    sync_jobs,
)
from vecron.errors import SourceError
from vecron.stores import Stores
from vecron.transfer.export import ExportMetadata, collect
from vecron.transfer.formats import dumps
from vecron.transfer.gitexport import DEFAULT_BRANCH, export_to_git
from vecron.transfer.redact import compile_pattern

META = ExportMetadata.now("tests")


@pytest.fixture
def origin(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "origin")
    repo.write("README.md", "jobs\n")
    repo.commit("init")
    return repo


@pytest.fixture
async def planted(stores: Stores, tmp_path: Path, target: HttpTarget) -> PlantedJob:
    job = planted_job(target)
    await sync_jobs(stores, tmp_path / "live", {"jobs/partner.json": job.text})
    return job


def _all_git_bytes(repo: GitRepo) -> bytes:
    """Every object of the repository (blobs, trees, commits), plus the log with diffs."""
    objects = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        cwd=repo.path,
        capture_output=True,
        check=True,
    ).stdout
    log = subprocess.run(
        ["git", "log", "-p", "--all"], cwd=repo.path, capture_output=True, check=True
    ).stdout
    return objects + log


async def test_the_commit_and_every_git_object_are_free_of_secrets(
    stores: Stores, planted: PlantedJob, origin: GitRepo
) -> None:
    jobs = await collect(stores, key_pattern=compile_pattern(CUSTOM_PATTERN))
    result = export_to_git(jobs, repo=str(origin.path), meta=META)
    assert result.commit is not None
    assert result.pushed
    assert origin.git("rev-parse", f"refs/heads/{DEFAULT_BRANCH}") == result.commit
    assert origin.git("rev-parse", "main") != result.commit  # main is untouched
    files = origin.git("ls-tree", "-r", "--name-only", DEFAULT_BRANCH).splitlines()
    assert files == ["README.md", "jobs/partner.json"]
    data = _all_git_bytes(origin)
    assert leaks(data, planted) == []
    assert b"${secret:PARTNER_SYNC_USERINFO_URL_PASSWORD}" in data
    message = origin.git("log", "-1", "--format=%B", DEFAULT_BRANCH)
    assert message.startswith("vecron export: 1 added")
    assert "added  jobs/partner.json (job partner-sync)" in message
    assert "  PARTNER_SYNC_BASIC_AUTH_PASSWORD" in message
    assert "Exported by tests" in message


async def test_a_second_identical_export_makes_no_commit(
    stores: Stores, planted: PlantedJob, origin: GitRepo
) -> None:
    jobs = await collect(stores)
    first = export_to_git(jobs, repo=str(origin.path), meta=META)
    again = export_to_git(await collect(stores), repo=str(origin.path), meta=ExportMetadata.now())
    assert again.commit is None
    assert not again.pushed
    assert again.unchanged == (JOB_NAME,)
    assert origin.git("rev-parse", DEFAULT_BRANCH) == first.commit
    assert origin.git("rev-list", "--count", DEFAULT_BRANCH) == "2"


async def test_a_job_that_already_matches_its_file_is_not_rewritten(
    stores: Stores, planted: PlantedJob, origin: GitRepo
) -> None:
    [job] = await collect(stores)
    # The repository already has the job, in YAML, at another path than it was synced from.
    origin.write("pipelines/partner.yaml", dumps(job.definition, "yaml").decode())
    origin.commit("add partner")
    result = export_to_git([job], repo=str(origin.path), meta=META)
    assert result.commit is None
    assert result.unchanged == (JOB_NAME,)
    assert DEFAULT_BRANCH not in origin.git("branch", "--list")


async def test_a_changed_job_updates_its_own_file_in_its_own_format(
    stores: Stores, planted: PlantedJob, origin: GitRepo, tmp_path: Path, target: HttpTarget
) -> None:
    [job] = await collect(stores)
    stale = {**job.definition, "description": "old"}
    origin.write("pipelines/partner.yaml", dumps(stale, "yaml").decode())
    origin.commit("add partner")
    result = export_to_git([job], repo=str(origin.path), meta=META, base="main")
    assert [(c.action, c.path) for c in result.changes] == [("updated", "pipelines/partner.yaml")]
    shown = origin.git("show", f"{DEFAULT_BRANCH}:pipelines/partner.yaml")
    assert shown.startswith("name: partner-sync\n")
    assert "description: ''" in shown


async def test_without_push_the_commit_stays_in_the_clone(
    stores: Stores, planted: PlantedJob, origin: GitRepo, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    result = export_to_git(
        await collect(stores), repo=str(origin.path), meta=META, push=False, clone_dir=clone
    )
    assert result.commit is not None
    assert not result.pushed
    assert DEFAULT_BRANCH not in origin.git("branch", "--list")
    assert (clone / "jobs/partner.json").is_file()


async def test_a_git_failure_names_the_repository_without_credentials(
    stores: Stores, planted: PlantedJob
) -> None:
    with pytest.raises(SourceError) as raised:
        export_to_git(
            await collect(stores), repo="http://user:tok-s3cret@127.0.0.1:9/x.git", meta=META
        )
    assert "tok-s3cret" not in str(raised.value)
    assert "127.0.0.1:9/x.git" in str(raised.value)


async def test_a_file_of_another_job_at_the_usual_path_is_not_overwritten(
    stores: Stores, planted: PlantedJob, origin: GitRepo
) -> None:
    [job] = await collect(stores)
    # jobs/partner.json (where the job was synced from) now defines another job.
    origin.write(
        "jobs/partner.json", dumps({**job.definition, "name": "someone-else"}, "json").decode()
    )
    origin.commit("another job")
    result = export_to_git([job], repo=str(origin.path), meta=META)
    assert [(c.action, c.path) for c in result.changes] == [("added", "jobs/partner-2.json")]
    assert '"name": "someone-else"' in origin.git("show", f"{DEFAULT_BRANCH}:jobs/partner.json")
