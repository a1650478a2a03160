"""Hypothesis strategies for job documents, as plain JSON data (what a job file holds).

``job_documents()`` draws documents that every layer accepts: the models, the JSON
Schema and :func:`vecron.spec.validate.check_document` (no error findings; warnings
such as a literal password or an ``end_at`` in the past may remain). Datetimes are
ISO-8601 strings with an offset; strings avoid templates except ``data_source``,
which must be one reference.

``mutated_documents()`` draws a valid document with one mutation applied, for tests
that compare two validators: it says nothing about whether the result is valid.
"""

from __future__ import annotations

import copy
import string
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from hypothesis import strategies as st

Doc = dict[str, Any]
Path = tuple[str | int, ...]
T = TypeVar("T")

# --- leaves ------------------------------------------------------------------------

# No "{", "}" or "$": plain strings never become templates or variables.
_TEXT_ALPHABET = string.ascii_letters + string.digits + " _-./:,"
text = st.text(alphabet=_TEXT_ALPHABET, min_size=1, max_size=12)
maybe_empty_text = st.text(alphabet=_TEXT_ALPHABET, max_size=12)
identifier = st.from_regex(r"\A[a-z][a-z0-9_]{0,7}\Z")
job_names = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,20}\Z")
step_ids = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_-]{0,10}\Z")
variable_names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,10}\Z")
positive_ints = st.integers(min_value=1, max_value=2**31)
non_negative_ints = st.integers(min_value=0, max_value=2**31)
positive_numbers = st.one_of(
    positive_ints,
    st.floats(min_value=0.001, max_value=1e6, allow_nan=False, allow_infinity=False),
)
finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), finite_floats, maybe_empty_text
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(text, children, max_size=3)
    ),
    max_leaves=8,
)

#: Cron expressions that vecron.spec.cron accepts: Quartz (6 or 7 fields) and Unix (5).
CRON_EXPRESSIONS = (
    "0 0 2 ? * MON-FRI",
    "*/30 * * * * ?",
    "0 15 10 ? * 6L",
    "0 0 12 1/5 * ?",
    "0 15 10 L * ?",
    "0 15 10 ? * 6#3",
    "0 0/5 14,18 * * ?",
    "0 15 10 * * ? 2030",
    "0 0 0 LW * ?",
    "0 0 0 L-3 * ?",
    "0 0 0 15W * ?",
    "0 0 8 ? JAN-MAR SUN",
    "0 0 0 ? * 1-7 2025-2099",
    "0 0 * * * *",
    "*/5 * * * *",
    "0 0 * * 0",
    "30 2 1 * *",
    "0 9-17 * * 1-5",
    "0 0,12 1 */2 *",
    "5 4 * * sun",
)
TIMEZONES = ("Asia/Ho_Chi_Minh", "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata")
#: `when` conditions without references (a reference would tie a step to others).
WHEN_CONDITIONS = (
    "1 == 1",
    "true",
    "not false",
    "'a' in ['a', 'b']",
    "2 > 1 and (3 >= 3 or false)",
    "1 not in [2, 3]",
    "job.name != null",
)
FILTER_CONDITIONS = (
    "amount > 0",
    "paid == true and amount > 0",
    "status in ['a', 'b']",
    "not (qty < 1)",
    "`first name` == 'Bob'",
    "price >= 1.5e2",
    "code != null or flag == false",
)
_OFFSETS = tuple(timezone(timedelta(minutes=m)) for m in (0, 420, -300, 330, 840, -720, 345, -570))


def _iso(value: datetime, zulu: bool) -> str:
    text_value = value.isoformat()
    return text_value.replace("+00:00", "Z") if zulu else text_value


aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2099, 12, 31),
    timezones=st.sampled_from(_OFFSETS),
)
instants = st.builds(_iso, aware_datetimes, st.booleans())


