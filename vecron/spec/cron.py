"""Cron expressions: Quartz (6 or 7 fields) and Unix (5 fields), parsed and evaluated.

Quartz expressions (``sec min hour day-of-month month day-of-week [year]``) follow
Quartz 2.3.2's ``org.quartz.CronExpression``: ``*``, ``?``, lists, ranges (wrapping
ranges such as ``22-2`` or ``FRI-MON`` wrap around the field), steps (``0/15``, ``*/5``,
``10-50/10``; a step on a single value runs to the field's maximum), names (JAN-DEC,
SUN-SAT, any case), day-of-week 1-7 = SUN-SAT and ``L`` alone = SAT, ``L``, ``L-n``,
``W``, ``LW``, ``L-nW`` in day-of-month, ``nL`` and ``n#k`` in day-of-week, years. For
accepted expressions the fire times equal Quartz's (tests/spec/test_cron_quartz.py
checks this against Quartz itself), except where noted below.

Unix expressions (``min hour day-of-month month day-of-week``) have minute precision,
day-of-week 0-7 (0 and 7 are Sunday) and no ``?``, ``L``, ``W`` or ``#``. Ranges do not
wrap. As in Vixie cron, when neither day field starts with ``*`` a day matches if
*either* field matches; otherwise both must.

Vecron deviations from Quartz:

* ``*`` in both day fields is accepted and means every day. A day field is
  *restricted* when it is neither ``*`` nor ``?``; when exactly one is, it applies
  (``0 0 0 * * MON`` = Mondays); restricting both is an error, as is ``?`` in both.
* Parsing is stricter. Quartz accepts and silently misreads these; vecron rejects them:
  characters after a name (Quartz reads ``MONDAY`` as ``MON``), a step after a name
  (Quartz ignores the ``/2`` in ``MON-FRI/2``), ``W``, ``L`` or ``#`` inside a list
  (Quartz keeps one value of ``15W,20`` or ``6#3,2``), ``?`` inside a list, a step of 0
  (Quartz reads ``*/0`` as every value and ``5/0`` as 5), a range end below the field's
  minimum (Quartz reads ``5-0`` in day-of-month as 5-31), ``0W`` (Quartz then loops
  forever), ``0#3`` (third Saturday for Quartz) and ``8#3``, more than 7 fields (Quartz
  ignores the extra ones), empty list items, junk after ``*``, ``?``, ``L`` or a step,
  and years outside 1970-2099 (Quartz accepts any year and fires in it, up to the
  current year + 100). Steps in the year field stop at 2099; an absent or ``*`` year
  field is unbounded.
* ``L-nW`` never fires in a month with ``n`` days or fewer (as ``L-n`` alone does, in
  Quartz too); Quartz's search loops forever once it reaches such a month.

A Quartz quirk that vecron keeps: ``nW`` for a day ``n`` that the month lacks counts on
past the month's end, so it fires on the month's last day when ``n`` is the day after
it and the last day is a Friday (``31W`` on Friday April 30, ``29W`` on Friday
February 28 of a common year), and otherwise not at all in that month.

Time zones and daylight saving time (vecron's contract; the tests against Quartz use
zones without DST): a wall-clock time inside a spring-forward gap fires once, at the
first instant after the gap (02:30 in a 02:00-03:00 gap fires at 03:00); a wall-clock
time that occurs twice fires once, at its first occurrence.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from vecron.errors import CronSyntaxError

__all__ = ["CronExpression"]

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, start=1)}
_QUARTZ_DAYS = {name: number for number, name in enumerate(_DAY_NAMES, start=1)}
_UNIX_DAYS = {name: number for number, name in enumerate(_DAY_NAMES)}
_WEEKDAY_NAMES = tuple(calendar.day_name)  # Monday first, like datetime.weekday()
_ONE_SECOND = timedelta(seconds=1)
_MIDNIGHT = (0, 0, 0)
_FIRST_YEAR, _LAST_YEAR = 1970, 2099  # the year field's range
_MAX_SEARCH_YEARS = 400  # the Gregorian calendar repeats itself every 400 years


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: Mapping[str, int] | None = None
    hint: str = ""

    def describe_range(self) -> str:
        return self.hint or f"{self.low}-{self.high}"


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS, "JAN-DEC or 1-12")
_QUARTZ_DOW = _Field("day-of-week", 1, 7, _QUARTZ_DAYS, "SUN-SAT or 1-7")
_UNIX_DOW = _Field("day-of-week", 0, 7, _UNIX_DAYS, "SUN-SAT or 0-7")
_YEAR = _Field("year", _FIRST_YEAR, _LAST_YEAR)
_QUARTZ_FIELDS = (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _QUARTZ_DOW, _YEAR)
_UNIX_FIELDS = (_MINUTE, _HOUR, _DOM, _MONTH, _UNIX_DOW)


def _error(spec: _Field, message: str, offset: int) -> CronSyntaxError:
    return CronSyntaxError(f"{spec.name}: {message}", offset=offset)


@dataclass(frozen=True, slots=True)
class _DayRule:
    """Which days of a given month match; the day fields, resolved per month."""

    dom: tuple[int, ...] | None = None  # plain days of the month, sorted; None = any
    last_offset: int | None = None  # 'L' / 'L-n': the last day minus this offset
    nearest_weekday: bool = False  # 'W' on the single dom value or on 'L'
    dow: frozenset[int] | None = None  # weekdays, Monday = 0; None = any
    nth: int = 0  # 'd#n': only the n-th such weekday of the month
    last_dow: bool = False  # 'dL': only the last such weekday of the month
    either: bool = False  # Unix: a day matches when either field matches

    def days(self, year: int, month: int) -> Sequence[int]:
        first_weekday, last_day = calendar.monthrange(year, month)
        by_dom = self._dom_days(first_weekday, last_day)
        by_dow = self._dow_days(first_weekday, last_day)
        if by_dom is None:
            return range(1, last_day + 1) if by_dow is None else by_dow
        if by_dow is None:
            return by_dom
        if self.either:
            return sorted({*by_dom, *by_dow})
        return [day for day in by_dom if day in by_dow]

    def _dom_days(self, first_weekday: int, last_day: int) -> Sequence[int] | None:
        if self.last_offset is not None:
            day = last_day - self.last_offset
            if day < 1:
                return ()
            return (
                (_nearest_weekday(day, first_weekday, last_day),)
                if self.nearest_weekday
                else (day,)
            )
        if self.dom is None:
            return None
        if self.nearest_weekday:
            # Like Quartz, a missing 31st is read as the day after the 30th, so '31W'
            # can fire on the 30th (when the "31st" is a Saturday).
            day = _nearest_weekday(self.dom[0], first_weekday, last_day)
            return (day,) if day <= last_day else ()
        return self.dom[: bisect_right(self.dom, last_day)]

    def _dow_days(self, first_weekday: int, last_day: int) -> Sequence[int] | None:
        if self.dow is None:
            return None
        if self.nth or self.last_dow:
            (weekday,) = self.dow
            if self.last_dow:
                last_weekday = (first_weekday + last_day - 1) % 7
                return (last_day - (last_weekday - weekday) % 7,)
            day = 1 + (weekday - first_weekday) % 7 + 7 * (self.nth - 1)
            return (day,) if day <= last_day else ()
        return [d for d in range(1, last_day + 1) if (first_weekday + d - 1) % 7 in self.dow]


def _nearest_weekday(day: int, first_weekday: int, last_day: int) -> int:
    """The weekday nearest ``day`` without leaving the month (Quartz's 'W')."""
    weekday = (first_weekday + day - 1) % 7
    if weekday == 5:  # Saturday
        return 3 if day == 1 else day - 1
    if weekday == 6:  # Sunday
        return day - 2 if day == last_day else day + 1
    return day


@dataclass(frozen=True, kw_only=True)
class CronExpression:
    """A parsed cron expression; build it with :meth:`parse`."""

    expression: str
    is_quartz: bool
    _seconds: tuple[int, ...] = field(repr=False, compare=False)
    _minutes: tuple[int, ...] = field(repr=False, compare=False)
    _hours: tuple[int, ...] = field(repr=False, compare=False)
    _months: tuple[int, ...] = field(repr=False, compare=False)
    _years: tuple[int, ...] | None = field(repr=False, compare=False)  # None = any year
    _days: _DayRule = field(repr=False, compare=False)

    @classmethod
    def parse(cls, expression: str) -> CronExpression:
        """Parse a 5-field Unix or 6/7-field Quartz expression; raise CronSyntaxError."""
        return _Parser(expression).parse()

    def next_fire(self, after: datetime, tz: tzinfo) -> datetime | None:
        """First fire time strictly after ``after`` (aware; sub-seconds are dropped).

        The result is an aware datetime in ``tz``, or None when the expression never
        fires again (its years are exhausted, or it matches no day at all).
        """
        if after.utcoffset() is None:
            raise ValueError("next_fire needs an aware datetime")
        local = after.replace(microsecond=0).astimezone(tz)
        wall = local.replace(tzinfo=None, fold=0)
        try:
            # The wall clock times in an overlap were all passed at their first
            # occurrence, which is where they fire, so a search from the second pass
            # starts after the overlap.
            start = _overlap_end(wall, tz) if local.fold else wall + _ONE_SECOND
        except OverflowError:
            return None
        found = self._first_match(start)
        return None if found is None else _resolve(found, tz)

    def fire_times(self, after: datetime, tz: tzinfo) -> Iterator[datetime]:
        """Successive :meth:`next_fire` results after ``after``."""
        current = self.next_fire(after, tz)
        while current is not None:
            yield current
            current = self.next_fire(current, tz)

    def matches(self, local: datetime) -> bool:
        """Whether the wall-clock time ``local`` (naive, or aware and then read as is)
        satisfies every field."""
        return (
            local.second in self._seconds
            and local.minute in self._minutes
            and local.hour in self._hours
            and local.month in self._months
            and (self._years is None or local.year in self._years)
            and local.day in self._days.days(local.year, local.month)
        )

    def describe(self) -> str:
        """A short English description, e.g. "at 02:00:00, Monday through Friday"."""
        parts = [self._describe_time()]
        days = _describe_days(self._days)
        if days:
            parts.append(days)
        if len(self._months) < 12:
            parts.append("in " + ", ".join(calendar.month_name[m] for m in self._months))
        if self._years is not None:
            parts.append("in " + _compress(self._years))
        return ", ".join(parts)

    def _describe_time(self) -> str:
        fields = (self._hours, self._minutes, self._seconds)
        if all(len(values) == 1 for values in fields):
            clock = ":".join(f"{values[0]:02d}" for values in fields)
            return "at " + (clock if self.is_quartz else clock[:-3])
        units = (("hour", 24), ("minute", 60), ("second", 60))
        parts = [
            f"every {unit}" if len(values) == size else f"{unit} {_compress(values)}"
            for (unit, size), values in zip(units, fields, strict=True)
            if self.is_quartz or unit != "second"
        ]
        return ", ".join(parts)

    def _first_match(self, start: datetime) -> datetime | None:
        """The first wall-clock time at or after the naive ``start`` that matches.

        Jumps field by field (year, month, day, then the time of day), like Quartz's
        getTimeAfter, instead of stepping through seconds.
        """
        year, month, day = start.year, start.month, start.day
        time = (start.hour, start.minute, start.second)
        horizon = min(year + _MAX_SEARCH_YEARS, datetime.max.year - 1)
        while True:
            if self._years is not None:
                index = bisect_left(self._years, year)
                if index == len(self._years):
                    return None
                if self._years[index] != year:
                    year, month, day, time = self._years[index], 1, 1, _MIDNIGHT
            elif year > horizon:
                return None
            index = bisect_left(self._months, month)
            if index == len(self._months):
                year, month, day, time = year + 1, 1, 1, _MIDNIGHT
                continue
            if self._months[index] != month:
                month, day, time = self._months[index], 1, _MIDNIGHT
            days = self._days.days(year, month)
            index = bisect_left(days, day)
            if index == len(days):
                year, month = (year, month + 1) if month < 12 else (year + 1, 1)
                day, time = 1, _MIDNIGHT
                continue
            if days[index] != day:
                day, time = days[index], _MIDNIGHT
            clock = self._time_at_or_after(time)
            if clock is None:
                day, time = day + 1, _MIDNIGHT  # past the month's end, bisect moves on
                continue
            return datetime(year, month, day, *clock)

    def _time_at_or_after(self, time: tuple[int, int, int]) -> tuple[int, int, int] | None:
        hour, minute, second = time
        hours, minutes, seconds = self._hours, self._minutes, self._seconds
        h = bisect_left(hours, hour)
        if h < len(hours) and hours[h] == hour:
            m = bisect_left(minutes, minute)
            if m < len(minutes) and minutes[m] == minute:
                s = bisect_left(seconds, second)
                if s < len(seconds):
                    return hour, minute, seconds[s]
                m += 1
            if m < len(minutes):
                return hour, minutes[m], seconds[0]
            h += 1
        if h < len(hours):
            return hours[h], minutes[0], seconds[0]
        return None


# -- time zones -------------------------------------------------------------------------


def _timestamp(wall: datetime, tz: tzinfo, fold: int) -> int:
    return int(wall.replace(tzinfo=tz, fold=fold).timestamp())


def _offset_at(timestamp: int, tz: tzinfo) -> timedelta:
    return datetime.fromtimestamp(timestamp, tz).utcoffset() or timedelta(0)


def _transition(before: int, after: int, tz: tzinfo) -> int:
    """The first second in (before, after] whose UTC offset is the one at ``after``."""
    target = _offset_at(after, tz)
    while after - before > 1:
        middle = (before + after) // 2
        if _offset_at(middle, tz) == target:
            after = middle
        else:
            before = middle
    return after


def _resolve(wall: datetime, tz: tzinfo) -> datetime:
    """The instant a matching wall-clock time fires at: its first occurrence, or the
    end of the gap when daylight saving time skips it."""
    aware = wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)
    if aware.replace(tzinfo=None) == wall:
        return aware
    # In a gap, fold=1 reads the wall clock with the offset after the transition and
    # fold=0 with the one before, so the transition lies between the two readings.
    earlier, later = sorted((_timestamp(wall, tz, 1), _timestamp(wall, tz, 0)))
    return datetime.fromtimestamp(_transition(earlier, later, tz), tz)


