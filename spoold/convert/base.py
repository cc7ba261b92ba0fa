"""The converter interface: one small protocol, one registry keyed by (source, target).

A converter turns one main document of a job into one artifact. It reads only through
`ConversionContext` (the job folder as sandbox root, and the fetcher for anything the
document refers to), reports its stage for `spoold status`, and raises `JobError` with a
code from spoold.errors for anything a person should see. It knows nothing of claims,
leases or manifests (the formats and records it shares with a job's contract come from
spoold.spool): the worker calls it with paths and writes the results down.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# The job's contract (spoold.spool) names the formats and the fetch record; converters
# register under those names. Re-exported here: plugins add suffixes through this module.
from ..spool.formats import MEDIA_TYPES as MEDIA_TYPES
from ..spool.formats import SOURCE_TYPES as SOURCE_TYPES
from ..spool.formats import SUFFIX_TYPES as SUFFIX_TYPES
from ..spool.formats import TARGETS as TARGETS
from ..spool.formats import source_type_of as source_type_of
from ..spool.records import Fetch as Fetch


@dataclass(frozen=True)
class ConvertOptions:
    """Options a converter may use; all optional, all part of the idempotency key."""

    theme: str = "auto"  # a theme's name, "auto" or "none" (html/authored.py)
    page_size: str = "A4"
    margins: str = "theme"  # CSS lengths for the PDF's @page margin, or the theme's
    metadata: dict[str, Any] = field(default_factory=dict)
    reference_docx: Path | None = None
    # http(s) URL prefixes the fetcher may read besides data: and files in the job folder.
    allow_fetch: tuple[str, ...] = ()
    max_fetch_bytes: int = 50 * 1024 * 1024
    fetch_timeout_s: float = 10.0
    max_image_pixels: int = 50_000_000


def metadata_text(value: Any) -> str:
    """A metadata value (front matter or the `metadata` option) as document text: a list
    such as `author: [Ada, Grace]` reads "Ada, Grace"."""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


@dataclass
class ConversionContext:
    """What a converter may touch: the sandbox root and ways to report back."""

    job_root: Path  # the job's input folder (or the single file's folder): nothing above it is read
    options: ConvertOptions = field(default_factory=ConvertOptions)
    warnings: list[str] = field(default_factory=list)
    fetches: list[Fetch] = field(default_factory=list)
    on_stage: Callable[[str], None] | None = None
    # How the last PDF was laid out ("theme default: ...", "own styles: ..."): the
    # manifest's artifact `layout`.
    layout: str | None = None

    def stage(self, name: str) -> None:
        """Report the current stage (parsing, layout, writing) for `spoold status`."""
        if self.on_stage is not None:
            self.on_stage(name)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


@dataclass
class ConversionResult:
    pages: int | None = None
    layout: str | None = None  # how it was laid out (theme or own styles), and why


class Converter(Protocol):
    """Turns `source` (of `source_type`) into `output` (of `target`)."""

    source_type: str
    target: str

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        """Write the artifact to `output` (the caller picks the path and publishes it)."""
        ...


_REGISTRY: dict[tuple[str, str], Converter] = {}


def register(converter: Converter) -> Converter:
    _REGISTRY[(converter.source_type, converter.target)] = converter
    return converter


def get_converter(source_type: str, target: str) -> Converter | None:
    return _REGISTRY.get((source_type, target))


def routes() -> list[tuple[str, str]]:
    return sorted(_REGISTRY)
