"""The job-definition language as pydantic models.

These models are the contract of a job file (DESIGN.md, "Job definition"): the JSON
Schema in ``schemas/job.schema.json`` is generated from them, and every job that
vecron stores or runs has passed through them. They check structure and everything
that can be checked on one value alone (cron syntax, timezones, durations, condition
syntax); checks that need the whole file or several files (references between steps,
unique names, variables) live in :mod:`vecron.spec.validate`.

Models are strict (``"30"`` is not an integer, ``"yes"`` is not a boolean) so that the
models and the JSON Schema accept the same documents, frozen, and reject unknown keys
so that a typo is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from vecron.spec import schedules
from vecron.spec.schedules import MAX_INTERVAL_SECONDS

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
VARIABLE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DURATION_PATTERN = r"^\s*([0-9]+(\.[0-9]+)?\s*(ms|s|m|h|d)\s*)+$|^\s*[0-9]+(\.[0-9]+)?\s*$"

JobName = Annotated[str, StringConstraints(pattern=NAME_PATTERN, min_length=1, max_length=128)]
StepId = Annotated[str, StringConstraints(pattern=STEP_ID_PATTERN, min_length=1, max_length=64)]
VariableName = Annotated[str, StringConstraints(pattern=VARIABLE_NAME_PATTERN, max_length=128)]


INSTANT_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})?)?$"
)
_INSTANT = re.compile(INSTANT_PATTERN)


def _instant_input(value: Any) -> Any:
    # Lax datetime parsing would also take Unix timestamps, which the schema does not.
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):  # an unquoted YAML date: midnight
        return datetime.combine(value, time())
    if isinstance(value, str) and _INSTANT.match(value):
        return value
    raise ValueError(
        f"must be an ISO-8601 date-time such as 2027-12-31T02:00:00+07:00, got {value!r}"
    )


# Datetimes come as YAML timestamps or as ISO-8601 text (JSON has no datetime type). The
# offset may be left out: the instant is then read in the schedule's timezone.
Instant = Annotated[
    datetime,
    Strict(False),
    BeforeValidator(_instant_input),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": INSTANT_PATTERN,
            "description": "ISO-8601 date-time; without an offset, in the schedule's timezone.",
        }
    ),
]
Scalar = str | int | float | bool | None


def _whole_number(value: Any) -> Any:
    # JSON Schema's "integer" takes 30.0 too (it is the number 30); so does the model.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: A duration: seconds as a number, or text such as ``30s``, ``5m``, ``1h30m``. Checked by
#: :func:`vecron.spec.schedules.parse_duration`, whose grammar the pattern mirrors.
Duration = Annotated[
    float | str,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 1, "maximum": MAX_INTERVAL_SECONDS},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "description": "Seconds as a number, or text such as 30s, 5m, 1h, 1h30m, 1d.",
        }
    ),
]
PositiveInt = Annotated[int, Field(gt=0), BeforeValidator(_whole_number)]
NonNegativeInt = Annotated[int, Field(ge=0), BeforeValidator(_whole_number)]


def _closed_map(pattern: str) -> dict[str, Any]:
    # patternProperties alone would let the JSON Schema accept keys the model rejects.
    return {
        "additionalProperties": False,
        "propertyNames": {"pattern": pattern, "maxLength": 128},
    }


class Model(BaseModel):
    """Base of every definition model: strict, frozen, no unknown keys."""

    model_config = ConfigDict(
        strict=True,
        frozen=True,
        extra="forbid",
        use_enum_values=True,
    )


# --- schedules ---------------------------------------------------------------------


class _ScheduleBase(Model):
    timezone: str = Field(
        default=schedules.DEFAULT_TIMEZONE,
        description="IANA timezone the schedule is read in.",
    )
    start_at: Instant | None = Field(
        default=None, description="No fire before this instant (naive: in `timezone`)."
    )
    end_at: Instant | None = Field(
        default=None, description="No fire after this instant (naive: in `timezone`)."
    )
    misfire: Literal["run_once", "skip"] = Field(
        default="run_once",
        description="After downtime: one catch-up run within the grace window, or none.",
    )
    misfire_grace_seconds: PositiveInt = Field(
        default=3600, description="How late a missed fire may still be caught up."
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        schedules.zone(value)
        return value

    @model_validator(mode="after")
    def _window(self) -> _ScheduleBase:
        if self.start_at is not None and self.end_at is not None:
            tz = schedules.zone(self.timezone)
            if schedules.aware(self.end_at, tz) <= schedules.aware(self.start_at, tz):
                raise ValueError("end_at must be after start_at")
        return self


class CronSchedule(_ScheduleBase):
    """Quartz cron (6 or 7 fields, seconds first) or Unix cron (5 fields)."""

    type: Literal["cron"]
    expression: str = Field(examples=["0 0 2 ? * MON-FRI", "*/5 * * * *"])

    @field_validator("expression")
    @classmethod
    def _parses(cls, value: str) -> str:
        schedules.parse_cron(value)
        return value


class _IntervalSchedule(_ScheduleBase):
    interval: Duration

    @field_validator("interval")
    @classmethod
    def _in_range(cls, value: float | str) -> float | str:
        schedules.interval_seconds(value)
        return value


class FixedRateSchedule(_IntervalSchedule):
    """Fires every `interval`, counted from the schedule's start."""

    type: Literal["fixed_rate"]


