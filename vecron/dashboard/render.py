"""Jinja2 templates of the dashboard and the small filters they use.

Pages are whole HTML documents that work without JavaScript; htmx requests get the
same templates' fragments. Every page sets security headers: no framing, no sniffing,
and a Content Security Policy that allows only the dashboard's own scripts and styles.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from vecron import __version__
from vecron.dashboard.session import Viewer
from vecron.spec import schedules

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
PREFIX = "/ui"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def when(moment: datetime | None, tz: tzinfo | None = None) -> str:
    """An instant as ``2026-11-29 09:00:00 +07`` in ``tz`` (UTC, with ``Z``, without one)."""
    if moment is None:
        return "—"
    if tz is None:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    local = moment.astimezone(tz)
    offset = local.strftime("%z")
    short = offset[:3] if offset.endswith("00") else f"{offset[:3]}:{offset[3:]}"
    return f"{local.strftime('%Y-%m-%d %H:%M:%S')} {short}"


def iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def duration(seconds: float | None) -> str:
    """``0.42 s``, ``12 s``, ``3 min 4 s``, ``2 h 5 min``; ``—`` for none."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.2f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def timezone(name: str) -> tzinfo:
    """The zone ``name``, or UTC when there is no such zone (the page says why)."""
    try:
        return schedules.zone(name)
    except ValueError:
        return UTC


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.0f}%"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(when=when, iso=iso, duration=duration, percent=percent, tz=timezone)
    env.globals.update(prefix=PREFIX, version=__version__)
    return env


ENVIRONMENT = _environment()


def htmx(request: Request) -> bool:
    """Whether htmx sent the request (it then wants a fragment, not a page)."""
    return request.headers.get("hx-request") == "true"


def render(template: str, **context: Any) -> str:
    return ENVIRONMENT.get_template(template).render(**context)


def page(
    request: Request,
    template: str,
    viewer: Viewer | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered for ``viewer`` (None on the login page)."""
    context.setdefault("nav", "")
    body = render(template, request=request, viewer=viewer, **context)
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)
