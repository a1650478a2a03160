"""The fields of the job builder's form: per step type, how each maps to ``config``.

A field's ``name`` is its form suffix (``step-0-url``), its ``path`` where its value
goes in the step's ``config``, and ``parse`` how its text becomes a value. ``when``
shows a field only for some values of another (an auth type, an operation).
"""

from __future__ import annotations

from dataclasses import dataclass

from vecron.spec.contextkeys import EXECUTION_KEYS, JOB_KEYS


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    name: str
    label: str
    path: tuple[str, ...]
    kind: str = "text"  # text, textarea, select, number
    options: tuple[str, ...] = ()
    parse: str = "text"  # text, number, colon_map, eq_map, json_or_text, yaml, status_list, bool
    when: tuple[str, tuple[str, ...]] | None = None
    placeholder: str = ""
    reference: bool = False  # a text field where a reference or variable is typical


BOOL_OPTIONS = ("", "true", "false")


def _auth(names: tuple[str, ...], *fields: tuple[str, str]) -> list[FieldSpec]:
    return [
        FieldSpec(
            name=f"auth_{key}",
            label=label,
            path=("auth", key),
            when=("auth_type", names),
            placeholder="${secret:NAME}" if key in SECRET_KEYS else "",
            reference=True,
        )
        for key, label in fields
    ]


SECRET_KEYS = frozenset({"password", "token", "client_secret", "passphrase"})

HTTP = [
    FieldSpec(name="url", label="URL", path=("url",), placeholder="https://…", reference=True),
    FieldSpec(
        name="method",
        label="Method",
        path=("method",),
        kind="select",
        options=("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"),
    ),
    FieldSpec(
        name="headers",
        label="Headers (Name: value, one a line)",
        path=("headers",),
        kind="textarea",
        parse="colon_map",
        reference=True,
    ),
    FieldSpec(
        name="query",
        label="Query parameters (name=value, one a line)",
        path=("query",),
        kind="textarea",
        parse="eq_map",
        reference=True,
    ),
    FieldSpec(
        name="body",
        label="Body (JSON is sent as JSON, other text as is)",
        path=("body",),
        kind="textarea",
        parse="json_or_text",
        reference=True,
    ),
    FieldSpec(
        name="auth_type",
        label="Auth",
        path=("auth", "type"),
        kind="select",
        options=("", "basic", "bearer", "oauth2"),
    ),
    *_auth(("basic",), ("username", "Username"), ("password", "Password")),
    *_auth(("bearer",), ("token", "Token")),
    *_auth(
        ("oauth2",),
        ("token_url", "Token URL"),
        ("client_id", "Client id"),
        ("client_secret", "Client secret"),
        ("scope", "Scope"),
    ),
    FieldSpec(
        name="timeout_seconds",
        label="Timeout (s)",
        path=("timeout_seconds",),
        kind="number",
        parse="number",
    ),
    FieldSpec(
        name="expected_status",
        label="Expected status (e.g. 200, 201; any 2xx when empty)",
        path=("expected_status",),
        parse="status_list",
    ),
]

DATABASE = [
    FieldSpec(
        name="database_type",
        label="Database",
        path=("database_type",),
        kind="select",
        options=("postgresql", "mysql", "mariadb", "oracle", "sqlite"),
    ),
    FieldSpec(
        name="connection_string",
        label="Connection string",
        path=("connection_string",),
        placeholder="postgresql://user:${secret:DB_PASSWORD}@host/db",
        reference=True,
    ),
    FieldSpec(name="query", label="SQL", path=("query",), kind="textarea", reference=True),
    FieldSpec(
        name="parameters",
        label="Parameters (YAML or JSON list or map)",
        path=("parameters",),
        kind="textarea",
        parse="yaml",
        reference=True,
    ),
    FieldSpec(name="max_rows", label="Max rows", path=("max_rows",), kind="number", parse="number"),
    FieldSpec(
        name="timeout_seconds",
        label="Timeout (s)",
        path=("timeout_seconds",),
        kind="number",
        parse="number",
    ),
]

