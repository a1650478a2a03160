"""Sources: real Git repositories (local and cloned) and plain directories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.reconciler.gitrepo import GitRepo
from vecron.errors import SourceError
from vecron.reconciler.sources import (
    DirectorySource,
    GitSource,
    git_blob_id,
    open_source,
    redact_url,
)


def test_blob_ids_match_git(tmp_path: Path) -> None:
    data = "name: x\nsteps: []\nViệt Nam\n".encode()
    path = tmp_path / "f"
    path.write_bytes(data)
    expected = subprocess.run(
        ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert git_blob_id(data) == expected


def test_git_and_directory_agree(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.write("jobs/a.yaml", "name: a\n")
    repo.write("jobs/team/b.json", '{"name": "b"}')
    repo.write("variables.yaml", "X: 1\n")
    repo.write("files/data.csv", "a,b\n1,2\n")
    repo.write(".github/workflows/ci.yaml", "on: push\n")
    repo.write("README.md", "# jobs\n")
    repo.commit("first")
    git_snapshot = GitSource(str(repo.path), ref="main", cache_dir=tmp_path / "cache").snapshot()
    dir_snapshot = DirectorySource(repo.path).snapshot()
    assert git_snapshot.commit == repo.head()
    assert dir_snapshot.commit is None
    assert {p: (e.kind, e.blob_id) for p, e in git_snapshot.entries.items()} == {
        p: (e.kind, e.blob_id) for p, e in dir_snapshot.entries.items()
    }
    assert sorted(git_snapshot.entries) == [
        "files/data.csv",
        "jobs/a.yaml",
        "jobs/team/b.json",
        "variables.yaml",
    ]
    assert git_snapshot.read(["jobs/a.yaml", "files/data.csv"]) == {
        "jobs/a.yaml": b"name: a\n",
        "files/data.csv": b"a,b\n1,2\n",
    }


def test_refs_branches_tags_and_commits(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.write("jobs/a.yaml", "name: a\n")
    first = repo.commit("first")
    repo.tag("v1")
    repo.branch("feature")
    repo.write("jobs/b.yaml", "name: b\n")
    repo.commit("second on feature")
    repo.checkout("main")

    def files(ref: str) -> list[str]:
        return sorted(GitSource(str(repo.path), ref=ref, cache_dir=tmp_path).snapshot().entries)

    assert files("main") == ["jobs/a.yaml"]
    assert files("feature") == ["jobs/a.yaml", "jobs/b.yaml"]
    assert files("v1") == ["jobs/a.yaml"]
    assert files(first) == ["jobs/a.yaml"]
    with pytest.raises(SourceError, match="ref 'nope' does not exist"):
        files("nope")


def test_a_sub_path(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.write("deploy/jobs-repo/jobs/a.yaml", "name: a\n")
    repo.write("deploy/jobs-repo/files/x.csv", "x\n")
    repo.write("other/b.yaml", "name: b\n")
    repo.commit("first")
    source = GitSource(str(repo.path), path="deploy/jobs-repo", cache_dir=tmp_path)
    assert sorted(source.snapshot().entries) == ["files/x.csv", "jobs/a.yaml"]
    wrong = GitSource(str(repo.path), path="deploy/nothing", cache_dir=tmp_path)
    with pytest.raises(SourceError, match="no folder 'deploy/nothing'"):
        wrong.snapshot()


def test_clone_once_then_fetch(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.write("jobs/a.yaml", "name: a\n")
    repo.commit("first")
    url = repo.path.as_uri()
    source = GitSource(url, ref="main", cache_dir=tmp_path / "cache")
    assert sorted(source.snapshot().entries) == ["jobs/a.yaml"]
    clones = list((tmp_path / "cache").iterdir())
    assert len(clones) == 1

    repo.write("jobs/b.yaml", "name: b\n")
    repo.remove("jobs/a.yaml")
    second = repo.commit("second")
    again = GitSource(url, ref="main", cache_dir=tmp_path / "cache").snapshot()
    assert again.commit == second
    assert sorted(again.entries) == ["jobs/b.yaml"]
    assert list((tmp_path / "cache").iterdir()) == clones  # fetched into the same clone


def test_bad_sources_fail_with_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such repository"):
        GitSource(str(tmp_path / "missing"), cache_dir=tmp_path).snapshot()
    (tmp_path / "plain").mkdir()
    with pytest.raises(SourceError, match="not a Git repository"):
        GitSource(str(tmp_path / "plain"), ref="main", cache_dir=tmp_path).snapshot()
    with pytest.raises(SourceError) as info:
        GitSource(
            "https://user:s3cr3t@127.0.0.1:9/nothing.git", cache_dir=tmp_path / "c"
        ).snapshot()
    assert "s3cr3t" not in str(info.value)
    assert "\n" not in str(info.value)
    assert not list((tmp_path / "c").glob("*"))  # no half clone left behind
    with pytest.raises(SourceError, match="not a directory"):
        DirectorySource(tmp_path / "nothing").snapshot()


def test_open_source_picks_the_kind() -> None:
    assert isinstance(open_source(".", cache_dir=Path("/tmp")), DirectorySource)
    assert isinstance(open_source(".", ref="main", cache_dir=Path("/tmp")), GitSource)
    assert isinstance(open_source("https://h/r.git", cache_dir=Path("/tmp")), GitSource)
    assert isinstance(open_source("git@host:org/jobs.git", cache_dir=Path("/tmp")), GitSource)


def test_redact_url() -> None:
    assert redact_url("https://user:tok@host/r.git") == "https://host/r.git"
    assert redact_url("https://tok@host:8443/r.git") == "https://host:8443/r.git"
    assert redact_url("/local/path") == "/local/path"
    assert redact_url("ssh://git@host/r.git") == "ssh://git@host/r.git"


def test_token_goes_in_a_header_not_the_url(tmp_path: Path) -> None:
    source = GitSource(
        "https://host/r.git",
        cache_dir=tmp_path,
        environ={"VECRON_GIT_TOKEN": "tok123", "VECRON_GIT_SSH_KEY": "/keys/id_ed25519"},
    )
    env = source._git_env()
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"].startswith("Authorization: Basic ")
    assert "tok123" not in env["GIT_CONFIG_VALUE_0"]  # base64, and never in the URL
    assert "-i /keys/id_ed25519" in env["GIT_SSH_COMMAND"]
    assert "tok123" not in source.describe()