class FixedDelaySchedule(_IntervalSchedule):
    """Fires `interval` after the previous run completed."""

    type: Literal["fixed_delay"]


class OneTimeSchedule(_ScheduleBase):
    """Fires once, at `at`."""

    type: Literal["one_time"]
    at: Instant = Field(description="The instant to fire at (naive: in `timezone`).")


Schedule = Annotated[
    CronSchedule | FixedRateSchedule | FixedDelaySchedule | OneTimeSchedule,
    Field(discriminator="type"),
]

# --- triggers ----------------------------------------------------------------------


SignatureScheme = Literal["vecron", "github"]


class WebhookTrigger(Model):
    enabled: bool = True
    secret: str | None = Field(
        default=None,
        description="HMAC secret, as ${secret:NAME}; generated at first sync when absent.",
    )
    rate_limit: PositiveInt | None = Field(
        default=60, description="Requests per minute; null for no limit."
    )
    schemes: list[SignatureScheme] = Field(
        default_factory=lambda: list[SignatureScheme](["vecron"]),
        min_length=1,
        description="Accepted signature schemes: vecron (timestamped) and/or github.",
    )
    headers: list[str] = Field(
        default_factory=list,
        description="Request headers copied into webhook.headers of the Job Context.",
    )


class Triggers(Model):
    scheduled: bool | None = Field(
        default=None, description="Run on the schedule; defaults to true when there is one."
    )
    manual: bool = True
    webhook: WebhookTrigger | None = None


# --- step configs ------------------------------------------------------------------


class BasicAuth(Model):
    type: Literal["basic"]
    username: str
    password: str


class BearerAuth(Model):
    type: Literal["bearer"]
    token: str


class OAuth2Auth(Model):
    type: Literal["oauth2"]
    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None


HttpAuth = Annotated[BasicAuth | BearerAuth | OAuth2Auth, Field(discriminator="type")]


class HttpConfig(Model):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Scalar] = Field(default_factory=dict)
    body: str | dict[str, Any] | list[Any] | None = Field(
        default=None, description="A string is sent as is; an object or list as JSON."
    )
    auth: HttpAuth | None = None
    timeout_seconds: Annotated[float, Field(gt=0)] = 30
    expected_status: (
        list[Annotated[int, Field(ge=100, le=599), BeforeValidator(_whole_number)]] | None
    ) = Field(default=None, description="Accepted status codes; any 2xx when absent.")
    max_response_bytes: PositiveInt = Field(default=10 * 1024 * 1024)
    follow_redirects: bool = True
    verify_tls: bool = True


