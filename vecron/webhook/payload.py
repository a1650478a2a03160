"""Reading a webhook delivery: the body within a size limit, its payload, its headers.

What these raise maps to one HTTP status each (the app's exception handler):
:class:`~vecron.errors.PayloadTooLarge` 413, :class:`~vecron.errors.UnsupportedContentType`
415, :class:`~vecron.errors.MalformedPayload` 400.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.requests import Request

from vecron.errors import MalformedPayload, PayloadTooLarge, UnsupportedContentType

DEFAULT_BODY_LIMIT: Final = 1024 * 1024  # 1 MiB, the default
JSON_TYPE: Final = "application/json"
FORM_TYPE: Final = "application/x-www-form-urlencoded"


async def read_body(source: Request | AsyncIterable[bytes], limit: int) -> bytes:
    """The whole body of ``source``, at most ``limit`` bytes.

    ``source`` is a Starlette request or any async iterable of byte chunks. Raises
    :class:`~vecron.errors.PayloadTooLarge` at once when the request's Content-Length
    says more than ``limit``, and otherwise as soon as the chunks read pass it: the
    rest is never read, so an oversized body costs at most ``limit`` plus one chunk.
    """
    if isinstance(source, Request):
        declared = source.headers.get("content-length")
        # A malformed length is the server's to refuse (h11 and httptools do); the
        # count below still holds whatever arrives.
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(limit)
        chunks: AsyncIterable[bytes] = source.stream()
    else:
        chunks = source
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        if chunk:
            parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def parse_payload(body: bytes, content_type: str | None) -> Any:
    """The payload of ``body`` as its Content-Type says.

    - empty body: ``None``, whatever the type;
    - ``application/json`` and ``application/*+json``: the JSON value (``NaN`` and
      ``Infinity`` are refused: they are not JSON, and the payload is stored as JSON);
    - ``application/x-www-form-urlencoded``: a dict of str; a repeated name gives a
      list of its values, in order;
    - ``text/*``: the text, decoded with the ``charset`` parameter (UTF-8 by default).

    Raises :class:`~vecron.errors.MalformedPayload` for a body that does not parse,
    :class:`~vecron.errors.UnsupportedContentType` for any other type, a missing one,
    or an unknown charset.
    """
    if not body:
        return None
    media_type, charset = _media_type(content_type)
    if media_type == JSON_TYPE or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return _parse_json(body)
    if media_type == FORM_TYPE:
        return _parse_form(_decode(body, charset or "utf-8", content_type), charset or "utf-8")
    if media_type.startswith("text/"):
        return _decode(body, charset or "utf-8", content_type)
    raise UnsupportedContentType(content_type)


def select_headers(headers: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The headers named in ``names`` that ``headers`` has, under lower-case names.

    Names match case-insensitively. A header sent more than once (a Starlette
    ``Headers`` keeps every copy) gives its values joined with ``", "``, as HTTP
    allows for a list-valued field.
    """
    wanted = {name.lower() for name in names}
    selected: dict[str, str] = {}
    if not wanted:
        return selected
    for name, value in headers.items():
        key = name.lower()
        if key in wanted:
            selected[key] = f"{selected[key]}, {value}" if key in selected else value
    return selected


def _media_type(content_type: str | None) -> tuple[str, str | None]:
    """The lower-case media type and the charset parameter of a Content-Type value."""
    if not content_type:
        raise UnsupportedContentType(content_type)
    media_type, *parameters = content_type.split(";")
    charset = None
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower() or None
    return media_type.strip().lower(), charset


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise MalformedPayload(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except UnicodeDecodeError:
        raise MalformedPayload("the JSON body is not valid Unicode text") from None
    except (ValueError, RecursionError) as exc:  # NaN, a huge integer, deep nesting
        raise MalformedPayload(f"the body is not valid JSON: {_short(exc)}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _parse_form(text: str, charset: str) -> dict[str, str | list[str]]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict")
    except UnicodeDecodeError:
        raise MalformedPayload(f"the form body has a %-escape that is not {charset}") from None
    form: dict[str, str | list[str]] = {}
    for name, value in pairs:
        current = form.get(name)
        if current is None:
            form[name] = value
        elif isinstance(current, list):
            current.append(value)
        else:
            form[name] = [current, value]
    return form


def _decode(body: bytes, charset: str, content_type: str | None) -> str:
    try:
        return body.decode(charset)
    except LookupError:
        raise UnsupportedContentType(
            content_type, detail=f" (unknown charset {charset!r})"
        ) from None
    except UnicodeDecodeError as exc:
        raise MalformedPayload(
            f"the body is not valid {charset} text (byte {exc.start} cannot be decoded)"
        ) from None


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."
