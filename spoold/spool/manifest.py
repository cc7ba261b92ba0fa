"""manifest.json: the record every published job folder carries (SPEC section 4).

The JSON Schema in docs/manifest.schema.json is generated from `Manifest`
(`python -m spoold.spool.manifest > docs/manifest.schema.json`); a test fails when it is stale.
Paths are relative to the job folder; no absolute path, traceback or secret goes in.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ErrorInfo
from .job import Attempt, JobStatus
from .records import Artifact, Fetch, PartsInfo

SCHEMA_VERSION = 1


class InputInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the original entry name as dropped")
    media_type: str
    size: int = Field(ge=0, description="bytes of the main document")
    sha256: str


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    job_id: str
    name: str
    spool: str = Field(description="the spool's folder name")
    route: str | None = None
    submitted_by: str | None = Field(
        default=None,
        description="who submitted it, as job.json said (the HTTP gateway's token name)",
    )
    status: JobStatus
    input: InputInfo | None = Field(
        default=None, description="absent only when the input could not be read at all"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="the effective options")
    artifacts: list[Artifact] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    error: ErrorInfo | None = None
    warnings: list[str] = Field(default_factory=list)
    fetches: list[Fetch] = Field(default_factory=list)
    duplicate_of: str | None = Field(default=None, description="job id of the reused result")
    parts: PartsInfo | None = Field(
        default=None,
        description="the PDF was laid out in parts; the attempt's usage sums them "
        "(peak_rss_mb: the largest process)",
    )
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per stage")
    versions: dict[str, str] = Field(default_factory=dict)
    created_at: str = Field(description="UTC ISO 8601, when the job was first seen")
    finished_at: str


def schema_json() -> str:
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "spoold job manifest"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(schema_json())