def _overlap_end(wall: datetime, tz: tzinfo) -> datetime:
    """The first wall-clock time after the overlap (fall-back) that holds ``wall``."""
    first, second = _timestamp(wall, tz, 0), _timestamp(wall, tz, 1)
    transition = _transition(first, second, tz)
    old, new = _offset_at(first, tz), _offset_at(second, tz)
    local = datetime.fromtimestamp(transition, tz).replace(tzinfo=None)
    return local + (old - new)


# -- parsing ----------------------------------------------------------------------------

_FIELD_RE = re.compile(r"\S+")
_NUMBER_RE = re.compile(r"[0-9]+")
_LAST_DOM_RE = re.compile(r"L(?:-([0-9]+))?(W)?")
_NEAREST_RE = re.compile(r"([0-9]+)W")
_LAST_DOW_RE = re.compile(r"([0-9]+|[A-Z]{3})L")
_NTH_DOW_RE = re.compile(r"([0-9]+|[A-Z]{3})#(.*)")
_INCREMENT_LIMITS = {
    "second": 59,
    "minute": 59,
    "hour": 23,
    "day-of-month": 31,
    "month": 12,
    "day-of-week": 7,
}


class _Parser:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        # Upper-case ASCII only, so that offsets in the text stay those of the expression.
        self.text = "".join(char.upper() if char.isascii() else char for char in expression)
        self.quartz = False

    def parse(self) -> CronExpression:
        tokens = [(m.group(), m.start()) for m in _FIELD_RE.finditer(self.text)]
        count = len(tokens)
        if count not in (5, 6, 7):
            offset = tokens[7][1] if count > 7 else len(self.expression)
            raise CronSyntaxError(
                f"expected 5 fields (Unix: minute hour day-of-month month day-of-week) or "
                f"6-7 (Quartz: second minute hour day-of-month month day-of-week [year]), "
                f"got {count} in {self.expression!r}",
                offset=offset,
            )
        self.quartz = count > 5
        specs = _QUARTZ_FIELDS if self.quartz else _UNIX_FIELDS
        for (text, offset), spec in zip(tokens, specs, strict=False):
            if "?" not in text:
                continue
            where = offset + text.index("?")
            if not self.quartz:
                raise _error(
                    spec, f"'?' in {text!r} is Quartz syntax, not valid in 5-field cron", where
                )
            if spec is not _DOM and spec is not _QUARTZ_DOW:
                raise _error(spec, f"'?' in {text!r} is only allowed in the day fields", where)
            if text != "?":
                raise _error(spec, f"'?' in {text!r} must stand alone", where)
        # Left to right, so that the first bad field is the one reported.
        if self.quartz:
            seconds = self.values(*tokens[0], _SECOND)
            rest = tokens[1:]
        else:
            seconds, rest = (0,), tokens
        minutes = self.values(*rest[0], _MINUTE)
        hours = self.values(*rest[1], _HOUR)
        if self.quartz:
            days = self.quartz_days(rest[2], rest[4])
        else:
            days = self.unix_days(rest[2], rest[4])
        months = self.values(*rest[3], _MONTH)
        years = None
        if count == 7 and tokens[6][0] != "*":
            years = self.values(*tokens[6], _YEAR)
        return CronExpression(
            expression=self.expression,
            is_quartz=self.quartz,
            _seconds=seconds,
            _minutes=minutes,
            _hours=hours,
            _months=months,
            _years=years,
            _days=days,
        )

    def quartz_days(self, dom: tuple[str, int], dow: tuple[str, int]) -> _DayRule:
        (dom_text, dom_offset), (dow_text, dow_offset) = dom, dow
        if dom_text == "?" and dow_text == "?":
            message = "'?' in both day fields; use '*' in one of them"
            raise _error(_QUARTZ_DOW, message, dow_offset)
        if dom_text not in ("*", "?") and dow_text not in ("*", "?"):
            raise CronSyntaxError(
                f"{self.expression!r} restricts both day-of-month ({dom_text!r}) and "
                f"day-of-week ({dow_text!r}); use '?' in one of them",
                offset=dom_offset,
            )
        if dom_text not in ("*", "?"):
            return self.quartz_dom(dom_text, dom_offset)
        if dow_text not in ("*", "?"):
            return self.quartz_dow(dow_text, dow_offset)
        return _DayRule()

    def quartz_dom(self, text: str, offset: int) -> _DayRule:
        self.reject_in_list(text, offset, _DOM, "LW")
        if match := _LAST_DOM_RE.fullmatch(text):
            last_offset = int(match[1] or 0)
            if last_offset > 30:
                raise _error(_DOM, f"offset {match[1]} in {text!r} is above 30", offset + 2)
            return _DayRule(last_offset=last_offset, nearest_weekday=bool(match[2]))
        if match := _NEAREST_RE.fullmatch(text):
            day = int(match[1])
            if not 1 <= day <= 31:
                raise _error(_DOM, f"{match[1]!r} in {text!r} is out of range (1-31)", offset)
            return _DayRule(dom=(day,), nearest_weekday=True)
        return _DayRule(dom=self.values(text, offset, _DOM))

    def quartz_dow(self, text: str, offset: int) -> _DayRule:
        self.reject_in_list(text, offset, _QUARTZ_DOW, "L#")
        if text == "L":  # Quartz: 'L' alone in day-of-week is Saturday
            return _DayRule(dow=frozenset({5}))
        if match := _LAST_DOW_RE.fullmatch(text):
            day = self.value(match[1], offset, _QUARTZ_DOW)
            return _DayRule(dow=frozenset({_quartz_weekday(day)}), last_dow=True)
        if match := _NTH_DOW_RE.fullmatch(text):
            day = self.value(match[1], offset, _QUARTZ_DOW)
            if not (_NUMBER_RE.fullmatch(match[2]) and 1 <= int(match[2]) <= 5):
                message = f"'#' in {text!r} must be followed by a number from 1 to 5"
                raise _error(_QUARTZ_DOW, message, offset + len(match[1]) + 1)
            return _DayRule(dow=frozenset({_quartz_weekday(day)}), nth=int(match[2]))
        days = self.values(text, offset, _QUARTZ_DOW)
        return _DayRule(dow=frozenset(_quartz_weekday(day) for day in days))

    def unix_days(self, dom: tuple[str, int], dow: tuple[str, int]) -> _DayRule:
        # No day name contains 'L' or '#', so these letters can only be Quartz syntax.
        for (text, offset), spec, letters in ((dom, _DOM, "LW"), (dow, _UNIX_DOW, "L#")):
            for index, char in enumerate(text):
                if char in letters:
                    message = f"{char!r} in {text!r} is Quartz syntax, not valid in 5-field cron"
                    raise _error(spec, message, offset + index)
        (dom_text, dom_offset), (dow_text, dow_offset) = dom, dow
        dom_days = None if dom_text == "*" else self.values(dom_text, dom_offset, _DOM)
        dow_days = None
        if dow_text != "*":
            days = self.values(dow_text, dow_offset, _UNIX_DOW)
            dow_days = frozenset((day + 6) % 7 for day in days)
        # Vixie cron: a day field starting with '*' (such as '*/2') does not count as
        # restricted, and then both fields must match.
        either = not dom_text.startswith("*") and not dow_text.startswith("*")
        return _DayRule(dom=dom_days, dow=dow_days, either=either)

    def reject_in_list(self, text: str, offset: int, spec: _Field, letters: str) -> None:
        """Quartz's 'L', 'W' and '#' stand alone (no day name holds an 'L' or '#')."""
        if "," not in text:
            return
        position = 0
        for item in text.split(","):
            if any(char in letters for char in item):
                message = f"{item!r} cannot be combined with other values"
                raise _error(spec, message, offset + position)
            position += len(item) + 1

    def values(self, text: str, offset: int, spec: _Field) -> tuple[int, ...]:
        found: set[int] = set()
        position = 0
        for item in text.split(","):
            found.update(self.item(item, offset + position, spec))
            position += len(item) + 1
        return tuple(sorted(found))

    def item(self, item: str, offset: int, spec: _Field) -> Sequence[int]:
        if not item:
            raise _error(spec, "empty value in a list", offset)
        base, slash, step_text = item.partition("/")
        step_offset = offset + len(base) + 1
        step = 1
        if slash:
            if not _NUMBER_RE.fullmatch(step_text):
                raise _error(spec, f"'/' in {item!r} must be followed by a number", step_offset)
            step = int(step_text)
            if step < 1:
                raise _error(spec, f"step 0 in {item!r} must be at least 1", step_offset)
        if base == "*" or (not base and slash and self.quartz):  # Quartz reads '/5' as '*/5'
            self.check_increment(spec, item, step, step_offset)
            return range(spec.low, spec.high + 1, step)
        low_text, dash, high_text = base.partition("-")
        low = self.value(low_text, offset, spec)
        if slash and low_text.isalpha():
            message = (
                f"a step after a name ({item!r}) is not supported (Quartz ignores it); "
                "write the range with numbers"
            )
            raise _error(spec, message, offset)
        if not dash:
            if not slash:
                return (low,)
            self.check_increment(spec, item, step, step_offset)
            return range(low, spec.high + 1, step)
        high = self.value(high_text, offset + len(low_text) + 1, spec)
        if low_text.isalpha() != high_text.isalpha():
            raise _error(spec, f"range {base!r} mixes a name and a number", offset)
        if high >= low:
            return range(low, high + 1, step)
        if not self.quartz or spec is _YEAR:
            raise _error(spec, f"range {base!r} goes backwards", offset)
        # Quartz wraps a backwards range around the field: '22-2' in hours is 22-23,0-2.
        size = spec.high - spec.low + 1
        return [(v - spec.low) % size + spec.low for v in range(low, high + size + 1, step)]

    def value(self, text: str, offset: int, spec: _Field) -> int:
        if spec.names is not None and text in spec.names:
            return spec.names[text]
        if not _NUMBER_RE.fullmatch(text):
            if spec.names is None:
                raise _error(spec, f"{text!r} is not a number ({spec.low}-{spec.high})", offset)
            kind = "a month name" if spec is _MONTH else "a day name"
            raise _error(spec, f"{text!r} is not {kind} ({spec.describe_range()})", offset)
        number = int(text)
        if not spec.low <= number <= spec.high:
            raise _error(spec, f"{text!r} is out of range ({spec.describe_range()})", offset)
        return number

    def check_increment(self, spec: _Field, item: str, step: int, offset: int) -> None:
        # Like Quartz, bound the step of '*/n' and 'v/n' (not of 'a-b/n') by the field.
        limit = _INCREMENT_LIMITS.get(spec.name)
        if limit is not None and step > limit:
            raise _error(spec, f"step {step} in {item!r} is above {limit}", offset)


