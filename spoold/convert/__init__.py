"""Converters behind one small interface (see base.py); HTML is the common form.

Markdown becomes HTML (markdown.py); HTML becomes PDF with WeasyPrint and DOCX with one
python-docx writer; PDF is sanitised or mined for text. `load_converters()` imports
every converter module once per worker process, so each job pays no import cost.

May import: spoold.spool (the formats and records a job's contract names) and
spoold.errors; never the daemon, the worker or anything that knows about claims.
"""

from __future__ import annotations

import importlib
import os

from ..spool.formats import load_plugins
from .base import (
    MEDIA_TYPES,
    SOURCE_TYPES,
    TARGETS,
    ConversionContext,
    ConversionResult,
    Converter,
    ConvertOptions,
    Fetch,
    get_converter,
    register,
    routes,
    source_type_of,
)

# Modules that register converters when imported; order does not matter.
CONVERTER_MODULES = (
    "spoold.convert.markdown",
    "spoold.convert.html.converters",
    "spoold.convert.pdf",
    "spoold.convert.docx",
)

__all__ = [
    "MEDIA_TYPES",
    "SOURCE_TYPES",
    "TARGETS",
    "ConversionContext",
    "ConversionResult",
    "ConvertOptions",
    "Converter",
    "Fetch",
    "get_converter",
    "load_converters",
    "load_plugins",
    "pin_source_date_epoch",
    "register",
    "routes",
    "source_type_of",
]


# The value a process without SOURCE_DATE_EPOCH gets (see pin_source_date_epoch).
FIXED_SOURCE_DATE_EPOCH = "0"


def pin_source_date_epoch() -> None:
    """Same input, same bytes: fix the time stamped into subset fonts.

    Without libharfbuzz-subset, WeasyPrint subsets fonts with fontTools, which writes the
    current time into each font's `head` table unless SOURCE_DATE_EPOCH is set. A value
    the environment already has is kept. Call in each process that converts, before it
    converts (workers inherit it into their own children).
    """
    os.environ.setdefault("SOURCE_DATE_EPOCH", FIXED_SOURCE_DATE_EPOCH)


def load_converters() -> None:
    for name in CONVERTER_MODULES:
        importlib.import_module(name)
    load_plugins()
