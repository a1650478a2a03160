"""The circuit-breaker role: fail fast on a step target that keeps failing.

A target is a string naming where steps connect, without credentials:
``scheme://host:port`` for HTTP and SFTP (:func:`network_target`), the DSN without its
password for databases. Its breaker moves through three states:

- **closed**: calls go through; each failure that counts adds one to the target's
  consecutive failures, and any success sets them back to zero.
- **open**: ``failure_threshold`` consecutive failures open it for ``cooldown_seconds``;
  every call fails fast with :class:`~vecron.errors.CircuitOpen`.
- **half-open**: once the cool-down has passed, exactly one caller gets the probe;
  the others still fail fast. The probe's success closes the breaker; its failure
  opens it for another cool-down. A probe that never reports (its process died, its
  step was cancelled) frees the probe after ``probe_timeout_seconds``.

Which failures count is the caller's call (the step executors): connection errors,
timeouts and 5xx answers do; a target that answered (4xx, a SQL error, a refused
login) and a config that did not validate do not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

BreakerState = Literal["closed", "open", "half_open"]
BREAKER_STATES: tuple[BreakerState, ...] = ("closed", "open", "half_open")

DEFAULT_FAILURE_THRESHOLD = 5
DEFAULT_COOLDOWN_SECONDS = 30.0
DEFAULT_PROBE_TIMEOUT_SECONDS = 60.0
DEFAULT_FORGET_AFTER_SECONDS = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerStatus:
    """One target's breaker as :meth:`CircuitBreaker.states` reports it.

    ``failures`` counts the consecutive failures (the ones that opened it, plus failed
    probes). ``retry_after_seconds`` is 0 when closed; when open, the time left of the
    cool-down; when half-open, 0 if the next call gets the probe, else the time until
    the probe in flight times out.
    """

    state: BreakerState
    failures: int
    retry_after_seconds: float


@runtime_checkable
class CircuitBreaker(Protocol):
    """Circuit breakers per target (see the module docstring for the states).

    Guarantees every implementation gives (tests/backends/test_breaker.py checks them):

    - ``failure_threshold`` consecutive counted failures open the breaker; fewer, or a
      success between them, do not. Targets are independent.
    - While open, :meth:`allow` raises :class:`~vecron.errors.CircuitOpen` naming the
      target, the cool-down and the time left, and does nothing else.
    - After the cool-down, of any number of concurrent callers (in any process that
      shares the state) exactly one is told it holds the probe; the rest fail fast
      until the probe reports or ``probe_timeout_seconds`` passes.
    - A failure reported by a call that is not the probe while the breaker is open
      changes nothing (it was started before the breaker opened).
    - An outcome of None (the call never reached the target) changes no count; a
      probe that reports it gives its turn back, so the next caller probes.
    - A target's state is forgotten ``forget_after_seconds`` after its last failure
      (at least one cool-down plus one probe timeout): memory stays bounded, and
      failures further apart than that are not consecutive.
    - :meth:`record` never raises. An implementation whose store cannot be reached
      fails open: :meth:`allow` lets calls through and a warning is logged, so a
      breaker outage never stops steps.
    """

    async def allow(self, target: str) -> bool:
        """Let a call to ``target`` go ahead, or raise ``CircuitOpen``.

        Returns True when this call is the half-open probe: it must then report its
        outcome with ``record(…, probe=True)``.
        """
        ...

    async def record(self, target: str, *, ok: bool | None, probe: bool = False) -> None:
        """Report a call's outcome: True when the target answered, False for a failure
        that counts, None when the call never reached it (a local error). ``probe`` is
        what :meth:`allow` returned."""
        ...

    async def states(self) -> dict[str, BreakerStatus]:
        """Every target with a state (failures, open or half-open), for metrics.
        A target missing here is closed with no failures."""
        ...

    async def close(self) -> None:
        """Release what the breaker opened (not a client it was handed)."""
        ...

    def describe(self) -> str:
        """Where the states live, for logs (no credentials)."""
        ...


def check_arguments(
    *,
    failure_threshold: int,
    cooldown_seconds: float,
    probe_timeout_seconds: float,
    forget_after_seconds: float,
) -> None:
    """Refuse thresholds that cannot mean anything."""
    if failure_threshold < 1:
        raise ValueError(f"failure_threshold must be at least 1, not {failure_threshold}")
    for name, value in (
        ("cooldown_seconds", cooldown_seconds),
        ("probe_timeout_seconds", probe_timeout_seconds),
        ("forget_after_seconds", forget_after_seconds),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be positive, not {value}")


def network_target(scheme: str, host: str, port: int) -> str:
    """``scheme://host:port``: the target of a network service (no user, no path)."""
    host = host.lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme.lower()}://{host}:{port}"


class BreakerCall:
    """One call through :func:`guarded`: :meth:`failed` marks a failure that counts,
    :meth:`unreached` a call that never reached the target (a failure wins)."""

    __slots__ = ("outcome", "probe")

    def __init__(self, *, probe: bool) -> None:
        self.probe = probe
        self.outcome: bool | None = True

    def failed(self) -> None:
        self.outcome = False

    def unreached(self) -> None:
        if self.outcome is not False:
            self.outcome = None


@asynccontextmanager
async def guarded(breaker: CircuitBreaker | None, target: str) -> AsyncIterator[BreakerCall]:
    """Ask ``breaker`` before calling ``target``, then report how the call went.

    Raises :class:`~vecron.errors.CircuitOpen` on entry when the breaker is open. On
    exit the outcome is reported: a failure when the block called
    :meth:`BreakerCall.failed`, nothing when it called :meth:`BreakerCall.unreached`,
    else a success (an exception that was not marked is the target answering). A
    cancelled block reports nothing: its probe,
    if it held one, is freed by the probe timeout. With ``breaker`` None, nothing is
    asked or reported.
    """
    if breaker is None:
        yield BreakerCall(probe=False)
        return
    call = BreakerCall(probe=await breaker.allow(target))
    try:
        yield call
    except asyncio.CancelledError:
        raise
    except BaseException:
        await breaker.record(target, ok=call.outcome, probe=call.probe)
        raise
    await breaker.record(target, ok=call.outcome, probe=call.probe)
