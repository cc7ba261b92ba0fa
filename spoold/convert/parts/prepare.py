"""The document as the unsplit PDF route hands it to WeasyPrint, before any split.

The very tree `spoold.convert.html.render_pdf` lays out (`prepare_pdf_document`): parsed
(depth-checked), sanitised and inlined through the job's sandbox, resources/*.css
appended, UTF-8, the running title added. Splitting works on this tree, so each part is
already self-contained and its layout needs no fetcher beyond data: URLs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import html as html_conv
from ..base import ConversionContext


def prepare_document(text: str | bytes, ctx: ConversionContext, base: Path) -> Any | None:
    """The sanitised, self-contained lxml tree the unsplit layout would see; None for a
    document laid out with its own styles (html/authored.py), which is never split:
    the merge stamps the theme's page numbers over the parts."""
    doc = html_conv.prepare_pdf_document(text, ctx, base)
    return doc.root if doc.layout.themed else None


def serialize(root: Any) -> bytes:
    return html_conv.serialize_html(root)