class DatabaseConfig(Model):
    database_type: Literal["postgresql", "mysql", "mariadb", "oracle", "sqlite"]
    connection_string: str
    query: str
    parameters: list[Any] | dict[str, Any] | None = None
    timeout_seconds: Annotated[float, Field(gt=0)] = 60
    max_rows: PositiveInt = 10_000


class ColumnMapping(Model):
    type: Literal["column_mapping"]
    from_: str = Field(alias="from")
    to: str


class TypeConversion(Model):
    type: Literal["type_conversion"]
    column: str
    target_type: Literal["string", "integer", "decimal", "float", "boolean", "date", "datetime"]
    format: str | None = Field(
        default=None, description="strftime format for date and datetime text."
    )
    scale: Annotated[int, Field(ge=0, le=38), BeforeValidator(_whole_number)] | None = Field(
        default=None,
        description="Digits after the point of a decimal (38 digits in all); 9 when absent.",
    )


class Filter(Model):
    type: Literal["filter"]
    condition: str

    @field_validator("condition")
    @classmethod
    def _parses(cls, value: str) -> str:
        from vecron.spec.conditions import parse_condition

        parse_condition(value, mode="filter")
        return value


class Select(Model):
    type: Literal["select"]
    columns: list[str] = Field(min_length=1)


Transformation = Annotated[
    ColumnMapping | TypeConversion | Filter | Select, Field(discriminator="type")
]
FileFormat = Literal["csv", "excel", "parquet"]
Delimiter = Annotated[str, StringConstraints(min_length=1, max_length=1)]


class FileReadConfig(Model):
    operation: Literal["read"]
    format: FileFormat
    source_path: str
    sheet: str | NonNegativeInt | None = Field(
        default=None, description="Sheet name or 0-based index; all sheets when absent."
    )
    delimiter: Delimiter = ","
    encoding: str = "utf-8"
    has_header: bool = True
    transformations: list[Transformation] = Field(default_factory=list)
    on_error: Literal["fail", "skip_row"] = "fail"
    max_inline_rows: NonNegativeInt = Field(
        default=1000, description="Rows kept in the context's `data`; larger results stay files."
    )


class FileWriteConfig(Model):
    operation: Literal["write"]
    format: FileFormat
    destination_path: str
    data_source: str = Field(description="A reference to rows or to a file output.")
    sheet_name: str | None = None
    delimiter: Delimiter = ","
    encoding: str = "utf-8"
    has_header: bool = Field(default=True, description="Write the column names as the first row.")
    transformations: list[Transformation] = Field(default_factory=list)
    on_error: Literal["fail", "skip_row"] = "fail"
    max_inline_rows: NonNegativeInt = Field(
        default=1000, description="Rows kept in the context's `data`; larger results stay files."
    )


FileConfig = Annotated[FileReadConfig | FileWriteConfig, Field(discriminator="operation")]


class SftpPasswordAuth(Model):
    type: Literal["password"]
    username: str
    password: str


class SftpKeyAuth(Model):
    type: Literal["ssh_key"]
    username: str
    private_key: str | None = None
    private_key_path: str | None = None
    passphrase: str | None = None

    @model_validator(mode="after")
    def _one_key(self) -> SftpKeyAuth:
        if (self.private_key is None) == (self.private_key_path is None):
            raise ValueError("give exactly one of private_key and private_key_path")
        return self


SftpAuth = Annotated[SftpPasswordAuth | SftpKeyAuth, Field(discriminator="type")]


class _SftpBase(Model):
    host: str
    port: Annotated[int, Field(ge=1, le=65535), BeforeValidator(_whole_number)] = 22
    auth: SftpAuth
    remote_path: str = Field(
        description="Download: a file, a directory, or a wildcard in the last segment. "
        "Upload: a file, or a directory when it ends in /."
    )
    host_key: str | None = Field(
        default=None,
        description="The server's key: known_hosts lines, public keys or SHA256: fingerprints.",
    )
    known_hosts_path: str | None = Field(
        default=None, description="A known_hosts file on the worker to check the host key with."
    )
    verify_host_key: bool = Field(
        default=True, description="false skips the host key check (and logs a warning)."
    )
    timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=30, description="Connecting, logging in, and the longest wait for the server."
    )