def _quartz_weekday(day: int) -> int:
    """Quartz's 1-7 (SUN-SAT) as datetime.weekday() (Monday = 0)."""
    return (day + 5) % 7


# -- descriptions -----------------------------------------------------------------------


def _compress(values: Sequence[int]) -> str:
    """``1,2,3,5`` as ``1-3,5``."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ",".join(
        f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)) for run in runs
    )


def _ordinal(number: int) -> str:
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(number, "th")
    return f"{number}{suffix}"


def _describe_days(rule: _DayRule) -> str:
    parts = []
    if rule.last_offset is not None:
        last = (
            f"{rule.last_offset} days before the last day" if rule.last_offset else "the last day"
        )
        if rule.nearest_weekday:
            parts.append(f"on the weekday nearest {last} of the month")
        else:
            parts.append(f"{last} of the month" if rule.last_offset else f"on {last} of the month")
    elif rule.dom is not None:
        day = f"day {rule.dom[0]}" if rule.nearest_weekday else f"day {_compress(rule.dom)}"
        which = f"the weekday nearest {day}" if rule.nearest_weekday else day
        parts.append(f"on {which} of the month")
    if rule.dow is not None:
        weekdays = sorted(rule.dow)
        if rule.nth or rule.last_dow:
            which = _ordinal(rule.nth) if rule.nth else "last"
            parts.append(f"on the {which} {_WEEKDAY_NAMES[weekdays[0]]} of the month")
        elif len(weekdays) > 2 and weekdays[-1] - weekdays[0] == len(weekdays) - 1:
            parts.append(f"{_WEEKDAY_NAMES[weekdays[0]]} through {_WEEKDAY_NAMES[weekdays[-1]]}")
        else:
            parts.append("on " + ", ".join(_WEEKDAY_NAMES[day] for day in weekdays))
    return (" or " if rule.either else " and ").join(parts)