@st.composite
def instant_windows(draw: st.DrawFn) -> tuple[str, str]:
    """``(start_at, end_at)`` with end strictly after start, possibly in other offsets."""
    start = draw(aware_datetimes)
    gap = draw(st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=3650)))
    end = (start + gap).astimezone(draw(st.sampled_from(_OFFSETS)))
    return _iso(start, draw(st.booleans())), _iso(end, draw(st.booleans()))


@st.composite
def duration_texts(draw: st.DrawFn) -> str:
    """``30s``, ``1h30m``, ``2500ms``, `` 2 h ``: at least one second in all."""
    units = draw(st.lists(st.sampled_from(["s", "m", "h", "d", "ms"]), min_size=1, max_size=3))
    parts = []
    for unit in units:
        low = 1000 if unit == "ms" else 1
        amount = draw(st.integers(min_value=low, max_value=low * 90))
        fraction = draw(st.sampled_from(["", ".5", ".25"])) if unit != "ms" else ""
        space = draw(st.sampled_from(["", " "]))
        parts.append(f"{amount}{fraction}{space}{unit}")
    return draw(st.sampled_from(["", " "])).join(parts)


intervals = st.one_of(
    st.integers(min_value=1, max_value=10**7),
    st.floats(min_value=1, max_value=1e7, allow_nan=False, allow_infinity=False),
    duration_texts(),
    st.integers(min_value=1, max_value=10**5).map(str),
)


def _object(
    required: dict[str, st.SearchStrategy[Any]], **optional: st.SearchStrategy[Any]
) -> st.SearchStrategy[Doc]:
    return st.fixed_dictionaries(required, optional=optional)


# --- schedules and triggers --------------------------------------------------------


@st.composite
def schedules(draw: st.DrawFn) -> Doc:
    kind = draw(st.sampled_from(["cron", "fixed_rate", "fixed_delay", "one_time"]))
    schedule: Doc = {"type": kind}
    if kind == "cron":
        schedule["expression"] = draw(st.sampled_from(CRON_EXPRESSIONS))
    elif kind == "one_time":
        schedule["at"] = draw(instants)
    else:
        schedule["interval"] = draw(intervals)
    schedule |= draw(
        _object(
            {},
            timezone=st.sampled_from(TIMEZONES),
            misfire=st.sampled_from(["run_once", "skip"]),
            misfire_grace_seconds=positive_ints,
        )
    )
    window = draw(st.sampled_from(["none", "start", "end", "both"]))
    start_at, end_at = draw(instant_windows())
    if window in ("start", "both"):
        schedule["start_at"] = start_at
    if window in ("end", "both"):
        schedule["end_at"] = end_at
    return schedule


webhooks = _object(
    {},
    enabled=st.booleans(),
    secret=st.one_of(st.none(), st.just("${secret:HOOK_SECRET}")),
    rate_limit=st.one_of(st.none(), positive_ints),
    schemes=st.lists(st.sampled_from(["vecron", "github"]), min_size=1, max_size=2, unique=True),
    headers=st.lists(st.sampled_from(["X-Request-Id", "X-Partner", "User-Agent"]), max_size=3),
)


def triggers(*, has_schedule: bool) -> st.SearchStrategy[Doc]:
    # `scheduled: true` without a schedule is an error the schema cannot express.
    scheduled = (
        st.one_of(st.none(), st.booleans()) if has_schedule else st.sampled_from([None, False])
    )
    return _object({}, scheduled=scheduled, manual=st.booleans(), webhook=webhooks)


# --- step configs ------------------------------------------------------------------

