"""The database step against real PostgreSQL, MariaDB and SQLite (tests/runtime/db_targets.py).

Oracle has no server here: only its URL handling, placeholders and an unreachable
listener are tested.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.runtime.db_targets import (
    DbTarget,
    closed_port,
    db_target,
    mariadb_target,
    pg_target,
    silent_server,
    sqlite_target,
)
from tests.runtime.steprun import make_step_run
from vecron.errors import ReferenceResolutionError, StepFailed
from vecron.runtime.steps import database as database_step
from vecron.runtime.steps.base import StepRun
from vecron.runtime.steps.database import (
    PARAMSTYLES,
    DatabaseStepExecutor,
    describe_target,
    first_keyword,
    json_value,
    target_url,
)
from vecron.spec.models import DatabaseConfig

__all__ = ["db_target", "mariadb_target", "pg_target", "sqlite_target"]  # fixtures

TABLE = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, amount DECIMAL(12, 2))"
INJECTION = "x'); DROP TABLE t; --"
ROW_IDS = itertools.count(1)


def step_run(
    root: Path,
    *,
    payload: Mapping[str, Any] | None = None,
    variables: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> StepRun:
    """A StepRun over a local object store, with ``payload`` as the webhook's payload."""
    return make_step_run(
        root,
        job_name="db-test",
        step_id="query",
        payload=payload or {},
        variables=variables,
        secrets=secrets,
    )


async def query(
    executor: DatabaseStepExecutor,
    run: StepRun,
    target: DbTarget,
    sql: str,
    **config: Any,
) -> dict[str, Any]:
    settings = {
        "database_type": target.database_type,
        "connection_string": target.url,
        "query": sql,
        **config,
    }
    return await executor.run(DatabaseConfig.model_validate(settings), run)


@pytest.fixture
async def executor() -> AsyncIterator[DatabaseStepExecutor]:
    step = DatabaseStepExecutor()
    try:
        yield step
    finally:
        await step.close()


def seed(target: DbTarget, *names: str) -> None:
    target.sql(TABLE)
    for index, name in enumerate(names, start=1):
        target.sql(
            f"INSERT INTO t (id, name) VALUES ({target.placeholder}, {target.placeholder})",
            index,
            name,
        )


# --- binding -------------------------------------------------------------------------


