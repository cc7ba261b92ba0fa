"""manifest.json: the record every published job folder carries (SPEC section 4).

The JSON Schema in docs/manifest.schema.json is generated from `Manifest`
(`python -m spoold.manifest > docs/manifest.schema.json`); a test fails when it is stale.
Paths are relative to the job folder; no absolute path, traceback or secret goes in.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .job import Attempt, ErrorInfo, JobStatus

SCHEMA_VERSION = 1


class InputInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the original entry name as dropped")
    media_type: str
    size: int = Field(ge=0, description="bytes of the main document")
    sha256: str


class Artifact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    path: str = Field(description="relative to the job folder")
    media_type: str
    size: int = Field(ge=0)
    sha256: str
    pages: int | None = None
    layout: str | None = Field(
        default=None,
        description="PDF: the theme it was laid out with, or the document's own styles, and why",
    )
    attempt: int | None = Field(default=None, description="the attempt that produced it")
    target: str


class FetchRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    allowed: bool
    bytes: int = 0
    reason: str | None = None


class PartsInfo(BaseModel):
    """A PDF laid out in parts (docs/conversion.md "Big documents")."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=2, description="parts the document was laid out in")
    pages: list[int] = Field(description="pages of each part, in document order")
    cpu_s: list[float] = Field(
        default_factory=list, description="CPU seconds of each part's layout, in document order"
    )
    relaid: int = Field(
        default=0, ge=0, description="parts laid out again because their worker died"
    )


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    job_id: str
    name: str
    spool: str = Field(description="the spool's folder name")
    route: str | None = None
    status: JobStatus
    input: InputInfo | None = Field(
        default=None, description="absent only when the input could not be read at all"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="the effective options")
    artifacts: list[Artifact] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    error: ErrorInfo | None = None
    warnings: list[str] = Field(default_factory=list)
    fetches: list[FetchRecord] = Field(default_factory=list)
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