http_auths = st.one_of(
    _object({"type": st.just("basic"), "username": text, "password": text}),
    _object({"type": st.just("bearer"), "token": text}),
    _object(
        {
            "type": st.just("oauth2"),
            "token_url": st.just("https://auth.example.invalid/token"),
            "client_id": text,
            "client_secret": text,
        },
        scope=st.one_of(st.none(), text),
    ),
)
http_configs = _object(
    {"url": text.map(lambda path: f"https://example.invalid/{path}")},
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
    headers=st.dictionaries(st.sampled_from(["Accept", "X-Id", "Content-Type"]), text, max_size=2),
    query=st.dictionaries(identifier, scalars, max_size=3),
    body=st.one_of(
        st.none(),
        maybe_empty_text,
        st.dictionaries(text, json_values, max_size=3),
        st.lists(json_values, max_size=3),
    ),
    auth=st.one_of(st.none(), http_auths),
    timeout_seconds=positive_numbers,
    expected_status=st.one_of(
        st.none(), st.lists(st.integers(min_value=100, max_value=599), max_size=3)
    ),
    max_response_bytes=positive_ints,
    follow_redirects=st.booleans(),
    verify_tls=st.booleans(),
)
database_configs = _object(
    {
        "database_type": st.sampled_from(["postgresql", "mysql", "mariadb", "oracle", "sqlite"]),
        "connection_string": st.sampled_from(["${secret:DB_URL}", "sqlite:///tmp/x.db"]),
        "query": st.sampled_from(["SELECT 1", "SELECT id, name FROM t WHERE id = :id"]),
    },
    parameters=st.one_of(
        st.none(), st.lists(scalars, max_size=3), st.dictionaries(identifier, scalars, max_size=3)
    ),
    timeout_seconds=positive_numbers,
    max_rows=positive_ints,
)
transformations = st.one_of(
    _object({"type": st.just("column_mapping"), "from": identifier, "to": identifier}),
    _object(
        {
            "type": st.just("type_conversion"),
            "column": identifier,
            "target_type": st.sampled_from(
                ["string", "integer", "decimal", "float", "boolean", "date", "datetime"]
            ),
        },
        format=st.one_of(st.none(), st.sampled_from(["%Y-%m-%d", "%d/%m/%Y %H:%M"])),
    ),
    _object({"type": st.just("filter"), "condition": st.sampled_from(FILTER_CONDITIONS)}),
    _object({"type": st.just("select"), "columns": st.lists(identifier, min_size=1, max_size=3)}),
)
file_formats = st.sampled_from(["csv", "excel", "parquet"])
delimiters = st.sampled_from([",", ";", "|", "\t"])
encodings = st.sampled_from(["utf-8", "latin-1", "utf-16"])
on_errors = st.sampled_from(["fail", "skip_row"])
file_read_configs = _object(
    {"operation": st.just("read"), "format": file_formats, "source_path": text},
    sheet=st.one_of(st.none(), text, non_negative_ints),
    delimiter=delimiters,
    encoding=encodings,
    has_header=st.booleans(),
    transformations=st.lists(transformations, max_size=4),
    on_error=on_errors,
    max_inline_rows=non_negative_ints,
)


def file_write_configs(data_source: str) -> st.SearchStrategy[Doc]:
    return _object(
        {
            "operation": st.just("write"),
            "format": file_formats,
            "destination_path": text,
            "data_source": st.just(data_source),
        },
        sheet_name=st.one_of(st.none(), text),
        delimiter=delimiters,
        encoding=encodings,
        transformations=st.lists(transformations, max_size=3),
        on_error=on_errors,
    )


@st.composite
def ssh_key_auths(draw: st.DrawFn) -> Doc:
    auth: Doc = {"type": "ssh_key", "username": draw(text)}
    if draw(st.booleans()):
        auth["private_key"] = "${secret:SFTP_KEY}"
    else:
        auth["private_key_path"] = draw(text)
    if draw(st.booleans()):
        auth["passphrase"] = draw(st.one_of(st.none(), st.just("${secret:SFTP_PASS}")))
    return auth


