"""The ``database`` step: one SQL statement against PostgreSQL, MySQL/MariaDB, SQLite or Oracle.

Targets. ``connection_string`` is rendered first (it usually is ``${secret:…}``) and read
as a SQLAlchemy URL (``postgresql+psycopg://``, ``mysql+pymysql://``,
``mariadb+pymysql://``, ``sqlite:///path``, ``oracle+oracledb://``) or a plain driver URL
(``postgresql://`` or ``postgres://`` → psycopg, ``mysql://``/``mariadb://`` → PyMySQL,
``sqlite:///path``, ``oracle://`` → python-oracledb in thin mode). Its scheme must match
``database_type`` (``mysql`` and ``mariadb`` are interchangeable). A SQLite file must
exist: vecron never creates one, so a typo in the path is an error, not an empty
database; in-memory SQLite is refused. Oracle takes ``oracle://user:pw@host:1521/SID`` or
``oracle://user:pw@host:1521/?service_name=NAME``. There is no Oracle server where vecron
is tested: its URL handling and placeholders are tested, its queries are not.

Pools. One SQLAlchemy ``QueuePool`` per target (keyed by the rendered URL): 5
connections plus 5 overflow, a free connection awaited for up to 30 s, pre-pinged on
checkout, recycled after 30 min; at most 32 pools, the least recently used one is
closed first. Statements run on a thread pool of this executor's own; :meth:`close`
disposes every pool. The connect timeout is 10 s unless the URL sets ``connect_timeout``
(``tcp_connect_timeout`` for Oracle); for MySQL it bounds the handshake too, so a server
that accepts and never answers fails in time. PostgreSQL sessions are named ``vecron``.

Binding. References and variables in ``query`` become bound parameters, never SQL
text (:meth:`~vecron.runtime.values.ValueResolver.sql`), in the driver's placeholder
style: ``%s`` for psycopg and PyMySQL (so a literal ``%`` needs no escaping),
``?`` for SQLite, ``:p0`` for Oracle. A bound value keeps its JSON type; an object is
bound as JSON text; a list is bound as an array by PostgreSQL (``= ANY({{…}})``),
expanded to ``(a, b)`` by PyMySQL (``IN {{…}}``) and bound as JSON text by SQLite and
Oracle. ``parameters`` is for a query written with the driver's own placeholders:
a list fills positional ones (``%s`` for PostgreSQL and MySQL, ``?`` for SQLite,
``:1`` for Oracle), a map named ones (``%(name)s``, ``:name``, ``:name``); its values may
be templates (rendered with their JSON types). The query text then goes to the driver
as written, so with psycopg and PyMySQL a literal ``%`` is written ``%%``. A query that
holds ``{{…}}`` or ``${…}`` and also has ``parameters`` is refused: the two placeholder
schemes cannot be merged safely.

Statements. One statement per step, in its own transaction: committed when it
succeeds, rolled back when it fails or is cancelled. At most ``max_rows`` rows are read
(one more tells whether the result was ``truncated``); PostgreSQL reads a ``SELECT``,
``VALUES``, ``TABLE`` or read-only ``WITH`` through a server-side cursor and stops there,
PyMySQL reads past the rest of the result without keeping it, SQLite and Oracle stop.
Other PostgreSQL statements (``INSERT … RETURNING``, a ``WITH`` that writes) are buffered
by the driver, then cut at ``max_rows``.

Output: ``{rows, columns, row_count, affected_rows, truncated}``. ``rows`` are objects
in column order; a repeated column name gets ``_2``, ``_3``… ``row_count`` is
``len(rows)``. ``affected_rows`` is the driver's count for a statement that returns no
rows (MySQL counts matched rows, as PostgreSQL does), null for one that returns rows or
when the driver does not know. Values become JSON: ``Decimal`` → text without exponent
(``"12.50"``: no precision lost), non-finite numbers → ``"NaN"``/``"Infinity"``, datetimes,
dates and times → ISO 8601 text, intervals → seconds (a number), bytes → base64 text,
UUIDs and anything else → text. MySQL and SQLite have no booleans: they return 0 and 1.

Timeouts. ``timeout_seconds`` bounds the statement on the server where it can:
PostgreSQL ``SET LOCAL statement_timeout``, MariaDB ``max_statement_time``, MySQL
``max_execution_time`` (``SELECT`` only), SQLite a progress handler and
``busy_timeout``, Oracle the connection's ``call_timeout``. A watchdog backs them up: a
statement with no result ``timeout_seconds`` + 2 s after it was sent is cancelled
through the driver (psycopg's cancel request, ``KILL QUERY``, SQLite's interrupt,
Oracle's break), and so is a statement whose step is cancelled.

Circuit breaker. With one (:mod:`vecron.backends.breaker`), a statement first asks the
breaker of its target, the URL without its password or query
(``postgresql://app@db:5432/sales``, :func:`breaker_target`), and fails fast with
:class:`~vecron.errors.CircuitOpen` while it is open. Failing to connect, a statement
that times out and a connection lost mid-statement count as the target's failures; an
answer from the server (a SQL error, a refused login, an unknown database) is a
success, and a URL or query that does not validate never reaches the breaker.

Errors are :class:`~vecron.errors.StepFailed` naming the target (user, host, port,
database; never the password) and the driver's message with its code, scrubbed of
secrets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar, Literal
from urllib.parse import quote
from uuid import UUID

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, CursorResult, Dialect, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import QueuePool

from vecron.backends.breaker import CircuitBreaker, guarded
from vecron.errors import StepFailed
from vecron.runtime.steps.base import StepRun
from vecron.runtime.values import MASK, Paramstyle
from vecron.spec.models import DatabaseConfig
from vecron.spec.references import Literal as TextPart
from vecron.spec.references import has_template, parse_template

Kind = Literal["postgresql", "mysql", "sqlite", "oracle"]

CONNECT_TIMEOUT_SECONDS = 10
POOL_SIZE = 5
POOL_MAX_OVERFLOW = 5
POOL_TIMEOUT_SECONDS = 30
POOL_RECYCLE_SECONDS = 1800
MAX_POOLS = 32
THREADS = 32
WATCHDOG_GRACE_SECONDS = 2.0
"""How long past its timeout a statement may run before the watchdog cancels it."""
CANCEL_WAIT_SECONDS = 5.0
"""How long a cancelled statement may take to stop before its connection is given up."""
_TICK_SECONDS = 0.25

PARAMSTYLES: dict[Kind, Paramstyle] = {
    "postgresql": "format",
    "mysql": "format",
    "sqlite": "qmark",
    "oracle": "named",
}
_KIND_OF_TYPE: dict[str, Kind] = {
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "oracle": "oracle",
}
_KIND_OF_SCHEME: dict[str, Kind] = {"postgres": "postgresql", **_KIND_OF_TYPE}
_DRIVERS: dict[Kind, str] = {
    "postgresql": "psycopg",
    "mysql": "pymysql",
    "sqlite": "pysqlite",
    "oracle": "oracledb",
}
_DEFAULT_PORTS: dict[Kind, int] = {"postgresql": 5432, "mysql": 3306, "oracle": 1521}
_EXAMPLES: dict[Kind, str] = {
    "postgresql": "postgresql://user:password@host:5432/database",
    "mysql": "mysql://user:password@host:3306/database",
    "sqlite": "sqlite:////absolute/path/to/file.db",
    "oracle": "oracle://user:password@host:1521/?service_name=NAME",
}
_STREAM = {"stream_results": True}
_LEADING = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/|\()*", re.DOTALL)
_WORD = re.compile(r"[A-Za-z]+")
# Error codes that mean "the statement was stopped": PostgreSQL's SQLSTATE, MySQL's and
# MariaDB's error numbers, Oracle's message prefixes.
_PG_CANCELLED = "57014"
_MYSQL_LIMIT = "vecron_statement_milliseconds"
_MYSQL_CANCELLED = frozenset({1317, 1969, 3024})
_ORACLE_CANCELLED = ("ORA-01013", "DPI-1067", "DPY-4024", "DPY-4011")


def target_url(connection_string: str, database_type: str) -> URL:
    """The SQLAlchemy URL, with its driver, for a rendered ``connection_string``.

    Raises StepFailed when the string is not a URL, names another database than
    ``database_type`` or a driver vecron does not ship; the message never repeats the
    string, which may hold a password.
    """
    kind = _KIND_OF_TYPE[database_type]
    try:
        url = make_url(connection_string.strip())
    except (ArgumentError, ValueError):
        raise StepFailed(
            f"connection_string is not a database URL (expected e.g. {_EXAMPLES[kind]})"
        ) from None
    scheme, _, driver = url.drivername.partition("+")
    url_kind = _KIND_OF_SCHEME.get(scheme)
    if url_kind is None:
        raise StepFailed(
            f"connection_string: unsupported database {scheme!r} (expected e.g. {_EXAMPLES[kind]})"
        )
    if url_kind != kind:
        raise StepFailed(
            f"database_type is {database_type}, but connection_string is a {scheme} URL"
        )
    if driver not in ("", _DRIVERS[kind]):
        raise StepFailed(
            f"connection_string: the {driver!r} driver is not available; "
            f"use {scheme}:// or {scheme}+{_DRIVERS[kind]}://"
        )
    if kind == "sqlite" and (url.database or ":memory:") == ":memory:":
        raise StepFailed(
            "connection_string: an in-memory SQLite database would be empty and gone "
            "after the step; name a file (sqlite:////path/to/file.db)"
        )
    if scheme == "postgres":
        scheme = "postgresql"
    return url.set(drivername=f"{scheme}+{_DRIVERS[kind]}")


def describe_target(url: URL) -> str:
    """``postgresql app@db.example:5432/sales``: how messages name a target, without secrets."""
    kind = _KIND_OF_SCHEME[url.get_backend_name()]
    if kind == "sqlite":
        return f"sqlite {os.path.abspath(url.database or '')}"
    user = f"{url.username}@" if url.username else ""
    port = f":{url.port}" if url.port else ""
    database = url.database or url.query.get("service_name") or ""
    return f"{kind} {user}{url.host or 'localhost'}{port}/{database}"


def breaker_target(url: URL) -> str:
    """The circuit breaker's target of ``url``: ``kind://user@host:port/database``,
    without the password, the driver or the query (which may hold a password too);
    ``sqlite:///absolute/path`` for SQLite."""
    kind = _KIND_OF_SCHEME[url.get_backend_name()]
    if kind == "sqlite":
        return f"sqlite://{os.path.abspath(url.database or '')}"
    user = f"{quote(url.username, safe='')}@" if url.username else ""
    host = (url.host or "localhost").lower()
    if ":" in host:
        host = f"[{host}]"
    port = url.port or _DEFAULT_PORTS[kind]
    database = url.database or url.query.get("service_name") or ""
    return f"{kind}://{user}{host}:{port}/{database}"


