"""Schedule math: timezones, durations, and the next fire time of a schedule.

Cron expressions themselves are parsed by :mod:`vecron.spec.cron`; this module puts
them together with the other schedule types, ``start_at`` and ``end_at``. Every
instant it returns is an aware datetime in UTC.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vecron.errors import ScheduleError

if TYPE_CHECKING:
    from vecron.spec.cron import CronExpression
    from vecron.spec.models import Schedule

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
MIN_INTERVAL_SECONDS = 1.0
MAX_INTERVAL_SECONDS = 10 * 366 * 86400  # ten years: longer is a one_time schedule

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PLAIN_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DURATION_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)\s*")


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA timezone ``name``; :class:`ScheduleError` when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(
            f"unknown timezone {name!r} (expected an IANA name such as {DEFAULT_TIMEZONE})"
        ) from exc


@lru_cache(maxsize=4096)
def parse_cron(expression: str) -> CronExpression:
    """A parsed cron expression, cached: jobs share a handful of expressions."""
    from vecron.spec.cron import CronExpression

    return CronExpression.parse(expression)


def parse_duration(value: float | str) -> float:
    """Seconds in ``value``: a number of seconds, or text such as ``30s``, ``1h30m``."""
    if isinstance(value, bool):
        raise ScheduleError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ScheduleError(f"{value!r} is not a duration")
        return float(value)
    text = value.strip()
    if _PLAIN_SECONDS.fullmatch(text):
        return float(text)
    total, pos = 0.0, 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None or match.end() == pos:
            raise ScheduleError(
                f"{value!r} is not a duration (expected seconds, or e.g. 30s, 5m, 1h30m, 1d)"
            )
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text:
        raise ScheduleError("empty duration")
    return total


def interval_seconds(value: float | str) -> float:
    """A schedule interval in seconds; at least one second, at most ten years."""
    seconds = parse_duration(value)
    if seconds < MIN_INTERVAL_SECONDS:
        raise ScheduleError(f"interval {value!r} is shorter than one second")
    if seconds > MAX_INTERVAL_SECONDS:
        raise ScheduleError(f"interval {value!r} is longer than ten years")
    return seconds


def aware(value: datetime, tz: tzinfo) -> datetime:
    """``value`` with a timezone: naive datetimes are read as wall-clock time in ``tz``."""
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def next_fire(
    schedule: Schedule,
    *,
    after: datetime,
    anchor: datetime | None = None,
    last_completed_at: datetime | None = None,
) -> datetime | None:
    """The first fire time of ``schedule`` strictly after ``after``, in UTC, or None.

    ``anchor`` is when a fixed-rate or fixed-delay schedule started counting (the
    job's first sync) when it has no ``start_at``; ``last_completed_at`` is when the
    previous run of a fixed-delay job completed; an overdue fixed-delay fire is due
    at ``after`` itself. None means the schedule is over.
    """
    tz = zone(schedule.timezone)
    after = aware(after, UTC)
    start = aware(schedule.start_at, tz) if schedule.start_at is not None else None
    end = aware(schedule.end_at, tz) if schedule.end_at is not None else None
    if start is not None and after < start:
        after = start - timedelta(microseconds=1)

    candidate: datetime | None
    if schedule.type == "cron":
        candidate = parse_cron(schedule.expression).next_fire(after, tz)
    elif schedule.type == "one_time":
        at = aware(schedule.at, tz)
        candidate = at if at > after else None
    elif schedule.type == "fixed_delay":
        step = timedelta(seconds=interval_seconds(schedule.interval))
        if last_completed_at is not None:
            due = aware(last_completed_at, UTC) + step
        elif start is not None:
            due = start
        elif anchor is not None:
            due = aware(anchor, UTC) + step
        else:
            due = after + step
        # Overdue (the previous run finished long ago): due now, not in the past.
        candidate = due if due > after else after
    else:
        step = timedelta(seconds=interval_seconds(schedule.interval))
        if start is not None:
            origin = start
        elif anchor is not None:
            origin = aware(anchor, UTC) + step
        else:
            origin = after + step
        periods = 0 if origin > after else (after - origin) // step + 1
        candidate = origin + periods * step
    if candidate is None or (end is not None and candidate > end):
        return None
    return candidate.astimezone(UTC)
