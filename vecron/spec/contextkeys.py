"""The shape of the Job Context that references may read.

The validator checks references against these names and the runtime builds the
context with exactly these keys, so a reference that validates resolves at run time.
"""

from __future__ import annotations

ROOTS = ("steps", "webhook", "execution", "job", "variables")
STEP_ENTRY_KEYS = frozenset({"status", "started_at", "completed_at", "output", "error"})
#: An http step's output is also reachable as ``response``.
HTTP_STEP_EXTRA_KEYS = frozenset({"response"})
WEBHOOK_KEYS = frozenset({"payload", "query_params", "headers", "received_at"})
EXECUTION_KEYS = frozenset(
    {"id", "date", "trigger_source", "attempt", "started_at", "scheduled_at"}
)
JOB_KEYS = frozenset({"id", "name", "description", "labels"})