def first_keyword(statement: str) -> str:
    """The statement's first word in upper case, past blanks, comments and parentheses."""
    start = _LEADING.match(statement)
    word = _WORD.match(statement, start.end() if start else 0)
    return word.group().upper() if word else ""


def json_value(value: Any) -> Any:
    """A value read from a database as JSON data (see the module docstring)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted(str(item) for item in value)
    return str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Target:
    kind: Kind
    label: str
    engine: Engine
    connect_timeout: float
    password: str | None


@dataclass(slots=True)
class _Call:
    """One statement's state, shared by the event loop and the thread that runs it."""

    connected: bool = False  # a connection was checked out of the pool
    connection: Any = None  # the DBAPI connection while the statement may be running
    sent_at: float | None = None  # time.monotonic() when the statement was sent
    abandoned: bool = False  # the loop gave up waiting: discard the connection


class DatabaseStepExecutor:
    """Runs ``database`` steps; see the module docstring for the rules. ``breaker``
    guards every target (none: no breaker)."""

    step_type: ClassVar[str] = "database"

    def __init__(self, *, breaker: CircuitBreaker | None = None) -> None:
        self._breaker = breaker
        self._targets: OrderedDict[str, _Target] = OrderedDict()
        self._threads: ThreadPoolExecutor | None = None

    @property
    def open_pools(self) -> tuple[str, ...]:
        """The targets that have a connection pool, as messages name them."""
        return tuple(target.label for target in self._targets.values())

    async def run(self, config: Any, run: StepRun) -> dict[str, Any]:
        if not isinstance(config, DatabaseConfig):
            config = DatabaseConfig.model_validate(config)
        url = target_url(run.values.render_text(config.connection_string), config.database_type)
        url = _require_file(url)
        try:
            target = await self._target(url)
        except StepFailed as exc:
            raise StepFailed(run.values.scrub(str(exc))) from None
        statement, params = _statement(config, run, target.kind)
        call = _Call()
        async with guarded(self._breaker, breaker_target(url)) as guard:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(
                self._executor(),
                partial(_execute, target, statement, params, config, call),
            )
            future.add_done_callback(_retrieve)
            started = time.monotonic()
            try:
                output = await self._wait(future, call, target, config.timeout_seconds)
            except asyncio.CancelledError:
                await self._stop(future, call, target)
                raise
            except StepFailed:  # no connection in time, or the statement timed out
                guard.failed()
                raise
            except Exception as exc:
                if _target_failed(exc, call, target.kind):
                    guard.failed()
                raise _failure(exc, call, target, config, run) from None
        run.log.debug(
            "database %s: %d rows, %s affected in %.3f s",
            target.label,
            output["row_count"],
            output["affected_rows"],
            time.monotonic() - started,
        )
        return output

    async def close(self) -> None:
        targets = list(self._targets.values())
        self._targets.clear()
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None
        for target in targets:
            await asyncio.to_thread(target.engine.dispose)

    def _executor(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="vecron-database")
        return self._threads

    async def _target(self, url: URL) -> _Target:
        key = url.render_as_string(hide_password=False)
        target = self._targets.get(key)
        if target is not None:
            self._targets.move_to_end(key)
            return target
        target = _create_target(url)
        self._targets[key] = target
        while len(self._targets) > MAX_POOLS:
            _, oldest = self._targets.popitem(last=False)
            await asyncio.to_thread(oldest.engine.dispose)
        return target

    async def _wait(
        self, future: asyncio.Future[dict[str, Any]], call: _Call, target: _Target, timeout: float
    ) -> dict[str, Any]:
        """The statement's output; StepFailed when the watchdog's deadline passes first."""
        started = time.monotonic()
        while True:
            sent_at = call.sent_at
            if sent_at is None:
                deadline = started + POOL_TIMEOUT_SECONDS + target.connect_timeout
            else:
                deadline = sent_at + timeout
            remaining = deadline + WATCHDOG_GRACE_SECONDS - time.monotonic()
            if remaining <= 0:
                break
            done, _ = await asyncio.wait({future}, timeout=min(remaining, _TICK_SECONDS))
            if done:
                return future.result()
        await self._stop(future, call, target)
        if call.sent_at is None:
            raise StepFailed(
                f"cannot connect to {target.label}: no connection within "
                f"{POOL_TIMEOUT_SECONDS + target.connect_timeout:g} s"
            )
        raise StepFailed(
            f"{target.label}: the statement ran longer than timeout_seconds={timeout:g} "
            "and was cancelled"
        )

    async def _stop(
        self, future: asyncio.Future[dict[str, Any]], call: _Call, target: _Target
    ) -> None:
        """Cancel the running statement and wait a little for its thread to roll back."""
        if future.done():
            return
        connection = call.connection
        if connection is not None:
            # Best effort: a statement that does not stop loses its connection below.
            with contextlib.suppress(Exception):
                await _interrupt(target, connection)
        done, _ = await asyncio.wait({future}, timeout=CANCEL_WAIT_SECONDS)
        if not done:
            call.abandoned = True


