"""Plan and sync against real stores: every safety rule has a test that fails without it.

Runs twice: embedded (SQLite + a local directory) and distributed (PostgreSQL +
SeaweedFS's S3), through the ``stores`` fixture.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.reconciler.gitrepo import GitRepo
from vecron import paths
from vecron.backends.database import SyncStatus
from vecron.errors import SyncRefused
from vecron.reconciler.apply import apply_plan
from vecron.reconciler.plan import REMOVED_REASON, SyncOptions, build_plan
from vecron.reconciler.render import plan_json, plan_text
from vecron.reconciler.sources import DirectorySource, GitSource
from vecron.reconciler.sync import sync_once
from vecron.stores import Stores

JOB = """\
name: {name}
schedule: {{type: cron, expression: "0 0 2 ? * MON-FRI"}}
steps:
  - id: fetch
    type: http
    config: {{url: "https://example.invalid/{name}"}}
"""
HOOK = """\
name: {name}
triggers:
  webhook: {{enabled: true}}
steps:
  - id: fetch
    type: http
    config: {{url: "https://example.invalid/{{{{webhook.payload.id}}}}"}}
"""


def job(name: str) -> str:
    return JOB.format(name=name)


def repo_with(tmp_path: Path, files: dict[str, str]) -> GitRepo:
    repo = GitRepo(tmp_path / "repo")
    for path, text in files.items():
        repo.write(path, text)
    repo.commit("jobs")
    return repo


def source(repo: GitRepo, tmp_path: Path) -> GitSource:
    return GitSource(str(repo.path), ref="main", cache_dir=tmp_path / "cache")


async def object_paths(stores: Stores) -> dict[str, str]:
    return {info.path: info.etag async for info in stores.objects.list("")}


async def test_initial_sync_creates_jobs_objects_rows_files_and_variables(
    stores: Stores, tmp_path: Path
) -> None:
    repo = repo_with(
        tmp_path,
        {
            "jobs/a.yaml": job("a"),
            "jobs/b.yaml": job("b"),
            "jobs/hook.yaml": HOOK.format(name="hook"),
            "variables.yaml": "REGION: eu\nDEBUG: false\n",
            "files/data.csv": "x,y\n1,2\n",
        },
    )
    result = await sync_once(source(repo, tmp_path), stores, SyncOptions())
    assert result.status == SyncStatus.OK
    assert result.plan.counts["created"] == 3
    jobs = {j.name: j for j in await stores.database.list_jobs()}
    assert sorted(jobs) == ["a", "b", "hook"]
    a = jobs["a"]
    assert a.content_hash is not None
    assert a.source_commit == repo.head()
    assert a.source_path == "jobs/a.yaml"
    assert a.enabled
    assert a.next_run_at is not None
    stored = json.loads(await stores.objects.get(paths.definition_path(a.job_id)))
    assert stored["name"] == "a"
    assert stored["schedule"]["timezone"] == "Asia/Ho_Chi_Minh"  # defaults filled in
    version = paths.definition_version_path(a.job_id, a.content_hash)
    assert await stores.objects.get(version) == await stores.objects.get(
        paths.definition_path(a.job_id)
    )
    hook = jobs["hook"]
    assert hook.webhook_enabled
    assert hook.webhook_id is not None
    assert len(hook.webhook_id) >= 24
    assert hook.webhook_secret is not None  # generated: the definition has none
    assert await stores.objects.get("files/data.csv") == b"x,y\n1,2\n"
    variables = await stores.database.get_variables()
    assert {n: v.value for n, v in variables.items()} == {"REGION": "eu", "DEBUG": "false"}
    last = await stores.database.last_sync()
    assert last is not None
    assert last.commit == repo.head()
    assert last.created == 3


async def test_a_second_sync_of_the_same_commit_writes_nothing(
    stores: Stores, tmp_path: Path
) -> None:
    repo = repo_with(tmp_path, {"jobs/a.yaml": job("a"), "files/f.txt": "f"})
    src = source(repo, tmp_path)
    await sync_once(src, stores, SyncOptions())
    before_objects = await object_paths(stores)
    before_jobs = await stores.database.list_jobs()
    before_syncs = await stores.database.list_syncs()
    result = await sync_once(src, stores, SyncOptions())
    assert not result.plan.has_changes
    assert not result.wrote
    assert await object_paths(stores) == before_objects
    assert await stores.database.list_jobs() == before_jobs
    assert await stores.database.list_syncs() == before_syncs


async def test_an_edit_updates_in_place_with_a_field_diff(stores: Stores, tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"jobs/hook.yaml": HOOK.format(name="hook")})
    src = source(repo, tmp_path)
    await sync_once(src, stores, SyncOptions())
    first = await stores.database.get_job("hook")
    repo.write(
        "jobs/hook.yaml",
        HOOK.format(name="hook").replace("enabled: true}", "enabled: true, rate_limit: 5}"),
    )
    repo.commit("rate limit")
    plan = await build_plan(src.snapshot(), database=stores.database, objects=stores.objects)
    assert [(c.action, c.name) for c in plan.changes] == [("update", "hook")]
    assert [(f.field, f.old, f.new) for f in plan.changes[0].diff] == [
        ("triggers.webhook.rate_limit", 60, 5)
    ]
    assert "~ triggers.webhook.rate_limit: 60 -> 5" in plan_text(plan)
    await sync_once(src, stores, SyncOptions())
    second = await stores.database.get_job("hook")
    assert second.job_id == first.job_id
    assert second.webhook_id == first.webhook_id
    assert second.webhook_secret == first.webhook_secret
    assert second.definition_version == first.definition_version + 1
    assert second.webhook_rate_limit == 5
    # The version the first executions ran stays readable.
    assert first.content_hash is not None
    old = await stores.objects.get(paths.definition_version_path(first.job_id, first.content_hash))
    assert b'"rate_limit": 60' in old


async def test_an_invalid_file_never_changes_or_deletes_its_live_job(
    stores: Stores, tmp_path: Path
) -> None:
    repo = repo_with(tmp_path, {"jobs/a.yaml": job("a"), "jobs/b.yaml": job("b")})
    src = source(repo, tmp_path)
    await sync_once(src, stores, SyncOptions())
    good = await stores.database.get_job("a")
    repo.write("jobs/a.yaml", job("a").replace("type: http", "type: htp"))
    repo.write("jobs/b.yaml", job("b").replace("example.invalid", "example.test"))
    repo.commit("break a, change b")
    result = await sync_once(src, stores, SyncOptions())
    assert result.status == SyncStatus.DEGRADED
    assert [(c.action, c.name) for c in result.plan.changes] == [("update", "b")]
    assert await stores.database.get_job("a") == good  # untouched, not deleted
    definition = await stores.objects.get(good.minio_definition_path)
    assert b'"type": "http"' in definition
    last = await stores.database.last_sync()
    assert last is not None
    assert last.status == SyncStatus.DEGRADED
    assert [(e["path"], e["line"]) for e in last.errors] == [("jobs/a.yaml", 5)]
    assert "unknown type 'htp'" in last.errors[0]["message"]


async def test_an_invalid_file_that_cannot_even_be_parsed_keeps_its_job(
    stores: Stores, tmp_path: Path
) -> None:
    repo = repo_with(tmp_path, {"jobs/a.yaml": job("a")})
    src = source(repo, tmp_path)
    await sync_once(src, stores, SyncOptions())
    repo.write("jobs/a.yaml", "name: a\nsteps: [\n")
    repo.commit("syntax error")
    result = await sync_once(src, stores, SyncOptions())
    assert result.plan.changes == ()
    assert (await stores.database.get_job("a")).enabled


async def test_a_new_invalid_job_is_not_created(stores: Stores, tmp_path: Path) -> None:
    repo = repo_with(
        tmp_path, {"jobs/a.yaml": job("a"), "jobs/bad.yaml": job("bad") + "extra: 1\n"}
    )
    result = await sync_once(source(repo, tmp_path), stores, SyncOptions())
    assert [j.name for j in await stores.database.list_jobs()] == ["a"]
    assert result.status == SyncStatus.DEGRADED
    text = plan_text(result.plan)
    assert "x jobs/bad.yaml:7:1: error: unknown field 'extra'" in text


async def test_deleting_a_file_deletes_its_job_or_only_disables_it(
    stores: Stores, tmp_path: Path
) -> None:
    repo = repo_with(tmp_path, {f"jobs/{n}.yaml": job(n) for n in "abc"})
    src = source(repo, tmp_path)
    await sync_once(src, stores, SyncOptions())
    c = await stores.database.get_job("c")
    repo.remove("jobs/c.yaml")
    repo.commit("remove c")
    result = await sync_once(src, stores, SyncOptions(prune=False))
    assert [(ch.action, ch.name) for ch in result.plan.changes] == [("disable", "c")]
    disabled = await stores.database.get_job("c")
    assert not disabled.enabled
    assert disabled.disabled_reason == REMOVED_REASON
    assert disabled.next_run_at is None
    assert await stores.objects.exists(c.minio_definition_path)
    # Restoring the file enables the same job again.
    repo.write("jobs/c.yaml", job("c"))
    repo.commit("restore c")
    await sync_once(src, stores, SyncOptions(prune=False))
    restored = await stores.database.get_job("c")
    assert restored.job_id == c.job_id
    assert restored.enabled
    assert restored.disabled_reason is None
    # With pruning on, the job and its current definition go; history stays.
    repo.remove("jobs/c.yaml")
    repo.commit("remove c again")
    result = await sync_once(src, stores, SyncOptions())
    assert [(ch.action, ch.name) for ch in result.plan.changes] == [("delete", "c")]
    assert sorted(j.name for j in await stores.database.list_jobs()) == ["a", "b"]
    assert not await stores.objects.exists(c.minio_definition_path)
    assert c.content_hash is not None
    assert await stores.objects.exists(paths.definition_version_path(c.job_id, c.content_hash))


async def test_a_sync_that_would_remove_every_job_is_refused(
    stores: Stores, tmp_path: Path
) -> None:
    repo = repo_with(tmp_path, {"jobs/a.yaml": job("a"), "jobs/b.yaml": job("b")})
    await sync_once(source(repo, tmp_path), stores, SyncOptions())
    wrong_path = GitSource(str(repo.path), ref="main", path="jobs/nothing-here", cache_dir=tmp_path)
    empty = DirectorySource(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SyncRefused, match="would remove all 2 jobs"):
        await sync_once(empty, stores, SyncOptions())
    with pytest.raises(SyncRefused, match="would remove all 2 jobs"):
        await sync_once(empty, stores, SyncOptions(confirm_prune=True))
    assert sorted(j.name for j in await stores.database.list_jobs()) == ["a", "b"]
    last = await stores.database.last_sync()
    assert last is not None
    assert last.status == SyncStatus.REFUSED
    from vecron.errors import SourceError

    with pytest.raises(SourceError):
        await sync_once(wrong_path, stores, SyncOptions())
    result = await sync_once(empty, stores, SyncOptions(allow_empty=True))
    assert result.plan.counts["deleted"] == 2
    assert await stores.database.list_jobs() == []


async def test_a_mass_deletion_needs_confirmation(stores: Stores, tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {f"jobs/{n}.yaml": job(n) for n in "abcd"})
    src = source(repo, tmp_path)
    await sync_once(src, stores, SyncOptions())
    for n in "abc":
        repo.remove(f"jobs/{n}.yaml")
    repo.commit("remove three of four")
    with pytest.raises(SyncRefused, match="remove 3 of 4 jobs"):
        await sync_once(src, stores, SyncOptions())
    assert len(await stores.database.list_jobs()) == 4
    with pytest.raises(SyncRefused):
        await sync_once(src, stores, SyncOptions(prune=False))  # disabling counts too
    result = await sync_once(src, stores, SyncOptions(confirm_prune=True))
    assert result.plan.counts["deleted"] == 3
    # At the threshold (2 of 4 = 50 %) no confirmation is needed.
    repo.write("jobs/e.yaml", job("e"))
    repo.write("jobs/f.yaml", job("f"))
    repo.write("jobs/g.yaml", job("g"))
    repo.commit("three more")
    await sync_once(src, stores, SyncOptions())
    repo.remove("jobs/e.yaml")
    repo.remove("jobs/f.yaml")
    repo.commit("remove two of four")
    assert (await sync_once(src, stores, SyncOptions())).plan.counts["deleted"] == 2


async def test_renames(stores: Stores, tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"jobs/a.yaml": job("a")})
    src = source(repo, tmp_path)
    await sync_once(src, stores, SyncOptions())
    a = await stores.database.get_job("a")
    repo.move("jobs/a.yaml", "jobs/team/a.yaml")
    repo.commit("move the file")
    result = await sync_once(src, stores, SyncOptions())
    assert [(c.action, [f.field for f in c.diff]) for c in result.plan.changes] == [
        ("update", ["(source path)"])
    ]
    moved = await stores.database.get_job("a")
    assert moved.job_id == a.job_id
    assert moved.source_path == "jobs/team/a.yaml"
    repo.write("jobs/team/a.yaml", job("a2"))
    repo.commit("rename the job")
    result = await sync_once(src, stores, SyncOptions(allow_empty=True))
    assert sorted((c.action, c.name) for c in result.plan.changes) == [
        ("create", "a2"),
        ("delete", "a"),
    ]


async def test_duplicate_names_keep_the_live_job(stores: Stores, tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"jobs/a.yaml": job("a")})
    src = source(repo, tmp_path)
    await sync_once(src, stores, SyncOptions())
    repo.write("jobs/copy.yaml", job("a").replace("example.invalid", "example.test"))
    repo.commit("copy a")
    result = await sync_once(src, stores, SyncOptions())
    assert result.plan.changes == ()
    assert [i.path for i in result.plan.invalid] == ["jobs/copy.yaml"]
    assert "already used by jobs/a.yaml" in plan_text(result.plan)
    assert (await stores.database.get_job("a")).source_path == "jobs/a.yaml"


async def test_an_operator_disable_survives_syncs(stores: Stores, tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"jobs/a.yaml": job("a")})
    src = source(repo, tmp_path)
    await sync_once(src, stores, SyncOptions())
    a = await stores.database.get_job("a")
    await stores.database.update_job(
        a.job_id, enabled=False, disabled_reason="disabled by an operator"
    )
    repo.write("jobs/a.yaml", job("a").replace("example.invalid", "example.test"))
    repo.commit("edit")
    await sync_once(src, stores, SyncOptions())
    after = await stores.database.get_job("a")
    assert not after.enabled
    assert after.disabled_reason == "disabled by an operator"


class CrashingObjects:
    """The real object store, failing on the n-th put as a crash would."""

    def __init__(self, objects: Any, fail_on: int) -> None:
        self._objects = objects
        self._puts = 0
        self._fail_on = fail_on

    async def put(self, path: str, data: bytes, **kwargs: Any) -> None:
        self._puts += 1
        if self._puts == self._fail_on:
            raise ConnectionError("the object store went away")
        await self._objects.put(path, data, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._objects, name)


@pytest.mark.parametrize("fail_on", [1, 2, 3])
async def test_a_crash_between_object_and_row_is_repaired_by_the_next_sync(
    stores: Stores, tmp_path: Path, fail_on: int
) -> None:
    repo = repo_with(tmp_path, {"jobs/a.yaml": job("a")})
    src = source(repo, tmp_path)
    await sync_once(src, stores, SyncOptions())
    repo.write("jobs/a.yaml", job("a").replace("example.invalid", "example.test"))
    repo.write("jobs/b.yaml", job("b"))
    repo.commit("edit a, add b")
    snapshot = src.snapshot()
    plan = await build_plan(snapshot, database=stores.database, objects=stores.objects)
    crashing = CrashingObjects(stores.objects, fail_on)
    with pytest.raises(ConnectionError):
        await apply_plan(plan, snapshot, database=stores.database, objects=crashing)  # type: ignore[arg-type]
    last = await stores.database.last_sync()
    assert last is not None
    assert last.status == SyncStatus.FAILED
    result = await sync_once(src, stores, SyncOptions())
    assert result.status == SyncStatus.OK
    jobs = {j.name: j for j in await stores.database.list_jobs()}
    for name, host in (("a", "example.test"), ("b", "example.invalid")):
        record = jobs[name]
        assert record.content_hash == snapshot.entries[f"jobs/{name}.yaml"].blob_id
        definition = json.loads(await stores.objects.get(record.minio_definition_path))
        assert definition["steps"][0]["config"]["url"] == f"https://{host}/{name}"
    assert not (await sync_once(src, stores, SyncOptions())).plan.has_changes


async def test_files_and_variables_follow_the_repository(stores: Stores, tmp_path: Path) -> None:
    repo = repo_with(
        tmp_path,
        {
            "jobs/a.yaml": job("a"),
            "files/a.csv": "a",
            "files/b.csv": "b",
            "variables.yaml": "A: 1\nB: 2\n",
        },
    )
    src = source(repo, tmp_path)
    await stores.database.set_variable("LOCAL", "kept", secret=False, source="cli")
    await sync_once(src, stores, SyncOptions())
    repo.remove("files/a.csv")
    repo.write("files/b.csv", "b2")
    repo.write("variables.yaml", "B: 3\nC: x\n")
    repo.commit("change files and variables")
    plan = await build_plan(src.snapshot(), database=stores.database, objects=stores.objects)
    assert [e.path for e in plan.file_puts] == ["files/b.csv"]
    assert plan.file_deletes == ("a.csv",)
    assert plan.variables is not None
    assert (plan.variables.added, plan.variables.changed, plan.variables.removed) == (
        ("C",),
        ("B",),
        ("A",),
    )
    await sync_once(src, stores, SyncOptions())
    assert not await stores.objects.exists("files/a.csv")
    assert await stores.objects.get("files/b.csv") == b"b2"
    values = {n: v.value for n, v in (await stores.database.get_variables()).items()}
    assert values == {"B": "3", "C": "x", "LOCAL": "kept"}


async def test_an_invalid_variables_file_keeps_the_live_variables(
    stores: Stores, tmp_path: Path
) -> None:
    repo = repo_with(tmp_path, {"jobs/a.yaml": job("a"), "variables.yaml": "A: 1\n"})
    src = source(repo, tmp_path)
    await sync_once(src, stores, SyncOptions())
    repo.write("variables.yaml", "A: [not, a, scalar]\n")
    repo.commit("break variables")
    result = await sync_once(src, stores, SyncOptions())
    assert result.status == SyncStatus.DEGRADED
    assert {n: v.value for n, v in (await stores.database.get_variables()).items()} == {"A": "1"}


async def test_plan_output_never_shows_secrets(stores: Stores, tmp_path: Path) -> None:
    text = job("a").replace(
        'config: {url: "https://example.invalid/a"}',
        'config: {url: "https://example.invalid/a", '
        "auth: {type: basic, username: u, password: old-pw}}",
    )
    repo = repo_with(tmp_path, {"jobs/a.yaml": text})
    src = source(repo, tmp_path)
    await sync_once(src, stores, SyncOptions())
    repo.write(
        "jobs/a.yaml", text.replace("old-pw", "new-pw").replace("username: u", "username: v")
    )
    repo.commit("rotate")
    plan = await build_plan(src.snapshot(), database=stores.database, objects=stores.objects)
    rendered = plan_text(plan) + plan_json(plan)
    assert "old-pw" not in rendered
    assert "new-pw" not in rendered
    assert '~ steps[0].config.auth.username: "u" -> "v"' in rendered


async def test_a_git_branch_is_the_desired_state(stores: Stores, tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"jobs/a.yaml": job("a")})
    repo.branch("staging")
    repo.write("jobs/b.yaml", job("b"))
    repo.commit("b on staging")
    repo.checkout("main")
    staging = GitSource(str(repo.path), ref="staging", cache_dir=tmp_path)
    result = await sync_once(staging, stores, SyncOptions())
    assert result.plan.commit == repo.git("rev-parse", "staging")
    assert sorted(j.name for j in await stores.database.list_jobs()) == ["a", "b"]
    main = replace_ref(staging, "main")
    assert [
        (c.action, c.name) for c in (await sync_once(main, stores, SyncOptions())).plan.changes
    ] == [("delete", "b")]


def replace_ref(src: GitSource, ref: str) -> GitSource:
    return GitSource(src.url, ref=ref, path=src.path or None, cache_dir=src.cache_dir)


async def test_a_cli_override_is_not_a_pending_change(stores: Stores, tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"jobs/a.yaml": job("a"), "variables.yaml": "API: repo\n"})
    src = source(repo, tmp_path)
    await sync_once(src, stores, SyncOptions())
    await stores.database.set_variable("API", "mine", secret=False, source="cli")
    plan = await build_plan(src.snapshot(), database=stores.database, objects=stores.objects)
    assert plan.variables is None
    assert not plan.has_changes


async def test_the_reconcile_loop_waits_for_a_sync_that_holds_the_lock(
    stores: Stores, tmp_path: Path
) -> None:
    """`vecron up` shares one lock between its loop and POST /sync: no two syncs
    interleave their plans and applies."""
    import asyncio

    from vecron.reconciler.sync import reconcile

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.yaml").write_text(
        'name: a\nsteps: [{id: s, type: http, config: {url: "https://example.invalid/"}}]\n'
    )
    lock, stop = asyncio.Lock(), asyncio.Event()
    await lock.acquire()
    loop = asyncio.create_task(
        reconcile(
            DirectorySource(repo), stores, SyncOptions(), interval_seconds=60, stop=stop, lock=lock
        )
    )
    await asyncio.sleep(0.5)
    assert await stores.database.list_syncs() == []  # held: nothing synced
    lock.release()
    for _ in range(200):
        syncs = await stores.database.list_syncs()
        if syncs and syncs[0].status != SyncStatus.RUNNING:
            break
        await asyncio.sleep(0.05)
    assert [s.status for s in await stores.database.list_syncs()] == [SyncStatus.OK]
    stop.set()
    await loop
