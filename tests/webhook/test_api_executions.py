"""``/api/v1/executions`` against a real server on both backends: filters, pagination
(cursor and offset, with runs starting while a caller pages), one execution with its
context, and the rules of retry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.webhook.api_harness import Api, api, refused
from vecron import paths
from vecron.backends.database import ExecutionRecord, ExecutionStatus, TriggerSource

__all__ = ["api"]  # the fixture, imported for pytest

S = ExecutionStatus
T = TriggerSource
BASE = datetime(2026, 11, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return BASE + timedelta(minutes=minutes)


async def ids(api: Api, query: str, role: str = "viewer") -> list[str]:
    response = await api.call("GET", f"/executions{query}", role=role)
    assert response.status_code == 200, response.text
    return [e["execution_id"] for e in response.json()["executions"]]


async def pages(api: Api, query: str) -> list[list[str]]:
    """Every page, following ``next`` links."""
    found: list[list[str]] = []
    path: str | None = f"/api/v1/executions{query}"
    while path is not None:
        response = await api.client.get(
            api.url + path, headers={"Authorization": f"Bearer {api.tokens['viewer']}"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        found.append([e["execution_id"] for e in body["executions"]])
        path = body["next"]
    return found


async def test_filters(api: Api) -> None:
    made: dict[str, ExecutionRecord] = {}
    plan: list[tuple[str, str, S, T, float]] = [
        ("a", "report", S.SUCCEEDED, T.MANUAL, 0),
        ("b", "report", S.FAILED, T.SCHEDULED, 1),
        ("c", "serial", S.FAILED, T.WEBHOOK, 2),
        ("d", "serial", S.QUEUED, T.MANUAL, 3),
        ("e", "report", S.DEAD_LETTERED, T.SCHEDULED, 4),
    ]
    for key, job, status, source, minute in plan:
        made[key] = await api.add_execution(
            job, status=status, trigger_source=source, queued_at=at(minute)
        )

    def of(*keys: str) -> list[str]:
        return [made[k].execution_id for k in keys]

    assert await ids(api, "") == of("e", "d", "c", "b", "a")
    assert await ids(api, "?job=report") == of("e", "b", "a")
    assert await ids(api, "?job=ghost") == []
    assert await ids(api, "?status=failed") == of("c", "b")
    assert await ids(api, "?status=failed&status=dead_lettered") == of("e", "c", "b")
    assert await ids(api, "?status=failed,queued") == of("d", "c", "b")
    assert await ids(api, "?trigger_source=scheduled") == of("e", "b")
    assert await ids(api, "?job=report&status=failed&trigger_source=scheduled") == of("b")
    assert await ids(api, "?since=2026-11-01T00:01:00Z") == of("e", "d", "c", "b")
    assert await ids(api, "?until=2026-11-01T00:03:00Z") == of("c", "b", "a")
    # The same instants in Ho Chi Minh City time, + written as %2B.
    query = "?since=2026-11-01T07:01:00%2B07:00&until=2026-11-01T07:03:00%2B07:00"
    assert await ids(api, query) == of("c", "b")

    for query, name in [
        ("?status=finished", "status"),
        ("?status=", "status"),
        ("?trigger_source=cron", "trigger_source"),
        ("?since=yesterday", "since"),
        ("?since=2026-11-01T00:00:00", "since"),  # naive: which timezone?
        ("?until=2026-11-01T07:00:00+07:00", "until"),  # + decoded to a space
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?limit=ten", "limit"),
        ("?offset=-1", "offset"),
        ("?cursor=bm90IGEgY3Vyc29y", "cursor"),
        ("?cursor=%%%", "cursor"),
        ("?stauts=failed", "stauts"),
    ]:
        response = await api.call("GET", f"/executions{query}", role="viewer")
        body = await refused(response, 400, "bad_parameter")
        assert name in body["message"], (query, body)


async def test_cursor_pages_neither_skip_nor_repeat_while_runs_start(api: Api) -> None:
    # Ten runs share one instant: their tie spans three pages of four.
    made = [
        await api.add_execution("report", queued_at=at(0 if minute < 10 else minute))
        for minute in range(23)
    ]
    expected = await ids(api, "?limit=500")
    assert sorted(expected) == sorted(r.execution_id for r in made)

    seen: list[str] = []
    path: str | None = "/api/v1/executions?limit=4&job=report"
    while path is not None:
        assert len(seen) <= len(expected), "the pages repeat"
        response = await api.client.get(
            api.url + path, headers={"Authorization": f"Bearer {api.tokens['viewer']}"}
        )
        body = response.json()
        assert body["limit"] == 4
        seen.extend(e["execution_id"] for e in body["executions"])
        # A run that starts meanwhile is newer than every page: it never shifts them.
        await api.add_execution("report", status=S.QUEUED)
        path = body["next"]
        if path is not None:
            assert body["next_cursor"] in path
            assert "job=report" in path
            assert "limit=4" in path
    assert seen == expected


async def test_offset_pages(api: Api) -> None:
    for minute in range(7):
        await api.add_execution("serial", queued_at=at(minute))
    expected = await ids(api, "")
    found = await pages(api, "?limit=3&offset=0")
    assert found == [expected[0:3], expected[3:6], expected[6:7]]
    assert await ids(api, "?limit=2&offset=5") == expected[5:7]
    assert await ids(api, "?offset=7") == []
    last = await api.call("GET", "/executions?limit=7", role="viewer")
    assert last.json()["next"] is None
    assert last.json()["next_cursor"] is None


async def test_one_execution_with_its_steps_and_context(api: Api) -> None:
    job = await api.stores.database.get_job("report")
    record = await api.add_execution("report", status=S.QUEUED)
    context_path = paths.context_path(job.job_id, record.execution_id)
    context = {"version": 1, "steps": {"fetch": {"status": "failed", "output": {"n": 1}}}}
    await api.stores.objects.put(context_path, json.dumps(context).encode())
    started = "2026-11-01T00:00:00.250000+00:00"
    await api.stores.database.finish_execution(
        record.execution_id,
        worker_id=None,
        status=S.FAILED,
        error="step 'fetch' failed: HTTP 500",
        step_statuses=[
            {
                "id": "fetch",
                "status": "failed",
                "started_at": started,
                "completed_at": "2026-11-01T00:00:01.500000+00:00",
                "error": "HTTP 500",
            }
        ],
        context_path=context_path,
    )
    response = await api.call("GET", f"/executions/{record.execution_id}", role="viewer")
    assert response.status_code == 200, response.text
    execution = response.json()
    assert execution["status"] == "failed"
    assert execution["error"] == "step 'fetch' failed: HTTP 500"
    assert execution["attempt"] == 1
    assert execution["trigger_source"] == "manual"
    assert execution["job_name"] == "report"
    assert execution["context_path"] == context_path
    assert execution["context"] == context
    assert execution["context_note"] is None
    assert execution["steps"] == [
        {
            "id": "fetch",
            "status": "failed",
            "started_at": "2026-11-01T00:00:00.250000Z",
            "completed_at": "2026-11-01T00:00:01.500000Z",
            "duration_ms": 1250.0,
            "error": "HTTP 500",
        }
    ]

    await api.stores.objects.delete(context_path)
    missing = (await api.call("GET", f"/executions/{record.execution_id}")).json()
    assert missing["context"] is None
    assert context_path in missing["context_note"]
    fresh = await api.add_execution("report", status=S.QUEUED)
    queued = (await api.call("GET", f"/executions/{fresh.execution_id}")).json()
    assert (queued["context"], queued["context_path"]) == (None, None)
    assert queued["context_note"]

    for unknown in ("00000000-0000-4000-8000-000000000000", "not-a-uuid"):
        response = await api.call("GET", f"/executions/{unknown}", role="viewer")
        await refused(response, 404, "execution_not_found")


# -- retry -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.FAILED, S.TIMED_OUT, S.INTERRUPTED, S.DEAD_LETTERED], ids=str)
async def test_a_failed_execution_is_retried_once_with_its_trigger_data(
    api: Api, status: S
) -> None:
    payload: dict[str, Any] = {"payload": {"order": 7}, "received_at": "2026-11-01T00:00:00Z"}
    original = await api.add_execution(
        "hooked",
        status=status,
        trigger_source=T.WEBHOOK,
        trigger_data=payload,
        scheduled_at=at(0),
    )
    response = await api.call("POST", f"/executions/{original.execution_id}/retry", role="operator")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert body["retry_of"] == original.execution_id
    retry = await api.stores.database.get_execution(body["execution_id"])
    assert retry.trigger_source == T.WEBHOOK
    assert retry.scheduled_at == at(0)
    assert retry.trigger_data["payload"] == {"order": 7}
    assert retry.trigger_data["retry_of"] == original.execution_id
    assert retry.trigger_data["requested_by"] == "operator-token"
    assert retry.definition_hash == (await api.stores.database.get_job("hooked")).content_hash
    listed = (await api.call("GET", f"/executions/{retry.execution_id}")).json()
    assert listed["retry_of"] == original.execution_id

    again = await api.call("POST", f"/executions/{original.execution_id}/retry", role="admin")
    assert again.status_code == 202
    assert again.json()["execution_id"] == retry.execution_id
    assert again.headers["idempotent-replayed"] == "true"
    assert await api.queue.pending() == 1


async def test_only_failed_executions_are_retried(api: Api) -> None:
    for status in (S.SUCCEEDED, S.QUEUED, S.RUNNING, S.SKIPPED, S.CANCELLED):
        record = await api.add_execution("report", status=status)
        response = await api.call("POST", f"/executions/{record.execution_id}/retry")
        body = await refused(response, 409, "not_retryable")
        assert status.value in body["message"]
    unknown = "00000000-0000-4000-8000-000000000000"
    await refused(
        await api.call("POST", f"/executions/{unknown}/retry"), 404, "execution_not_found"
    )
    assert len(await api.stores.database.list_executions()) == 5


async def test_a_retry_is_refused_by_the_job_state(api: Api) -> None:
    failed = await api.add_execution("serial", status=S.FAILED)
    await api.add_execution("serial", status=S.RUNNING)
    await refused(
        await api.call("POST", f"/executions/{failed.execution_id}/retry"), 409, "run_in_flight"
    )
    manual = await api.add_execution("report", status=S.FAILED)
    await api.call("POST", "/jobs/report/disable")
    await refused(
        await api.call("POST", f"/executions/{manual.execution_id}/retry"), 403, "job_disabled"
    )
    gone = await api.add_execution("hooked", status=S.FAILED)
    await api.sync_files({"hooked.yaml": None})
    await refused(
        await api.call("POST", f"/executions/{gone.execution_id}/retry"), 404, "job_not_found"
    )
