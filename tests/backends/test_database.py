"""The database conformance suite: every test runs against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection

from tests.backends.db_fixtures import (
    FakeClock,
    Harness,
    database_template,
    db,
    throwaway_pg_database,
)
from vecron.backends.database import (
    MASK,
    AlreadyExists,
    Database,
    ExecutionRecord,
    ExecutionStatus,
    JobRecord,
    ScheduledFire,
    SqlDatabase,
    SyncStatus,
    TriggerSource,
    VariableSource,
    new_id,
    normalize_database_url,
    open_database,
    strip_credentials,
)
from vecron.backends.database.migrations import current
from vecron.backends.database.tables import VERSION_TABLE, metadata
from vecron.crypto import WRONG_KEY_MESSAGE, SecretBox
from vecron.errors import (
    BackendUnavailable,
    ConfigurationError,
    ExecutionNotFound,
    JobNotFound,
    RunInFlight,
)

__all__ = ["database_template", "db"]  # fixtures, imported for pytest

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ICT = timezone(timedelta(hours=7))


def job(name: str = "invoice-import", **fields: Any) -> JobRecord:
    fields.setdefault("content_hash", f"hash-{name}")
    fields.setdefault("definition_version", 1)
    fields.setdefault("created_at", T0)
    fields.setdefault("updated_at", T0)
    return JobRecord(name=name, **fields)


def execution(target: JobRecord, **fields: Any) -> ExecutionRecord:
    fields.setdefault("trigger_source", TriggerSource.MANUAL)
    fields.setdefault("definition_hash", target.content_hash or "none")
    return ExecutionRecord(job_id=target.job_id, job_name=target.name, **fields)


def assert_utc(*values: datetime | None) -> None:
    for value in values:
        assert value is not None
        assert value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)


# -- schema and connection ------------------------------------------------------------------


def test_store_satisfies_the_protocol(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        assert isinstance(store, Database)

    db.run(body)
    assert isinstance(open_database(db.url, secret_box=db.box), Database)


def test_migrate_twice_is_a_no_op(db: Harness) -> None:
    async def body(store: SqlDatabase) -> str | None:
        await store.insert_job(job())
        await store.migrate()
        await store.migrate()
        assert [j.name for j in await store.list_jobs()] == ["invoice-import"]
        with store.engine.connect() as connection:
            return current(connection)

    assert db.run(body) == "0003"
    assert db.raw(f"SELECT version_num FROM {VERSION_TABLE}") == [("0003",)]


def test_migrated_schema_matches_the_tables(db: Harness) -> None:
    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        return list(compare_metadata(context, metadata))

    async def body(store: SqlDatabase) -> list[Any]:
        with store.engine.connect() as connection:
            return differences(connection)

    assert db.run(body) == []


async def _migrate_concurrently(url: str) -> None:
    stores = [SqlDatabase(url, secret_box=SecretBox.generate()) for _ in range(2)]
    try:
        await asyncio.gather(*(store.migrate() for store in stores))
        await asyncio.gather(*(store.migrate() for store in stores))
        assert await stores[0].list_jobs() == []
    finally:
        for store in stores:
            await store.close()


def test_two_processes_migrating_at_once_both_succeed_on_postgresql() -> None:
    with throwaway_pg_database() as url:
        asyncio.run(_migrate_concurrently(url))


def test_two_processes_migrating_at_once_both_succeed_on_sqlite(tmp_path: Path) -> None:
    asyncio.run(_migrate_concurrently(f"sqlite:///{tmp_path / 'nested' / 'fresh.db'}"))


def test_a_schema_newer_than_the_code_is_refused(db: Harness) -> None:
    db.raw(f"UPDATE {VERSION_TABLE} SET version_num = 'ffff'")

    async def body(store: SqlDatabase) -> None:
        with pytest.raises(ConfigurationError, match="newer vecron"):
            await store.migrate()

    db.run(body)


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    async def body() -> list[Any]:
        store = SqlDatabase(f"sqlite:///{tmp_path / 'p.db'}", secret_box=SecretBox.generate())
        try:
            with store.engine.connect() as connection:
                return [
                    connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                    for name in ("journal_mode", "busy_timeout", "foreign_keys")
                ]
        finally:
            await store.close()

    assert asyncio.run(body()) == ["wal", 30000, 1]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///rel/x.db", "sqlite+pysqlite:///rel/x.db"),
        ("sqlite:////abs/x.db", "sqlite+pysqlite:////abs/x.db"),
        ("sqlite+aiosqlite:////abs/x.db", "sqlite+pysqlite:////abs/x.db"),
    ],
)
def test_urls_are_normalised_to_the_async_drivers(url: str, expected: str) -> None:
    assert normalize_database_url(url).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "mysql://u:secretpw@h/d",
        "postgresql+asyncpg://u:secretpw@h/d",
        "not a url",
    ],
)
def test_unusable_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        normalize_database_url(url)
    assert "secretpw" not in str(caught.value)


def test_describe_hides_the_password() -> None:
    store = SqlDatabase(
        "postgresql://vecron:hunter2@db.example:5432/vecron", secret_box=SecretBox.generate()
    )
    assert "hunter2" not in store.describe()
    assert "db.example:5432/vecron" in store.describe()


def test_an_unreachable_server_is_backend_unavailable() -> None:
    async def body() -> None:
        store = SqlDatabase(
            "postgresql://postgres:pw@127.0.0.1:1/vecron", secret_box=SecretBox.generate()
        )
        try:
            with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1:1") as caught:
                await store.list_jobs()
            assert "pw@" not in str(caught.value)
        finally:
            await store.close()

    asyncio.run(body())


def test_a_store_closes_only_an_engine_it_created(db: Harness) -> None:
    from vecron.backends.database import create_database_engine

    async def body() -> None:
        engine = create_database_engine(db.url)
        try:
            store = SqlDatabase(engine, secret_box=db.box)
            await store.close()
            assert await SqlDatabase(engine, secret_box=db.box).list_jobs() == []
        finally:
            engine.dispose()

    asyncio.run(body())


# -- jobs ------------------------------------------------------------------------------


def test_a_job_round_trips_with_every_field(db: Harness) -> None:
    record = job(
        enabled=False,
        disabled_reason="disabled by an operator",
        source_path="jobs/invoice.yaml",
        source_commit="a" * 40,
        schedule_type="cron",
        schedule_expression="0 0 2 ? * MON-FRI",
        timezone="Asia/Ho_Chi_Minh",
        next_run_at=datetime(2026, 3, 2, 2, 0, 0, 123456, tzinfo=ICT),
        webhook_id="wh_abc",
        webhook_secret="s3cret-value",
        webhook_enabled=True,
        webhook_rate_limit=60,
        concurrent_execution_allowed=True,
        last_sync_id=new_id(),
    )

    async def body(store: SqlDatabase) -> None:
        await store.insert_job(record)
        for found in (
            await store.get_job(record.name),
            await store.get_job_by_id(record.job_id),
            await store.get_job_by_id(record.job_id.upper()),
            await store.get_job_by_webhook("wh_abc"),
        ):
            assert found == record
            assert_utc(found.next_run_at, found.created_at, found.updated_at)
        assert record.minio_definition_path == f"jobs/{record.job_id}/definition.json"

    db.run(body)


def test_missing_jobs_are_job_not_found(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        with pytest.raises(JobNotFound, match="nope"):
            await store.get_job("nope")
        for lookup in (store.get_job_by_id(new_id()), store.get_job_by_id("not-a-uuid")):
            with pytest.raises(JobNotFound):
                await lookup
        with pytest.raises(JobNotFound):
            await store.get_job_by_webhook("wh_missing")
        with pytest.raises(JobNotFound):
            await store.update_job(new_id(), enabled=False)

    db.run(body)


def test_names_and_webhook_ids_are_unique(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        first = job("a", webhook_id="wh_1")
        await store.insert_job(first)
        await store.insert_job(job("b"))
        await store.insert_job(job("c"))  # several jobs without a webhook are fine
        with pytest.raises(AlreadyExists, match="job name 'a'") as caught:
            await store.insert_job(job("a"))
        assert caught.value.what == "job name"
        with pytest.raises(AlreadyExists, match="webhook id 'wh_1'"):
            await store.insert_job(job("d", webhook_id="wh_1"))
        second = await store.get_job("b")
        with pytest.raises(AlreadyExists, match="webhook id"):
            await store.update_job(second.job_id, webhook_id="wh_1")
        with pytest.raises(AlreadyExists, match="job name"):
            await store.update_job(second.job_id, name="a")
        with pytest.raises(AlreadyExists, match="job id"):
            await store.insert_job(job("e", job_id=first.job_id))
        assert [j.name for j in await store.list_jobs()] == ["a", "b", "c"]

    db.run(body)


def test_update_job_changes_columns_and_stamps_updated_at(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        record = job(content_hash=None, definition_version=0)
        await store.insert_job(record)
        db.clock.advance(60)
        updated = await store.update_job(record.job_id, content_hash="h1", source_commit="c1")
        assert (updated.content_hash, updated.definition_version) == ("h1", 1)
        assert updated.updated_at == db.clock.now
        assert updated.created_at == T0
        # the same hash again: no new version
        updated = await store.update_job(record.job_id, content_hash="h1", enabled=False)
        assert (updated.definition_version, updated.enabled) == (1, False)
        updated = await store.update_job(record.job_id, content_hash="h2")
        assert updated.definition_version == 2
        updated = await store.update_job(record.job_id, content_hash="h3", definition_version=7)
        assert updated.definition_version == 7
        updated = await store.update_job(
            record.job_id, webhook_secret="rotated", next_run_at=datetime(2026, 4, 1, tzinfo=ICT)
        )
        assert updated.webhook_secret == "rotated"
        assert updated.next_run_at == datetime(2026, 3, 31, 17, tzinfo=UTC)
        assert await store.get_job(record.name) == updated
        for bad in ({"job_id": new_id()}, {"created_at": T0}, {"colour": "blue"}):
            with pytest.raises(TypeError):
                await store.update_job(record.job_id, **bad)

    db.run(body)


def test_bulk_insert_and_update_jobs(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        records = [job(name=f"j{i}", content_hash=None, definition_version=0) for i in range(5)]
        await store.insert_jobs(records)
        await store.insert_jobs([])
        with pytest.raises(AlreadyExists):
            await store.insert_jobs([job(name="fresh"), job(name="j1")])
        names = [r.name for r in await store.list_jobs()]
        assert names == [f"j{i}" for i in range(5)]  # all or nothing: "fresh" is not there
        db.clock.advance(5)
        await store.update_jobs(
            {
                records[0].job_id: {"content_hash": "h1", "enabled": False},
                records[1].job_id: {"content_hash": "h1", "enabled": False},
                records[2].job_id: {"webhook_secret": "s3cr3t", "webhook_id": "w2"},
            }
        )
        first = await store.get_job("j0")
        second = await store.get_job("j1")
        third = await store.get_job("j2")
        assert (first.content_hash, first.definition_version, first.enabled) == ("h1", 1, False)
        assert second.definition_version == 1
        assert third.webhook_secret == "s3cr3t"
        assert third.updated_at == db.clock.now
        raw = db.raw("SELECT webhook_secret FROM jobs WHERE webhook_id = ?", "w2")
        assert "s3cr3t" not in str(raw)
        await store.update_jobs({records[0].job_id: {"content_hash": "h1"}})
        assert (await store.get_job("j0")).definition_version == 1  # same hash: same version
        with pytest.raises(JobNotFound):
            await store.update_jobs(
                {records[3].job_id: {"enabled": False}, new_id(): {"enabled": False}}
            )
        assert (await store.get_job("j3")).enabled  # nothing was written
        with pytest.raises(TypeError):
            await store.update_jobs({records[3].job_id: {"colour": "blue"}})

    db.run(body)


def test_delete_job_is_idempotent_and_keeps_history(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        record = job()
        await store.insert_job(record)
        run = await store.create_execution(execution(record))
        await store.delete_job(record.job_id)
        await store.delete_job(record.job_id)
        await store.delete_job("not-a-uuid")
        with pytest.raises(JobNotFound):
            await store.get_job(record.name)
        assert (await store.get_execution(run.execution_id)).job_name == record.name
        await store.insert_job(job(record.name))  # the name is free again

    db.run(body)


def test_list_jobs_by_name_with_or_without_disabled(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        for name, enabled in (("zeta", True), ("alpha", False), ("mid", True)):
            await store.insert_job(job(name, enabled=enabled))
        assert [j.name for j in await store.list_jobs()] == ["alpha", "mid", "zeta"]
        enabled_only = await store.list_jobs(include_disabled=False)
        assert [j.name for j in enabled_only] == ["mid", "zeta"]

    db.run(body)


def test_webhook_secrets_are_encrypted_at_rest(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        await store.insert_job(job(webhook_id="wh", webhook_secret="plain-hook-secret"))

    db.run(body)
    [(stored,)] = db.raw("SELECT webhook_secret FROM jobs")
    assert "plain-hook-secret" not in stored
    assert db.box.decrypt(stored) == "plain-hook-secret"
    assert "plain-hook-secret" not in repr(job(webhook_secret="plain-hook-secret"))


def test_reading_secrets_with_another_key_is_a_clear_error(db: Harness) -> None:
    async def write(store: SqlDatabase) -> None:
        await store.insert_job(job(webhook_id="wh", webhook_secret="plain-hook-secret"))
        await store.set_variable("TOKEN", "plain-token", secret=True, source="cli")

    async def read(store: SqlDatabase) -> None:
        with pytest.raises(ConfigurationError, match=WRONG_KEY_MESSAGE) as caught:
            await store.get_job("invoice-import")
        assert "plain" not in str(caught.value)
        assert (await store.get_variables())["TOKEN"].value == MASK
        with pytest.raises(ConfigurationError, match=WRONG_KEY_MESSAGE):
            await store.get_variables(decrypt=True)

    db.run(write)
    db.run(read, box=SecretBox.from_secret("another key"))


def test_naive_datetimes_are_refused(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        with pytest.raises(ValueError, match="naive datetime"):
            await store.insert_job(job(next_run_at=datetime(2026, 1, 1)))

    db.run(body)


JOB_NAMES = st.sampled_from(["a", "b", "c", "d"])
WEBHOOKS = st.sampled_from([None, "w1", "w2"])
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), JOB_NAMES, WEBHOOKS, st.booleans()),
        st.tuples(st.just("update"), JOB_NAMES, WEBHOOKS, st.booleans()),
        st.tuples(st.just("rehash"), JOB_NAMES, st.sampled_from(["h1", "h2"]), st.booleans()),
        st.tuples(st.just("delete"), JOB_NAMES, WEBHOOKS, st.booleans()),
    ),
    max_size=12,
)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_jobs_behave_like_a_dict(db: Harness, operations: list[tuple[Any, ...]]) -> None:
    """Random inserts, updates and deletes, checked against a dict of the expected rows."""
    db.reset()

    async def body(store: SqlDatabase) -> None:
        model: dict[str, dict[str, Any]] = {}
        ids: dict[str, str] = {}

        def webhook_taken(webhook: str | None, other_than: str | None = None) -> bool:
            return webhook is not None and any(
                row["webhook_id"] == webhook for name, row in model.items() if name != other_than
            )

        for kind, name, value, flag in operations:
            job_id = ids.setdefault(name, new_id())
            if kind == "insert":
                record = job(name, job_id=job_id, webhook_id=value, enabled=flag)
                if name in model or webhook_taken(value):
                    with pytest.raises(AlreadyExists):
                        await store.insert_job(record)
                else:
                    await store.insert_job(record)
                    model[name] = {"webhook_id": value, "enabled": flag, "version": 1}
                    model[name]["hash"] = record.content_hash
            elif kind in ("update", "rehash"):
                changes = (
                    {"webhook_id": value, "enabled": flag}
                    if kind == "update"
                    else {"content_hash": value}
                )
                if name not in model:
                    with pytest.raises(JobNotFound):
                        await store.update_job(job_id, **changes)
                elif kind == "update" and webhook_taken(value, other_than=name):
                    with pytest.raises(AlreadyExists):
                        await store.update_job(job_id, **changes)
                elif kind == "update":
                    await store.update_job(job_id, **changes)
                    model[name].update(changes)
                else:
                    await store.update_job(job_id, **changes)
                    if model[name]["hash"] != value:
                        model[name]["version"] += 1
                    model[name]["hash"] = value
            else:
                await store.delete_job(job_id)
                model.pop(name, None)

        stored = {
            j.name: {
                "webhook_id": j.webhook_id,
                "enabled": j.enabled,
                "version": j.definition_version,
                "hash": j.content_hash,
            }
            for j in await store.list_jobs()
        }
        assert stored == model

    db.run(body)


# -- variables -------------------------------------------------------------------------


def test_variables_mask_and_encrypt_secrets(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        await store.set_variable("PARTNER", "acme", secret=False, source="cli")
        await store.set_variable("API_TOKEN", "tok-plaintext-123", secret=True, source="cli")
        listed = await store.get_variables()
        assert listed["PARTNER"].value == "acme"
        assert listed["API_TOKEN"].value == MASK
        assert listed["API_TOKEN"].secret
        assert_utc(listed["API_TOKEN"].updated_at)
        decrypted = await store.get_variables(decrypt=True)
        assert decrypted["API_TOKEN"].value == "tok-plaintext-123"
        assert "tok-plaintext-123" not in repr(decrypted["API_TOKEN"])
        # replacing a secret with a plain value stores it plainly
        await store.set_variable("API_TOKEN", "now-public", secret=False, source="cli")
        assert (await store.get_variables())["API_TOKEN"].value == "now-public"
        await store.set_variable("API_TOKEN", "tok-plaintext-456", secret=True, source="cli")

    db.run(body)
    raw = dict(db.raw("SELECT name, value FROM variables"))
    assert raw["PARTNER"] == "acme"
    assert "tok-plaintext" not in raw["API_TOKEN"]
    assert db.box.decrypt(raw["API_TOKEN"]) == "tok-plaintext-456"


def test_delete_variable_says_whether_it_existed(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        await store.set_variable("X", "1", secret=False, source=VariableSource.CLI)
        assert await store.delete_variable("X") is True
        assert await store.delete_variable("X") is False
        assert await store.get_variables() == {}
        with pytest.raises(ValueError, match="'git'"):
            await store.set_variable("Y", "1", secret=False, source="git")

    db.run(body)


def test_replace_repo_variables_leaves_cli_variables_alone(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        await store.set_variable("CLI_ONLY", "mine", secret=False, source="cli")
        await store.set_variable("CLI_SECRET", "hidden", secret=True, source="cli")
        await store.set_variable("SHARED", "operator", secret=False, source="cli")
        await store.replace_repo_variables({"A": "1", "B": "2", "SHARED": "repo"})
        first = await store.get_variables(decrypt=True)
        assert {n: (v.value, v.source) for n, v in first.items()} == {
            "A": ("1", "repo"),
            "B": ("2", "repo"),
            "CLI_ONLY": ("mine", "cli"),
            "CLI_SECRET": ("hidden", "cli"),
            "SHARED": ("operator", "cli"),
        }
        db.clock.advance(30)
        await store.replace_repo_variables({"B": "2", "C": "3"})
        second = await store.get_variables(decrypt=True)
        assert sorted(second) == ["B", "C", "CLI_ONLY", "CLI_SECRET", "SHARED"]
        assert second["B"].updated_at == first["B"].updated_at  # unchanged: not rewritten
        assert second["C"].updated_at == db.clock.now
        await store.replace_repo_variables({})
        assert sorted(await store.get_variables()) == ["CLI_ONLY", "CLI_SECRET", "SHARED"]

    db.run(body)


# -- repository files --------------------------------------------------------------------


def test_repo_files_put_list_delete(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        await store.put_repo_file("templates/a.csv", "h1", 10)
        await store.put_repo_file("b.txt", "h2", 5_000_000_000)
        db.clock.advance(1)
        await store.put_repo_file("templates/a.csv", "h3", 11)
        files = await store.list_repo_files()
        assert list(files) == ["b.txt", "templates/a.csv"]
        assert (files["templates/a.csv"].content_hash, files["templates/a.csv"].size) == ("h3", 11)
        assert files["b.txt"].size == 5_000_000_000
        assert files["templates/a.csv"].updated_at == db.clock.now
        await store.delete_repo_file("b.txt")
        await store.delete_repo_file("b.txt")
        assert list(await store.list_repo_files()) == ["templates/a.csv"]

    db.run(body)


# -- sync runs ---------------------------------------------------------------------------


def test_sync_runs_are_recorded(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        assert await store.last_sync() is None
        first = await store.start_sync(
            source="https://x-access-token:ghp_secret@github.com/acme/jobs.git", ref="main"
        )
        db.clock.advance(5)
        await store.finish_sync(
            first,
            status="degraded",
            commit="c" * 40,
            counts={"created": 2, "invalid": 1},
            errors=[{"path": "jobs/bad.yaml", "line": 3, "column": 5, "message": "bad"}],
            message="1 invalid file",
        )
        db.clock.advance(5)
        second = await store.start_sync(source="/srv/jobs", ref=None)
        last = await store.last_sync()
        assert last is not None
        assert (last.sync_id, last.status, last.finished_at) == (second, SyncStatus.RUNNING, None)
        [newest, oldest] = await store.list_syncs()
        assert newest.sync_id == second
        assert oldest.source == "https://github.com/acme/jobs.git"
        assert oldest.status == SyncStatus.DEGRADED
        assert oldest.counts == {
            "created": 2,
            "updated": 0,
            "deleted": 0,
            "disabled": 0,
            "unchanged": 0,
            "invalid": 1,
        }
        assert oldest.errors == [
            {"path": "jobs/bad.yaml", "line": 3, "column": 5, "message": "bad"}
        ]
        assert (oldest.commit, oldest.message, oldest.ref) == ("c" * 40, "1 invalid file", "main")
        assert oldest.finished_at == oldest.started_at + timedelta(seconds=5)
        assert_utc(oldest.started_at, oldest.finished_at)
        assert [s.sync_id for s in await store.list_syncs(limit=1)] == [second]
        with pytest.raises(ValueError, match="bogus"):
            await store.finish_sync(
                second, status="ok", commit=None, counts={"bogus": 1}, errors=[], message=None
            )
        with pytest.raises(LookupError):
            await store.finish_sync(
                new_id(), status="ok", commit=None, counts={}, errors=[], message=None
            )

    db.run(body)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("https://user:pw@host/r.git", "https://host/r.git"),
        ("https://token@host/r.git", "https://host/r.git"),
        ("ssh://git:pw@host/r.git", "ssh://git@host/r.git"),
        ("git@github.com:acme/jobs.git", "git@github.com:acme/jobs.git"),
        ("/srv/jobs", "/srv/jobs"),
        ("https://host/r.git", "https://host/r.git"),
    ],
)
def test_strip_credentials(source: str, expected: str) -> None:
    assert strip_credentials(source) == expected


# -- executions --------------------------------------------------------------------------


def test_an_execution_round_trips(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        record = job()
        await store.insert_job(record)
        created = await store.create_execution(
            execution(
                record,
                trigger_source="webhook",
                trigger_data={"payload": {"kind": "invoice", "ids": [1, 2]}, "received_at": T0},
                scheduled_at=T0.astimezone(ICT),
                queued_at=T0,
                step_statuses=[{"id": "download", "status": "succeeded", "started_at": T0}],
            )
        )
        assert created.trigger_data == {
            "payload": {"kind": "invoice", "ids": [1, 2]},
            "received_at": T0.isoformat(),
        }
        assert created.step_statuses[0]["started_at"] == T0.isoformat()
        fetched = await store.get_execution(created.execution_id)
        assert fetched == created
        assert fetched.status is ExecutionStatus.QUEUED
        assert fetched.trigger_source is TriggerSource.WEBHOOK
        assert fetched.scheduled_at == T0
        assert_utc(fetched.scheduled_at, fetched.queued_at)
        with pytest.raises(AlreadyExists, match="execution id"):
            await store.create_execution(execution(record, execution_id=created.execution_id))
        for missing in (new_id(), "nope"):
            with pytest.raises(ExecutionNotFound):
                await store.get_execution(missing)

    db.run(body)


def test_concurrent_creates_with_one_idempotency_key_make_one_execution(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        record, other = job("a"), job("b")
        await store.insert_job(record)
        await store.insert_job(other)
        created = await asyncio.gather(
            *(
                store.create_execution(execution(record, idempotency_key="delivery-42"))
                for _ in range(20)
            )
        )
        assert len({c.execution_id for c in created}) == 1
        assert len(await store.list_executions(job_name="a")) == 1
        # keys are scoped to their job
        elsewhere = await store.create_execution(execution(other, idempotency_key="delivery-42"))
        assert elsewhere.execution_id != created[0].execution_id
        # and executions without a key never collide
        await store.create_execution(execution(record))
        await store.create_execution(execution(record))
        assert len(await store.list_executions(job_name="a")) == 3

    db.run(body)
    assert (
        db.raw("SELECT COUNT(*) FROM job_executions WHERE idempotency_key = ?", "delivery-42")[0][0]
        == 2
    )


def test_concurrent_claims_have_exactly_one_winner(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        record = job()
        await store.insert_job(record)
        run = await store.create_execution(execution(record))
        claims = await asyncio.gather(
            *(
                store.claim_execution(run.execution_id, worker_id=f"w{i}", lease_seconds=30)
                for i in range(10)
            )
        )
        winners = [c for c in claims if c is not None]
        assert len(winners) == 1
        [won] = winners
        assert won.status is ExecutionStatus.RUNNING
        assert won.started_at == db.clock.now
        assert won.leased_until == db.clock.now + timedelta(seconds=30)
        assert await store.get_execution(run.execution_id) == won
        # claiming again, by the holder or anyone else, is a no-op
        assert won.worker_id is not None
        assert (
            await store.claim_execution(run.execution_id, worker_id=won.worker_id, lease_seconds=30)
            is None
        )
        with pytest.raises(ExecutionNotFound):
            await store.claim_execution(new_id(), worker_id="w", lease_seconds=30)
        with pytest.raises(ValueError, match="lease_seconds"):
            await store.claim_execution(run.execution_id, worker_id="w", lease_seconds=0)

    db.run(body)


def test_claims_from_two_stores_have_one_winner(db: Harness) -> None:
    """Two engines (as two processes would have), each with five claimers."""

    async def body(store: SqlDatabase) -> None:
        record = job()
        await store.insert_job(record)
        runs = [await store.create_execution(execution(record)) for _ in range(5)]
        other = db.database()
        try:
            claims = await asyncio.gather(
                *(
                    s.claim_execution(r.execution_id, worker_id=f"{n}-{i}", lease_seconds=30)
                    for r in runs
                    for n, s in (("a", store), ("b", other))
                    for i in range(5)
                )
            )
        finally:
            await other.close()
        assert sorted(c.execution_id for c in claims if c) == sorted(r.execution_id for r in runs)

    db.run(body)


def test_an_expired_lease_can_be_taken_over(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        record = job()
        await store.insert_job(record)
        run = await store.create_execution(execution(record))
        first = await store.claim_execution(run.execution_id, worker_id="w1", lease_seconds=10)
        assert first is not None
        assert await store.renew_lease(run.execution_id, worker_id="w2", lease_seconds=10) is False
        db.clock.advance(5)
        assert await store.renew_lease(run.execution_id, worker_id="w1", lease_seconds=10) is True
        db.clock.advance(9)  # still leased: renewed at +5 for 10 s
        assert (
            await store.claim_execution(run.execution_id, worker_id="w2", lease_seconds=10) is None
        )
        db.clock.advance(2)
        second = await store.claim_execution(run.execution_id, worker_id="w2", lease_seconds=10)
        assert second is not None
        assert second.worker_id == "w2"
        assert second.started_at == first.started_at  # the first start is kept
        assert await store.renew_lease(run.execution_id, worker_id="w1", lease_seconds=10) is False
        # the worker that lost its lease cannot record an outcome
        lost = await store.finish_execution(
            run.execution_id, worker_id="w1", status="failed", error="late"
        )
        assert lost is False
        assert (await store.get_execution(run.execution_id)).status is ExecutionStatus.RUNNING
        assert await store.renew_lease("not-a-uuid", worker_id="w2", lease_seconds=10) is False

    db.run(body)


def test_a_claim_for_an_attempt_and_writes_for_a_claim(db: Harness) -> None:
    """``claim_execution(attempt=)`` takes only that attempt; ``update_execution(
    claimed_by=)`` writes only while that worker holds the run."""

    async def body(store: SqlDatabase) -> None:
        record = job()
        await store.insert_job(record)
        run = await store.create_execution(execution(record))
        await store.update_execution(run.execution_id, attempt=2)
        stale = await store.claim_execution(
            run.execution_id, worker_id="w1", lease_seconds=10, attempt=1
        )
        assert stale is None
        assert (await store.get_execution(run.execution_id)).status is ExecutionStatus.QUEUED
        claimed = await store.claim_execution(
            run.execution_id, worker_id="w1", lease_seconds=10, attempt=2
        )
        assert claimed is not None
        assert await store.update_execution(
            run.execution_id, claimed_by="w1", step_statuses=[{"id": "a"}]
        )
        assert not await store.update_execution(
            run.execution_id, claimed_by="w2", step_statuses=[{"id": "b"}]
        )
        db.clock.advance(11)  # w1's lease runs out; w2 takes over
        assert await store.claim_execution(run.execution_id, worker_id="w2", lease_seconds=10)
        assert not await store.update_execution(
            run.execution_id, claimed_by="w1", status="queued", worker_id=None
        )
        after = await store.get_execution(run.execution_id)
        assert after.worker_id == "w2"
        assert after.status is ExecutionStatus.RUNNING
        assert after.step_statuses == [{"id": "a"}]
        assert await store.update_execution(run.execution_id, error="unguarded") is True

    db.run(body)


def test_finish_execution_records_the_outcome(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        record = job()
        await store.insert_job(record)
        run = await store.create_execution(execution(record))
        await store.claim_execution(run.execution_id, worker_id="w1", lease_seconds=30)
        await store.update_execution(
            run.execution_id,
            step_statuses=[{"id": "a", "status": "succeeded"}],
            minio_context_path="jobs/x/executions/y/context.json",
        )
        db.clock.advance(3)
        assert await store.finish_execution(
            run.execution_id, worker_id="w1", status="failed", error="step b: HTTP 500"
        )
        done = await store.get_execution(run.execution_id)
        assert done.status is ExecutionStatus.FAILED
        assert done.error == "step b: HTTP 500"
        assert done.finished_at == db.clock.now
        assert done.leased_until is None
        assert done.worker_id == "w1"
        assert done.step_statuses == [{"id": "a", "status": "succeeded"}]  # kept
        assert done.minio_context_path == "jobs/x/executions/y/context.json"
        # finishing again as a worker fails; a claim of a finished execution too
        assert not await store.finish_execution(
            run.execution_id, worker_id="w1", status="succeeded", error=None
        )
        assert await store.claim_execution(run.execution_id, worker_id="w", lease_seconds=5) is None
        # without a worker (the scheduler, an operator) any execution can be finished
        skipped = await store.create_execution(execution(record))
        assert await store.finish_execution(
            skipped.execution_id,
            worker_id=None,
            status=ExecutionStatus.SKIPPED,
            error="a run is in flight",
            step_statuses=[],
            context_path="ctx.json",
        )
        after = await store.get_execution(skipped.execution_id)
        assert (after.status, after.started_at, after.minio_context_path) == (
            ExecutionStatus.SKIPPED,
            None,
            "ctx.json",
        )
        with pytest.raises(ValueError, match="not a final status"):
            await store.finish_execution(
                skipped.execution_id, worker_id=None, status="running", error=None
            )
        with pytest.raises(ExecutionNotFound):
            await store.finish_execution(new_id(), worker_id=None, status="cancelled", error=None)
        with pytest.raises(ExecutionNotFound):
            await store.finish_execution(new_id(), worker_id="w", status="cancelled", error=None)

    db.run(body)


def test_update_execution(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        record = job()
        await store.insert_job(record)
        run = await store.create_execution(execution(record))
        await store.update_execution(run.execution_id, attempt=2, status="queued", error=None)
        assert (await store.get_execution(run.execution_id)).attempt == 2
        await store.update_execution(run.execution_id)
        with pytest.raises(TypeError, match="colour"):
            await store.update_execution(run.execution_id, colour="red")
        with pytest.raises(TypeError, match="execution_id"):
            await store.update_execution(run.execution_id, execution_id=new_id())
        with pytest.raises(ValueError, match="'exploded'"):
            await store.update_execution(run.execution_id, status="exploded")
        for missing in (new_id(), "nope"):
            with pytest.raises(ExecutionNotFound):
                await store.update_execution(missing, attempt=3)
            with pytest.raises(ExecutionNotFound):
                await store.update_execution(missing)

    db.run(body)


def test_list_executions_filters_and_pages_newest_first(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        a, b = job("a"), job("b")
        await store.insert_job(a)
        await store.insert_job(b)
        made: list[ExecutionRecord] = []
        for i in range(12):
            target = a if i % 3 else b
            source = ("manual", "scheduled", "webhook")[i % 3]
            made.append(
                await store.create_execution(
                    execution(target, trigger_source=source, queued_at=T0 + timedelta(minutes=i))
                )
            )
        for run in made[:4]:
            await store.finish_execution(
                run.execution_id, worker_id=None, status="succeeded", error=None
            )
        newest_first = [r.execution_id for r in reversed(made)]
        assert [r.execution_id for r in await store.list_executions()] == newest_first
        page = await store.list_executions(limit=5, offset=5)
        assert [r.execution_id for r in page] == newest_first[5:10]
        assert await store.list_executions(offset=50) == []
        assert {r.job_name for r in await store.list_executions(job_name="b")} == {"b"}
        assert len(await store.list_executions(job_name="b")) == 4
        assert len(await store.list_executions(status="succeeded")) == 4
        assert len(await store.list_executions(status=["queued", "running"])) == 8
        webhook = await store.list_executions(trigger_source=TriggerSource.WEBHOOK)
        assert [r.queued_at.minute for r in webhook] == [11, 8, 5, 2]
        window = await store.list_executions(
            since=T0 + timedelta(minutes=3), until=(T0 + timedelta(minutes=6)).astimezone(ICT)
        )
        assert [r.queued_at.minute for r in window] == [5, 4, 3]
        both = await store.list_executions(job_name="a", trigger_source="scheduled", limit=2)
        assert [r.queued_at.minute for r in both] == [10, 7]
        with pytest.raises(ValueError, match="negative"):
            await store.list_executions(limit=-1)

    db.run(body)


def test_running_executions_counts_queued_and_running(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        a, b = job("a"), job("b")
        await store.insert_job(a)
        await store.insert_job(b)
        assert await store.running_executions(a.job_id) == 0
        queued = await store.create_execution(execution(a))
        running = await store.create_execution(execution(a))
        done = await store.create_execution(execution(a))
        await store.create_execution(execution(b))
        await store.claim_execution(running.execution_id, worker_id="w", lease_seconds=30)
        await store.finish_execution(
            done.execution_id, worker_id=None, status="cancelled", error=None
        )
        assert await store.running_executions(a.job_id) == 2
        await store.finish_execution(
            queued.execution_id, worker_id=None, status="interrupted", error=None
        )
        assert await store.running_executions(a.job_id) == 1
        assert await store.running_executions("not-a-uuid") == 0

    db.run(body)


def test_datetimes_come_back_aware_utc_on_every_read_path(db: Harness) -> None:
    db.clock.now = datetime(2026, 7, 1, 23, 30, tzinfo=ICT)

    async def body(store: SqlDatabase) -> None:
        record = job(created_at=db.clock.now, updated_at=db.clock.now)
        await store.insert_job(record)
        run = await store.create_execution(execution(record, queued_at=db.clock.now))
        claimed = await store.claim_execution(run.execution_id, worker_id="w", lease_seconds=1.5)
        assert claimed is not None
        assert_utc(claimed.queued_at, claimed.started_at, claimed.leased_until)
        assert claimed.leased_until == db.clock.now + timedelta(seconds=1.5)
        updated = await store.update_job(record.job_id, enabled=False)
        assert_utc(updated.created_at, updated.updated_at)
        assert updated.created_at == datetime(2026, 7, 1, 16, 30, tzinfo=UTC)

    db.run(body)


def test_with_the_real_clock(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        record = job()
        await store.insert_job(record)
        before = datetime.now(UTC)
        run = await store.create_execution(execution(record))
        claimed = await store.claim_execution(run.execution_id, worker_id="w", lease_seconds=60)
        assert claimed is not None
        assert claimed.started_at is not None
        assert before <= claimed.started_at <= datetime.now(UTC)

    db.run(body, real_clock=True)


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock()
    first = clock()
    clock.advance(1.5)
    assert clock() - first == timedelta(seconds=1.5)


def test_sqlite_file_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "vecron.db"

    async def body() -> None:
        store = SqlDatabase(f"sqlite:///{path}", secret_box=SecretBox.generate())
        try:
            await store.migrate()
        finally:
            await store.close()

    asyncio.run(body())
    with contextlib.closing(sqlite3.connect(path)) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"jobs", "job_executions", "variables", "sync_runs", "repo_files"} <= tables


def test_alembic_commands_work_without_an_ini_file(tmp_path: Path) -> None:
    """The developer path: Alembic's own commands, on a URL, online and offline."""
    from alembic import command

    from vecron.backends.database.migrations import alembic_config

    path = tmp_path / "cli.db"
    config = alembic_config(f"sqlite:///{path}")
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [
            ("0003",)
        ]
    offline = alembic_config("postgresql://vecron@db/vecron")
    offline.output_buffer = io.StringIO()
    command.upgrade(offline, "head", sql=True)
    script = offline.output_buffer.getvalue()
    assert "CREATE TABLE job_executions" in script
    assert "uq_job_executions_job_id_idempotency_key" in script


