"""The http step against a real local server (tests/runtime/http_target.py), no mocks."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.runtime.http_target import (
    HttpTarget,
    free_port,
    http_target,
    serve_http_target,
    serve_raw_tcp,
)
from tests.runtime.steprun import make_step_run
from vecron.errors import ReferenceResolutionError, StepFailed
from vecron.runtime.steps.base import StepRun
from vecron.runtime.steps.http import HttpStepExecutor
from vecron.spec.models import HttpConfig

__all__ = ["http_target"]  # the fixture, imported so that pytest finds it here


def step_run(
    root: Path,
    *,
    steps: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    variables: Mapping[str, Any] | None = None,
) -> StepRun:
    """A StepRun over a real local object store, with ``steps`` as earlier step entries."""
    return make_step_run(
        root,
        job_name="http-test",
        step_id="call",
        steps=steps,
        variables=variables,
        secrets=secrets,
    )


def http(url: str, **config: Any) -> HttpConfig:
    return HttpConfig.model_validate({"url": url, **config})


def previous(output: Any) -> dict[str, Any]:
    """An earlier step's entry in the context."""
    return {"status": "succeeded", "output": output}


def assert_hidden(value: Any, *secrets: str) -> None:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    for secret in secrets:
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode() not in text


@pytest.fixture
async def executor() -> AsyncIterator[HttpStepExecutor]:
    executor = HttpStepExecutor()
    yield executor
    await executor.close()


# --- requests ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
async def test_every_method(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path, method: str
) -> None:
    output = await executor.run(http(http_target.url("/echo"), method=method), step_run(tmp_path))
    assert output["status"] == 200
    assert output["headers"]["content-type"] == "application/json"
    if method == "HEAD":
        assert output["body"] is None
    else:
        assert output["body"]["method"] == method
        assert output["body"]["headers"]["user-agent"].startswith("vecron/")


async def test_renders_url_headers_query_and_body(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    earlier = {"body": {"items": [1, {"a": None}], "name": "acme co", "count": 3, "ok": True}}
    run = step_run(tmp_path, steps={"prev": previous(earlier)}, variables={"REGION": "eu"})
    config = http(
        http_target.url("/echo?fixed=1&name={{steps.prev.output.body.name}}"),
        method="POST",
        headers={"X-Count": "{{steps.prev.output.body.count}}", "X-Region": "r-${REGION}"},
        query={"n": "{{steps.prev.output.body.count}}", "flag": True, "gone": None, "f": 1.5},
        body={
            "items": "{{steps.prev.output.body.items}}",
            "ok": "{{steps.prev.output.body.ok}}",
            "label": "n={{steps.prev.output.body.count}}",
            "nested": [{"name": "{{steps.prev.output.body.name}}"}],
        },
    )
    echoed = (await executor.run(config, run))["body"]
    assert echoed["query"] == {
        "fixed": "1",
        "name": "acme co",
        "n": "3",
        "flag": "true",
        "f": "1.5",
    }
    assert echoed["headers"]["x-count"] == "3"
    assert echoed["headers"]["x-region"] == "r-eu"
    assert echoed["headers"]["content-type"] == "application/json"
    assert echoed["body"] == {
        "items": [1, {"a": None}],
        "ok": True,
        "label": "n=3",
        "nested": [{"name": "acme co"}],
    }


async def test_whole_value_reference_body_is_sent_as_json(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    payload = [{"id": 1, "tags": ["a", "b"]}, {"id": 2, "price": 9.5}]
    run = step_run(tmp_path, steps={"prev": previous({"body": {"rows": payload}})})
    config = http(http_target.url("/echo"), method="PUT", body="{{steps.prev.output.body.rows}}")
    echoed = (await executor.run(config, run))["body"]
    assert echoed["body"] == payload
    assert echoed["headers"]["content-type"] == "application/json"


async def test_string_body_is_sent_as_is_and_content_type_kept(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    run = step_run(tmp_path, steps={"prev": previous({"body": {"n": 7}})})
    config = http(http_target.url("/echo"), method="POST", body="n = {{steps.prev.output.body.n}}")
    echoed = (await executor.run(config, run))["body"]
    assert echoed["body"] == "n = 7"
    assert "content-type" not in echoed["headers"]

    config = http(
        http_target.url("/echo"),
        method="POST",
        headers={"content-type": "application/vnd.acme+json"},
        body={"a": 1},
    )
    echoed = (await executor.run(config, run))["body"]
    assert echoed["headers"]["content-type"] == "application/vnd.acme+json"
    assert echoed["body"] == {"a": 1}


JSON_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="{$"), max_size=12)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | JSON_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(JSON_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)


@given(body=st.lists(JSON_VALUES, max_size=4) | st.dictionaries(JSON_TEXT, JSON_VALUES))
async def test_any_json_body_echoes_back_equal(
    http_target: HttpTarget, tmp_path_factory: pytest.TempPathFactory, body: Any
) -> None:
    executor = HttpStepExecutor()
    try:
        run = step_run(tmp_path_factory.getbasetemp())
        output = await executor.run(http(http_target.url("/echo"), method="POST", body=body), run)
    finally:
        await executor.close()
    assert output["body"]["body"] == body


async def test_query_merges_into_the_url_query(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    run = step_run(tmp_path, steps={"prev": previous({"ids": [3, 4]})})
    config = http(
        http_target.url("/echo?a=1&b=url"),
        query={"b": "config", "ids": "{{steps.prev.output.ids}}"},
    )
    echoed = (await executor.run(config, run))["body"]
    assert echoed["query"] == {"a": "1", "b": "config", "ids": ["3", "4"]}


# --- responses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ({"body": '{"a": [1, 2]}'}, {"a": [1, 2]}),  # no content type: sniffed
        ({"body": "[1, 2"}, "[1, 2"),  # sniffed, not JSON: text
        ({"body": "hello"}, "hello"),
        ({"body": '{"a": 1}', "content_type": "text/plain"}, '{"a": 1}'),
        ({"body": '{"p": true}', "content_type": "application/problem+json"}, {"p": True}),
        ({"body": "caf\u00e9", "content_type": "text/plain; charset=utf-8"}, "caf\u00e9"),
        ({"body": ""}, None),
    ],
)
async def test_body_is_parsed_by_content_type(
    executor: HttpStepExecutor,
    http_target: HttpTarget,
    tmp_path: Path,
    query: dict[str, str],
    body: Any,
) -> None:
    output = await executor.run(http(http_target.url("/raw"), query=query), step_run(tmp_path))
    assert output["body"] == body
    assert "body_encoding" not in output


