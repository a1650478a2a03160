"""``/api/v1/executions``: list them (filtered, paginated), read one, retry one.

Listings are newest first (``queued_at``, then id). The ``next`` link of a page
carries an opaque cursor: the ``queued_at`` bound of the last row and how many rows
at exactly that instant were already shown, so runs that start while a caller pages
never shift or repeat a page. ``offset`` is also accepted, for callers that want page
numbers; its ``next`` link keeps using offsets (and can shift when runs start). With
a cursor, ``offset`` skips that many more rows from the cursor's position.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.responses import Response

from vecron.backends.database import ExecutionRecord, ExecutionStatus, TriggerSource
from vecron.errors import ObjectNotFound
from vecron.runtime.trigger import retry_execution as retry
from vecron.webhook.api_common import ApiError, Call, iso, log
from vecron.webhook.api_views import execution_detail, execution_summary
from vecron.webhook.responses import json_response

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_OFFSET = 1_000_000

"""The statuses ``POST /executions/{id}/retry`` accepts."""

FILTERS = frozenset({"job", "status", "trigger_source", "since", "until", "limit", "offset"})
PAGING = frozenset({"cursor"})
_TICK = timedelta(microseconds=1)
_Enum = TypeVar("_Enum", ExecutionStatus, TriggerSource)


async def list_executions(call: Call) -> Response:
    query = call.request.query_params
    unknown = sorted(set(query) - FILTERS - PAGING)
    if unknown:
        known = ", ".join(sorted(FILTERS | PAGING))
        raise ApiError(400, "bad_parameter", f"unknown parameter {unknown[0]!r} (known: {known})")
    statuses = _statuses(query.getlist("status"))
    trigger_source = _one_of(query.get("trigger_source"), "trigger_source", TriggerSource)
    since = _instant(query.get("since"), "since")
    until = _instant(query.get("until"), "until")
    limit = _integer(query.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset_text, cursor_text = query.get("offset"), query.get("cursor")
    offset = _integer(offset_text, "offset", 0, 0, MAX_OFFSET)
    bound, skip = until, offset
    if cursor_text is not None:
        bound, skip = _decode_cursor(cursor_text)
        if until is not None and until < bound:
            bound, skip = until, 0  # a narrower range than the cursor's: nothing shown yet
        skip += offset
    job = query.get("job") or None
    rows = await call.state.stores.database.list_executions(
        job_name=job,
        status=statuses,
        trigger_source=trigger_source,
        since=since,
        until=bound,
        limit=limit + 1,
        offset=skip,
    )
    page, more = rows[:limit], len(rows) > limit
    next_link = next_cursor = None
    if more:
        params = [(k, v) for k, v in query.multi_items() if k not in ("cursor", "offset")]
        if cursor_text is None and offset_text is not None:
            params.append(("offset", str(offset + limit)))
        else:
            next_cursor = _next_cursor(page, bound, skip)
            params.append(("cursor", next_cursor))
        next_link = f"{call.request.url.path}?{urlencode(params)}"
    return json_response(
        {
            "executions": [execution_summary(record) for record in page],
            "limit": limit,
            "next": next_link,
            "next_cursor": next_cursor,
        }
    )


async def get_execution(call: Call) -> Response:
    state = call.state
    record = await state.stores.database.get_execution(call.param("execution_id"))
    context: dict[str, Any] | None = None
    note = None
    if record.minio_context_path is None:
        note = "no context yet: the run has not started a step"
    else:
        try:
            loaded = json.loads(await state.stores.objects.get(record.minio_context_path))
        except ObjectNotFound:
            note = f"the context is missing from the object store ({record.minio_context_path})"
        except ValueError:
            note = f"the context at {record.minio_context_path} is not valid JSON"
        else:
            context = loaded if isinstance(loaded, dict) else None
    return json_response(execution_detail(record, context, note))


async def retry_execution(call: Call) -> Response:
    """A new execution of the job's current definition, with the same trigger source,
    trigger data and scheduled time, and ``retry_of`` in its trigger data. Retrying
    one execution twice answers with the first retry (``Idempotent-Replayed: true``)."""
    state = call.state
    original, record, replayed = await retry(
        state.stores.database,
        state.stores.objects,
        call.param("execution_id"),
        requested_by=call.caller.name,
    )
    if not replayed:
        await state.enqueue(record)
    log.info(
        "retry of execution %s: execution %s%s",
        original.execution_id,
        record.execution_id,
        " (replayed)" if replayed else "",
        extra={"token": call.caller.name, "execution_id": record.execution_id},
    )
    return json_response(
        {
            "execution_id": record.execution_id,
            "status": record.status.value,
            "retry_of": original.execution_id,
        },
        202,
        {"Idempotent-Replayed": "true"} if replayed else None,
    )


# -- parameters -------------------------------------------------------------------------


def _statuses(values: list[str]) -> list[ExecutionStatus] | None:
    wanted = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not wanted:
        if values:
            raise ApiError(400, "bad_parameter", "status is empty")
        return None
    return [_member(value, "status", ExecutionStatus) for value in wanted]


def _one_of(value: str | None, name: str, kind: type[_Enum]) -> _Enum | None:
    return None if value is None else _member(value, name, kind)


def _member(value: str, name: str, kind: type[_Enum]) -> _Enum:
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(member.value for member in kind)
        raise ApiError(400, "bad_parameter", f"{name} {value!r} is not one of {known}") from None


def _instant(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is not None and moment.tzinfo is not None:
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            pass
    raise ApiError(
        400,
        "bad_parameter",
        f"{name} must be an ISO 8601 date-time with an offset, such as "
        f"2026-11-28T00:00:00Z (write + as %2B in a URL), got {value!r}",
    )


def _integer(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    number = int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else None
    if number is None or not low <= number <= high:
        raise ApiError(400, "bad_parameter", f"{name} must be a whole number from {low} to {high}")
    return number


# -- the cursor -------------------------------------------------------------------------


def _next_cursor(page: list[ExecutionRecord], bound: datetime | None, offset: int) -> str:
    """The cursor after ``page``: every row below the last one's instant, less the rows
    at that very instant already shown (on this page and, with the same bound, before)."""
    last = page[-1].queued_at
    at_last = sum(record.queued_at == last for record in page)
    new_bound = last + _TICK
    skip = at_last + (offset if bound == new_bound else 0)
    raw = json.dumps({"before": iso(new_bound), "skip": skip}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(text: str) -> tuple[datetime, int]:
    bad = ApiError(400, "bad_parameter", "cursor is not one this server gave out")
    if len(text) > 200:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw)
        bound = datetime.fromisoformat(data["before"])
        skip = data["skip"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise bad from None
    valid = isinstance(skip, int) and not isinstance(skip, bool) and 0 <= skip <= MAX_OFFSET
    if not valid or bound.tzinfo is None:
        raise bad
    return bound, skip
