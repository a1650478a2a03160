"""The JSON bodies every route of the server answers with, errors included.

An error is ``{"error": CODE, "message": TEXT}`` with its HTTP status: ``CODE`` is a
stable, machine-readable word (``bad_signature``, ``rate_limited``…), ``TEXT`` says
what was wrong for a person. Neither ever holds a secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Compact UTF-8 JSON (Starlette's JSONResponse, without its pretty separators)."""
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=str)
    return Response(
        body.encode(), status_code=status_code, headers=headers, media_type="application/json"
    )


def error_response(
    status_code: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """An error answer: ``{"error": code, "message": message}``."""
    return json_response({"error": code, "message": message}, status_code, headers)