sftp_auths = st.one_of(
    _object({"type": st.just("password"), "username": text, "password": text}),
    ssh_key_auths(),
)
_sftp_common: dict[str, st.SearchStrategy[Any]] = {
    "port": st.integers(min_value=1, max_value=65535),
    "host_key": st.one_of(st.none(), st.just("SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8")),
    "known_hosts_path": st.one_of(st.none(), text),
    "verify_host_key": st.booleans(),
    "timeout_seconds": positive_numbers,
}
_sftp_required = {
    "host": st.sampled_from(["sftp.example.invalid", "127.0.0.1"]),
    "auth": sftp_auths,
}
sftp_download_configs = _object(
    {**_sftp_required, "operation": st.just("download"), "remote_path": text},
    **_sftp_common,
    recursive=st.booleans(),
    on_no_match=st.sampled_from(["fail", "succeed"]),
)
sftp_upload_configs = _object(
    {**_sftp_required, "operation": st.just("upload"), "remote_path": text, "source_path": text},
    **_sftp_common,
    create_directories=st.booleans(),
    overwrite=st.booleans(),
)

# --- steps and jobs ----------------------------------------------------------------

STEP_TYPES = ("http", "database", "file_processing", "sftp")


@st.composite
def steps(draw: st.DrawFn, step_id: str, previous: str | None, kind: str | None = None) -> Doc:
    """One step; ``previous`` is the id of the step before it, if any."""
    kind = kind or draw(st.sampled_from(STEP_TYPES))
    if kind == "http":
        config = draw(http_configs)
    elif kind == "database":
        config = draw(database_configs)
    elif kind == "file_processing":
        # data_source must be one reference; an earlier step when there is one.
        source = f"{{{{steps.{previous}.output}}}}" if previous else "{{execution.id}}"
        config = draw(st.one_of(file_read_configs, file_write_configs(source)))
    else:
        config = draw(st.one_of(sftp_download_configs, sftp_upload_configs))
    step = {"id": step_id, "type": kind, "config": config}
    step |= draw(
        _object(
            {},
            name=st.one_of(st.none(), text),
            when=st.one_of(st.none(), st.sampled_from(WHEN_CONDITIONS)),
            timeout_seconds=st.one_of(st.none(), positive_ints),
            max_retries=st.one_of(st.none(), st.integers(min_value=0, max_value=20)),
            continue_on_error=st.booleans(),
        )
    )
    return step


@st.composite
def step_lists(draw: st.DrawFn, min_size: int = 1, max_size: int = 4) -> list[Doc]:
    ids = draw(st.lists(step_ids, min_size=min_size, max_size=max_size, unique=True))
    return [draw(steps(step_id, ids[i - 1] if i else None)) for i, step_id in enumerate(ids)]


@st.composite
def job_documents(draw: st.DrawFn, step_type: str | None = None) -> Doc:
    """A valid job document; with ``step_type``, one that has a step of that type."""
    job: Doc = {"name": draw(job_names)}
    schedule = draw(st.one_of(st.none(), schedules()))
    if schedule is not None:
        job["schedule"] = schedule
    job |= draw(
        _object(
            {},
            description=maybe_empty_text,
            enabled=st.booleans(),
            labels=st.dictionaries(identifier, maybe_empty_text, max_size=3),
            triggers=triggers(has_schedule=schedule is not None),
            allow_concurrent=st.booleans(),
            timeout_seconds=positive_ints,
            max_retries=st.integers(min_value=0, max_value=20),
            variables=st.dictionaries(variable_names, scalars, max_size=3),
        )
    )
    if draw(st.booleans()):
        job["$schema"] = "../schemas/job.schema.json"
    job["steps"] = draw(step_lists())
    if step_type is not None and all(step["type"] != step_type for step in job["steps"]):
        last = job["steps"]
        previous = last[-2]["id"] if len(last) > 1 else None
        last[-1] = draw(steps(last[-1]["id"], previous, step_type))
    return job


# --- mutations ---------------------------------------------------------------------

#: Keys whose string values only the models check (cron syntax, IANA names, the
#: condition language): a JSON Schema cannot, so no mutation writes a string there.
SEMANTIC_STRING_KEYS = frozenset({"expression", "timezone", "when", "condition"})
#: Exactly one of these is required in ssh_key auth: a model check the schema lacks.
ONE_OF_KEYS = frozenset({"private_key", "private_key_path"})
DATETIME_KEYS = frozenset({"start_at", "end_at", "at"})
#: Free-form maps: any key is fine (variables: any key matching a pattern).
FREE_MAPS = frozenset({"labels", "variables", "headers", "query", "body", "parameters"})

