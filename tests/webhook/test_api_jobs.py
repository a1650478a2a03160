"""``/api/v1/jobs`` against a real server on both backends: listing, reading, manual
runs and their refusals, and enable/disable surviving real syncs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.runtime.http_target import HttpTarget, serve_http_target
from tests.webhook.api_harness import JOBS, Api, api, open_api, refused
from vecron.backends.database import ExecutionStatus, TriggerSource
from vecron.reconciler.plan import REMOVED_REASON
from vecron.runtime.steps.http import HttpStepExecutor
from vecron.runtime.worker import Worker
from vecron.stores import Stores

__all__ = ["api"]  # the fixture, imported for pytest

S = ExecutionStatus


def when(minutes: int) -> datetime:
    return datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=minutes)


# -- reading -----------------------------------------------------------------------------


async def test_jobs_list_with_schedule_next_and_last_run_and_success_rate(api: Api) -> None:
    for minute, status in enumerate([S.SUCCEEDED, S.FAILED, S.SUCCEEDED, S.CANCELLED]):
        await api.add_execution("report", status=status, queued_at=when(minute))
    newest = await api.add_execution("report", status=S.SUCCEEDED, queued_at=when(10))
    await api.add_execution("report", status=S.SKIPPED, queued_at=when(11))  # never ran
    await api.add_execution("report", status=S.RUNNING, queued_at=when(12))  # not finished

    response = await api.call("GET", "/jobs", role="viewer")
    assert response.status_code == 200, response.text
    jobs = {job["name"]: job for job in response.json()["jobs"]}
    assert list(jobs) == sorted(json_name(text) for text in JOBS.values())

    report = jobs["report"]
    assert report["enabled"] is True
    assert report["disabled_reason"] is None
    assert report["schedule"] == {
        "type": "cron",
        "expression": "0 0 2 * * ?",
        "timezone": "Asia/Ho_Chi_Minh",
    }
    next_run = datetime.fromisoformat(report["next_run_at"])
    assert next_run > datetime.now(UTC)
    assert next_run.astimezone(UTC).hour == 19  # 02:00 in Ho Chi Minh City (UTC+7)
    assert report["last_run"] == {
        "execution_id": newest.execution_id,
        "status": "succeeded",
        "trigger_source": "manual",
        "finished_at": report["last_run"]["finished_at"],
    }
    assert report["success_rate"] == 0.75  # 3 of 4: cancelled and skipped are not counted
    assert report["rated_runs"] == 4
    assert report["triggers"] == {"scheduled": True, "manual": True, "webhook": False}

    assert jobs["serial"]["schedule"] is None
    assert jobs["serial"]["next_run_at"] is None
    assert jobs["serial"]["last_run"] is None
    assert jobs["serial"]["success_rate"] is None
    assert jobs["file-off"]["enabled"] is False
    assert jobs["file-off"]["disabled_reason"] is None
    assert jobs["no-manual"]["triggers"]["manual"] is False
    assert jobs["hooked"]["triggers"]["webhook"] is True


def json_name(text: str) -> str:
    return text.split("\n", 1)[0].removeprefix("name: ")


async def test_a_job_shows_its_webhook_url_only_with_job_write_and_never_its_secret(
    api: Api,
) -> None:
    record = await api.stores.database.get_job("hooked")
    assert record.webhook_id is not None
    assert record.webhook_secret is not None
    for role in ("viewer", "operator", "admin"):
        response = await api.call("GET", "/jobs/hooked", role=role)
        assert response.status_code == 200, response.text
        job = response.json()
        assert record.webhook_secret not in response.text
        if role == "admin":
            assert job["webhook"]["url"] == f"{api.url}/webhooks/{record.webhook_id}"
        else:
            assert job["webhook"]["url"] is None
            assert record.webhook_id not in response.text
        assert job["webhook"]["enabled"] is True
        assert job["webhook"]["rate_limit"] == 100
        assert job["webhook"]["schemes"] == ["vecron"]


async def test_a_job_in_detail(api: Api) -> None:
    response = await api.call("GET", "/jobs/report", role="viewer")
    assert response.status_code == 200, response.text
    job = response.json()
    stored = await api.stores.database.get_job("report")
    assert job["job_id"] == stored.job_id
    assert job["description"] == "Daily report"
    assert job["labels"] == {"team": "data"}
    assert job["variables"] == ["LIMIT", "REGION"]
    assert job["steps"] == [{"id": "fetch", "type": "http"}]
    assert job["webhook"] is None
    assert job["content_hash"] == stored.content_hash
    assert job["source_path"] == "jobs/report.yaml"
    assert job["allow_concurrent"] is True
    assert job["success_rate"] is None
    assert "${API}" not in response.text  # no step config

    await refused(await api.call("GET", "/jobs/ghost", role="viewer"), 404, "job_not_found")


# -- manual runs -------------------------------------------------------------------------


async def test_a_manual_run_is_recorded_and_queued(api: Api) -> None:
    response = await api.call("POST", "/jobs/report/runs", role="operator")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body == {"execution_id": body["execution_id"], "status": "queued"}
    assert "idempotent-replayed" not in response.headers
    record = await api.stores.database.get_execution(body["execution_id"])
    assert record.trigger_source == TriggerSource.MANUAL
    assert record.trigger_data["requested_by"] == "operator-token"
    assert "variables" not in record.trigger_data
    (delivery,) = await api.queue.fetch(batch=1, timeout_seconds=1)
    assert delivery.message.execution_id == record.execution_id


async def test_an_idempotency_key_answers_a_repeated_run_with_the_first_one(api: Api) -> None:
    headers = {"Idempotency-Key": "deploy-42"}
    first = await api.call("POST", "/jobs/report/runs", role="operator", headers=headers)
    again = await api.call("POST", "/jobs/report/runs", role="admin", headers=headers)
    other = await api.call(
        "POST", "/jobs/report/runs", role="operator", headers={"Idempotency-Key": "deploy-43"}
    )
    assert first.status_code == again.status_code == other.status_code == 202
    assert again.json()["execution_id"] == first.json()["execution_id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert other.json()["execution_id"] != first.json()["execution_id"]
    stored = await api.stores.database.get_execution(first.json()["execution_id"])
    assert stored.idempotency_key == "manual:deploy-42"
    assert len(await api.stores.database.list_executions()) == 2
    assert await api.queue.pending() == 2

    for bad in ("", "x" * 201, "spaced key", "clé"):
        response = await api.call(
            "POST",
            "/jobs/report/runs",
            role="operator",
            headers={"Idempotency-Key": bad.encode()},
        )
        await refused(response, 400, "bad_idempotency_key")


async def test_variable_overrides_are_checked_and_recorded(api: Api) -> None:
    response = await api.call(
        "POST",
        "/jobs/report/runs",
        role="operator",
        json={"variables": {"REGION": "apac", "LIMIT": 5}},
    )
    assert response.status_code == 202, response.text
    record = await api.stores.database.get_execution(response.json()["execution_id"])
    assert record.trigger_data["variables"] == {"REGION": "apac", "LIMIT": 5}

    refusals = [
        ({"variables": {"API": "http://evil.example"}}, 400, "unknown_variable"),
        ({"variables": {"REGION": {"nested": 1}}}, 400, "bad_request"),
        ({"variables": ["REGION"]}, 400, "bad_request"),
        ({"vars": {}}, 400, "bad_request"),
        ([1, 2], 400, "malformed_body"),
    ]
    for body, status, code in refusals:
        answer = await api.call("POST", "/jobs/report/runs", role="operator", json=body)
        message = (await refused(answer, status, code))["message"]
        if code == "unknown_variable":
            assert "'API'" in message
            assert "LIMIT, REGION" in message
    bad_json = await api.call(
        "POST",
        "/jobs/report/runs",
        role="operator",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    await refused(bad_json, 400, "malformed_body")
    as_form = await api.call("POST", "/jobs/report/runs", role="operator", data={"variables": "x"})
    await refused(as_form, 415, "unsupported_content_type")
    assert len(await api.stores.database.list_executions()) == 1


async def test_manual_runs_are_refused_by_the_job_state(api: Api) -> None:
    await refused(await api.call("POST", "/jobs/ghost/runs", role="operator"), 404, "job_not_found")
    await refused(
        await api.call("POST", "/jobs/no-manual/runs", role="operator"), 403, "manual_off"
    )
    await refused(
        await api.call("POST", "/jobs/file-off/runs", role="operator"), 403, "job_disabled"
    )
    first = await api.call("POST", "/jobs/serial/runs", role="operator")
    assert first.status_code == 202, first.text
    body = await refused(
        await api.call("POST", "/jobs/serial/runs", role="operator"), 409, "run_in_flight"
    )
    assert "serial" in body["message"]
    assert len(await api.stores.database.list_executions()) == 1
    assert await api.queue.pending() == 1


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with serve_http_target() as served_target:
        yield served_target


async def test_variable_overrides_reach_the_run(
    stores: Stores, tmp_path: Path, target: HttpTarget
) -> None:
    async with open_api(stores, tmp_path / "repo", api_url=target.url("").rstrip("/")) as api:
        response = await api.call(
            "POST", "/jobs/report/runs", role="operator", json={"variables": {"REGION": "apac"}}
        )
        assert response.status_code == 202, response.text
        (delivery,) = await api.queue.fetch(batch=1, timeout_seconds=1)
        http = HttpStepExecutor()
        try:
            await Worker(stores=api.stores, queue=api.queue, executors={"http": http}).process(
                delivery
            )
        finally:
            await http.close()
        run = await api.call("GET", f"/executions/{response.json()['execution_id']}")
        execution = run.json()
        assert execution["status"] == "succeeded", execution["error"]
        assert execution["context"]["variables"]["REGION"] == "apac"
        echoed = execution["context"]["steps"]["fetch"]["output"]["body"]
        assert echoed["query"]["region"] == "apac"
        assert json.dumps(execution["variables"]) == '{"REGION": "apac"}'


# -- enable and disable ------------------------------------------------------------------


async def test_disable_and_enable_survive_syncs(api: Api) -> None:
    database = api.stores.database
    response = await api.call("POST", "/jobs/report/disable", role="admin")
    assert response.status_code == 200, response.text
    state = response.json()
    reason = "disabled through the API by admin-token"
    assert state == {
        "name": "report",
        "enabled": False,
        "disabled_reason": reason,
        "next_run_at": None,
    }
    await refused(await api.call("POST", "/jobs/report/runs", role="operator"), 403, "job_disabled")

    # A sync of the unchanged file, then of a changed one, keeps the operator's choice.
    await api.sync_files({})
    await api.sync_files({"report.yaml": JOBS["report.yaml"].replace("Daily", "Nightly")})
    job = await database.get_job("report")
    assert (job.enabled, job.disabled_reason, job.next_run_at) == (False, reason, None)
    again = await api.call("POST", "/jobs/report/disable", role="admin")
    assert again.json()["disabled_reason"] == reason

    enabled = await api.call("POST", "/jobs/report/enable", role="admin")
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["enabled"] is True
    assert enabled.json()["disabled_reason"] is None
    next_run = datetime.fromisoformat(enabled.json()["next_run_at"])
    assert next_run > datetime.now(UTC)
    await api.sync_files({"report.yaml": JOBS["report.yaml"]})
    job = await database.get_job("report")
    assert (job.enabled, job.disabled_reason) == (True, None)
    assert job.next_run_at == next_run
    assert (await api.call("POST", "/jobs/report/runs", role="operator")).status_code == 202


async def test_enable_never_overrides_the_repository(api: Api) -> None:
    database = api.stores.database
    body = await refused(
        await api.call("POST", "/jobs/file-off/enable", role="admin"), 409, "disabled_in_repository"
    )
    assert "jobs/file-off.yaml" in body["message"]
    assert not (await database.get_job("file-off")).enabled

    # Disabled by an operator while its file says enabled: false; the file then says
    # true, and the job stays disabled until the operator enables it.
    await api.call("POST", "/jobs/file-off/disable", role="admin")
    await api.sync_files({"file-off.yaml": JOBS["file-off.yaml"].replace("enabled: false", "")})
    job = await database.get_job("file-off")
    assert (job.enabled, job.disabled_reason) == (False, "disabled through the API by admin-token")
    enabled = await api.call("POST", "/jobs/file-off/enable", role="admin")
    assert enabled.json()["enabled"] is True
    await api.sync_files({})
    assert (await database.get_job("file-off")).enabled

    # A job whose file is gone stays disabled; enable says why.
    await api.sync_files({"serial.yaml": None}, prune=False)
    assert (await database.get_job("serial")).disabled_reason == REMOVED_REASON
    await refused(await api.call("POST", "/jobs/serial/enable", role="admin"), 409, "file_removed")
    await refused(await api.call("POST", "/jobs/ghost/enable", role="admin"), 404, "job_not_found")
    await refused(await api.call("POST", "/jobs/ghost/disable", role="admin"), 404, "job_not_found")


async def test_enabling_an_enabled_job_changes_nothing(api: Api) -> None:
    before = await api.stores.database.get_job("report")
    response = await api.call("POST", "/jobs/report/enable", role="admin")
    assert response.status_code == 200, response.text
    after = await api.stores.database.get_job("report")
    assert after.updated_at == before.updated_at
    assert after.next_run_at == before.next_run_at