def _create_target(url: URL) -> _Target:
    kind = _KIND_OF_SCHEME[url.get_backend_name()]
    connect_args: dict[str, Any] = {}
    connect_timeout = float(CONNECT_TIMEOUT_SECONDS)
    if kind != "sqlite":
        option = "tcp_connect_timeout" if kind == "oracle" else "connect_timeout"
        given = url.query.get(option)
        if given is not None:
            try:
                connect_timeout = float(given if isinstance(given, str) else given[-1])
            except ValueError:
                raise StepFailed(f"connection_string: {option} is not a number") from None
        # libpq and PyMySQL take whole seconds; python-oracledb takes fractions.
        connect_args[option] = connect_timeout if kind == "oracle" else math.ceil(connect_timeout)
    if kind == "postgresql" and "application_name" not in url.query:
        connect_args["application_name"] = "vecron"
    try:
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=POOL_SIZE,
            max_overflow=POOL_MAX_OVERFLOW,
            pool_timeout=POOL_TIMEOUT_SECONDS,
            pool_recycle=POOL_RECYCLE_SECONDS,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args=connect_args,
        )
    except (ArgumentError, ImportError, TypeError, ValueError) as exc:
        raise StepFailed(f"connection_string for {describe_target(url)}: {exc}") from None
    if kind == "mysql":
        event.listen(engine, "do_connect", _connect_mysql)
    return _Target(
        kind=kind,
        label=describe_target(url),
        engine=engine,
        connect_timeout=connect_timeout,
        password=url.password,
    )