_READ, _WRITE = ("operation", ("read",)), ("operation", ("write",))
FILE = [
    FieldSpec(
        name="operation",
        label="Operation",
        path=("operation",),
        kind="select",
        options=("read", "write"),
    ),
    FieldSpec(
        name="format",
        label="Format",
        path=("format",),
        kind="select",
        options=("csv", "excel", "parquet"),
    ),
    FieldSpec(
        name="source_path", label="Source path", path=("source_path",), when=_READ, reference=True
    ),
    FieldSpec(name="sheet", label="Sheet (name or index)", path=("sheet",), when=_READ),
    FieldSpec(
        name="destination_path",
        label="Destination path",
        path=("destination_path",),
        when=_WRITE,
        reference=True,
    ),
    FieldSpec(
        name="data_source",
        label="Data source (a reference to rows or a file)",
        path=("data_source",),
        when=_WRITE,
        reference=True,
    ),
    FieldSpec(name="sheet_name", label="Sheet name", path=("sheet_name",), when=_WRITE),
    FieldSpec(name="delimiter", label="Delimiter", path=("delimiter",)),
    FieldSpec(name="encoding", label="Encoding", path=("encoding",)),
    FieldSpec(
        name="has_header",
        label="Header row",
        path=("has_header",),
        kind="select",
        options=BOOL_OPTIONS,
        parse="bool",
    ),
    FieldSpec(
        name="transformations",
        label="Transformations (YAML list)",
        path=("transformations",),
        kind="textarea",
        parse="yaml",
        placeholder='- {type: filter, condition: "amount > 0"}',
    ),
]

_DOWN, _UP = ("operation", ("download",)), ("operation", ("upload",))
SFTP = [
    FieldSpec(
        name="operation",
        label="Operation",
        path=("operation",),
        kind="select",
        options=("download", "upload"),
    ),
    FieldSpec(name="host", label="Host", path=("host",), reference=True),
    FieldSpec(name="port", label="Port", path=("port",), kind="number", parse="number"),
    FieldSpec(
        name="auth_type",
        label="Auth",
        path=("auth", "type"),
        kind="select",
        options=("password", "ssh_key"),
    ),
    *_auth(("password", "ssh_key"), ("username", "Username")),
    *_auth(("password",), ("password", "Password")),
    *_auth(
        ("ssh_key",),
        ("private_key_path", "Private key path"),
        ("passphrase", "Passphrase"),
    ),
    FieldSpec(
        name="remote_path",
        label="Remote path (a wildcard in the last part selects files)",
        path=("remote_path",),
        reference=True,
    ),
    FieldSpec(
        name="source_path", label="Source path", path=("source_path",), when=_UP, reference=True
    ),
    FieldSpec(name="host_key", label="Host key (known_hosts line or SHA256:…)", path=("host_key",)),
    FieldSpec(
        name="verify_host_key",
        label="Verify host key",
        path=("verify_host_key",),
        kind="select",
        options=BOOL_OPTIONS,
        parse="bool",
    ),
    FieldSpec(
        name="recursive",
        label="Recursive",
        path=("recursive",),
        kind="select",
        options=BOOL_OPTIONS,
        parse="bool",
        when=_DOWN,
    ),
    FieldSpec(
        name="create_directories",
        label="Create directories",
        path=("create_directories",),
        kind="select",
        options=BOOL_OPTIONS,
        parse="bool",
        when=_UP,
    ),
]

STEP_FIELDS: dict[str, list[FieldSpec]] = {
    "http": HTTP,
    "database": DATABASE,
    "file_processing": FILE,
    "sftp": SFTP,
}
STEP_TYPES = tuple(STEP_FIELDS)

OUTPUT_REFERENCES: dict[str, tuple[str, ...]] = {
    "http": ("output.status", "output.body", "output.headers", "response.body"),
    "database": ("output.rows", "output.row_count", "output.columns", "output.affected_rows"),
    "file_processing": (
        "output.path",
        "output.files[0].path",
        "output.row_count",
        "output.columns",
        "output.data",
    ),
    "sftp": ("output.files", "output.file_count", "output.files[0].path", "output.remote_path"),
}
"""What each step type's output offers to later steps (DESIGN.md, step outputs)."""

CONTEXT_REFERENCES = (
    *(f"execution.{key}" for key in sorted(EXECUTION_KEYS)),
    *(f"job.{key}" for key in sorted(JOB_KEYS)),
)

SCHEDULE_TYPES = ("none", "cron", "fixed_rate", "fixed_delay", "one_time")