def test_the_schedule_queries_and_the_fire_compare_and_set(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        t0 = db.clock.now
        soon, later = t0 + timedelta(seconds=5), t0 + timedelta(minutes=5)
        await store.insert_jobs(
            [
                job(name="due", next_run_at=t0 - timedelta(seconds=1)),
                job(name="soon", next_run_at=soon),
                job(name="later", next_run_at=later),
                job(name="off", next_run_at=t0 - timedelta(hours=1), enabled=False),
                job(name="unscheduled", next_run_at=None),
            ]
        )
        assert [j.name for j in await store.due_jobs(t0)] == ["due"]
        assert [j.name for j in await store.due_jobs(soon)] == ["due", "soon"]
        assert await store.next_due_at() == t0 - timedelta(seconds=1)
        due = await store.get_job("due")
        assert due.next_run_at is not None
        # Two schedulers race for the same fire: exactly one moves it.
        results = await asyncio.gather(
            *(
                store.advance_schedule(due.job_id, expected=due.next_run_at, next_run_at=later)
                for _ in range(5)
            )
        )
        assert sorted(results) == [False, False, False, False, True]
        assert (await store.get_job("due")).next_run_at == later
        assert await store.next_due_at() == soon
        none = await store.get_job("unscheduled")
        assert await store.advance_schedule(none.job_id, expected=None, next_run_at=soon)
        assert not await store.advance_schedule(none.job_id, expected=None, next_run_at=soon)
        assert await store.last_finished_execution(due.job_id) is None

    db.run(body)


def test_exclusive_creates_admit_one_run_in_flight(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        record = job(name="solo")
        await store.insert_job(record)

        async def attempt(n: int) -> str:
            try:
                created = await store.create_execution(
                    execution(record, idempotency_key=None), exclusive=True
                )
            except RunInFlight:
                return "refused"
            return created.execution_id

        results = await asyncio.gather(*(attempt(n) for n in range(10)))
        assert results.count("refused") == 9
        winner = next(r for r in results if r != "refused")
        # A redelivery of the same keyed request is not a second run.
        keyed = await store.create_execution(
            execution(record, idempotency_key="k"), exclusive=False
        )
        again = await store.create_execution(execution(record, idempotency_key="k"), exclusive=True)
        assert again.execution_id == keyed.execution_id
        await store.claim_execution(winner, worker_id="w", lease_seconds=60)
        await store.finish_execution(winner, worker_id="w", status="succeeded", error=None)
        await store.claim_execution(keyed.execution_id, worker_id="w", lease_seconds=60)
        await store.finish_execution(
            keyed.execution_id, worker_id="w", status="succeeded", error=None
        )
        assert await store.create_execution(execution(record), exclusive=True)

    db.run(body)


def test_fire_schedules_in_one_transaction(db: Harness) -> None:
    async def body(store: SqlDatabase) -> None:
        t0 = db.clock.now
        later = t0 + timedelta(minutes=1)
        free, busy, moved = job(name="free"), job(name="busy"), job(name="moved")
        await store.insert_jobs(
            [
                dataclasses.replace(free, next_run_at=t0),
                dataclasses.replace(busy, next_run_at=t0, concurrent_execution_allowed=False),
                dataclasses.replace(moved, next_run_at=later),
            ]
        )
        await store.create_execution(execution(busy))  # a run in flight
        fires = [
            ScheduledFire(
                job_id=target.job_id,
                expected=t0,
                next_run_at=later,
                execution=execution(target, idempotency_key=f"scheduled:{t0.isoformat()}"),
                exclusive=target is busy,
            )
            for target in (free, busy, moved)
        ]
        first = await store.fire_schedules(fires)
        assert [r.advanced for r in first] == [True, True, False]
        assert first[0].execution is not None
        assert first[0].execution.status == ExecutionStatus.QUEUED
        assert first[1].skipped
        assert first[2].execution is None
        # The same fires again: the schedules moved on, nothing more is written.
        again = await store.fire_schedules(fires)
        assert [r.advanced for r in again] == [False, False, False]
        assert len(await store.list_executions(job_name="free")) == 1
        assert (await store.get_job("moved")).next_run_at == later

    db.run(body)


def test_fires_that_all_land_are_written_together_and_a_taken_key_undoes_the_batch(
    db: Harness,
) -> None:
    """The batched path (every schedule moves, every key is new) gives what fire-by-fire
    gives; one taken key sends the whole batch fire by fire, with nothing doubled."""

    async def body(store: SqlDatabase) -> None:
        t0 = db.clock.now
        later = t0 + timedelta(minutes=1)
        names = [f"job-{i}" for i in range(5)]
        records = [job(name=name) for name in names]
        await store.insert_jobs(
            [
                dataclasses.replace(r, next_run_at=t0, concurrent_execution_allowed=i != 1)
                for i, r in enumerate(records)
            ]
        )
        await store.create_execution(execution(records[1]))  # job-1 has a run in flight
        key = f"scheduled:{t0.isoformat()}"
        fires = [
            ScheduledFire(
                job_id=r.job_id,
                expected=t0,
                next_run_at=later,
                execution=None if i == 4 else execution(r, idempotency_key=key),
                exclusive=i == 1,
            )
            for i, r in enumerate(records)
        ]
        results = await store.fire_schedules(fires)
        assert all(r.advanced for r in results)
        assert [r.skipped for r in results] == [False, True, False, False, False]
        assert results[4].execution is None
        for i, name in enumerate(names[:4]):
            stored = await store.list_executions(job_name=name)
            assert len(stored) == (2 if i == 1 else 1)
            result = results[i].execution
            assert result is not None
            assert result in stored
        for name in names:
            assert (await store.get_job(name)).next_run_at == later

        # Next fire: job-2's key is taken already (the same fire time, by hand).
        t1 = later
        taken = execution(records[2], idempotency_key=f"scheduled:{t1.isoformat()}")
        await store.create_execution(taken)
        second = [
            ScheduledFire(
                job_id=r.job_id,
                expected=t1,
                next_run_at=t1 + timedelta(minutes=1),
                execution=execution(r, idempotency_key=f"scheduled:{t1.isoformat()}"),
            )
            for r in records[:3]
        ]
        again = await store.fire_schedules(second)
        assert all(r.advanced for r in again)
        assert again[2].execution is not None
        assert again[2].execution.execution_id == taken.execution_id  # the first one wins
        assert len(await store.list_executions(job_name="job-0")) == 2
        assert len(await store.list_executions(job_name="job-2")) == 2

    db.run(body)
