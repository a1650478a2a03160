"""Schedule math beyond cron syntax: durations, schedule types, windows, the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from vecron.cli import main
from vecron.errors import ScheduleError
from vecron.spec import schedules
from vecron.spec.models import Schedule

SCHEDULE = TypeAdapter(Schedule)
T0 = datetime(2026, 11, 28, 0, 0, 0, tzinfo=UTC)


def schedule(**fields: Any) -> Any:
    return SCHEDULE.validate_python(fields)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("45", 45.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1h 30m 15s", 5415.0),
        ("250ms", 0.25),
        ("2.5m", 150.0),
    ],
)
def test_durations(text: float | str, seconds: float) -> None:
    assert schedules.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 parsecs", "m", "1x", "-5s", "1h-30m", True])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ScheduleError):
        schedules.parse_duration(text)


def test_interval_is_at_least_a_second() -> None:
    with pytest.raises(ScheduleError, match="shorter than one second"):
        schedules.interval_seconds("500ms")


def test_unknown_timezone() -> None:
    with pytest.raises(ScheduleError, match="unknown timezone 'Mars/Olympus'"):
        schedules.zone("Mars/Olympus")


def test_cron_defaults_to_ho_chi_minh_time() -> None:
    daily = schedule(type="cron", expression="0 0 2 * * ?")
    assert daily.timezone == "Asia/Ho_Chi_Minh"
    # 02:00 at UTC+7 is 19:00 UTC the day before.
    assert schedules.next_fire(daily, after=T0) == datetime(2026, 11, 28, 19, 0, tzinfo=UTC)


def test_cron_respects_start_and_end() -> None:
    hourly = schedule(
        type="cron",
        expression="0 0 * * * ?",
        timezone="UTC",
        start_at="2026-12-01T10:30:00Z",
        end_at="2026-12-01T12:00:00Z",
    )
    first = schedules.next_fire(hourly, after=T0)
    assert first == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    assert first is not None
    second = schedules.next_fire(hourly, after=first)
    assert second == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert second is not None
    assert schedules.next_fire(hourly, after=second) is None


def test_naive_instants_are_read_in_the_schedules_timezone() -> None:
    once = schedule(type="one_time", at="2026-12-24T18:00:00", timezone="Asia/Ho_Chi_Minh")
    assert schedules.next_fire(once, after=T0) == datetime(2026, 12, 24, 11, 0, tzinfo=UTC)


def test_one_time_fires_once() -> None:
    once = schedule(type="one_time", at="2026-12-24T18:00:00+07:00")
    fire = schedules.next_fire(once, after=T0)
    assert fire == datetime(2026, 12, 24, 11, 0, tzinfo=UTC)
    assert fire is not None
    assert schedules.next_fire(once, after=fire) is None


def test_fixed_rate_counts_from_its_start() -> None:
    rate = schedule(type="fixed_rate", interval="10m", start_at="2026-11-28T00:00:00Z")
    assert schedules.next_fire(rate, after=T0) == T0 + timedelta(minutes=10)
    late = T0 + timedelta(minutes=25, seconds=3)
    # Counted from the start, not from `after`: no drift however late the caller is.
    assert schedules.next_fire(rate, after=late) == T0 + timedelta(minutes=30)
    anchored = schedule(type="fixed_rate", interval=60)
    assert schedules.next_fire(
        anchored, after=T0, anchor=T0 - timedelta(seconds=90)
    ) == T0 + timedelta(seconds=30)


@given(
    interval=st.integers(min_value=1, max_value=86_400),
    offset=st.integers(min_value=0, max_value=10**7),
)
def test_fixed_rate_fires_on_the_grid(interval: int, offset: int) -> None:
    rate = schedule(type="fixed_rate", interval=interval, start_at="2026-11-28T00:00:00Z")
    after = T0 + timedelta(seconds=offset)
    fire = schedules.next_fire(rate, after=after)
    assert fire is not None
    assert fire > after
    assert fire - after <= timedelta(seconds=interval)
    assert (fire - T0).total_seconds() % interval == 0


def test_fixed_delay_counts_from_the_previous_completion() -> None:
    delay = schedule(type="fixed_delay", interval="5m")
    done = T0 + timedelta(minutes=3, seconds=20)
    assert schedules.next_fire(delay, after=done, last_completed_at=done) == done + timedelta(
        minutes=5
    )
    # Overdue (the scheduler was down): due now, never in the past.
    later = done + timedelta(hours=1)
    assert schedules.next_fire(delay, after=later, last_completed_at=done) == later
    # Never run: one interval after the anchor, or at start_at.
    assert schedules.next_fire(delay, after=T0, anchor=T0) == T0 + timedelta(minutes=5)
    started = schedule(type="fixed_delay", interval="5m", start_at="2026-11-29T00:00:00Z")
    assert schedules.next_fire(started, after=T0) == datetime(2026, 11, 29, tzinfo=UTC)


def test_end_at_stops_interval_schedules() -> None:
    rate = schedule(
        type="fixed_rate",
        interval="1h",
        start_at="2026-11-28T00:00:00Z",
        end_at="2026-11-28T02:00:00Z",
    )
    assert schedules.next_fire(rate, after=T0 + timedelta(hours=1)) == T0 + timedelta(hours=2)
    assert schedules.next_fire(rate, after=T0 + timedelta(hours=2)) is None


def test_cli_schedule_next(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "schedule",
                "next",
                "0 0 2 ? * MON-FRI",
                "--after",
                "2026-11-28T00:00:00Z",
                "--count",
                "3",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.split() == [
        "2026-11-29T19:00:00Z",  # Monday 02:00 in Ho Chi Minh City
        "2026-11-30T19:00:00Z",
        "2026-12-01T19:00:00Z",
    ]


def test_cli_schedule_next_across_a_dst_gap(capsys: pytest.CaptureFixture[str]) -> None:
    # 02:30 does not exist in Berlin on 2026-03-29: it fires at 03:00 CEST (01:00 UTC).
    args = ["schedule", "next", "0 30 2 * * ?", "--timezone", "Europe/Berlin"]
    assert main([*args, "--after", "2026-03-28T00:00:00Z", "--count", "3"]) == 0
    assert capsys.readouterr().out.split() == [
        "2026-03-28T01:30:00Z",
        "2026-03-29T01:00:00Z",
        "2026-03-30T00:30:00Z",
    ]


def test_cli_schedule_next_unix_and_naive_after(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "schedule",
        "next",
        "*/15 * * * *",
        "--timezone",
        "UTC",
        "--after",
        "2026-11-28T10:07:00",
    ]
    assert main([*args, "--count", "2"]) == 0
    assert capsys.readouterr().out.split() == ["2026-11-28T10:15:00Z", "2026-11-28T10:30:00Z"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["0 0 2 1 * MON"], 1, "restricts both day-of-month"),
        (["0 0 2 * * ?", "--timezone", "Nowhere/City"], 1, "unknown timezone"),
        (["0 0 2 * * ?", "--count", "0"], 2, "--count"),
        (["0 0 2 * * ?", "--after", "yesterday"], 2, "ISO-8601"),
        (["0 0 0 1 1 ? 1950"], 1, "year"),
    ],
)
def test_cli_schedule_next_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    assert main(["schedule", "next", *args]) == code
    assert message in capsys.readouterr().err


def test_cli_schedule_next_when_nothing_fires(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "next", "0 0 0 1 1 ? 2030", "--after", "2031-01-01T00:00:00Z"]) == 1
    assert "never fires" in capsys.readouterr().err
