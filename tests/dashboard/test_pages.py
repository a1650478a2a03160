"""The read-only pages over a served app: what they show, filters, masking, fragments."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.dashboard.harness import dashboard, login
from vecron import paths
from vecron.backends.database import ExecutionStatus, TriggerSource
from vecron.dashboard.present import describe_schedule, mask_context, next_fires
from vecron.spec.models import Job
from vecron.stores import Stores

ROWS = re.compile(r'<tr data-execution="([0-9a-f-]+)" data-status="(\w+)">')


async def test_the_jobs_page_shows_state_schedule_rate_and_source(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as api:
        now = datetime.now(UTC)
        for status in ("succeeded", "succeeded", "failed", "cancelled"):
            await api.add_execution("report", status=ExecutionStatus(status))
        # Older than 30 days: not in the rate.
        await api.add_execution(
            "report", status=ExecutionStatus.FAILED, queued_at=now - timedelta(days=40)
        )
        async with login(api, "viewer") as client:
            page = (await client.get("/ui/")).text
        report = page[page.index('data-job="report"') :].split("</tr>")[0]
        assert "at 02:00:00 (Asia/Ho_Chi_Minh)" in report
        assert "67%" in report  # 2 of 3: a cancel says nothing of the job
        assert "of 3" in report
        assert "jobs/report.yaml" in report
        assert re.search(r"\d{4}-\d\d-\d\d 02:00:00 \+07", report)  # the job's timezone
        assert 'name="viewport"' in page
        off = page[page.index('data-job="file-off"') :].split("</tr>")[0]
        assert "disabled" in off


async def test_executions_are_filtered_by_job_status_and_trigger(
    tmp_path: Path, stores: Stores
) -> None:
    async with dashboard(tmp_path, stores) as api:
        now = datetime.now(UTC)
        made = {
            "ok": await api.add_execution("report"),
            "failed": await api.add_execution("report", status=ExecutionStatus.FAILED),
            "hook": await api.add_execution(
                "hooked", trigger_source=TriggerSource.WEBHOOK, status=ExecutionStatus.FAILED
            ),
            "old": await api.add_execution("report", queued_at=now - timedelta(days=31)),
        }
        ids = {name: record.execution_id for name, record in made.items()}

        async def shown(query: str) -> set[str]:
            async with login(api, "viewer") as client:
                page = await client.get(f"/ui/executions{query}")
            assert page.status_code == 200
            return {match.group(1) for match in ROWS.finditer(page.text)}

        assert await shown("") == {ids["ok"], ids["failed"], ids["hook"]}
        assert await shown("?job=report") == {ids["ok"], ids["failed"]}
        assert await shown("?status=failed") == {ids["failed"], ids["hook"]}
        assert await shown("?trigger_source=webhook") == {ids["hook"]}
        assert await shown("?job=report&status=failed&trigger_source=manual") == {ids["failed"]}
        assert await shown("?status=bogus") == {ids["ok"], ids["failed"], ids["hook"]}


async def test_the_execution_page_masks_secrets_and_links_files(
    tmp_path: Path, stores: Stores
) -> None:
    async with dashboard(tmp_path, stores) as api:
        await api.stores.database.set_variable(
            "VAULT", "stored-secret-value", secret=True, source="cli"
        )
        job = await api.stores.database.get_job("report")
        record = await api.add_execution("report", status=ExecutionStatus.RUNNING)
        context_path = paths.context_path(job.job_id, record.execution_id)
        context = {
            "variables": {"DB_PASSWORD": "hunter2", "REGION": "eu"},
            "steps": {
                "fetch": {
                    "status": "succeeded",
                    "output": {
                        "headers": {"Authorization": "Bearer abc.def", "x-api-key": "k-123"},
                        "body": {
                            "dsn": "postgresql://app:pa55word@db/x",
                            "note": "leaked stored-secret-value here",
                            "token": "t-456",
                        },
                    },
                }
            },
        }
        await api.stores.objects.put(context_path, json.dumps(context).encode())
        output = paths.output_path(job.job_id, record.execution_id, "report.csv")
        await api.stores.objects.put(output, b"a,b\n1,2\n")
        await api.stores.database.finish_execution(
            record.execution_id,
            worker_id=None,
            status="failed",
            error="step fetch failed: boom",
            step_statuses=[
                {
                    "id": "fetch",
                    "status": "failed",
                    "started_at": "2026-11-28T00:00:00Z",
                    "completed_at": "2026-11-28T00:00:01.5Z",
                    "error": "boom",
                }
            ],
            context_path=context_path,
        )
        async with login(api, "viewer") as client:
            page = (await client.get(f"/ui/executions/{record.execution_id}")).text
            for secret in (
                "hunter2",
                "abc.def",
                "k-123",
                "pa55word",
                "stored-secret-value",
                "t-456",
            ):
                assert secret not in page, secret
            assert "(sensitive)" in page
            assert "postgresql://app:(sensitive)@db/x" in page
            assert "&#34;REGION&#34;: &#34;eu&#34;" in page  # not secret: shown
            assert '<details open data-section="steps">' in page
            assert "1.50 s" in page
            assert "boom" in page
            assert "Retry" not in page  # a viewer
            link = f"/ui/executions/{record.execution_id}/files/report.csv"
            assert link in page
            download = await client.get(link)
            assert download.status_code == 200
            assert download.content == b"a,b\n1,2\n"
            assert "attachment" in download.headers["content-disposition"]
            missing = await client.get(f"/ui/executions/{record.execution_id}/files/nope.csv")
            assert missing.status_code == 404
            escape = await client.get(
                f"/ui/executions/{record.execution_id}/files/..%2Fcontext.json"
            )
            assert escape.status_code == 404
        async with login(api, "operator") as client:
            page = (await client.get(f"/ui/executions/{record.execution_id}")).text
            assert "Retry" in page


async def test_pages_render_whole_without_javascript_and_as_fragments(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as api:
        record = await api.add_execution("report")
        async with login(api, "viewer") as client:
            for path in (
                "/ui/",
                "/ui/jobs/report",
                "/ui/executions",
                f"/ui/executions/{record.execution_id}",
                "/ui/sync",
                "/ui/builder",
            ):
                page = await client.get(path)
                assert page.status_code == 200, path
                assert page.text.startswith("<!doctype html>"), path
                assert "Content-Security-Policy" in page.headers
                assert page.headers["x-frame-options"] == "DENY"
            fragment = await client.get("/ui/", headers={"HX-Request": "true"})
            assert not fragment.text.lstrip().startswith("<!doctype")
            assert 'data-job="report"' in fragment.text
            fragment = await client.get(
                f"/ui/executions/{record.execution_id}", headers={"HX-Request": "true"}
            )
            assert 'id="execution-status"' in fragment.text
            assert "<html" not in fragment.text
            static = await client.get("/ui/static/htmx-2.0.11.min.js")
            assert static.status_code == 200
            assert "htmx" in static.text


async def test_the_sync_page_shows_invalid_files_and_the_pending_plan(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as api:
        await api.sync_files({"broken.yaml": "name: broken\nsteps: []\n"})
        (api.repo / "jobs" / "new.yaml").write_text(
            "name: new\nsteps:\n  - {id: s, type: http, config: {url: 'http://x'}}\n"
        )
        async with login(api, "viewer") as client:
            page = (await client.get("/ui/sync")).text
            assert "jobs/broken.yaml" in page
            assert "jobs/broken.yaml:" in page
            assert "Sync now" not in page
            planned = (await client.get("/ui/sync?plan=1")).text
            assert "+ new" in planned
            assert "created 1" in planned
        async with login(api, "admin") as client:
            page = await client.get("/ui/sync")
            assert "Sync now" in page.text


def test_schedules_in_words_and_next_fires_in_the_timezone() -> None:
    job = Job.model_validate(
        {
            "name": "x",
            "schedule": {
                "type": "cron",
                "expression": "0 0 2 ? * MON-FRI",
                "timezone": "Europe/Paris",
            },
            "steps": [{"id": "s", "type": "http", "config": {"url": "http://x"}}],
        }
    )
    assert job.schedule is not None
    assert describe_schedule(job.schedule) == "at 02:00:00, Monday through Friday (Europe/Paris)"
    after = datetime(2026, 11, 27, 12, tzinfo=UTC)  # a Friday
    fires = next_fires(job.schedule, count=2, after=after)
    assert fires == [datetime(2026, 11, 30, 1, tzinfo=UTC), datetime(2026, 12, 1, 1, tzinfo=UTC)]


def test_mask_context_keeps_what_is_not_secret() -> None:
    masked = mask_context(
        {"variables": {"API_TOKEN": "x", "LIMIT": 10, "PASSWORD_LENGTH": 3}, "n": None},
        ["sekret"],
    )
    assert masked == {
        "variables": {"API_TOKEN": "(sensitive)", "LIMIT": 10, "PASSWORD_LENGTH": "(sensitive)"},
        "n": None,
    }
    assert mask_context(["a sekret b"], ["sekret"]) == ["a (sensitive) b"]
