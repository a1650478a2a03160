"""Unit and property tests of vecron.spec.cron (dates below were checked by hand)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vecron.errors import CronSyntaxError
from vecron.spec.cron import CronExpression

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HO_CHI_MINH = ZoneInfo("Asia/Ho_Chi_Minh")
START_2026 = datetime(2026, 1, 1, tzinfo=UTC)


def fires(
    expression: str, after: datetime = START_2026, tz: ZoneInfo = UTC_ZONE, count: int = 6
) -> list[datetime]:
    return list(islice(CronExpression.parse(expression).fire_times(after, tz), count))


def dates_2026(month_days: str) -> list[date]:
    """``"01-30 02-27"`` as dates in 2026."""
    return [date.fromisoformat(f"2026-{month_day}") for month_day in month_days.split()]


def fire_dates(expression: str, count: int = 6, after: datetime = START_2026) -> list[date]:
    return [fire.date() for fire in fires(expression, after, count=count)]


# -- Quartz syntax ------------------------------------------------------------------------


def test_every_second_drops_the_sub_second_part_of_after() -> None:
    after = datetime(2026, 5, 1, 10, 0, 0, 500_000, tzinfo=UTC)
    assert fires("* * * ? * *", after, count=2) == [
        datetime(2026, 5, 1, 10, 0, 1, tzinfo=UTC),
        datetime(2026, 5, 1, 10, 0, 2, tzinfo=UTC),
    ]


def test_next_fire_is_strictly_after() -> None:
    cron = CronExpression.parse("0 0 12 * * ?")
    noon = datetime(2026, 3, 3, 12, tzinfo=UTC)
    assert cron.next_fire(noon, UTC_ZONE) == noon + timedelta(days=1)
    assert cron.next_fire(noon - timedelta(seconds=1), UTC_ZONE) == noon


def test_last_weekday_of_month() -> None:
    assert fire_dates("0 0 12 LW * ?", count=12) == dates_2026(
        "01-30 02-27 03-31 04-30 05-29 06-30 07-31 08-31 09-30 10-30 11-30 12-31"
    )
    assert fires("0 0 12 LW * ?", count=1) == [datetime(2026, 1, 30, 12, tzinfo=UTC)]


def test_last_friday_of_month() -> None:
    assert fires("0 15 10 ? * 6L", count=1) == [datetime(2026, 1, 30, 10, 15, tzinfo=UTC)]
    assert fire_dates("0 15 10 ? * FRIL") == dates_2026("01-30 02-27 03-27 04-24 05-29 06-26")


def test_third_friday_of_month() -> None:
    assert fire_dates("0 15 10 ? * 6#3") == dates_2026("01-16 02-20 03-20 04-17 05-15 06-19")
    assert fire_dates("0 15 10 ? * fri#3", count=2) == dates_2026("01-16 02-20")


def test_fifth_weekday_skips_months_without_one() -> None:
    # Fifth Monday in 2026: March 30, June 29, August 31, November 30.
    assert fire_dates("0 0 0 ? * 2#5", count=4) == dates_2026("03-30 06-29 08-31 11-30")


def test_last_day_offsets() -> None:
    assert fire_dates("0 0 0 L-3 * ?", count=4) == dates_2026("01-28 02-25 03-28 04-27")
    assert fire_dates("0 0 0 L * ?", count=3) == dates_2026("01-31 02-28 03-31")
    # L-3W: Jan 28 is a Wednesday; Mar 28 is a Saturday, so Friday 27th.
    assert fire_dates("0 0 0 L-3W * ?", count=3) == dates_2026("01-28 02-25 03-27")
    # L-29 needs a month of at least 30 days.
    assert fire_dates("0 0 0 L-29 * ?", count=3) == dates_2026("01-02 03-02 04-01")


def test_nearest_weekday() -> None:
    # The 1st of August 2026 is a Saturday: 1W does not jump back into July.
    assert fire_dates(
        "0 0 0 1W * ?", count=12, after=datetime(2025, 12, 31, tzinfo=UTC)
    ) == dates_2026("01-01 02-02 03-02 04-01 05-01 06-01 07-01 08-03 09-01 10-01 11-02 12-01")
    # 15th: Saturday in August (-> Friday 14th), Sunday in November (-> Monday 16th).
    dates = fire_dates("0 0 0 15W * ?", count=12)
    assert date(2026, 8, 14) in dates
    assert date(2026, 11, 16) in dates
    assert date(2026, 4, 15) in dates


def test_nearest_weekday_to_a_missing_day() -> None:
    # April 30 2026 is a Thursday; May 31 a Sunday, so the last weekday before it.
    assert fire_dates("0 0 0 31W * ?", count=1, after=datetime(2026, 4, 1, tzinfo=UTC)) == [
        date(2026, 5, 29)
    ]
    # Quartz's reading (kept): April 31 2021 would be Saturday May 1 -> Friday April 30.
    assert fire_dates("0 0 0 31W * ?", count=1, after=datetime(2021, 4, 1, tzinfo=UTC)) == [
        date(2021, 4, 30)
    ]
    assert fire_dates("0 0 0 29W 2 ?", count=1, after=datetime(2024, 3, 1, tzinfo=UTC)) == [
        date(2025, 2, 28)
    ]


def test_steps_ranges_and_lists() -> None:
    after = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    seconds = [fire.second for fire in fires("0/15 * * ? * *", after, count=5)]
    assert seconds == [15, 30, 45, 0, 15]
    assert [f.second for f in fires("10-50/10 * * ? * *", after, count=6)] == [
        10,
        20,
        30,
        40,
        50,
        10,
    ]
    assert [f.minute for f in fires("0 */20 * ? * *", after, count=4)] == [20, 40, 0, 20]
    assert [f.second for f in fires("3,7 * * ? * *", after, count=3)] == [3, 7, 3]


def test_wrapping_ranges() -> None:
    hours = [fire.hour for fire in fires("0 0 22-2 ? * *", count=6)]
    assert hours == [1, 2, 22, 23, 0, 1]
    # FRI-MON: Friday, Saturday, Sunday, Monday.
    weekdays = {fire.strftime("%a") for fire in fires("0 0 9 ? * FRI-MON", count=12)}
    assert weekdays == {"Fri", "Sat", "Sun", "Mon"}
    months = [fire.month for fire in fires("0 0 0 1 NOV-FEB ?", count=4)]
    assert months == [2, 11, 12, 1]


def test_names_are_case_insensitive_and_days_count_from_sunday() -> None:
    assert fires("0 0 9 ? jan,Mar mon") == fires("0 0 9 ? 1,3 2")
    assert {f.strftime("%a") for f in fires("0 0 0 ? * 1", count=4)} == {"Sun"}
    assert {f.strftime("%a") for f in fires("0 0 0 ? * L", count=4)} == {"Sat"}  # 'L' = 7


def test_year_field_and_exhaustion() -> None:
    assert fires("0 0 0 1 1 ? 2026,2028") == [
        datetime(2028, 1, 1, tzinfo=UTC)
    ]  # Jan 1 2026 00:00 is not *after* START_2026
    cron = CronExpression.parse("0 0 0 1 1 ? 2026")
    assert cron.next_fire(START_2026, UTC_ZONE) is None
    assert list(cron.fire_times(START_2026, UTC_ZONE)) == []
    assert (
        len(list(CronExpression.parse("0 0 0 1 * ? 2027").fire_times(START_2026, UTC_ZONE))) == 12
    )


def test_an_expression_that_never_fires() -> None:
    assert CronExpression.parse("0 0 0 30 2 ?").next_fire(START_2026, UTC_ZONE) is None
    assert fire_dates("0 0 0 29 2 ? *", count=2) == [date(2028, 2, 29), date(2032, 2, 29)]
    # A fifth Monday in February needs a leap day on a Monday.
    assert fire_dates("0 0 0 ? 2 2#5", count=1) == [date(2044, 2, 29)]


def test_star_in_both_day_fields_and_one_restricted_field() -> None:
    assert fire_dates("0 0 0 * * *", count=3) == dates_2026("01-02 01-03 01-04")
    assert fires("0 0 0 * * MON") == fires("0 0 0 ? * MON")
    assert fires("0 0 0 L * *") == fires("0 0 0 L * ?")


def test_parse_keeps_the_text_and_is_frozen() -> None:
    cron = CronExpression.parse("0 0 2 ? * mon-fri")
    assert cron.expression == "0 0 2 ? * mon-fri"
    assert cron.is_quartz
    assert not CronExpression.parse("0 2 * * 1-5").is_quartz
    assert cron == CronExpression.parse("0 0 2 ? * mon-fri")
    assert hash(cron) == hash(CronExpression.parse("0 0 2 ? * mon-fri"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cron.expression = "x"  # type: ignore[misc]


def test_next_fire_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        CronExpression.parse("* * * ? * *").next_fire(datetime(2026, 1, 1), UTC_ZONE)


def test_matches() -> None:
    cron = CronExpression.parse("0 0 12 LW * ?")
    assert cron.matches(datetime(2026, 1, 30, 12))
    assert cron.matches(datetime(2026, 1, 30, 12, tzinfo=HO_CHI_MINH))
    assert not cron.matches(datetime(2026, 1, 31, 12))
    assert not cron.matches(datetime(2026, 1, 30, 12, 0, 1))


@pytest.mark.parametrize(
    ("expression", "description"),
    [
        ("0 0 2 ? * MON-FRI", "at 02:00:00, Monday through Friday"),
        ("0 15 10 ? * 6L", "at 10:15:00, on the last Friday of the month"),
        ("0 15 10 ? * 6#3", "at 10:15:00, on the 3rd Friday of the month"),
        ("0 0 0 L-2 * ?", "at 00:00:00, 2 days before the last day of the month"),
        ("0 0 0 15W * ?", "at 00:00:00, on the weekday nearest day 15 of the month"),
        ("0 0 13 * FRI", "at 00:00, on day 13 of the month or on Friday"),
        ("0 0 9 ? * 2,4,6", "at 09:00:00, on Monday, Wednesday, Friday"),
        ("0 0 12 LW * ?", "at 12:00:00, on the weekday nearest the last day of the month"),
        ("30 9 1 * *", "at 09:30, on day 1 of the month"),
        ("0 0 0 1 1 ? 2030", "at 00:00:00, on day 1 of the month, in January, in 2030"),
        ("0 */15 * * * ?", "every hour, minute 0,15,30,45, second 0"),
    ],
)
def test_describe(expression: str, description: str) -> None:
    assert CronExpression.parse(expression).describe() == description


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "offset", "message"),
    [
        ("0 0 0 ? * FOO", 10, "day-of-week: 'FOO' is not a day name (SUN-SAT or 1-7)"),
        ("0 0 0 ? * MONDAY", 10, "day-of-week: 'MONDAY' is not a day name (SUN-SAT or 1-7)"),
        ("0 0 0 ? * 2-FOO", 12, "day-of-week: 'FOO' is not a day name"),
        ("0 0 0 ? * 0", 10, "day-of-week: '0' is out of range (SUN-SAT or 1-7)"),
        ("0 0 0 ? * 8", 10, "day-of-week: '8' is out of range"),
        ("0 0 0 ? * 6#6", 12, "day-of-week: '#' in '6#6' must be followed by a number from 1 to 5"),
        ("0 0 0 ? * 6#3,2", 10, "day-of-week: '6#3' cannot be combined with other values"),
        ("0 0 0 ? * MON-FRI/2", 10, "day-of-week: a step after a name ('MON-FRI/2')"),
        ("0 0 0 ? * 2-FRI", 10, "day-of-week: range '2-FRI' mixes a name and a number"),
        ("60 * * ? * *", 0, "second: '60' is out of range (0-59)"),
        ("0 5-60 * ? * *", 4, "minute: '60' is out of range (0-59)"),
        ("0 0 24 ? * *", 4, "hour: '24' is out of range (0-23)"),
        ("0 0 x ? * *", 4, "hour: 'X' is not a number (0-23)"),
        ("*/0 * * ? * *", 2, "second: step 0 in '*/0' must be at least 1"),
        ("*/60 * * ? * *", 2, "second: step 60 in '*/60' is above 59"),
        ("0/ * * ? * *", 2, "second: '/' in '0/' must be followed by a number"),
        ("0 0 0 1,,2 * ?", 8, "day-of-month: empty value in a list"),
        ("0 0 0 32 * ?", 6, "day-of-month: '32' is out of range (1-31)"),
        ("0 0 0 L,5 * ?", 6, "day-of-month: 'L' cannot be combined with other values"),
        ("0 0 0 1,15W * ?", 8, "day-of-month: '15W' cannot be combined with other values"),
        ("0 0 0 L-31 * ?", 8, "day-of-month: offset 31 in 'L-31' is above 30"),
        ("0 0 0 0W * ?", 6, "day-of-month: '0' in '0W' is out of range (1-31)"),
        ("0 0 0 5L * ?", 6, "day-of-month: '5L' is not a number (1-31)"),
        ("0 0 0 ? FOO *", 8, "month: 'FOO' is not a month name (JAN-DEC or 1-12)"),
        ("0 0 0 ? 13 *", 8, "month: '13' is out of range (JAN-DEC or 1-12)"),
        ("0 0 ? * * ?", 4, "hour: '?' in '?' is only allowed in the day fields"),
        ("0 0 0 ?5 * ?", 6, "day-of-month: '?' in '?5' must stand alone"),
        ("0 0 0 ? * ?", 10, "'?' in both day fields"),
        ("0 0 0 5 * MON", 6, "restricts both day-of-month ('5') and day-of-week ('MON')"),
        ("0 0 0 * * ? 2100", 12, "year: '2100' is out of range (1970-2099)"),
        ("0 0 0 * * ? 2030-2020", 12, "year: range '2030-2020' goes backwards"),
        ("0 0 0 * *", 4, "day-of-month: '0' is out of range (1-31)"),  # 5 fields: Unix
        ("0 0 * *", 7, "expected 5 fields"),
        ("", 0, "got 0"),
        ("0 0 0 * * ? 2030 x", 17, "got 8"),
        # Unix (5-field) cron.
        ("0 0 L * *", 4, "day-of-month: 'L' in 'L' is Quartz syntax"),
        ("0 0 15W * *", 6, "day-of-month: 'W' in '15W' is Quartz syntax"),
        ("0 0 ? * *", 4, "day-of-month: '?' in '?' is Quartz syntax"),
        ("0 0 * * 5#3", 9, "day-of-week: '#' in '5#3' is Quartz syntax"),
        ("0 0 * * 8", 8, "day-of-week: '8' is out of range (SUN-SAT or 0-7)"),
        ("0 22-2 * * *", 2, "hour: range '22-2' goes backwards"),
        ("60 * * * *", 0, "minute: '60' is out of range (0-59)"),
    ],
)
def test_syntax_errors_name_the_field_value_and_offset(
    expression: str, offset: int, message: str
) -> None:
    with pytest.raises(CronSyntaxError) as caught:
        CronExpression.parse(expression)
    assert message in caught.value.message
    assert caught.value.offset == offset


# -- Unix cron ----------------------------------------------------------------------------


def test_unix_has_minute_precision() -> None:
    after = datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC)
    assert fires("* * * * *", after, count=2) == [
        datetime(2026, 1, 1, 10, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 10, 2, tzinfo=UTC),
    ]
    assert [f.minute for f in fires("*/20 9-17 * * *", after, count=3)] == [20, 40, 0]


def test_unix_day_fields_or_semantics() -> None:
    # Both restricted: the 13th OR any Friday.
    assert fire_dates("0 0 13 * 5", count=5) == dates_2026("01-02 01-09 01-13 01-16 01-23")
    # A field starting with '*' is unrestricted (Vixie): then both must match.
    assert fire_dates("0 0 */2 * 5", count=3) == dates_2026("01-09 01-23 02-13")
    assert fire_dates("0 0 13 * *", count=2) == dates_2026("01-13 02-13")
    assert fire_dates("0 0 * * FRI", count=2) == dates_2026("01-02 01-09")


def test_unix_day_of_week_zero_and_seven_are_sunday() -> None:
    sundays = dates_2026("01-04 01-11 01-18")
    assert fire_dates("0 12 * * 7", count=3) == sundays
    assert fire_dates("0 12 * * 0", count=3) == sundays
    assert fire_dates("0 12 * * sun", count=3) == sundays
    assert {f.strftime("%a") for f in fires("0 12 * * 5-7", count=9)} == {"Fri", "Sat", "Sun"}
    assert fire_dates("0 0 1 jan,jul *", count=2) == [date(2026, 7, 1), date(2027, 1, 1)]


# -- time zones and daylight saving time ----------------------------------------------------


def test_fire_times_are_aware_and_in_the_zone() -> None:
    fire = CronExpression.parse("0 0 9 * * ?").next_fire(START_2026, HO_CHI_MINH)
    assert fire == datetime(2026, 1, 1, 9, tzinfo=HO_CHI_MINH)
    assert fire is not None
    assert fire.tzinfo is HO_CHI_MINH
    assert fire.astimezone(UTC) == datetime(2026, 1, 1, 2, tzinfo=UTC)


def test_spring_forward_gap_fires_once_at_the_end_of_the_gap() -> None:
    # Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST.
    after = datetime(2026, 3, 28, 12, tzinfo=BERLIN)
    got = fires("0 30 2 * * ?", after, BERLIN, count=3)
    assert [f.isoformat() for f in got] == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]
    # Every minute of the missing hour collapses into one fire at 03:00.
    got = fires("0 * 2,3 * * ?", datetime(2026, 3, 29, tzinfo=BERLIN), BERLIN, count=3)
    assert [f.isoformat() for f in got] == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:01:00+02:00",
        "2026-03-29T03:02:00+02:00",
    ]
    # New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT; the gap is right after 'after'.
    after = datetime(2026, 3, 8, 1, 59, 59, tzinfo=NEW_YORK)
    got = fires("0 30 2 * * ?", after, NEW_YORK, count=2)
    assert [f.isoformat() for f in got] == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00",
    ]
    assert fires("30 2 * * *", after, NEW_YORK, count=1) == got[:1]


def test_fall_back_overlap_fires_once_at_the_first_occurrence() -> None:
    # Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:xx happens twice.
    after = datetime(2026, 10, 25, tzinfo=BERLIN)
    got = fires("0 30 * * * ?", after, BERLIN, count=5)
    assert [f.isoformat() for f in got] == [
        "2026-10-25T00:30:00+02:00",
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T03:30:00+01:00",
        "2026-10-25T04:30:00+01:00",
    ]
    got = fires("0 30 2 * * ?", after, BERLIN, count=2)
    assert [f.isoformat() for f in got] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]
    # New York, 2026-11-01: 02:00 EDT falls back to 01:00 EST.
    after = datetime(2026, 11, 1, tzinfo=NEW_YORK)
    got = fires("0 30 1 * * ?", after, NEW_YORK, count=2)
    assert [f.isoformat() for f in got] == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]


def test_after_inside_the_second_pass_of_an_overlap() -> None:
    # 01:10 EST is the second 01:10 of 2026-11-01 in New York.
    after = datetime(2026, 11, 1, 6, 10, tzinfo=UTC)
    assert after.astimezone(NEW_YORK).fold == 1
    assert (
        fires("0 30 * * * ?", after, NEW_YORK, count=1)[0].isoformat()
        == "2026-11-01T02:30:00-05:00"
    )
    # Every second: the rest of the repeated hour was already fired in its first pass.
    assert (
        fires("* * * ? * *", after, NEW_YORK, count=1)[0].isoformat() == "2026-11-01T02:00:00-05:00"
    )
    assert (
        fires("* * * * *", after, NEW_YORK, count=1)[0].isoformat() == "2026-11-01T02:00:00-05:00"
    )


def test_every_second_across_daylight_saving_transitions() -> None:
    spring = fires("* * * ? * *", datetime(2026, 3, 29, 1, 59, 58, tzinfo=BERLIN), BERLIN, 3)
    assert [f.isoformat() for f in spring] == [
        "2026-03-29T01:59:59+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:00:01+02:00",
    ]
    autumn_start = datetime(2026, 10, 25, 0, 59, 58, tzinfo=UTC)  # 02:59:58 CEST
    autumn = fires("* * * ? * *", autumn_start, BERLIN, 3)
    assert [f.isoformat() for f in autumn] == [
        "2026-10-25T02:59:59+02:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T03:00:01+01:00",
    ]


# -- properties -----------------------------------------------------------------------------


def numbers(low: int, high: int, *, wrap: bool = True) -> st.SearchStrategy[str]:
    """A simple field: '*', a value, a range, a step, or a list of them."""
    value = st.integers(low, high)
    ranges = st.tuples(value, value).map(lambda r: r if wrap else tuple(sorted(r)))
    item = st.one_of(
        st.just("*"),
        value.map(str),
        ranges.map(lambda r: f"{r[0]}-{r[1]}"),
        st.tuples(value, st.integers(1, high - low)).map(lambda r: f"{r[0]}/{r[1]}"),
        st.integers(1, high - low).map(lambda step: f"*/{step}"),
    )
    return st.lists(item, min_size=1, max_size=3).map(",".join)


def day_fields() -> st.SearchStrategy[tuple[str, str]]:
    dom = st.one_of(
        numbers(1, 31),
        st.sampled_from(["L", "LW", "L-2", "L-5W", "1W", "15W", "31W"]),
        st.integers(1, 31).map(lambda day: f"{day}W"),
    )
    dow = st.one_of(
        numbers(1, 7),
        st.sampled_from(["L", "MON-FRI", "SAT,SUN", "FRI-MON"]),
        st.integers(1, 7).map(lambda day: f"{day}L"),
        st.tuples(st.integers(1, 7), st.integers(1, 5)).map(lambda r: f"{r[0]}#{r[1]}"),
    )
    return st.one_of(
        dom.map(lambda d: (d, "?")),
        dow.map(lambda d: ("?", d)),
        st.just(("*", "*")),
        st.just(("?", "*")),
    )


@st.composite
def quartz_expressions(draw: st.DrawFn) -> str:
    second, minute, hour = draw(numbers(0, 59)), draw(numbers(0, 59)), draw(numbers(0, 23))
    dom, dow = draw(day_fields())
    month = draw(st.one_of(st.just("*"), numbers(1, 12)))
    return f"{second} {minute} {hour} {dom} {month} {dow}"


@st.composite
def every_day_expressions(draw: st.DrawFn) -> str:
    """Expressions that fire often enough for a brute-force window of two hours."""
    second, minute = draw(numbers(0, 59)), draw(numbers(0, 59))
    hour = draw(st.one_of(st.just("*"), numbers(0, 23)))
    return f"{second} {minute} {hour} * * ?"


@st.composite
def unix_expressions(draw: st.DrawFn) -> str:
    minute, hour = draw(numbers(0, 59, wrap=False)), draw(numbers(0, 23, wrap=False))
    dom = draw(st.one_of(st.just("*"), numbers(1, 31, wrap=False)))
    month = draw(st.one_of(st.just("*"), numbers(1, 12, wrap=False)))
    dow = draw(st.one_of(st.just("*"), numbers(0, 7, wrap=False), st.just("MON-FRI")))
    return f"{minute} {hour} {dom} {month} {dow}"


expressions = st.one_of(quartz_expressions(), unix_expressions())
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)


@PROPERTY_SETTINGS
@given(
    expression=expressions,
    after=instants,
    zone=st.sampled_from(["UTC", "Asia/Ho_Chi_Minh", "Europe/Berlin", "America/New_York"]),
)
def test_fire_times_strictly_increase(expression: str, after: datetime, zone: str) -> None:
    tz = ZoneInfo(zone)
    previous = after
    for fire in islice(CronExpression.parse(expression).fire_times(after, tz), 20):
        assert fire > previous
        assert fire.tzinfo is tz
        assert fire.fold == 0  # never the second occurrence of a wall-clock time
        previous = fire


@PROPERTY_SETTINGS
@given(expression=expressions, after=instants, zone=st.sampled_from(["UTC", "Asia/Ho_Chi_Minh"]))
def test_every_fire_time_matches(expression: str, after: datetime, zone: str) -> None:
    cron = CronExpression.parse(expression)
    for fire in islice(cron.fire_times(after, ZoneInfo(zone)), 20):
        assert cron.matches(fire.replace(tzinfo=None))


@PROPERTY_SETTINGS
@given(expression=expressions, after=instants)
def test_daylight_saving_fires_match_or_end_a_gap(expression: str, after: datetime) -> None:
    cron = CronExpression.parse(expression)
    for fire in islice(cron.fire_times(after, BERLIN), 20):
        just_before = (fire - timedelta(seconds=1)).astimezone(BERLIN)
        assert cron.matches(fire) or just_before.utcoffset() != fire.utcoffset()


@settings(max_examples=40, deadline=None)
@given(
    expression=every_day_expressions(),
    after=instants,
    zone=st.sampled_from(["UTC", "Asia/Ho_Chi_Minh"]),
)
def test_no_matching_second_is_skipped(expression: str, after: datetime, zone: str) -> None:
    """Brute force over two hours, second by second."""
    tz = ZoneInfo(zone)
    cron = CronExpression.parse(expression)
    after = after.replace(microsecond=0)
    end = after + timedelta(hours=2)
    expected = []
    moment = after + timedelta(seconds=1)
    while moment <= end:
        if cron.matches(moment.astimezone(tz).replace(tzinfo=None)):
            expected.append(moment)
        moment += timedelta(seconds=1)
    got = [fire for fire in islice(cron.fire_times(after, tz), len(expected) + 1) if fire <= end]
    assert got == expected


@settings(max_examples=40, deadline=None)
@given(days=day_fields(), month=st.one_of(st.just("*"), numbers(1, 12)), after=instants)
def test_no_matching_day_is_skipped(days: tuple[str, str], month: str, after: datetime) -> None:
    """Brute force over two years, day by day, for a fixed time of day."""
    cron = CronExpression.parse(f"0 0 12 {days[0]} {month} {days[1]}")
    first = after.date() + timedelta(days=1)
    noons = [datetime.combine(first + timedelta(days=n), time(12)) for n in range(731)]
    expected = [noon.replace(tzinfo=UTC) for noon in noons if cron.matches(noon)]
    start = datetime.combine(first, time(0), UTC)
    assert list(islice(cron.fire_times(start, UTC_ZONE), len(expected))) == expected
