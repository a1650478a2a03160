"""Differential tests: vecron's cron against Quartz 2.3.2's own ``CronExpression``.

Needs a JDK (``java``, ``javac``) and Debian's ``libquartz2-java``
(``/usr/share/java/quartz2.jar``; ``slf4j-api.jar`` is added when present). Set
``QUARTZ_CLASSPATH`` to use other jars. Without them the tests skip, except under
``CI``, where they fail. The helper ``quartz/QuartzNext.java`` is compiled once per
session and run once, as a single batch, over every case of this module.

The time zones have no daylight saving time, where Quartz's calendar arithmetic and
vecron's DST contract differ on purpose.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Final, Literal
from zoneinfo import ZoneInfo

import pytest

from tests.support import require
from vecron.errors import CronSyntaxError
from vecron.spec.cron import CronExpression

pytestmark = pytest.mark.quartz

HELPER = Path(__file__).parent / "quartz" / "QuartzNext.java"
QUARTZ_JAR = Path("/usr/share/java/quartz2.jar")
SLF4J_JAR = Path("/usr/share/java/slf4j-api.jar")
ZONES = ("UTC", "Asia/Ho_Chi_Minh")
COUNT = 6
# Quartz stops at the current year + 100 and vecron's year field at 2099, so fire
# times are compared up to the end of 2099.
CUTOFF_MS = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp()) * 1000


@dataclass(frozen=True)
class Case:
    expression: str
    zone: str
    after_ms: int
    count: int = COUNT

    def line(self) -> str:
        return f"{self.expression}\t{self.zone}\t{self.after_ms}\t{self.count}"


Outcome = tuple[int, ...] | None  # epoch millis of the fire times, None = rejected
TIMEOUT: Final = "TIMEOUT"  # Quartz looped for more than two seconds
QuartzOutcome = Outcome | Literal["TIMEOUT"]


def ms(year: int, month: int, day: int, *clock: int) -> int:
    """Epoch millis of a UTC time; ``clock`` is (hour, minute, second), or a prefix of it."""
    hour, minute, second = (*clock, 0, 0, 0)[:3]
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000


def vecron_outcome(case: Case) -> Outcome:
    try:
        cron = CronExpression.parse(case.expression)
    except CronSyntaxError:
        return None
    after = datetime.fromtimestamp(case.after_ms / 1000, UTC)
    fires = islice(cron.fire_times(after, ZoneInfo(case.zone)), case.count)
    return tuple(int(fire.timestamp()) * 1000 for fire in fires)


def parse_quartz_line(line: str) -> QuartzOutcome:
    if line == "ERR TIMEOUT":
        return TIMEOUT
    if line.startswith("ERR"):
        return None
    return tuple(int(token) for token in line.split())


def until_cutoff(outcome: QuartzOutcome) -> QuartzOutcome:
    if outcome is None or isinstance(outcome, str):
        return outcome
    return tuple(t for t in outcome if t < CUTOFF_MS)


# -- hand-written cases: every feature, with start instants around their edges ----------

HAND_WRITTEN = [
    "* * * ? * *",
    "0 * * * * ?",
    "0 0 * * * ?",
    "0 0 12 * * ?",
    "0 15 10 ? * *",
    "0 15 10 * * ? *",
    "0 15 10 * * ? 2026",
    "0 * 14 * * ?",
    "0 0/5 14 * * ?",
    "0 0/5 14,18 * * ?",
    "0 0-5 14 * * ?",
    "0 10,44 14 ? 3 WED",
    "0 15 10 ? * MON-FRI",
    "0 15 10 15 * ?",
    "0 15 10 L * ?",
    "0 15 10 L-2 * ?",
    "0 15 10 ? * 6L",
    "0 15 10 ? * 6L 2026-2028",
    "0 15 10 ? * 6#3",
    "0 0 12 1/5 * ?",
    "0 11 11 11 11 ?",
    "0/15 * * ? * *",
    "5/15 * * ? * *",
    "*/5 * * ? * *",
    "10-50/10 * * ? * *",
    "50-10 * * ? * *",
    "50-10/7 * * ? * *",
    "0 58-2 * ? * *",
    "0 0 22-2 ? * *",
    "0 0 22-2/3 ? * *",
    "0 0 0 28-2 * ?",
    "0 0 0 30-1/2 * ?",
    "0 0 0 ? NOV-FEB *",
    "0 0 0 1 11-2 ?",
    "0 0 0 1 10-3/2 ?",
    "0 0 9 ? * FRI-MON",
    "0 0 9 ? * 6-2",
    "0 0 9 ? * SAT-SUN",
    "0 0 9 ? * sun,wed,sat",
    "0 0 9 ? jan,jul *",
    "0 0 9 ? * L",
    "0 0 9 ? * 1L",
    "0 0 9 ? * 7L",
    "0 0 9 ? * SATL",
    "0 0 9 ? * friL",
    "0 0 9 ? * MON#1",
    "0 0 9 ? * 1#5",
    "0 0 9 ? * 4#5",
    "0 0 9 ? * 7#4",
    "0 0 9 ? 2 2#5",
    "0 0 12 LW * ?",
    "0 0 12 L-3W * ?",
    "0 0 12 L-0 * ?",
    "0 0 12 L-27W * ?",
    "0 0 0 L-30 * ?",
    "0 0 0 L-28 * ?",
    "0 0 0 1W * ?",
    "0 0 0 2W * ?",
    "0 0 0 15W * ?",
    "0 0 0 28W * ?",
    "0 0 0 29W * ?",
    "0 0 0 30W * ?",
    "0 0 0 31W * ?",
    "0 0 0 31W * ? 2021",
    "0 0 0 29W 2 ?",
    "0 0 0 30W 2 ?",
    "0 0 0 31 * ?",
    "0 0 0 30 * ?",
    "0 0 0 29 2 ?",
    "0 0 0 30 2 ?",
    "0 0 0 31 4,6,9,11 ?",
    "0 0 0 29 2 ? 2025-2027",
    "0 0 0 * * ? 2020",
    "0 0 0 * * ? 2030",
    "0 0 0 ? * * 2021,2025,2040",
    "0 0 0 1 1 ? 2020/3",
    "0 0 0 1 1 ? */7",
    "0 0 0 1 1 ? 2090-2099",
    "59 59 23 31 12 ? *",
    "0 0 0 1 1/3 ?",
    "0 0 0 ? */2 1",
    "0 0 0 ? * */2",
    "0 0 0 ? * 2/2",
    "0 0 0 ? * 1-7/3",
    "0 0 0 */10 * ?",
    "0 0 */7 * * ?",
    "0 */13 * * * ?",
    "0 0-59/100 * * * ?",
    "1,2,3,58,59 0 0 ? * *",
    "0 0 0 1,15,31 * ?",
    "0 0 0 05 01 ?",
    "  0  0  0  *  *  ?  ",
    "0 0 0 1-31 * ?",
    "0 0 0 ? * 1-7",
    # Rejected by Quartz and vecron alike.
    "0 0 0 * *",
    "0 0 0 ? * ? ",
    "0 0 0 5 * MON",
    "0 0 0 L * 2",
    "60 0 0 * * ?",
    "0 60 0 * * ?",
    "0 0 24 * * ?",
    "0 0 0 0 * ?",
    "0 0 0 32 * ?",
    "0 0 0 ? 13 *",
    "0 0 0 ? 0 *",
    "0 0 0 ? * 0",
    "0 0 0 ? * 8",
    "0 0 0 ? * 1-8",
    "*/60 * * ? * *",
    "0/60 * * ? * *",
    "0 0 */24 ? * *",
    "0 0 0 */32 * ?",
    "0 0 0 ? */13 *",
    "0 0 0 ? * */8",
    "0 0 0 L-31 * ?",
    "0 0 0 32W * ?",
    "0 0 0 L,15 * ?",
    "0 0 0 15,L * ?",
    "0 0 0 5L * ?",
    "0 0 0 ? * 6L,5",
    "0 0 0 ? * 6#6",
    "0 0 0 ? * 6#0",
    "0 0 0 ? * 6#",
    "0 0 0 ? * 6#3#2",
    "0 0 0 ? * 6W",
    "0 0 0 ? * FOO",
    "0 0 0 ? FOO *",
    "0 0 0 ? JAN-5 *",
    "0 0 0 ? * SUN-3",
    "0 0 0 ? * 2-FRI",
    "0 0 ? * * ?",
    "? 0 0 * * ?",
    "0 0 0 * ? ? ",
    "0 0 0 * * ? 2030-2020",
    "0 0 0 * * ? X",
    "0 0 0 * * ?X Y",
    "5/ * * ? * *",
    "*/ * * ? * *",
    "0 0 0 LX * ?",
    "0 0 0 L- * ?",
    "0 0 0 W * ?",
]

HAND_STARTS = [
    ms(2026, 1, 1),
    ms(2026, 2, 27, 12, 0, 1),
    ms(2027, 12, 31, 23, 59, 59),
    ms(2028, 2, 28, 9, 30),
    ms(2031, 6, 15, 4, 5, 6),
]


def hand_written_cases() -> list[Case]:
    return [
        Case(expression, zone, start)
        for expression in HAND_WRITTEN
        for zone in ZONES
        for start in HAND_STARTS
    ]


# -- generated cases ----------------------------------------------------------------------

MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


def plain_field(
    rng: random.Random, low: int, high: int, max_step: int, names: list[str] | None = None
) -> str:
    """A list of 1-3 items from '*', values, (wrapping) ranges and steps."""

    def value(number: int) -> str:
        if names and rng.random() < 0.5:
            name = names[number - low]
            return name.lower() if rng.random() < 0.2 else name
        return str(number)

    def item() -> str:
        a, b = rng.randint(low, high), rng.randint(low, high)
        kind = rng.randrange(7)
        if kind == 0:
            return "*"
        if kind == 1:
            return f"*/{rng.randint(1, max_step)}"
        if kind == 2:
            return f"{a}/{rng.randint(1, max_step)}"
        if kind == 3:
            return f"{a}-{b}/{rng.randint(1, high - low + 5)}"
        if kind == 4 and names:  # names only as whole values or name-name ranges
            return f"{names[a - low]}-{names[b - low]}"
        if kind == 4:
            return f"{a}-{b}"
        return value(a)

    if rng.random() < 0.3:
        return item()
    return ",".join(item() for _ in range(rng.randint(1, 3)))


def day_of_month(rng: random.Random) -> str:
    kind = rng.randrange(10)
    if kind == 0:
        return "L"
    if kind == 1:
        return f"L-{rng.randint(0, 30)}"
    if kind == 2:
        return "LW"
    if kind == 3:
        return f"L-{rng.randint(0, 27)}W"
    if kind == 4:
        return f"{rng.randint(1, 31)}W"
    return plain_field(rng, 1, 31, 31)


def day_of_week(rng: random.Random) -> str:
    day = rng.choice([str(rng.randint(1, 7)), rng.choice(DAY_NAMES)])
    kind = rng.randrange(10)
    if kind == 0:
        return "L"
    if kind == 1:
        return f"{day}L"
    if kind in (2, 3):
        return f"{day}#{rng.randint(1, 5)}"
    return plain_field(rng, 1, 7, 7, DAY_NAMES)


def year_field(rng: random.Random) -> str | None:
    kind = rng.randrange(8)
    a = rng.randint(2018, 2045)
    if kind < 3:
        return None
    if kind == 3:
        return "*"
    if kind == 4:
        return str(a)
    if kind == 5:
        return f"{a}-{a + rng.randint(0, 20)}"
    if kind == 6:
        return f"{a}/{rng.randint(1, 9)}"
    return ",".join(str(rng.randint(2018, 2045)) for _ in range(rng.randint(2, 4)))


# Tokens both Quartz and vecron reject, by field index.
INVALID_TOKENS = {
    0: ["60", "1-60", "*/60", "0/60", "X", "5/", "?"],
    1: ["60", "59-60", "*/61", "Y", "1/X"],
    2: ["24", "0-24", "*/24", "H", "?"],
    3: ["0", "32", "1-32", "*/32", "L-31", "32W", "L,5", "5,L", "5L", "LX", "W"],
    4: ["0", "13", "*/13", "FOO", "JAN-5", "?", "L"],
    5: ["0", "8", "1-8", "*/8", "FOO", "6#6", "6#0", "6L,5", "6#3#2", "SUN-3", "6W"],
    6: ["2030-2020", "X", "?"],
}


def generated_expression(rng: random.Random) -> str:
    fields = [
        plain_field(rng, 0, 59, 59),
        plain_field(rng, 0, 59, 59),
        plain_field(rng, 0, 23, 23),
        "?",
        plain_field(rng, 1, 12, 12, MONTH_NAMES),
        "?",
    ]
    # Exactly one day field is '?'; the other may still be '*'.
    if rng.random() < 0.5:
        fields[3] = "*" if rng.random() < 0.1 else day_of_month(rng)
    else:
        fields[5] = "*" if rng.random() < 0.1 else day_of_week(rng)
    year = year_field(rng)
    if year is not None:
        fields.append(year)
    # Fewer distinct seconds and minutes make fire times spread over more days.
    if rng.random() < 0.7:
        fields[0] = str(rng.randint(0, 59))
    if rng.random() < 0.5:
        fields[1] = str(rng.randint(0, 59))
    if rng.random() < 0.1:
        index = rng.randrange(len(fields))
        fields[index] = rng.choice(INVALID_TOKENS[index])
    return " ".join(fields)


def generated_cases() -> list[Case]:
    rng = random.Random(20261128)
    cases = []
    for _ in range(4000):
        expression = generated_expression(rng)
        for _ in range(3):
            start = ms(2020, 1, 1) + rng.randrange(16 * 365 * 86400) * 1000
            cases.append(Case(expression, rng.choice(ZONES), start))
    return cases


# -- known divergences (documented in vecron.spec.cron) ------------------------------------


@dataclass(frozen=True)
class Divergence:
    case: Case
    quartz: QuartzOutcome  # what Quartz computes, up to CUTOFF_MS
    vecron: Outcome
    why: str


def ms_list(*stamps: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(ms(*stamp) for stamp in stamps)


KNOWN_DIVERGENCES = [
    Divergence(
        Case("0 0 0 ? * MON-FRI/2", "UTC", ms(2026, 1, 1), 3),
        ms_list((2026, 1, 2), (2026, 1, 5), (2026, 1, 6)),
        None,
        "Quartz ignores a step after names; vecron rejects it",
    ),
    Divergence(
        Case("0 0 0 ? * MONDAY", "UTC", ms(2026, 1, 1), 1),
        ms_list((2026, 1, 5)),
        None,
        "Quartz reads the first three letters of a name",
    ),
    Divergence(
        Case("0 0 0 15W,20 * ?", "UTC", ms(2026, 1, 1), 1),
        ms_list((2026, 1, 15)),
        None,
        "Quartz keeps only the first value of a list with 'W'",
    ),
    Divergence(
        Case("0 0 0 ? * 6#3,2", "UTC", ms(2026, 1, 1), 1),
        ms_list((2026, 1, 19)),
        None,
        "Quartz applies '#3' to the smallest value of the list (Monday)",
    ),
    Divergence(
        Case("*/0 0 0 ? * *", "UTC", ms(2026, 1, 1), 2),
        ms_list((2026, 1, 1, 0, 0, 1), (2026, 1, 1, 0, 0, 2)),
        None,
        "Quartz reads step 0 after '*' as step 1",
    ),
    Divergence(
        Case("0 0 0 5-0 * ?", "UTC", ms(2026, 1, 1), 1),
        ms_list((2026, 1, 5)),
        None,
        "Quartz does not check a range end below the field's minimum",
    ),
    Divergence(
        Case("0 0 0 1,,2 * ?", "UTC", ms(2026, 1, 1), 1),
        ms_list((2026, 1, 2)),
        None,
        "Quartz skips empty list items",
    ),
    Divergence(
        Case("0 0 0 * * ? 2020 extra", "UTC", ms(2019, 1, 1), 1),
        ms_list((2020, 1, 1)),
        None,
        "Quartz ignores fields after the seventh",
    ),
    Divergence(
        Case("0 0 0 1 1 ? 1969", "UTC", ms(1960, 1, 1), 1),
        ms_list((1969, 1, 1)),
        None,
        "Quartz accepts years outside 1970-2099",
    ),
    Divergence(
        Case("0 0 0 ? * *X", "UTC", ms(2026, 1, 1), 1),
        ms_list((2026, 1, 2)),
        None,
        "Quartz ignores characters after '*'",
    ),
    Divergence(
        Case("5/0 0 0 ? * *", "UTC", ms(2026, 1, 1), 1),
        ms_list((2026, 1, 1, 0, 0, 5)),
        None,
        "Quartz reads step 0 after a value as that value alone",
    ),
    Divergence(
        Case("0 0 0 ? * 0#3", "UTC", ms(2026, 1, 1), 2),
        ms_list((2026, 1, 17), (2026, 2, 21)),
        None,
        "Quartz does not range-check the day before '#' (0#3 = third Saturday)",
    ),
    Divergence(
        Case("0 0 0 ?X * *", "UTC", ms(2026, 1, 1), 1),
        ms_list((2026, 1, 2)),
        None,
        "Quartz ignores one character after '?'",
    ),
    Divergence(
        Case("0 0 0 0W * ?", "UTC", ms(2026, 1, 1), 1),
        TIMEOUT,
        None,
        "Quartz accepts day 0 with 'W' and then loops forever",
    ),
    Divergence(
        Case("0 0 0 L-30W * ?", "UTC", ms(2026, 1, 1), 2),
        TIMEOUT,
        ms_list((2026, 3, 2), (2026, 5, 1)),
        "L-30W has no day in 30-day months; Quartz loops forever, vecron skips them",
    ),
    Divergence(
        Case("0 0 0 * * *", "UTC", ms(2026, 1, 1), 1),
        None,
        ms_list((2026, 1, 2)),
        "vecron accepts '*' in both day fields",
    ),
    Divergence(
        Case("0 0 0 ? * L-3W", "UTC", ms(2026, 1, 1), 1),
        ms_list((2026, 1, 3)),
        None,
        "Quartz reads anything after 'L' in day-of-week as 'L' (Saturday)",
    ),
]


# -- running Quartz -----------------------------------------------------------------------


def quartz_classpath() -> str:
    if configured := os.environ.get("QUARTZ_CLASSPATH"):
        return configured
    require(QUARTZ_JAR.exists(), f"{QUARTZ_JAR} is missing: apt-get install libquartz2-java")
    jars = [QUARTZ_JAR] + ([SLF4J_JAR] if SLF4J_JAR.exists() else [])
    return os.pathsep.join(str(jar) for jar in jars)


ALL_CASES = hand_written_cases() + generated_cases() + [d.case for d in KNOWN_DIVERGENCES]


@pytest.fixture(scope="session")
def quartz_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[Case, QuartzOutcome]:
    """Quartz's outcome for every case of this module, from one JVM run."""
    java, javac = shutil.which("java"), shutil.which("javac")
    require(
        java is not None and javac is not None, "java/javac are not installed (a JDK is needed)"
    )
    assert java is not None
    assert javac is not None
    classpath = quartz_classpath()
    classes = tmp_path_factory.mktemp("quartz")
    subprocess.run(
        [javac, "-d", str(classes), "-cp", classpath, str(HELPER)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    cases = list(dict.fromkeys(ALL_CASES))
    completed = subprocess.run(
        [java, "-cp", os.pathsep.join([str(classes), classpath]), "QuartzNext"],
        input="".join(case.line() + "\n" for case in cases),
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = completed.stdout.splitlines()
    assert len(lines) == len(cases), completed.stderr
    return {case: parse_quartz_line(line) for case, line in zip(cases, lines, strict=True)}


def describe(outcome: QuartzOutcome) -> str:
    if outcome is None:
        return "rejected"
    if isinstance(outcome, str):
        return "timed out"
    return " ".join(
        datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") for t in outcome
    )


def mismatches(cases: list[Case], quartz: dict[Case, QuartzOutcome]) -> list[str]:
    found = []
    for case in dict.fromkeys(cases):
        theirs, ours = until_cutoff(quartz[case]), until_cutoff(vecron_outcome(case))
        if theirs != ours:
            found.append(
                f"{case.expression!r} in {case.zone} after {describe((case.after_ms,))}:\n"
                f"    quartz: {describe(theirs)}\n    vecron: {describe(ours)}"
            )
    return found


def test_hand_written_expressions_match_quartz(quartz_outcomes: dict[Case, QuartzOutcome]) -> None:
    cases = hand_written_cases()
    found = mismatches(cases, quartz_outcomes)
    assert not found, f"{len(found)} mismatches with Quartz:\n" + "\n".join(found[:30])
    assert len(cases) > 1000


def test_generated_expressions_match_quartz(quartz_outcomes: dict[Case, QuartzOutcome]) -> None:
    cases = generated_cases()
    found = mismatches(cases, quartz_outcomes)
    assert not found, f"{len(found)} mismatches with Quartz:\n" + "\n".join(found[:30])
    # The generator must exercise both accepted and rejected expressions.
    rejected = sum(quartz_outcomes[case] is None for case in cases)
    assert 0.03 * len(cases) < rejected < 0.3 * len(cases)


@pytest.mark.parametrize("divergence", KNOWN_DIVERGENCES, ids=lambda d: d.case.expression)
def test_known_divergences_from_quartz(
    divergence: Divergence, quartz_outcomes: dict[Case, QuartzOutcome]
) -> None:
    """Each documented divergence still holds (so the list stays honest)."""
    assert until_cutoff(quartz_outcomes[divergence.case]) == divergence.quartz, divergence.why
    assert until_cutoff(vecron_outcome(divergence.case)) == divergence.vecron, divergence.why
