"""Reading webhook bodies: the size limit on a real server, payload parsing, headers."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.webhook.serving import serve_app
from vecron.errors import MalformedPayload, PayloadTooLarge, UnsupportedContentType, VecronError
from vecron.webhook.payload import DEFAULT_BODY_LIMIT, parse_payload, read_body, select_headers

STATUS = {PayloadTooLarge: 413, UnsupportedContentType: 415, MalformedPayload: 400}


async def receive(request: Request) -> Response:
    """Read and parse the body the way the webhook route does; errors become statuses."""
    limit = int(request.query_params.get("limit", DEFAULT_BODY_LIMIT))
    try:
        body = await read_body(request, limit)
        payload = parse_payload(body, request.headers.get("content-type"))
    except VecronError as exc:
        return JSONResponse({"error": str(exc)}, status_code=STATUS[type(exc)])
    headers = select_headers(request.headers, ["X-Delivery", "x-github-event"])
    return JSONResponse({"size": len(body), "payload": payload, "headers": headers})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_app(Starlette(routes=[Route("/read", receive, methods=["POST"])])) as url:
        yield url


def post(server: str, content: Any, content_type: str | None, **params: int) -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return httpx.post(f"{server}/read", content=content, headers=headers, params=params)


# --- the size limit ------------------------------------------------------------------


def test_a_body_up_to_the_limit_is_read_whole(server: str) -> None:
    body = json.dumps({"x": "a" * 1000}).encode()
    answer = post(server, body, "application/json", limit=len(body))
    assert answer.status_code == 200, answer.text
    assert answer.json()["size"] == len(body)
    assert answer.json()["payload"] == {"x": "a" * 1000}
    assert post(server, body, "application/json", limit=len(body) - 1).status_code == 413


async def test_a_chunked_body_is_counted_as_it_arrives(server: str) -> None:
    async def chunks(count: int) -> AsyncIterator[bytes]:
        for _ in range(count):
            yield b"x" * 1000

    async with httpx.AsyncClient() as client:
        fits = await client.post(
            f"{server}/read",
            content=chunks(10),
            headers={"content-type": "text/plain"},
            params={"limit": 10_000},
        )
        assert fits.status_code == 200, fits.text
        assert fits.json()["payload"] == "x" * 10_000
        assert "content-length" not in fits.request.headers  # it was chunked
        over = await client.post(
            f"{server}/read",
            content=chunks(11),
            headers={"content-type": "text/plain"},
            params={"limit": 10_000},
        )
        assert over.status_code == 413


def raw_request(server: str, head: str, body: bytes = b"") -> tuple[bytes, float]:
    """Send ``head`` (and ``body``) on a raw socket, never finishing the body; the
    status line that comes back and how long it took."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(head.replace("\n", "\r\n").encode() + body)
        answer = sock.recv(65536)
        return answer.split(b"\r\n", 1)[0], time.monotonic() - started


def test_a_declared_length_over_the_limit_is_refused_before_the_body(server: str) -> None:
    head = (
        "POST /read?limit=1000 HTTP/1.1\nHost: test\nContent-Type: application/json\n"
        "Content-Length: 50000000\n\n"
    )
    status, seconds = raw_request(server, head)  # not one byte of the body sent
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert seconds < 2


def test_an_endless_chunked_body_is_cut_off_at_the_limit(server: str) -> None:
    """The server answers once the limit is passed, while the body has not ended."""
    head = (
        "POST /read?limit=100000 HTTP/1.1\nHost: test\nContent-Type: text/plain\n"
        "Transfer-Encoding: chunked\n\n"
    )
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    status, seconds = raw_request(server, head, chunk * 2)  # 128 KiB, no last chunk
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert seconds < 2


async def test_read_body_stops_pulling_chunks_once_over_the_limit() -> None:
    pulled: list[int] = []

    async def source() -> AsyncIterator[bytes]:
        for n in range(1000):
            pulled.append(n)
            yield b"abcd"

    with pytest.raises(PayloadTooLarge) as caught:
        await read_body(source(), 10)
    assert pulled == [0, 1, 2]  # 12 bytes > 10: the fourth chunk is never asked for
    assert caught.value.limit == 10
    assert str(caught.value) == "the body is larger than the limit of 10 bytes"


@given(chunks=st.lists(st.binary(max_size=50), max_size=20), limit=st.integers(0, 600))
async def test_read_body_returns_the_body_or_refuses_it(chunks: list[bytes], limit: int) -> None:
    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    whole = b"".join(chunks)
    if len(whole) <= limit:
        assert await read_body(source(), limit) == whole
    else:
        with pytest.raises(PayloadTooLarge):
            await read_body(source(), limit)


# --- payloads ----------------------------------------------------------------------


