"""The dashboard's login, session cookie, CSRF and roles, over a served app (httpx)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.dashboard.harness import csrf_of, dashboard, login
from vecron.dashboard.session import COOKIE
from vecron.webhook.tokens import hash_token


async def test_pages_send_you_to_the_login_and_back(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as api, httpx.AsyncClient(base_url=api.url) as client:
        for path in ("/ui/", "/ui/executions?job=report", "/ui/builder", "/ui/events"):
            response = await client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/ui/login?next=%2Fui%2F")
        htmx = await client.get("/ui/", headers={"HX-Request": "true"})
        assert htmx.status_code == 204
        assert htmx.headers["hx-redirect"] == "/ui/login?next=%2Fui%2F"
        page = await client.get("/ui/login?next=/ui/sync")
        assert 'name="next" value="/ui/sync"' in page.text
        # Never a redirect off the dashboard.
        page = await client.get("/ui/login?next=//evil.example/")
        assert 'name="next" value="/ui/"' in page.text


async def test_a_token_logs_in_with_a_protected_cookie(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as api, httpx.AsyncClient(base_url=api.url) as client:
        for bad, message in (
            ("nope", "not a vecron API token"),
            ("vcr_" + "A" * 43, "unknown or was revoked"),
        ):
            refused = await client.post("/ui/login", data={"token": bad})
            assert refused.status_code == 401
            assert message in refused.text
            assert COOKIE not in refused.cookies
        response = await client.post(
            "/ui/login", data={"token": api.tokens["viewer"], "next": "/ui/sync"}
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/sync"
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Path=/ui" in cookie
        value = response.cookies[COOKIE]
        # Encrypted: neither the token nor its hash can be read from it.
        assert api.tokens["viewer"] not in value
        assert hash_token(api.tokens["viewer"]) not in value
        page = await client.get("/ui/")
        assert page.status_code == 200
        assert "viewer-token" in page.text
        # A cookie changed by one character is no session.
        client.cookies.set(COOKIE, value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1])
        assert (await client.get("/ui/")).status_code == 303


async def test_logging_out_and_revoking_end_the_session(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as api:
        async with login(api, "admin") as client:
            csrf = await csrf_of(client)
            out = await client.post("/ui/logout", data={"csrf": csrf})
            assert out.status_code == 303
            assert (await client.get("/ui/")).status_code == 303
        async with login(api, "viewer") as client:
            assert await api.stores.database.delete_token("viewer-token")
            await asyncio.sleep(1.1)  # the lookup cache answers for a second
            assert (await client.get("/ui/")).status_code == 303


async def test_roles_decide_the_buttons_and_the_actions(tmp_path: Path) -> None:
    async with (
        dashboard(tmp_path) as api,
        login(api, "viewer") as viewer,
        login(api, "operator") as operator,
        login(api, "admin") as admin,
    ):
        page = (await viewer.get("/ui/jobs/report")).text
        assert "Run now" not in page
        assert "Disable" not in page
        csrf = await csrf_of(viewer)
        refused = await viewer.post("/ui/jobs/report/run", data={"csrf": csrf})
        assert refused.status_code == 403
        assert "does not have the permission job:execute" in refused.text

        page = (await operator.get("/ui/jobs/report")).text
        assert "Run now" in page
        assert "Disable" not in page
        csrf = await csrf_of(operator)
        run = await operator.post(
            "/ui/jobs/report/run",
            data={"csrf": csrf, "variables": '{"REGION": "us"}', "run_key": "k1"},
        )
        assert run.status_code == 303
        execution_id = run.headers["location"].rsplit("/", 1)[1]
        record = await api.stores.database.get_execution(execution_id)
        assert record.trigger_data["requested_by"] == "operator-token"
        assert record.trigger_data["variables"] == {"REGION": "us"}
        # The same form sent twice runs once (its idempotency key).
        again = await operator.post(
            "/ui/jobs/report/run",
            data={"csrf": csrf, "variables": '{"REGION": "us"}', "run_key": "k1"},
        )
        assert again.headers["location"] == run.headers["location"]
        refused = await operator.post("/ui/jobs/report/disable", data={"csrf": csrf})
        assert refused.status_code == 403

        csrf = await csrf_of(admin)
        assert "Disable" in (await admin.get("/ui/jobs/report")).text
        off = await admin.post("/ui/jobs/report/disable", data={"csrf": csrf, "back": "list"})
        assert off.status_code == 303
        assert off.headers["location"] == "/ui/"
        job = await api.stores.database.get_job("report")
        assert not job.enabled
        assert job.disabled_reason == "disabled through the API by admin-token"
        on = await admin.post("/ui/jobs/report/enable", data={"csrf": csrf})
        assert on.headers["location"] == "/ui/jobs/report"
        assert (await api.stores.database.get_job("report")).enabled


async def test_refusals_show_the_apis_messages(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as api, login(api, "admin") as admin:
        csrf = await csrf_of(admin)
        bad = await admin.post(
            "/ui/jobs/report/run", data={"csrf": csrf, "variables": '{"NOPE": 1}'}
        )
        assert bad.status_code == 400
        assert "has no variable &#39;NOPE&#39; to override" in bad.text
        broken = await admin.post("/ui/jobs/report/run", data={"csrf": csrf, "variables": "{"})
        assert broken.status_code == 400
        assert "not valid JSON" in broken.text
        off = await admin.post("/ui/jobs/no-manual/run", data={"csrf": csrf})
        assert off.status_code == 403
        assert "does not allow manual runs" in off.text
        in_file = await admin.post("/ui/jobs/file-off/enable", data={"csrf": csrf})
        assert in_file.status_code == 409
        assert "enabled: false" in in_file.text
        missing = await admin.get("/ui/jobs/ghost")
        assert missing.status_code == 404
        assert "no job named &#39;ghost&#39;" in missing.text


async def test_a_post_without_the_csrf_token_is_refused(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as api, login(api, "admin") as admin:
        for data in ({}, {"csrf": "forged"}):
            refused = await admin.post("/ui/jobs/report/disable", data=data)
            assert refused.status_code == 403
            assert "stale or came from another site" in refused.text
        assert (await api.stores.database.get_job("report")).enabled
        csrf = await csrf_of(admin)
        by_header = await admin.post("/ui/jobs/report/disable", headers={"X-CSRF-Token": csrf})
        assert by_header.status_code == 303
