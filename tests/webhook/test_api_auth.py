"""``/api/v1`` authentication and authorisation against a real server, both backends.

Every route refuses a caller without a valid token (401 with ``WWW-Authenticate:
Bearer``) and a token whose role lacks its permission (403), table-driven over roles by
routes. Tokens never appear in a response or a log line; each call is logged with the
token's name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.webhook.api_harness import Api, api, refused
from vecron.webhook import api_auth
from vecron.webhook.tokens import Permission, Role, allows, new_token

__all__ = ["api"]  # the fixture, imported for pytest

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    permission: Permission
    body: Any = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


# Unknown jobs and executions: a caller who gets past the checks changes nothing.
ROUTES = [
    Route("GET", "/jobs", Permission.JOB_READ),
    Route("GET", "/jobs/ghost", Permission.JOB_READ),
    Route("POST", "/jobs/ghost/runs", Permission.JOB_EXECUTE, {"variables": {}}),
    Route("POST", "/jobs/ghost/enable", Permission.JOB_WRITE),
    Route("POST", "/jobs/ghost/disable", Permission.JOB_WRITE),
    Route("GET", "/executions", Permission.EXECUTION_READ),
    Route("GET", f"/executions/{UNKNOWN_ID}", Permission.EXECUTION_READ),
    Route("POST", f"/executions/{UNKNOWN_ID}/retry", Permission.JOB_EXECUTE),
    Route("POST", "/sync", Permission.JOB_WRITE),
]


async def send(api: Api, route: Route, **kwargs: Any) -> httpx.Response:
    if route.body is not None:
        kwargs["json"] = route.body
    return await api.call(route.method, route.path, **kwargs)


def challenged(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith('Bearer realm="vecron"')
    assert response.json()["error"] == "unauthorized"


async def test_every_route_refuses_a_caller_without_a_valid_token(api: Api) -> None:
    revoked = new_token()
    for route in ROUTES:
        challenged(await send(api, route, role=None))
        for header in (
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer not-a-vecron-token",
            f"Token {api.tokens['admin']}",
            f"Bearer {new_token()}",  # the right shape, never issued
            f"Bearer {api.tokens['admin']}x",
        ):
            response = await send(api, route, role=None, headers={"Authorization": header})
            challenged(response)
            assert 'error="invalid_token"' in response.headers["www-authenticate"]
            assert api.tokens["admin"] not in response.text
        challenged(await send(api, route, token=revoked))
    assert await api.stores.database.list_executions() == []
    assert await api.queue.pending() == 0


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_reaches_exactly_the_routes_its_permissions_allow(
    api: Api, role: Role
) -> None:
    for route in ROUTES:
        response = await send(api, route, role=role.value)
        if allows(role, route.permission):
            # Past authorisation: the unknown job or execution, or no repository.
            assert response.status_code in (200, 404, 409), f"{route}: {response.text}"
            assert response.json().get("error") != "forbidden"
        else:
            body = await refused(response, 403, "forbidden")
            assert route.permission.value in body["message"], route
            assert f"{role.value}-token" in body["message"]
    assert await api.stores.database.list_executions() == []
    assert all(
        job.enabled or job.name == "file-off" for job in await api.stores.database.list_jobs()
    )


async def test_the_scheme_is_case_insensitive_and_extra_spaces_are_ignored(
    api: Api,
) -> None:
    token = api.tokens["viewer"]
    for header in (f"bearer {token}", f"BEARER  {token}"):
        response = await api.call("GET", "/jobs", role=None, headers={"Authorization": header})
        assert response.status_code == 200, response.text


async def test_a_revoked_token_stops_working_within_a_second(api: Api) -> None:
    assert (await api.call("GET", "/jobs", role="viewer")).status_code == 200
    assert await api.stores.database.delete_token("viewer-token")
    revoked_at = time.monotonic()
    while (await api.call("GET", "/jobs", role="viewer")).status_code == 200:
        assert time.monotonic() - revoked_at < api_auth.TOKEN_TTL_SECONDS + 0.5
        await asyncio.sleep(0.05)
    challenged(await api.call("GET", "/jobs", role="viewer"))


async def test_a_burst_of_calls_reads_the_token_once_and_records_its_use_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = api.stores.database
    lookups = touches = 0
    lookup, touch = database.token_by_hash, database.touch_token

    async def counted_lookup(token_hash: str) -> Any:
        nonlocal lookups
        lookups += 1
        return await lookup(token_hash)

    async def counted_touch(token_id: str, when: Any) -> None:
        nonlocal touches
        touches += 1
        await touch(token_id, when)

    monkeypatch.setattr(database, "token_by_hash", counted_lookup)
    monkeypatch.setattr(database, "touch_token", counted_touch)
    started = time.monotonic()
    for _ in range(20):
        assert (await api.call("GET", "/executions", role="operator")).status_code == 200
    if time.monotonic() - started < api_auth.TOKEN_TTL_SECONDS:
        assert lookups == 1
    assert touches == 1
    (operator,) = [t for t in await database.list_tokens() if t.name == "operator-token"]
    assert operator.last_used_at is not None
    unused = [t for t in await database.list_tokens() if t.name == "viewer-token"]
    assert unused[0].last_used_at is None


async def test_calls_are_logged_with_the_token_name_and_never_the_token(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vecron.api")
    responses = [
        await api.call("GET", "/jobs", role="viewer"),
        await api.call("GET", "/jobs/report", role="admin"),
        await api.call("POST", "/jobs/report/runs", role="operator", json={}),
        await api.call("POST", "/jobs/report/disable", role="operator"),
        await api.call("POST", "/sync", role="admin"),
        await api.call("GET", "/jobs", token=new_token()),
        await api.call(
            "GET", "/jobs", role=None, headers={"Authorization": f"Bearer {api.tokens['admin']}!"}
        ),
    ]
    assert [r.status_code for r in responses] == [200, 200, 202, 403, 200, 401, 401]
    records = [r for r in caplog.records if r.name == "vecron.api"]
    calls = [r for r in records if r.getMessage().startswith(("GET ", "POST "))]
    assert len(calls) == len(responses)
    assert [getattr(r, "token", "missing") for r in calls] == [
        "viewer-token",
        "admin-token",
        "operator-token",
        "operator-token",
        "admin-token",
        None,
        None,
    ]
    everything = "\n".join(
        [r.getMessage() + repr(r.__dict__) for r in caplog.records]
        + [r.text + repr(dict(r.headers)) for r in responses]
    )
    for token in api.tokens.values():
        assert token not in everything
        assert token[4:] not in everything