async def test_references_and_variables_arrive_as_typed_values(
    db_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    run = step_run(
        tmp_path,
        payload={"n": 42, "text": "it's", "nothing": None, "ratio": 1.5, "flag": True},
        variables={"GREETING": "hello"},
    )
    out = await query(
        executor,
        run,
        db_target,
        "SELECT {{webhook.payload.n}} AS n, {{webhook.payload.text}} AS s, "
        "{{webhook.payload.nothing}} AS z, {{webhook.payload.ratio}} AS r, "
        "{{webhook.payload.flag}} AS b, ${GREETING} AS g",
    )
    row = out["rows"][0]
    assert row["n"] == 42
    assert row["s"] == "it's"
    assert row["z"] is None
    assert row["g"] == "hello"
    assert float(row["r"]) == 1.5
    # PostgreSQL has booleans; MySQL and SQLite answer 1.
    assert row["b"] is True if db_target.name == "postgresql" else row["b"] == 1
    assert out["columns"] == ["n", "s", "z", "r", "b", "g"]
    assert out["row_count"] == 1
    assert out["affected_rows"] is None
    assert not out["truncated"]


async def test_select_filters_with_references(
    db_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    seed(db_target, "alpha", "beta", "gamma", "delta")
    run = step_run(tmp_path, payload={"min_id": 2}, variables={"SKIP": "gamma"})
    out = await query(
        executor,
        run,
        db_target,
        "SELECT id, name FROM t WHERE id >= {{webhook.payload.min_id}} AND name <> ${SKIP} "
        "ORDER BY id",
    )
    assert out["rows"] == [{"id": 2, "name": "beta"}, {"id": 4, "name": "delta"}]


async def test_like_pattern_keeps_its_percent_next_to_a_bound_value(
    db_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    seed(db_target, "apple", "avocado", "banana", "a%b")
    run = step_run(tmp_path, payload={"not": "avocado"})
    out = await query(
        executor,
        run,
        db_target,
        "SELECT name, '100%' AS pct FROM t "
        "WHERE name LIKE 'a%' AND name <> {{webhook.payload.not}} ORDER BY id",
    )
    assert out["rows"] == [{"name": "apple", "pct": "100%"}, {"name": "a%b", "pct": "100%"}]


async def test_dml_reports_affected_rows(
    db_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    db_target.sql(TABLE)
    run = step_run(tmp_path, payload={"names": ["a", "b", "c"], "new": "z"})
    inserted = await query(
        executor,
        run,
        db_target,
        "INSERT INTO t (id, name) VALUES (1, {{webhook.payload.names[0]}}), "
        "(2, {{webhook.payload.names[1]}}), (3, {{webhook.payload.names[2]}})",
    )
    assert inserted == {
        "rows": [],
        "columns": [],
        "row_count": 0,
        "affected_rows": 3,
        "truncated": False,
    }
    updated = await query(
        executor, run, db_target, "UPDATE t SET name = {{webhook.payload.new}} WHERE id >= 2"
    )
    assert updated["affected_rows"] == 2
    deleted = await query(executor, run, db_target, "DELETE FROM t WHERE id = 1")
    assert deleted["affected_rows"] == 1
    none = await query(executor, run, db_target, "DELETE FROM t WHERE id = 99")
    assert none["affected_rows"] == 0
    assert db_target.sql("SELECT id, name FROM t ORDER BY id") == [(2, "z"), (3, "z")]


async def test_max_rows_truncates(
    db_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    seed(db_target, *"abcde")
    run = step_run(tmp_path)
    sql = "SELECT id FROM t ORDER BY id"
    cut = await query(executor, run, db_target, sql, max_rows=2)
    assert cut["rows"] == [{"id": 1}, {"id": 2}]
    assert cut["row_count"] == 2
    assert cut["truncated"]
    whole = await query(executor, run, db_target, sql, max_rows=5)
    assert whole["row_count"] == 5
    assert not whole["truncated"]
    empty = await query(executor, run, db_target, "SELECT id FROM t WHERE id > 99")
    assert empty["rows"] == []
    assert empty["columns"] == ["id"]
    assert not empty["truncated"]


async def test_columns_keep_their_order_and_repeated_names_survive(
    db_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    out = await query(
        executor, step_run(tmp_path), db_target, "SELECT 'z' AS zeta, 'a' AS alpha, 'm' AS alpha"
    )
    assert out["columns"] == ["zeta", "alpha", "alpha_2"]
    assert list(out["rows"][0].items()) == [("zeta", "z"), ("alpha", "a"), ("alpha_2", "m")]


async def test_sql_injection_in_trigger_data_is_stored_verbatim(
    db_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    seed(db_target, "existing")
    run = step_run(tmp_path, payload={"name": INJECTION, "probe": "' OR '1'='1"})
    await query(
        executor, run, db_target, "INSERT INTO t (id, name) VALUES (2, {{webhook.payload.name}})"
    )
    found = await query(
        executor, run, db_target, "SELECT name FROM t WHERE name = {{webhook.payload.probe}}"
    )
    assert found["rows"] == []
    assert db_target.sql("SELECT id, name FROM t ORDER BY id") == [(1, "existing"), (2, INJECTION)]


async def test_a_lone_surrogate_from_json_is_a_step_error(
    pg_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    run = step_run(tmp_path, payload={"name": "\ud800"})  # json.loads accepts "\\ud800"
    with pytest.raises(StepFailed, match="surrogates not allowed"):
        await query(executor, run, pg_target, "SELECT {{webhook.payload.name}} AS name")


async def test_a_statement_is_one_transaction(
    db_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    seed(db_target, "one")
    with pytest.raises(StepFailed) as failed:
        await query(
            executor,
            step_run(tmp_path),
            db_target,
            "INSERT INTO t (id, name) VALUES (5, 'five'), (1, 'clash')",
        )
    assert "duplicate" in str(failed.value).lower() or "unique" in str(failed.value).lower()
    assert db_target.sql("SELECT count(*) FROM t") == [(1,)]


async def test_native_parameters(
    db_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    seed(db_target, "alpha", "beta", "gamma")
    run = step_run(tmp_path, payload={"min_id": 2})
    mark = db_target.placeholder
    positional = await query(
        executor,
        run,
        db_target,
        f"SELECT name FROM t WHERE id >= {mark} AND name <> {mark} ORDER BY id",
        parameters=["{{webhook.payload.min_id}}", "gamma"],
    )
    assert positional["rows"] == [{"name": "beta"}]
    named_mark = ":{}" if db_target.name == "sqlite" else "%({})s"
    pct = "%" if db_target.name == "sqlite" else "%%"  # the driver's own escaping rules
    named = await query(
        executor,
        run,
        db_target,
        f"SELECT name FROM t WHERE id >= {named_mark.format('low')} "
        f"AND name LIKE 'a{pct}' ORDER BY id",
        parameters={"low": "{{webhook.payload.min_id}}"},
    )
    assert named["rows"] == []
    with pytest.raises(StepFailed, match="use one or the other"):
        await query(
            executor,
            run,
            db_target,
            f"SELECT name FROM t WHERE id = {mark} AND name = {{{{webhook.payload.min_id}}}}",
            parameters=[1],
        )


async def test_a_missing_reference_names_its_path(
    db_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    with pytest.raises(ReferenceResolutionError, match="nope"):
        await query(executor, step_run(tmp_path), db_target, "SELECT {{webhook.payload.nope}}")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=60))
async def test_any_string_round_trips_as_a_bound_value(
    db_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path, text: str
) -> None:
    db_target.sql("CREATE TABLE IF NOT EXISTS s (id INTEGER PRIMARY KEY, v TEXT)")
    run = step_run(tmp_path, payload={"v": text, "id": next(ROW_IDS)})
    await query(
        executor,
        run,
        db_target,
        "INSERT INTO s (id, v) VALUES ({{webhook.payload.id}}, {{webhook.payload.v}})",
    )
    out = await query(
        executor,
        run,
        db_target,
        "SELECT v, {{webhook.payload.v}} AS echo FROM s WHERE id = {{webhook.payload.id}}",
    )
    assert out["rows"] == [{"v": text, "echo": text}]


# --- values --------------------------------------------------------------------------


async def test_postgres_types_become_json(
    pg_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    run = step_run(tmp_path, payload={"n": "41", "doc": {"a": [1, 2]}, "ids": [1, 3]})
    out = await query(
        executor,
        run,
        pg_target,
        "SELECT 12.50::numeric(12,2) AS amount, DATE '2026-03-01' AS day, "
        "TIMESTAMPTZ '2026-03-01 12:30:00+00' AS at, TIMESTAMP '2026-03-01 12:30:00' AS local, "
        "'\\x00ff'::bytea AS raw, NULL AS nothing, true AS yes, "
        "'00000000-0000-0000-0000-000000000001'::uuid AS id, INTERVAL '90 seconds' AS pause, "
        "'NaN'::float8 AS nan, {{webhook.payload.n}}::int + 1 AS cast, "
        "{{webhook.payload.doc}}::jsonb AS doc, 3 = ANY({{webhook.payload.ids}}) AS has3",
    )
    assert out["rows"] == [
        {
            "amount": "12.50",
            "day": "2026-03-01",
            "at": "2026-03-01T12:30:00+00:00",
            "local": "2026-03-01T12:30:00",
            "raw": base64.b64encode(b"\x00\xff").decode(),
            "nothing": None,
            "yes": True,
            "id": "00000000-0000-0000-0000-000000000001",
            "pause": 90.0,
            "nan": "NaN",
            "cast": 42,
            "doc": {"a": [1, 2]},
            "has3": True,
        }
    ]


async def test_mariadb_types_become_json(
    mariadb_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    mariadb_target.sql(
        "CREATE TABLE v (amount DECIMAL(12,2), day DATE, at DATETIME(3), raw VARBINARY(4), "
        "nothing TEXT, yes BOOLEAN)"
    )
    mariadb_target.sql(
        "INSERT INTO v VALUES (12.50, '2026-03-01', '2026-03-01 12:30:00.250', x'00ff', NULL, TRUE)"
    )
    run = step_run(tmp_path, payload={"ids": [1, 3]})
    out = await query(
        executor, run, mariadb_target, "SELECT v.*, 3 IN {{webhook.payload.ids}} AS has3 FROM v"
    )
    assert out["rows"] == [
        {
            "amount": "12.50",
            "day": "2026-03-01",
            "at": "2026-03-01T12:30:00.250000",
            "raw": base64.b64encode(b"\x00\xff").decode(),
            "nothing": None,
            "yes": 1,
            "has3": 1,
        }
    ]


async def test_sqlite_types_become_json(
    sqlite_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    run = step_run(tmp_path, payload={"doc": {"a": 1}, "ids": [1, 2]})
    out = await query(
        executor,
        run,
        sqlite_target,
        "SELECT 12.5 AS amount, x'00ff' AS raw, NULL AS missing, 1 = 1 AS yes, "
        "{{webhook.payload.doc}} AS doc, {{webhook.payload.ids}} AS ids",
    )
    assert out["rows"] == [
        {
            "amount": 12.5,
            "raw": "AP8=",
            "missing": None,
            "yes": 1,
            "doc": '{"a": 1}',
            "ids": "[1, 2]",
        }
    ]


def test_json_value_covers_driver_types() -> None:
    assert json_value(Decimal("1E+2")) == "100"
    assert json_value(Decimal("-0.000001")) == "-0.000001"
    assert json_value(Decimal("NaN")) == "NaN"
    assert json_value(float("inf")) == "Infinity"
    assert json_value(float("-inf")) == "-Infinity"
    assert json_value(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05"
    assert json_value(date(2026, 1, 2)) == "2026-01-02"
    assert json_value(timedelta(minutes=1, microseconds=500_000)) == 60.5
    assert json_value(memoryview(b"hi")) == "aGk="
    assert json_value(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert json_value({"b", "a"}) == ["a", "b"]
    assert json_value({"k": (Decimal("1.10"), None)}) == {"k": ["1.10", None]}


async def test_postgres_with_statements_read_and_write(
    pg_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    seed(pg_target, "a", "b", "c")
    run = step_run(tmp_path, payload={"id": 1})
    read = await query(
        executor,
        run,
        pg_target,
        "/* report */ WITH x AS (SELECT id FROM t) SELECT count(*) AS n FROM x",
    )
    assert read["rows"] == [{"n": 3}]
    written = await query(
        executor,
        run,
        pg_target,
        "WITH gone AS (DELETE FROM t WHERE id >= {{webhook.payload.id}} RETURNING id) "
        "SELECT id FROM gone ORDER BY id",
        max_rows=2,
    )
    assert written["rows"] == [{"id": 1}, {"id": 2}]
    assert written["truncated"]
    assert pg_target.sql("SELECT count(*) FROM t") == [(0,)]
    returning = await query(
        executor, run, pg_target, "INSERT INTO t (id, name) VALUES (7, 'x') RETURNING id, name"
    )
    assert returning["rows"] == [{"id": 7, "name": "x"}]
    assert returning["affected_rows"] is None


# --- failures ------------------------------------------------------------------------


async def test_statement_timeout(
    db_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    slow = {
        "postgresql": "SELECT pg_sleep(10)",
        "mariadb": "SELECT SLEEP(10)",
        "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
        "SELECT count(*) FROM c",
    }[db_target.name]
    started = time.monotonic()
    with pytest.raises(StepFailed, match=r"timeout_seconds=0\.5") as failed:
        await query(executor, step_run(tmp_path), db_target, slow, timeout_seconds=0.5)
    assert time.monotonic() - started < 2.5
    assert "cancelled" in str(failed.value)
    after = await query(executor, step_run(tmp_path), db_target, "SELECT 1 AS one")
    assert after["rows"] == [{"one": 1}]  # the pooled connection still works


async def test_cancelling_the_step_stops_the_statement(
    db_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    seed(db_target)
    slow = {
        "postgresql": "INSERT INTO t (id) SELECT 1 FROM pg_sleep(30)",
        "mariadb": "INSERT INTO t (id) SELECT SLEEP(30) + 1",
        "sqlite": "INSERT INTO t (id) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
        "SELECT x + 1 FROM c) SELECT count(*) FROM c",
    }[db_target.name]
    task = asyncio.create_task(query(executor, step_run(tmp_path), db_target, slow))
    await asyncio.sleep(0.5)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2
    assert db_target.sql("SELECT count(*) FROM t") == [(0,)]  # rolled back
    if db_target.name == "postgresql":
        running = pg_running(db_target, "pg_sleep")
        assert running == 0


async def test_the_watchdog_cancels_what_the_server_does_not(
    db_target: DbTarget,
    executor: DatabaseStepExecutor,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Switch off the server-side limits (MySQL has none for writes): the watchdog alone
    # must cancel the statement through the driver and leave the pool usable.
    monkeypatch.setattr(database_step, "_limit", lambda *_: None)
    monkeypatch.setattr(database_step, "WATCHDOG_GRACE_SECONDS", 0.2)
    seed(db_target)
    slow = {
        "postgresql": "INSERT INTO t (id) SELECT 1 FROM pg_sleep(30)",
        "mariadb": "INSERT INTO t (id) SELECT SLEEP(30) + 1",
        "sqlite": "INSERT INTO t (id) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
        "SELECT x + 1 FROM c) SELECT count(*) FROM c",
    }[db_target.name]
    started = time.monotonic()
    with pytest.raises(StepFailed, match=r"timeout_seconds=0\.5 and was cancelled"):
        await query(executor, step_run(tmp_path), db_target, slow, timeout_seconds=0.5)
    assert time.monotonic() - started < 3
    assert db_target.sql("SELECT count(*) FROM t") == [(0,)]
    after = await query(executor, step_run(tmp_path), db_target, "SELECT 1 AS one")
    assert after["rows"] == [{"one": 1}]


def pg_running(target: DbTarget, needle: str) -> int:
    rows = target.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
        "AND pid <> pg_backend_pid()",
        f"%{needle}%",
    )
    return int(rows[0][0])


async def test_syntax_error_names_the_target_and_the_place(
    db_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    with pytest.raises(StepFailed) as failed:
        await query(executor, step_run(tmp_path), db_target, "SELEC 1")
    message = str(failed.value)
    database = db_target.url.rsplit("/", 1)[1]
    assert database in message
    expected = {
        "postgresql": ('syntax error at or near "SELEC"', "LINE 1", "SQLSTATE 42601"),
        "mariadb": ("near 'SELEC 1' at line 1", "MySQL error 1064"),
        "sqlite": ('near "SELEC": syntax error',),
    }[db_target.name]
    for part in expected:
        assert part in message


async def test_unreachable_port_fails_quickly(
    executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    port = closed_port()
    for database_type, url in [
        ("postgresql", f"postgresql://vecron@127.0.0.1:{port}/app"),
        ("mysql", f"mysql://vecron@127.0.0.1:{port}/app"),
        ("oracle", f"oracle://vecron:pw@127.0.0.1:{port}/?service_name=FREEPDB1"),
    ]:
        started = time.monotonic()
        with pytest.raises(
            StepFailed, match=rf"cannot connect to {database_type} vecron@127.0.0.1:{port}/"
        ):
            await executor.run(
                {"database_type": database_type, "connection_string": url, "query": "SELECT 1"},
                step_run(tmp_path),
            )
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("database_type", ["postgresql", "mysql"])
async def test_a_silent_server_ends_at_the_connect_timeout(
    database_type: str, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    with silent_server() as port:
        started = time.monotonic()
        with pytest.raises(StepFailed, match="connect_timeout") as failed:
            await executor.run(
                {
                    "database_type": database_type,
                    "connection_string": f"{database_type}://u@127.0.0.1:{port}/app"
                    "?connect_timeout=2",
                    "query": "SELECT 1",
                },
                step_run(tmp_path),
            )
        assert 1.5 < time.monotonic() - started < 6
        assert f"cannot connect to {database_type} u@127.0.0.1:{port}/app" in str(failed.value)


async def test_wrong_credentials_never_show_the_password(
    mariadb_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    url = mariadb_target.url.replace("root@", "root:hunter2-wrong@")
    with pytest.raises(StepFailed, match="Access denied") as failed:
        await query(executor, step_run(tmp_path), mariadb_target, "SELECT 1", connection_string=url)
    assert "hunter2-wrong" not in str(failed.value)
    assert "MySQL error 1045" in str(failed.value)


async def test_unknown_role_and_database(
    pg_target: DbTarget,
    mariadb_target: DbTarget,
    executor: DatabaseStepExecutor,
    tmp_path: Path,
) -> None:
    run = step_run(tmp_path)
    pg_url = pg_target.url.rsplit("@", 1)[1]
    with pytest.raises(StepFailed, match='role "nobody" does not exist') as failed:
        await query(
            executor,
            run,
            pg_target,
            "SELECT 1",
            connection_string=f"postgresql://nobody:pw-1234@{pg_url}",
        )
    assert "pw-1234" not in str(failed.value)
    missing_pg = pg_target.url.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(StepFailed, match='database "no_such_db" does not exist'):
        await query(executor, run, pg_target, "SELECT 1", connection_string=missing_pg)
    missing_maria = mariadb_target.url.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(StepFailed, match="Unknown database 'no_such_db'"):
        await query(executor, run, mariadb_target, "SELECT 1", connection_string=missing_maria)
    with pytest.raises(StepFailed, match="the file does not exist"):
        await executor.run(
            DatabaseConfig(
                database_type="sqlite",
                connection_string=f"sqlite:///{tmp_path / 'typo.db'}",
                query="SELECT 1",
            ),
            run,
        )
    assert not (tmp_path / "typo.db").exists()


async def test_secrets_are_scrubbed_from_errors(
    pg_target: DbTarget, executor: DatabaseStepExecutor, tmp_path: Path
) -> None:
    pg_target.sql("CREATE TABLE k (token TEXT PRIMARY KEY)")
    pg_target.sql("INSERT INTO k VALUES ('tok-very-secret')")
    user, address = pg_target.url.removeprefix("postgresql://").split("@", 1)
    secret_url = f"postgresql://{user}:Sup3r-Secret@{address}"  # trust auth ignores it
    run = step_run(tmp_path, secrets={"DB_URL": secret_url, "TOKEN": "tok-very-secret"})
    with pytest.raises(StepFailed, match="already exists") as failed:
        await query(
            executor,
            run,
            pg_target,
            "INSERT INTO k VALUES (${secret:TOKEN})",
            connection_string="${secret:DB_URL}",
        )
    message = str(failed.value)
    assert "tok-very-secret" not in message
    assert "******" in message
    assert "Sup3r-Secret" not in message
    refused = f"postgresql://app:Sup3r-Secret@127.0.0.1:{closed_port()}/app"
    run = step_run(tmp_path, secrets={"DB_URL": refused})
    with pytest.raises(
        StepFailed, match=r"cannot connect to postgresql app@127\.0\.0\.1"
    ) as failed:
        await query(executor, run, pg_target, "SELECT 1", connection_string="${secret:DB_URL}")
    assert "Sup3r-Secret" not in str(failed.value)


# --- pools and URLs ------------------------------------------------------------------


async def test_one_pool_per_target_closed_on_shutdown(
    pg_target: DbTarget, sqlite_target: DbTarget, tmp_path: Path
) -> None:
    executor = DatabaseStepExecutor()
    database = pg_target.url.rsplit("/", 1)[1]
    count = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'vecron'"
    )
    try:
        for _ in range(3):
            await query(executor, step_run(tmp_path), pg_target, "SELECT 1")
        await query(executor, step_run(tmp_path), sqlite_target, "SELECT 1")
        assert len(executor.open_pools) == 2
        assert executor.open_pools[0].startswith("postgresql ")
        assert pg_target.sql(count, database) == [(1,)]
    finally:
        await executor.close()
    assert not executor.open_pools
    assert pg_target.sql(count, database) == [(0,)]


@pytest.mark.parametrize(
    ("database_type", "given", "driver"),
    [
        ("postgresql", "postgresql://u:p@h/db", "postgresql+psycopg"),
        ("postgresql", "postgres://u:p@h/db", "postgresql+psycopg"),
        ("postgresql", "postgresql+psycopg://u:p@h/db", "postgresql+psycopg"),
        ("mysql", "mysql://u:p@h/db", "mysql+pymysql"),
        ("mysql", "mariadb://u:p@h/db", "mariadb+pymysql"),
        ("mariadb", "mysql+pymysql://u:p@h/db", "mysql+pymysql"),
        ("sqlite", "sqlite:////tmp/x.db", "sqlite+pysqlite"),
        ("oracle", "oracle://u:p@h:1521/?service_name=S", "oracle+oracledb"),
        ("oracle", "oracle+oracledb://u:p@h:1521/XE", "oracle+oracledb"),
    ],
)
def test_connection_strings_are_normalised(database_type: str, given: str, driver: str) -> None:
    url = target_url(f"  {given} ", database_type)
    assert url.drivername == driver
    assert "p@" not in describe_target(url)


@pytest.mark.parametrize(
    ("database_type", "given", "problem"),
    [
        ("postgresql", "mysql://u:secret-pw@h/db", "database_type is postgresql"),
        ("postgresql", "postgresql+psycopg2://u:secret-pw@h/db", "driver is not available"),
        ("sqlite", "sqlite://", "in-memory"),
        ("mysql", "not a url secret-pw", "not a database URL"),
        ("oracle", "mssql://u:secret-pw@h/db", "unsupported database"),
    ],
)
def test_bad_connection_strings(database_type: str, given: str, problem: str) -> None:
    with pytest.raises(StepFailed, match=problem) as failed:
        target_url(given, database_type)
    assert "secret-pw" not in str(failed.value)


def test_oracle_and_other_placeholders(tmp_path: Path) -> None:
    run = step_run(tmp_path, payload={"id": 7, "pct": "a%"})
    sql = (
        "SELECT * FROM t WHERE id = {{webhook.payload.id}} "
        "AND name LIKE {{webhook.payload.pct}} || '%'"
    )
    assert run.values.sql(sql, PARAMSTYLES["oracle"]) == (
        "SELECT * FROM t WHERE id = :p0 AND name LIKE :p1 || '%'",
        {"p0": 7, "p1": "a%"},
    )
    assert run.values.sql(sql, PARAMSTYLES["postgresql"])[0].endswith("LIKE %s || '%%'")
    assert run.values.sql(sql, PARAMSTYLES["sqlite"])[0].endswith("LIKE ? || '%'")
    assert describe_target(
        target_url("oracle://scott:tiger@db:1521/?service_name=PDB1", "oracle")
    ) == ("oracle scott@db:1521/PDB1")


def test_first_keyword() -> None:
    assert first_keyword("  -- note\n /* c */ (SELECT 1)") == "SELECT"
    assert first_keyword("with x as (select 1) select * from x") == "WITH"
    assert first_keyword("") == ""