def test_payloads_reach_the_route_parsed(server: str) -> None:
    github = post(server, b'{"action": "opened"}', "application/vnd.github+json")
    assert github.json()["payload"] == {"action": "opened"}
    form = post(server, b"a=1&b=x+y&a=2&c=", "application/x-www-form-urlencoded")
    assert form.json()["payload"] == {"a": ["1", "2"], "b": "x y", "c": ""}
    text = post(server, "héllo".encode("latin-1"), "text/plain; charset=ISO-8859-1")
    assert text.json()["payload"] == "héllo"
    assert post(server, b"", None).json()["payload"] is None
    assert post(server, b"<a/>", "application/xml").status_code == 415
    assert post(server, b"{", "application/json").status_code == 400


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/json", b'{"a": [1, 2.5, null, true]}', {"a": [1, 2.5, None, True]}),
        ("Application/JSON; charset=utf-8", b'"\xc3\xa9"', "é"),
        ("application/json", '{"é": 1}'.encode("utf-16"), {"é": 1}),
        ("application/cloudevents+json", b"[]", []),
        ("application/json", b"\xef\xbb\xbf{}", {}),  # a UTF-8 byte order mark
        ("application/x-www-form-urlencoded", b"k=%C3%A9&k=2&k=3", {"k": ["é", "2", "3"]}),
        ("application/x-www-form-urlencoded; charset=latin-1", b"k=%E9", {"k": "é"}),
        ("application/x-www-form-urlencoded", b"flag&x=1", {"flag": "", "x": "1"}),
        ("text/plain", "çà va\n".encode(), "çà va\n"),
        ('text/csv; charset="windows-1252"', b"\x80,1", "€,1"),
        ("text/html;charset=", b"<p>", "<p>"),
    ],
)
def test_parse_payload(content_type: str, body: bytes, expected: Any) -> None:
    assert parse_payload(body, content_type) == expected


@pytest.mark.parametrize("content_type", [None, "", "application/json", "image/png", "x"])
def test_an_empty_body_is_no_payload(content_type: str | None) -> None:
    assert parse_payload(b"", content_type) is None


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/json", b'{"a": 1', "not valid JSON: Expecting ',' delimiter at line 1"),
        ("application/json", b"NaN", "NaN is not a JSON value"),
        ("application/json", b'{"a": -Infinity}', "-Infinity is not a JSON value"),
        ("application/json", b"\xff\xfe\xfa", "not valid"),
        ("application/json", b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        ("application/json", b"9" * 5000, "not valid JSON"),
        ("text/plain", b"caf\xe9", "not valid utf-8 text (byte 3"),
        ("application/x-www-form-urlencoded", b"a=%FF", "%-escape that is not utf-8"),
    ],
)
def test_a_body_that_does_not_parse_is_malformed(
    content_type: str, body: bytes, message: str
) -> None:
    with pytest.raises(MalformedPayload) as caught:
        parse_payload(body, content_type)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "content_type",
    [None, "", "application/octet-stream", "multipart/form-data; boundary=x", "json",
     "application/jsonx", "application/json+xml", "image/svg+xml"],
)  # fmt: skip
def test_other_types_are_unsupported(content_type: str | None) -> None:
    with pytest.raises(UnsupportedContentType) as caught:
        parse_payload(b"{}", content_type)
    assert caught.value.content_type == content_type
    assert "application/json" in str(caught.value)  # it says what would do


def test_an_unknown_charset_is_unsupported() -> None:
    for charset in ("klingon", "rot13", "base64"):
        with pytest.raises(UnsupportedContentType, match=f"unknown charset '{charset}'"):
            parse_payload(b"abc", f"text/plain; charset={charset}")


# --- headers -----------------------------------------------------------------------


def test_configured_headers_are_copied_under_lower_case_names(server: str) -> None:
    answer = post(server, b"{}", "application/json")
    assert answer.json()["headers"] == {}
    sent = httpx.post(
        f"{server}/read",
        content=b"{}",
        headers=[
            ("content-type", "application/json"),
            ("X-Delivery", "d-1"),
            ("X-GitHub-Event", "push"),
            ("x-delivery", "d-2"),
            ("Authorization", "Bearer not-copied"),
        ],
    )
    assert sent.json()["headers"] == {"x-delivery": "d-1, d-2", "x-github-event": "push"}


def test_select_headers_on_a_mapping() -> None:
    headers = {"X-Request-Id": "r1", "Content-Type": "text/plain", "X-Other": "o"}
    assert select_headers(headers, ["x-request-id", "CONTENT-TYPE", "x-missing"]) == {
        "x-request-id": "r1",
        "content-type": "text/plain",
    }
    assert select_headers(headers, []) == {}
    raw = Headers(raw=[(b"x-a", b"1"), (b"x-b", b"2"), (b"x-a", b"3")])
    assert select_headers(raw, ["X-A"]) == {"x-a": "1, 3"}
