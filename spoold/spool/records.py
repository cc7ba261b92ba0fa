"""The plain records a worker hands back and the manifest keeps: artifacts, fetches,
usage and a PDF's parts.

Standard-library frozen dataclasses: they pickle cheaply across the worker pipe, and the
manifest's pydantic models validate them as they are (`__pydantic_config__`; the field
docstrings become the JSON Schema's descriptions). One type per record, from the
converter that makes it to manifest.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

_STRICT: dict[str, object] = {"extra": "forbid", "use_attribute_docstrings": True}


def _strict(**minimums: int) -> dict[str, object]:
    """The pydantic config of a record; `minimums` go into the JSON Schema (the records
    are written by spoold itself, so they are documented, not checked, on the way in)."""

    def extra(schema: dict[str, Any]) -> None:
        for name, low in minimums.items():
            schema["properties"][name]["minimum"] = low

    return {**_STRICT, "json_schema_extra": extra}


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """One file a job produced."""

    __pydantic_config__: ClassVar[dict[str, object]] = _strict(size=0)

    name: str
    path: str
    """relative to the job folder"""
    media_type: str
    size: int
    sha256: str
    pages: int | None = None
    layout: str | None = None
    """PDF: the theme it was laid out with, or the document's own styles, and why"""
    attempt: int | None = None
    """the attempt that produced it"""
    target: str


@dataclass(kw_only=True)
class Fetch:
    """One resource the converter asked for (filled in as the fetch goes)."""

    __pydantic_config__: ClassVar[dict[str, object]] = _STRICT

    url: str
    allowed: bool
    bytes: int = 0
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class Usage:
    """What one attempt cost its worker processes."""

    __pydantic_config__: ClassVar[dict[str, object]] = _STRICT

    cpu_s: float | None = None
    """CPU seconds of the worker process for this attempt (absent when the worker was killed before it could say: a timeout)"""
    peak_rss_mb: float | None = None
    """peak resident memory of the worker process (as cpu_s)"""
    wall_s: float
    """seconds from the start of the attempt to its end"""


@dataclass(frozen=True, kw_only=True)
class PartsInfo:
    """A PDF laid out in parts (docs/conversion.md "Big documents")."""

    __pydantic_config__: ClassVar[dict[str, object]] = _strict(count=2, relaid=0, reused=0)

    count: int
    """parts the document was laid out in"""
    pages: list[int]
    """pages of each part, in document order"""
    cpu_s: list[float] = field(default_factory=list)
    """CPU seconds of each part's layout, in document order"""
    relaid: int = 0
    """parts laid out again because their worker died"""
    reused: int = 0
    """parts an earlier attempt of the job had laid out (kept across a recovery, requeue or retry), not laid out again; their cpu_s is 0"""