def _connect_mysql(dialect: Dialect, _record: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    # PyMySQL's connect_timeout covers the TCP connect only; the handshake reads with the
    # read timeout. Bound the handshake by connect_timeout too, then lift the socket
    # timeouts again: statements are bounded by timeout_seconds, not by the socket.
    timeouts = {
        name: kwargs["connect_timeout"]
        for name in ("read_timeout", "write_timeout")
        if name not in kwargs
    }
    connection = dialect.loaded_dbapi.connect(*args, **kwargs, **timeouts)
    for name in timeouts:
        if hasattr(connection, f"_{name}"):
            setattr(connection, f"_{name}", None)
    return connection


def _require_file(url: URL) -> URL:
    """A SQLite database must exist (sqlite3 would create an empty one for a typo),
    unless the URL says ``?create=true``: then it and its folder are created."""
    if url.get_backend_name() != "sqlite" or url.query.get("uri"):
        return url
    path = os.path.abspath(url.database or "")
    if url.query.get("create") in ("true", "1", "yes"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return url.difference_update_query(["create"])
    if not os.path.exists(path):
        raise StepFailed(
            f"cannot connect to {describe_target(url)}: the file does not exist "
            "(add ?create=true to the URL to create it)"
        )
    return url


def _statement(
    config: DatabaseConfig, run: StepRun, kind: Kind
) -> tuple[str, tuple[Any, ...] | dict[str, Any]]:
    """The statement for the driver and its parameters (see "Binding" above)."""
    if config.parameters is None:
        statement, params = run.values.sql(config.query, PARAMSTYLES[kind])
    else:
        if has_template(config.query) and not all(
            isinstance(part, TextPart) for part in parse_template(config.query).parts
        ):
            raise StepFailed(
                "the query holds {{…}} or ${…} and the step also sets parameters: use one "
                "or the other (references in the query are bound automatically; "
                "parameters fill the driver's own placeholders)"
            )
        statement, _ = run.values.sql(config.query, "qmark")  # qmark: the text unchanged
        params = run.values.render(config.parameters)
    if isinstance(params, Mapping):
        return statement, {str(key): _bindable(value, kind) for key, value in params.items()}
    return statement, tuple(_bindable(value, kind) for value in params)


def _bindable(value: Any, kind: Kind) -> Any:
    if isinstance(value, Mapping) or (
        isinstance(value, list | tuple) and kind in ("sqlite", "oracle")
    ):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def _execute(
    target: _Target,
    statement: str,
    params: tuple[Any, ...] | dict[str, Any],
    config: DatabaseConfig,
    call: _Call,
) -> dict[str, Any]:
    """Run one statement in its own transaction (on a worker thread)."""
    with target.engine.connect() as connection:
        dbapi_connection = connection.connection.dbapi_connection
        call.connection = dbapi_connection
        call.connected = True
        try:
            with connection.begin():
                _limit(connection, dbapi_connection, target.kind, config.timeout_seconds)
                call.sent_at = time.monotonic()
                result = _send(connection, target.kind, statement, params)
                try:
                    return _collect(result, config.max_rows)
                finally:
                    result.close()
        finally:
            call.connection = None
            _unlimit(dbapi_connection, target.kind)
            if call.abandoned:
                connection.invalidate()


def _limit(connection: Connection, dbapi_connection: Any, kind: Kind, timeout: float) -> None:
    """Bound the coming statement to ``timeout`` seconds on the server's side."""
    milliseconds = max(1, math.ceil(timeout * 1000))
    if kind == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
    elif kind == "mysql":
        # Session variables outlive transactions in MySQL: set them only when they change.
        if connection.info.get(_MYSQL_LIMIT) != milliseconds:
            if connection.dialect.is_mariadb:  # type: ignore[attr-defined]
                connection.exec_driver_sql(
                    f"SET SESSION max_statement_time = {milliseconds / 1000}"
                )
            else:
                connection.exec_driver_sql(f"SET SESSION max_execution_time = {milliseconds}")
            connection.info[_MYSQL_LIMIT] = milliseconds
    elif kind == "sqlite":
        deadline = time.monotonic() + timeout
        dbapi_connection.execute(f"PRAGMA busy_timeout = {milliseconds}")
        dbapi_connection.set_progress_handler(lambda: time.monotonic() > deadline, 1000)
    else:
        dbapi_connection.call_timeout = milliseconds


def _unlimit(dbapi_connection: Any, kind: Kind) -> None:
    # A connection that cannot be reset is broken, and the pool discards it anyway.
    with contextlib.suppress(Exception):
        if kind == "sqlite":
            dbapi_connection.set_progress_handler(None, 0)
        elif kind == "oracle":
            dbapi_connection.call_timeout = 0


def _send(
    connection: Connection, kind: Kind, statement: str, params: tuple[Any, ...] | dict[str, Any]
) -> CursorResult[Any]:
    if kind != "postgresql":
        return connection.exec_driver_sql(statement, params, execution_options=_STREAM)
    keyword = first_keyword(statement)
    if keyword in ("SELECT", "VALUES", "TABLE"):
        return connection.exec_driver_sql(statement, params, execution_options=_STREAM)
    if keyword != "WITH":
        return connection.exec_driver_sql(statement, params)
    # A WITH that writes cannot be a cursor's query (SQLSTATE 0A000); try, then buffer.
    try:
        with connection.begin_nested():
            return connection.exec_driver_sql(statement, params, execution_options=_STREAM)
    except StatementError as exc:
        if getattr(exc.orig, "sqlstate", None) != "0A000":
            raise
    return connection.exec_driver_sql(statement, params)


def _collect(result: CursorResult[Any], max_rows: int) -> dict[str, Any]:
    if not result.returns_rows:
        count = result.rowcount
        return {
            "rows": [],
            "columns": [],
            "row_count": 0,
            "affected_rows": count if count is not None and count >= 0 else None,
            "truncated": False,
        }
    columns = _unique(list(result.keys()))
    fetched = result.fetchmany(max_rows + 1)
    rows = [
        dict(zip(columns, (json_value(value) for value in row), strict=True))
        for row in fetched[:max_rows]
    ]
    return {
        "rows": rows,
        "columns": columns,
        "row_count": len(rows),
        "affected_rows": None,
        "truncated": len(fetched) > max_rows,
    }


def _unique(names: list[str]) -> list[str]:
    taken: set[str] = set()
    unique: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name}_{n}"
        taken.add(candidate)
        unique.append(candidate)
    return unique


async def _interrupt(target: _Target, connection: Any) -> None:
    """Ask the server to stop the statement running on ``connection``."""
    if target.kind == "sqlite":
        connection.interrupt()
    elif target.kind == "postgresql":
        await asyncio.to_thread(connection.cancel_safe, timeout=CANCEL_WAIT_SECONDS)
    elif target.kind == "oracle":
        await asyncio.to_thread(connection.cancel)
    else:
        await asyncio.to_thread(_kill_mysql_query, target.engine, connection.thread_id())


def _kill_mysql_query(engine: Engine, thread_id: int) -> None:
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    kwargs = {**kwargs, "connect_timeout": math.ceil(CANCEL_WAIT_SECONDS)}
    killer = engine.dialect.loaded_dbapi.connect(*args, **kwargs)
    try:
        killer.cursor().execute(f"KILL QUERY {int(thread_id)}")
    finally:
        killer.close()


def _retrieve(future: Future[Any] | asyncio.Future[Any]) -> None:
    # An abandoned statement's error has nobody left to read it.
    if not future.cancelled():
        future.exception()


def _failure(
    exc: BaseException, call: _Call, target: _Target, config: DatabaseConfig, run: StepRun
) -> StepFailed:
    connecting = not call.connected
    if isinstance(exc, PoolTimeout):
        message = (
            f"{target.label}: no free connection within {POOL_TIMEOUT_SECONDS} s "
            f"(all {POOL_SIZE + POOL_MAX_OVERFLOW} are busy)"
        )
        return StepFailed(_scrub(message, run, target))
    orig = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    detail = _driver_message(orig)
    if not isinstance(exc, SQLAlchemyError):
        detail = f"{type(exc).__name__}: {detail}"
    if connecting:
        if "timeout" in detail.lower() or "timed out" in detail.lower():
            detail = f"no answer within {target.connect_timeout:g} s (connect_timeout): {detail}"
        message = f"cannot connect to {target.label}: {detail}"
    elif _cancelled(orig, target.kind):
        message = (
            f"{target.label}: the statement ran longer than "
            f"timeout_seconds={config.timeout_seconds:g} and was cancelled ({detail})"
        )
    else:
        message = f"{target.label}: {detail}"
    return StepFailed(_scrub(message, run, target))


def _target_failed(exc: BaseException, call: _Call, kind: Kind) -> bool:
    """Whether ``exc`` counts as the target failing, for the circuit breaker."""
    if isinstance(exc, PoolTimeout):
        return False  # our own connections are all busy; the server is not to blame
    orig = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    if not call.connected:
        return not _server_answered(orig, kind)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return _cancelled(orig, kind)


def _server_answered(error: BaseException, kind: Kind) -> bool:
    """Whether a failure to connect is the server's answer (a refused login, an unknown
    database) rather than no answer."""
    if kind == "postgresql":  # libpq puts the server's refusal after "FATAL:"
        return getattr(error, "sqlstate", None) is not None or "FATAL:" in str(error)
    if kind == "mysql":  # 1xxx are the server's errors, 2xxx the client's
        code = error.args[0] if error.args else None
        return isinstance(code, int) and code < 2000
    if kind == "oracle":
        return str(error).startswith("ORA-")
    return True


def _driver_message(error: BaseException) -> str:
    """The driver's message with its error code: what a DBA would search for."""
    args = error.args
    if type(error).__module__.startswith("pymysql") and len(args) >= 2:
        return f"{args[1]} (MySQL error {args[0]})"
    text = str(error).strip() or type(error).__name__
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate:
        return f"{text} (SQLSTATE {sqlstate})"
    name = getattr(error, "sqlite_errorname", None)
    if name:
        return f"{text} ({name})"
    return text


def _cancelled(error: BaseException, kind: Kind) -> bool:
    if kind == "postgresql":
        return getattr(error, "sqlstate", None) == _PG_CANCELLED
    if kind == "mysql":
        return bool(error.args) and error.args[0] in _MYSQL_CANCELLED
    if kind == "sqlite":
        return getattr(error, "sqlite_errorname", None) == "SQLITE_INTERRUPT"
    return str(error).startswith(_ORACLE_CANCELLED)


def _scrub(message: str, run: StepRun, target: _Target) -> str:
    if target.password and len(target.password) >= 4:
        message = message.replace(target.password, MASK)
    return run.values.scrub(message)


__all__ = [
    "PARAMSTYLES",
    "DatabaseStepExecutor",
    "breaker_target",
    "describe_target",
    "first_keyword",
    "json_value",
    "target_url",
]
