"""Logging: one handler, text or JSON lines, the run's ids on every line, secrets masked.

:func:`configure_logging` is called once by each command that runs for a while
(``vecron up``, the roles, ``reconcile``). The ids of the work in progress are bound
with :func:`log_context`; they live in :mod:`contextvars`, so an asyncio task keeps
the ids that were bound when it was created and two runs in flight never mix theirs.
:func:`register_secrets` adds the secret values a run resolved to a registry of that
run; every line the handler writes has them replaced by ``******``, a safety net
behind the scrubbing the worker and the step executors already do.

A text line::

    2026-11-28T22:40:01.123Z INFO vecron.worker [job=invoice-import execution=3f2a… step=fetch] …

A JSON line (``--log-format json``) is one object: ``ts``, ``level``, ``logger``,
``message``, the bound fields (``job_id``, ``job_name``, ``execution_id``, ``step_id``),
``exc`` when there is a traceback, and the ``extra=`` fields of the call.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Literal, TextIO

from vecron.runtime.values import MASK

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

#: The fields the worker binds, in the order lines show them.
CONTEXT_FIELDS = ("job_id", "job_name", "execution_id", "step_id")
#: Shorter than this, a "secret" would garble every line it masks (as in ValueResolver).
MIN_SECRET_LENGTH = 4

_EMPTY: Mapping[str, object] = MappingProxyType({})
_fields: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "vecron_log_fields", default=_EMPTY
)


class _SecretRegistry:
    """The secret values of one run, longest first (so a secret inside another is masked whole)."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: tuple[str, ...] = ()

    def add(self, values: Iterable[str]) -> None:
        new = {v for v in values if len(v) >= MIN_SECRET_LENGTH}.difference(self.values)
        if new:  # a new tuple: a line being formatted keeps the snapshot it took
            self.values = tuple(sorted((*self.values, *new), key=len, reverse=True))


_secrets: contextvars.ContextVar[_SecretRegistry | None] = contextvars.ContextVar(
    "vecron_log_secrets", default=None
)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "_vecron_fields",
    "_vecron_secrets",
}


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Bind ``fields`` to every line logged in the current task until the block ends.

    The usual fields are ``job_id``, ``job_name``, ``execution_id`` and ``step_id``;
    inner blocks add to the outer ones. A block that binds an ``execution_id`` starts
    a fresh secret registry: what :func:`register_secrets` adds inside it is masked
    until the block ends and never in another run.
    """
    fields_token = _fields.set(MappingProxyType({**_fields.get(), **fields}))
    secrets_token = _secrets.set(_SecretRegistry()) if "execution_id" in fields else None
    try:
        yield
    finally:
        if secrets_token is not None:
            _secrets.reset(secrets_token)
        _fields.reset(fields_token)


def current_log_context() -> Mapping[str, object]:
    """The fields bound in the current task (read-only)."""
    return _fields.get()


def register_secrets(values: Iterable[str]) -> None:
    """Mask ``values`` in every line of the current run from now on.

    Outside a :func:`log_context` with an ``execution_id``, the registry is bound to
    the current context (and so to the tasks it creates from now on).
    """
    registry = _secrets.get()
    if registry is None:
        registry = _SecretRegistry()
        _secrets.set(registry)
    registry.add(values)


class ContextFilter(logging.Filter):
    """Copies the bound fields and the run's secrets onto each record it sees.

    On a handler, it runs in the context of the code that logged, so the formatters
    need no context of their own. A field passed with ``extra=`` wins over a bound one.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _fields.get()
        if fields:
            record._vecron_fields = {**fields, **_own(record, fields)}
        registry = _secrets.get()
        if registry is not None and registry.values:
            record._vecron_secrets = registry.values
        return True


def _own(record: logging.LogRecord, fields: Mapping[str, object]) -> dict[str, object]:
    return {name: record.__dict__[name] for name in fields if name in record.__dict__}


class _Formatter(logging.Formatter):
    """The parts both formats share: UTC timestamps with milliseconds, secret masking."""

    def timestamp(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"

    def fields(self, record: logging.LogRecord) -> dict[str, object]:
        """The bound fields of the record, then its ``extra=`` ones."""
        bound: Mapping[str, object] = getattr(record, "_vecron_fields", _EMPTY)
        extra = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _RECORD_ATTRIBUTES and key not in bound
        }
        return {**bound, **extra}

    def traceback(self, record: logging.LogRecord) -> str | None:
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts) or None


def _mask(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


class TextFormatter(_Formatter):
    """``TS LEVEL LOGGER [job=… execution=… step=…] message``, then a traceback if any.

    The brackets hold the bound fields (the job's name rather than its id when both
    are bound); ``extra=`` fields appear in JSON lines only.
    """

    LABELS = {"job_name": "job", "job_id": "job", "execution_id": "execution", "step_id": "step"}

    def format(self, record: logging.LogRecord) -> str:
        bound: Mapping[str, object] = getattr(record, "_vecron_fields", _EMPTY)
        line = f"{self.timestamp(record)} {record.levelname} {record.name}"
        if bound:
            names = [n for n in CONTEXT_FIELDS if n in bound] + [
                n for n in bound if n not in CONTEXT_FIELDS
            ]
            if "job_name" in bound and "job_id" in bound:
                names.remove("job_id")
            shown = " ".join(f"{self.LABELS.get(n, n)}={bound[n]}" for n in names)
            line += f" [{shown}]"
        line += f" {record.getMessage()}"
        trace = self.traceback(record)
        if trace:
            line += f"\n{trace}"
        secrets: tuple[str, ...] = getattr(record, "_vecron_secrets", ())
        return _mask(line, secrets) if secrets else line


class JsonFormatter(_Formatter):
    """One JSON object per line (non-ASCII kept as is; newlines escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "ts": self.timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in self.fields(record).items():
            document.setdefault(name, value)
        trace = self.traceback(record)
        if trace:
            document["exc"] = trace
        secrets: tuple[str, ...] = getattr(record, "_vecron_secrets", ())
        if secrets:  # before encoding: a secret's JSON escaping would hide it from a replace
            document = _mask_json(document, secrets)
        return json.dumps(document, ensure_ascii=False, default=str)


def _mask_json(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return _mask(value, secrets)
    if isinstance(value, Mapping):
        return {_mask(str(k), secrets): _mask_json(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_json(item, secrets) for item in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return _mask(str(value), secrets)


class _VecronHandler(logging.StreamHandler[TextIO]):
    """The handler :func:`configure_logging` installs (found again by its class)."""


def configure_logging(
    *, level: str = "info", fmt: LogFormat = "text", stream: TextIO | None = None
) -> None:
    """Send vecron's lines at ``level`` and every library's warnings to ``stream``.

    One handler on the root logger: the ``vecron`` loggers reach it at ``level``, the
    others at WARNING. Calling it again replaces that handler (no duplicate lines);
    handlers installed by others are left alone. ``stream`` defaults to stderr.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: one of {', '.join(LOG_FORMATS)}")
    handler = _VecronHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _VecronHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("vecron").setLevel(level.upper())