#: Wrong-typed values: a string where a number or a boolean belongs, "yes" for a
#: boolean, a fraction for an integer, negatives and zero where a positive belongs,
#: containers for scalars and the other way round.
REPLACEMENTS: tuple[Any, ...] = ("30", "yes", "x", 1.5, 30, 1, 0, -1, True, None, [], {})
UNKNOWN_KEYS = (
    "unknown",
    "Name",
    "typ",
    "x-extra",
    "enable",
    "interval",
    "source_path",
    "recursive",
    "expression",
    "at",
    "columns",
    "scope",
)
BAD_NAMES = ("Bad Name", "-job", "UPPER", "", "a" * 129, "a/b", ".hidden", "job!", "ü")


#: Kinds of mutation; hypothesis favours the first and the last.
MUTATIONS = (
    "wrong_value_in_config",
    "bad_number",
    "empty_steps",
    "bad_name",
    "swap_case",
    "drop_key",
    "add_key",
    "wrong_value",
)


@dataclass(frozen=True, slots=True)
class Mutation:
    """A mutated document and what was done to it (for failure messages)."""

    document: Doc
    description: str


def walk(node: Any, path: Path = (), *, shallow: bool = False) -> Iterator[tuple[Path, Any]]:
    """Every node of a document with its path, parents before children.

    ``shallow`` stops one level inside free-form maps (labels, body, …), whose
    contents are mostly ``Any``: mutations there say little about the schema.
    """
    yield path, node
    if shallow and len(path) >= 2 and path[-2] in FREE_MAPS:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, key), shallow=shallow)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*path, index), shallow=shallow)


def get(doc: Any, path: Path) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _has_schedule(doc: Doc) -> bool:
    return isinstance(doc.get("schedule"), dict)


def _scheduled_true(doc: Doc) -> bool:
    triggers_block = doc.get("triggers")
    return isinstance(triggers_block, dict) and triggers_block.get("scheduled") is True


def _in_free_map(path: Path) -> bool:
    return any(isinstance(part, str) and part in FREE_MAPS for part in path[:-1])


def replacement_allowed(doc: Doc, path: Path, value: Any) -> bool:
    """Whether writing ``value`` at ``path`` stays out of the model-only checks."""
    key = path[-1] if path else None
    if _in_free_map(path):
        return True
    if key in SEMANTIC_STRING_KEYS and isinstance(value, str):
        return False
    if key in ONE_OF_KEYS and value is None:
        return False
    if key == "scheduled" and value is True and not _has_schedule(doc):
        return False
    return not (key == "schedule" and value is None and _scheduled_true(doc))


def _pick(draw: st.DrawFn, choices: list[T], salt: object) -> T:
    # Close to uniform. sampled_from (and integers) lean hard towards their first value,
    # so most mutations hit the first key with the first replacement; salting the draw
    # with the document spreads that favourite over all choices, and stays deterministic.
    index = draw(st.integers(min_value=0, max_value=2**16 - 1)) + zlib.crc32(repr(salt).encode())
    return choices[index % len(choices)]


def _replace(doc: Doc, path: Path, value: Any) -> Doc:
    mutated = copy.deepcopy(doc)
    parent = get(mutated, path[:-1])
    parent[path[-1]] = value
    return mutated


def _drop(doc: Doc, path: Path) -> Doc:
    mutated = copy.deepcopy(doc)
    parent = get(mutated, path[:-1])
    del parent[path[-1]]
    return mutated


def _key_paths(doc: Doc, keep: Callable[[Path], bool] = lambda _: True) -> list[Path]:
    return [
        path
        for path, _ in walk(doc, shallow=True)
        if path and isinstance(path[-1], str) and keep(path)
    ]