class SftpDownloadConfig(_SftpBase):
    operation: Literal["download"]
    recursive: bool = Field(default=False, description="Walk subdirectories too.")
    on_no_match: Literal["fail", "succeed"] = Field(
        default="fail", description="When the wildcard matches no file."
    )


class SftpUploadConfig(_SftpBase):
    operation: Literal["upload"]
    source_path: str = Field(
        description="An object path, or a reference to a file entry or a list of them."
    )
    create_directories: bool = Field(
        default=False, description="Create missing remote directories."
    )
    overwrite: bool = Field(default=True, description="false refuses to replace a remote file.")


SftpConfig = Annotated[SftpDownloadConfig | SftpUploadConfig, Field(discriminator="operation")]

# --- steps -------------------------------------------------------------------------


class _StepBase(Model):
    id: StepId
    name: str | None = None
    when: str | None = Field(
        default=None, description="A condition; the step is skipped when it is false."
    )
    timeout_seconds: PositiveInt | None = Field(
        default=None, description="Wall-clock limit for the whole step."
    )
    max_retries: Annotated[int, Field(ge=0, le=20), BeforeValidator(_whole_number)] | None = Field(
        default=None, description="Retries of this step; the job's max_retries when absent."
    )
    continue_on_error: bool = False

    @field_validator("when")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            from vecron.spec.conditions import parse_condition

            parse_condition(value, mode="when")
        return value


class HttpStep(_StepBase):
    type: Literal["http"]
    config: HttpConfig


class DatabaseStep(_StepBase):
    type: Literal["database"]
    config: DatabaseConfig


class FileProcessingStep(_StepBase):
    type: Literal["file_processing"]
    config: FileConfig


class SftpStep(_StepBase):
    type: Literal["sftp"]
    config: SftpConfig


Step = Annotated[
    HttpStep | DatabaseStep | FileProcessingStep | SftpStep, Field(discriminator="type")
]

# --- the job -----------------------------------------------------------------------


class Job(Model):
    """One job: what runs, when, and on which triggers."""

    model_config = ConfigDict(
        title="vecron job",
        json_schema_extra={"description": "A vecron job definition (one job per file)."},
    )

    schema_: str | None = Field(
        default=None, alias="$schema", description="For editors; ignored by vecron."
    )
    name: JobName = Field(description="Unique in the repository.")
    description: str = ""
    enabled: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    schedule: Schedule | None = None
    triggers: Triggers = Field(default_factory=Triggers)
    allow_concurrent: bool = False
    timeout_seconds: PositiveInt = Field(default=3600, description="Limit for a whole run.")
    max_retries: Annotated[int, Field(ge=0, le=20), BeforeValidator(_whole_number)] = 0
    variables: Annotated[
        dict[VariableName, Scalar],
        Field(json_schema_extra=_closed_map(VARIABLE_NAME_PATTERN)),
    ] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)

    @property
    def scheduled(self) -> bool:
        """Whether the schedule fires: ``triggers.scheduled``, defaulting to having one."""
        if self.triggers.scheduled is None:
            return self.schedule is not None
        return self.triggers.scheduled and self.schedule is not None

    @property
    def webhook_enabled(self) -> bool:
        return self.triggers.webhook is not None and self.triggers.webhook.enabled

    @model_validator(mode="after")
    def _scheduled_needs_schedule(self) -> Job:
        if self.triggers.scheduled and self.schedule is None:
            raise ValueError("triggers.scheduled is true but the job has no schedule")
        return self


def dump_definition(job: Job) -> dict[str, Any]:
    """The job as plain JSON data, with defaults filled in (what the stores keep)."""
    return job.model_dump(mode="json", by_alias=True, exclude={"schema_"})
