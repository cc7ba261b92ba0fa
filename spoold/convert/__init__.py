"""Converters behind one small interface (see base.py); HTML is the common form.

Markdown becomes HTML (markdown.py); HTML becomes PDF with WeasyPrint and DOCX with one
python-docx writer; PDF is sanitised or mined for text. `load_converters()` imports
every converter module once per worker process, so each job pays no import cost.
"""

from __future__ import annotations

import importlib

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
CONVERTER_MODULES = ("spoold.convert.markdown",)

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
    "register",
    "routes",
    "source_type_of",
]


def load_converters() -> None:
    for name in CONVERTER_MODULES:
        importlib.import_module(name)
