"""The formats a job may name: source types by file suffix, targets, media types, and
the artifact file names.

The daemon decides a job's source type from this table before any worker sees it, the
manifest's media types come from it, and the converters register under its names. A
plugin (SPOOLD_PLUGINS) may add suffixes for its own source types: the daemon imports
plugins too (`load_plugins`), so intake knows them.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

PLUGINS_ENV = "SPOOLD_PLUGINS"
SOURCE_TYPES = ("md", "html", "pdf")
TARGETS = ("pdf", "docx", "html")

# File name suffixes that decide a document's source type.
SUFFIX_TYPES: dict[str, str] = {
    ".md": "md",
    ".markdown": "md",
    ".mdown": "md",
    ".mkd": "md",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
}

# Source types whose small files convert in milliseconds: a free worker may take
# several such jobs in one round trip (daemon/batch.py). A plugin may add its own.
LIGHT_SOURCES: set[str] = {"md", "html"}

MEDIA_TYPES: dict[str, str] = {
    "md": "text/markdown",
    "html": "text/html",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}

# A target's artifact is STEM.EXTENSION.
EXTENSIONS = {"pdf": "pdf", "docx": "docx", "html": "html"}


def source_type_of(path: Path) -> str | None:
    return SUFFIX_TYPES.get(path.suffix.lower())


def media_type_of(path: Path) -> str:
    """The media type of a document by its suffix (application/octet-stream if unknown)."""
    return MEDIA_TYPES.get(SUFFIX_TYPES.get(path.suffix.lower(), ""), "application/octet-stream")


def artifact_name(stem: str, target: str) -> str:
    return f"{stem}.{EXTENSIONS[target]}"


def load_plugins() -> None:
    """Import the modules named in SPOOLD_PLUGINS (comma-separated).

    A plugin registers converters (and may add suffixes to SUFFIX_TYPES). The daemon
    imports plugins too, so intake knows their source types; the test suite uses this
    for converters that hang, spin or crash on purpose.
    """
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        importlib.import_module(name)
