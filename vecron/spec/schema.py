"""The JSON Schema of a job file, generated from :class:`vecron.spec.models.Job`.

The generated file, ``schemas/job.schema.json``, is for tools other than vecron:
editors (yaml-language-server), check-jsonschema, IDE completion. A test fails when
the committed file differs from what this module generates.
"""

from __future__ import annotations

import json
from typing import Any

from vecron.spec.models import Job

SCHEMA_ID = "urn:vecron:schema:job:v1"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def job_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one job file."""
    schema = Job.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": DIALECT, "$id": SCHEMA_ID, **schema}


def job_schema_text() -> str:
    """The schema as the text committed in ``schemas/job.schema.json``."""
    return json.dumps(job_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
