"""The job builder's pages: the form, its live preview, download, import and export.

Every action is a plain form ``POST /ui/builder`` with an ``action`` (so the builder
works without JavaScript); htmx posts the same form to ``/ui/builder/preview`` as the
user types, and re-renders the form when a step is added, removed or changes type.
The builder writes nothing to the stores: Git stays the source of truth, and the file
it produces is what gets committed.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from vecron.dashboard.builder import DEFAULT_FORM, Form, step_indices, visible
from vecron.dashboard.builder_fields import SCHEDULE_TYPES, STEP_FIELDS, STEP_TYPES
from vecron.dashboard.builder_io import (
    build,
    edit_steps,
    export_json,
    form_from_document,
    references,
)
from vecron.dashboard.render import htmx
from vecron.dashboard.web import Visit
from vecron.errors import DocumentSyntaxError
from vecron.spec.loader import load_text

_NOT_FORM = frozenset({"csrf", "action", "format", "import_text"})


def _form(visit: Visit) -> Form:
    return {k: v for k, v in visit.form.items() if k not in _NOT_FORM}


async def _globals(visit: Visit) -> dict[str, Any]:
    stored = await visit.state.stores.database.get_variables()
    return {name: record.value for name, record in stored.items()}


async def _render(
    visit: Visit, form: Form, *, fmt: str, message: str | None = None, status_code: int = 200
) -> Response:
    built = build(form, fmt=fmt, global_variables=await _globals(visit))
    steps = []
    for index in step_indices(form):
        prefix = f"step-{index}-"
        values = {k[len(prefix) :]: v for k, v in form.items() if k.startswith(prefix)}
        kind = values.get("type", "http")
        fields = [spec for spec in STEP_FIELDS.get(kind, []) if visible(spec, values)]
        steps.append(
            {
                "index": index,
                "values": values,
                "fields": fields,
                "references": references(form, index),
            }
        )
    partial = htmx(visit.request) and visit.request.url.path.endswith("/preview")
    template = "_builder_preview.html" if partial else "builder.html"
    if htmx(visit.request) and not partial:
        template = "_builder_main.html"
    return visit.page(
        template,
        status_code=status_code,
        nav="builder",
        form=form,
        steps=steps,
        built=built,
        fmt=built.format,
        message=message,
        schedule_types=SCHEDULE_TYPES,
        step_types=STEP_TYPES,
    )


async def builder_page(visit: Visit) -> Response:
    return await _render(visit, dict(DEFAULT_FORM), fmt="yaml")


async def builder_post(visit: Visit) -> Response:
    form = _form(visit)
    action = visit.form.get("action", "preview")
    fmt = visit.form.get("format", "yaml")
    if action in ("download", "export"):
        built = build(form, fmt=fmt, global_variables=await _globals(visit))
        if action == "export":
            text = export_json(built.document, exported_by=visit.viewer.name)
            filename = f"job-{built.document.get('name') or 'job'}.json"
        else:
            text, filename = built.text, built.filename
        media = "application/json" if filename.endswith(".json") else "application/yaml"
        return Response(
            text.encode(),
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{_safe(filename)}"'},
        )
    if action != "preview":
        form = edit_steps(form, action)
    return await _render(visit, form, fmt=fmt)


async def builder_preview(visit: Visit) -> Response:
    return await _render(visit, _form(visit), fmt=visit.form.get("format", "yaml"))


async def builder_import(visit: Visit) -> Response:
    """A job file (JSON, the export format, or YAML) into the form."""
    text = visit.form.get("import_text", "")
    try:
        data = json.loads(text) if text.lstrip()[:1] in ("{", "[") else load_text(text)
    except (ValueError, DocumentSyntaxError) as exc:
        message = f"the file could not be read: {getattr(exc, 'message', exc)}"
        return await _render(
            visit, dict(DEFAULT_FORM), fmt="yaml", message=message, status_code=400
        )
    form, problems = form_from_document(data)
    if problems:
        return await _render(
            visit, dict(DEFAULT_FORM), fmt="yaml", message="; ".join(problems), status_code=400
        )
    return await _render(visit, form, fmt="json", message="imported")


def _safe(filename: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in filename)[:120]