@st.composite
def _drop_key(draw: st.DrawFn, doc: Doc) -> Mutation:
    def droppable(path: Path) -> bool:
        if path[-1] in ONE_OF_KEYS and not _in_free_map(path):
            return False
        return not (path == ("schedule",) and _scheduled_true(doc))

    path = _pick(draw, _key_paths(doc, droppable), doc)
    return Mutation(_drop(doc, path), f"drop {path}")


@st.composite
def _add_key(draw: st.DrawFn, doc: Doc) -> Mutation:
    objects = [path for path, node in walk(doc, shallow=True) if isinstance(node, dict)]
    path = _pick(draw, objects, doc)
    node = get(doc, path)
    key = _pick(draw, [k for k in UNKNOWN_KEYS if k not in node], path)
    value = _pick(draw, ["x", 1, True], (doc, key))
    return Mutation(_replace(doc, (*path, key), value), f"add {(*path, key)} = {value!r}")


@st.composite
def _wrong_value(draw: st.DrawFn, doc: Doc, under: Path = ()) -> Mutation:
    paths = [
        path
        for path, _ in walk(doc, shallow=True)
        if len(path) > len(under) and path[: len(under)] == under
    ]
    path = _pick(draw, paths, doc)
    value = _pick(draw, [v for v in REPLACEMENTS if replacement_allowed(doc, path, v)], path)
    return Mutation(_replace(doc, path, value), f"set {path} = {value!r}")


@st.composite
def _bad_number(draw: st.DrawFn, doc: Doc) -> Mutation:
    # Zero or negative where a positive number belongs, a fraction or text for an int.
    paths = [
        path
        for path, node in walk(doc, shallow=True)
        if isinstance(node, int | float)
        and not isinstance(node, bool)
        and path
        and not _in_free_map(path)
    ]
    if not paths:
        return draw(_wrong_value(doc))
    path = _pick(draw, paths, doc)
    choices = [v for v in (0, -1, 1.5, "30", 10**12, -0.5) if replacement_allowed(doc, path, v)]
    value = _pick(draw, choices, path)
    return Mutation(_replace(doc, path, value), f"set {path} = {value!r}")


@st.composite
def _swap_case(draw: st.DrawFn, doc: Doc) -> Mutation:
    # Bad enum values ("get", "CSV", "Cron") and bad patterns; free text stays valid.
    paths = [
        path
        for path, node in walk(doc, shallow=True)
        if isinstance(node, str)
        and node.swapcase() != node
        and path
        and path[-1] not in SEMANTIC_STRING_KEYS
        and path[-1] not in DATETIME_KEYS
    ]
    path = _pick(draw, paths, doc)
    value = get(doc, path).swapcase()
    return Mutation(_replace(doc, path, value), f"swapcase {path} -> {value!r}")


@st.composite
def _bad_name(draw: st.DrawFn, doc: Doc) -> Mutation:
    name = _pick(draw, list(BAD_NAMES), doc)
    return Mutation({**doc, "name": name}, f"name = {name!r}")


@st.composite
def mutated_documents(draw: st.DrawFn) -> Mutation:
    """A valid document with one mutation, kept out of the model-only checks."""
    kind = draw(st.sampled_from(MUTATIONS))
    doc = draw(job_documents())
    if kind == "wrong_value":
        return draw(_wrong_value(doc))
    if kind == "wrong_value_in_config":
        step = draw(st.integers(min_value=0, max_value=len(doc["steps"]) - 1))
        return draw(_wrong_value(doc, ("steps", step, "config")))
    if kind == "drop_key":
        return draw(_drop_key(doc))
    if kind == "add_key":
        return draw(_add_key(doc))
    if kind == "swap_case":
        return draw(_swap_case(doc))
    if kind == "bad_number":
        return draw(_bad_number(doc))
    if kind == "bad_name":
        return draw(_bad_name(doc))
    return Mutation({**doc, "steps": []}, "steps = []")