async def test_binary_body_is_base64(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    config = http(http_target.url("/bytes"), query={"n": 1000, "binary": 1})
    output = await executor.run(config, step_run(tmp_path))
    assert output["body_encoding"] == "base64"
    assert base64.b64decode(output["body"]) == bytes(range(128, 256)) * 7 + bytes(range(128, 232))


async def test_invalid_json_with_a_json_content_type_fails_and_keeps_the_text(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    with pytest.raises(StepFailed, match=r"GET http://.*/garbage: .*says it is JSON") as info:
        await executor.run(http(http_target.url("/garbage")), step_run(tmp_path))
    assert info.value.output is not None
    assert info.value.output["status"] == 200
    assert info.value.output["body"] == '{"truncated": [1, 2'


async def test_no_content_status_has_no_body(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    output = await executor.run(http(http_target.url("/status/204")), step_run(tmp_path))
    assert output["status"] == 204
    assert output["body"] is None


async def test_expected_status(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    run = step_run(tmp_path)
    assert (await executor.run(http(http_target.url("/status/201")), run))["status"] == 201
    output = await executor.run(http(http_target.url("/status/404"), expected_status=[404]), run)
    assert output["body"] == {"status": 404, "error": "status 404 as asked"}
    with pytest.raises(StepFailed, match=r"returned HTTP 201 Created \(expected 200\)"):
        await executor.run(http(http_target.url("/status/201"), expected_status=[200]), run)


async def test_unexpected_status_keeps_the_response_in_the_error(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    with pytest.raises(StepFailed) as info:
        await executor.run(http(http_target.url("/status/503"), method="POST"), step_run(tmp_path))
    message = str(info.value)
    assert message.startswith(f"POST {http_target.url('/status/503')} returned HTTP 503")
    assert "(expected 2xx)" in message
    assert "status 503 as asked" in message  # a snippet of the body
    assert info.value.output is not None
    assert info.value.output["status"] == 503
    assert info.value.output["body"] == {"status": 503, "error": "status 503 as asked"}


async def test_response_headers_are_lower_case_without_credentials(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    secret = "s3cr3t-value-123"
    run = step_run(tmp_path, secrets={"KEY": secret})
    config = http(
        http_target.url(
            "/response-headers?X-Token=${secret:KEY}&X-Embedded=pre-${secret:KEY}-post"
            "&Authorization=Bearer%20x&X-Other=fine&Set-Cookie=session%3Dabc"
        ),
        headers={"X-Api-Key": "${secret:KEY}"},
    )
    output = await executor.run(config, run)
    headers = output["headers"]
    assert headers["x-other"] == "fine"
    assert headers["x-embedded"] == "pre-******-post"
    assert "x-token" not in headers
    assert "set-cookie" not in headers
    assert "authorization" not in headers
    assert all(name == name.lower() for name in headers)
    assert_hidden(output, secret)


async def test_cookies_are_not_kept_between_requests(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    run = step_run(tmp_path)
    await executor.run(http(http_target.url("/cookies/set"), query={"session": "abc"}), run)
    echoed = (await executor.run(http(http_target.url("/echo")), run))["body"]
    assert "cookie" not in echoed["headers"]


# --- size limit --------------------------------------------------------------------


@pytest.mark.parametrize("declared", [True, False])
async def test_body_over_the_limit_fails(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path, declared: bool
) -> None:
    config = http(
        http_target.url("/bytes"),
        query={"n": 5_000_000, "length": int(declared)},
        max_response_bytes=200_000,
    )
    with pytest.raises(StepFailed, match=r"over max_response_bytes=200000") as info:
        await executor.run(config, step_run(tmp_path))
    if not declared:  # streamed: stopped after the chunk that crossed the limit
        read = int(str(info.value).rsplit("after ", 1)[1].split(" ")[0])
        assert read <= 200_000 + 65_536
    assert info.value.output is not None
    assert info.value.output["status"] == 200
    ok = http(
        http_target.url("/bytes"), query={"n": 200_000, "length": 0}, max_response_bytes=200_000
    )
    assert len((await executor.run(ok, step_run(tmp_path)))["body"]) == 200_000


# --- failures of the target --------------------------------------------------------


async def test_hanging_target_times_out(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    config = http(http_target.url("/slow"), query={"seconds": 5}, timeout_seconds=0.3)
    with pytest.raises(
        StepFailed,
        match=r"GET http://.*/slow\?seconds=5 failed: .*0\.3 s.* waiting for the response",
    ):
        await executor.run(config, step_run(tmp_path))


async def test_stalling_body_times_out_while_reading(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    config = http(
        http_target.url("/drip"), query={"chunks": 20, "interval": 0.1}, timeout_seconds=0.5
    )
    with pytest.raises(StepFailed, match=r"0\.5 s.* reading the response body"):
        await executor.run(config, step_run(tmp_path))


async def test_refused_connection(executor: HttpStepExecutor, tmp_path: Path) -> None:
    port = free_port()
    where = rf"127\.0\.0\.1:{port}"
    with pytest.raises(
        StepFailed, match=rf"GET http://{where}/x failed: connection refused by {where}"
    ):
        await executor.run(http(f"http://127.0.0.1:{port}/x"), step_run(tmp_path))


async def test_unknown_host(executor: HttpStepExecutor, tmp_path: Path) -> None:
    config = http("http://no-such-host.invalid/x", timeout_seconds=5)
    with pytest.raises(StepFailed, match=r"DNS lookup of 'no-such-host\.invalid' failed"):
        await executor.run(config, step_run(tmp_path))


async def test_target_that_does_not_speak_http(executor: HttpStepExecutor, tmp_path: Path) -> None:
    with (
        serve_raw_tcp(b"garbage\r\n\r\n") as url,
        pytest.raises(StepFailed, match=r"failed: the server's reply is not valid HTTP"),
    ):
        await executor.run(http(url + "/x"), step_run(tmp_path))


async def test_tls_verification(tmp_path: Path) -> None:
    executor = HttpStepExecutor()
    with serve_http_target(tls=True) as target:
        try:
            url = target.url("/echo")
            with pytest.raises(
                StepFailed, match=r"TLS certificate of 127\.0\.0\.1:\d+ not trusted"
            ):
                await executor.run(http(url), step_run(tmp_path))
            output = await executor.run(http(url, verify_tls=False), step_run(tmp_path))
            assert output["status"] == 200
        finally:
            # A TLS server cannot stop cleanly while a client keeps a connection open.
            await executor.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x", "must be absolute"),
        ("/relative/path", "must be absolute"),
        ("http://[::1/x", "invalid url"),
    ],
)
async def test_invalid_url(
    executor: HttpStepExecutor, tmp_path: Path, url: str, message: str
) -> None:
    with pytest.raises(StepFailed, match=message):
        await executor.run(http(url), step_run(tmp_path))


async def test_header_with_a_line_break_is_refused(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    run = step_run(tmp_path, steps={"prev": previous({"v": "a\r\nX-Injected: 1"})})
    config = http(http_target.url("/echo"), headers={"X-Value": "{{steps.prev.output.v}}"})
    with pytest.raises(StepFailed, match="'X-Value' has a line break"):
        await executor.run(config, run)


# --- redirects ---------------------------------------------------------------------


async def test_redirects(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    run = step_run(tmp_path)
    followed = await executor.run(http(http_target.url("/redirect"), query={"to": "/echo"}), run)
    assert followed["status"] == 200
    assert followed["body"]["path"] == "/echo"

    not_followed = http(
        http_target.url("/redirect"),
        query={"to": "/echo"},
        follow_redirects=False,
        expected_status=[302],
    )
    output = await executor.run(not_followed, run)
    assert output["status"] == 302
    assert output["headers"]["location"] == "/echo"

    config = http(http_target.url("/redirect"), follow_redirects=False)
    with pytest.raises(StepFailed, match=r"returned HTTP 302 Found \(expected 2xx\)"):
        await executor.run(config, run)
    with pytest.raises(StepFailed, match=r"/redirect/loop failed: too many redirects"):
        await executor.run(http(http_target.url("/redirect/loop")), run)


# --- auth and credentials ----------------------------------------------------------


async def test_basic_auth(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    password = http_target.basic_password
    auth = {"type": "basic", "username": http_target.basic_username, "password": "${secret:PW}"}
    run = step_run(tmp_path, secrets={"PW": password})
    output = await executor.run(http(http_target.url("/auth/basic"), auth=auth), run)
    assert output["body"] == {"authenticated": True, "user": "vecron-user"}
    echoed = await executor.run(http(http_target.url("/echo"), auth=auth), run)
    assert echoed["body"]["headers"]["authorization"] == "Basic ******"
    assert_hidden(echoed, password)

    wrong = step_run(tmp_path, secrets={"PW": "not-the-password"})
    with pytest.raises(StepFailed, match="returned HTTP 401") as info:
        await executor.run(http(http_target.url("/auth/basic"), auth=auth), wrong)
    assert_hidden(str(info.value), "not-the-password")
    assert_hidden(info.value.output, "not-the-password")


async def test_bearer_auth(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    token = http_target.bearer_token
    auth = {"type": "bearer", "token": "${secret:TOKEN}"}
    run = step_run(tmp_path, secrets={"TOKEN": token})
    config = http(http_target.url("/auth/bearer"), auth=auth, headers={"Authorization": "x"})
    assert (await executor.run(config, run))["body"] == {"authenticated": True}
    echoed = await executor.run(http(http_target.url("/echo"), auth=auth), run)
    assert echoed["body"]["headers"]["authorization"] == "Bearer ******"
    assert_hidden(echoed, token)


async def test_literal_authorization_header_is_hidden_too(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    token = http_target.bearer_token
    config = http(http_target.url("/echo"), headers={"Authorization": f"Bearer {token}"})
    echoed = await executor.run(config, step_run(tmp_path))
    assert_hidden(echoed, token)


async def test_oauth2_token_is_cached_until_it_expires(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    client = http_target.oauth_client(expires_in=1)
    auth = {
        "type": "oauth2",
        "token_url": http_target.url("/oauth/token"),
        "client_id": client.client_id,
        "client_secret": "${secret:CLIENT}",
        "scope": "read write",
    }
    config = http(http_target.url("/oauth/protected"), auth=auth)
    secrets = {"CLIENT": client.client_secret}
    for _ in range(3):
        output = await executor.run(config, step_run(tmp_path, secrets=secrets))
        assert output["body"] == {"client_id": client.client_id, "scope": "read write"}
    assert http_target.tokens_issued(client.client_id) == 1
    await asyncio.sleep(1.0)  # refreshed shortly before the 1 s expiry
    await executor.run(config, step_run(tmp_path, secrets=secrets))
    assert http_target.tokens_issued(client.client_id) == 2


async def test_oauth2_token_is_fetched_once_by_concurrent_runs(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    client = http_target.oauth_client()
    auth = {
        "type": "oauth2",
        "token_url": http_target.url("/oauth/token"),
        "client_id": client.client_id,
        "client_secret": client.client_secret,
    }
    config = http(http_target.url("/oauth/protected"), auth=auth)
    outputs = await asyncio.gather(*(executor.run(config, step_run(tmp_path)) for _ in range(10)))
    assert {output["status"] for output in outputs} == {200}
    assert http_target.tokens_issued(client.client_id) == 1


async def test_oauth2_token_is_fetched_again_after_a_401(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    client = http_target.oauth_client(expires_in=None)  # no expires_in: kept until a 401
    auth = {
        "type": "oauth2",
        "token_url": http_target.url("/oauth/token"),
        "client_id": client.client_id,
        "client_secret": client.client_secret,
    }
    config = http(http_target.url("/oauth/protected"), auth=auth)
    await executor.run(config, step_run(tmp_path))
    await executor.run(config, step_run(tmp_path))
    assert http_target.tokens_issued(client.client_id) == 1
    http_target.revoke_tokens(client.client_id)
    output = await executor.run(config, step_run(tmp_path))
    assert output["status"] == 200
    assert http_target.tokens_issued(client.client_id) == 2


async def test_oauth2_token_never_reaches_the_output(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    client = http_target.oauth_client()
    auth = {
        "type": "oauth2",
        "token_url": http_target.url("/oauth/token"),
        "client_id": client.client_id,
        "client_secret": "${secret:CLIENT}",
    }
    run = step_run(tmp_path, secrets={"CLIENT": client.client_secret})
    echoed = await executor.run(http(http_target.url("/echo"), auth=auth), run)
    assert echoed["body"]["headers"]["authorization"] == "Bearer ******"
    assert_hidden(echoed, client.client_secret)


async def test_oauth2_failures_name_the_token_request(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    client = http_target.oauth_client()
    bad_secret = "wrong-client-secret"
    auth = {
        "type": "oauth2",
        "token_url": http_target.url("/oauth/token"),
        "client_id": client.client_id,
        "client_secret": "${secret:CLIENT}",
    }
    run = step_run(tmp_path, secrets={"CLIENT": bad_secret})
    with pytest.raises(
        StepFailed, match=r"oauth2 token request POST http://.*/oauth/token returned HTTP 401"
    ) as info:
        await executor.run(http(http_target.url("/oauth/protected"), auth=auth), run)
    assert "invalid_client" in str(info.value)
    assert_hidden(str(info.value), bad_secret)

    port = free_port()
    auth["token_url"] = f"http://127.0.0.1:{port}/token"
    with pytest.raises(StepFailed, match=r"oauth2 token request POST .* connection refused"):
        await executor.run(http(http_target.url("/oauth/protected"), auth=auth), run)


async def test_secrets_stay_out_of_messages_and_logs(
    executor: HttpStepExecutor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "query-secret-42"
    password = "url pass/word"
    port = free_port()
    run = step_run(tmp_path, secrets={"Q": secret, "PW": password})
    config = http(
        f"http://user:{password.replace(' ', '%20').replace('/', '%2F')}@127.0.0.1:{port}/x",
        query={"key": "${secret:Q}", "plain": "visible"},
    )
    with pytest.raises(StepFailed) as info:
        await executor.run(config, run)
    message = str(info.value)
    assert "plain=visible" in message
    assert "user:******@" in message
    assert "key=******" in message
    for text in (message, caplog.text):
        assert secret not in text
        assert "pass" not in text


async def test_requests_are_logged_without_secrets(
    executor: HttpStepExecutor,
    http_target: HttpTarget,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "query-secret-43"
    run = step_run(tmp_path, secrets={"Q": secret, "T": http_target.bearer_token})
    config = http(
        http_target.url("/response-headers?X-Echo=${secret:Q}&Set-Cookie=s%3D${secret:Q}"),
        query={"key": "${secret:Q}"},
        auth={"type": "bearer", "token": "${secret:T}"},
    )
    await executor.run(config, run)
    assert "GET http://127.0.0.1" in caplog.text
    assert "HTTP Request:" not in caplog.text  # httpx's own line holds the raw URL
    assert "receive_response_headers.complete" not in caplog.text
    assert secret not in caplog.text
    assert http_target.bearer_token not in caplog.text


# --- references and cancellation ---------------------------------------------------


async def test_a_path_the_response_lacks_names_the_path(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    first = await executor.run(http(http_target.url("/echo")), step_run(tmp_path))
    run = step_run(tmp_path, steps={"first": previous(first)})
    config = http(http_target.url("/echo"), query={"id": "{{steps.first.output.body.id}}"})
    with pytest.raises(ReferenceResolutionError, match=r"steps\.first\.output\.body\.id.*'id'"):
        await executor.run(config, run)
    with pytest.raises(ReferenceResolutionError, match=r"secret 'NOPE' is not set"):
        await executor.run(http(http_target.url("/echo?k=${secret:NOPE}")), run)


async def test_cancellation_stops_a_request(
    executor: HttpStepExecutor, http_target: HttpTarget, tmp_path: Path
) -> None:
    config = http(http_target.url("/slow"), query={"seconds": 10})
    task = asyncio.create_task(executor.run(config, step_run(tmp_path)))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=2)
    output = await executor.run(http(http_target.url("/echo")), step_run(tmp_path))
    assert output["status"] == 200
