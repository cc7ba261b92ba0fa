"""HTML in, and HTML as the common form: sanitising, inlining, and PDF via WeasyPrint.

Every HTML that leaves spoold or reaches WeasyPrint goes through `sanitise()` first:
scripts, frames, plug-ins, event handlers and javascript: URLs are removed, and every
resource (img, stylesheet, CSS url() and @import, SVG href) is read through the one
sandboxed fetcher and inlined as a data: URL. What cannot be read becomes a warning and
the reference is dropped, so the result is self-contained. WeasyPrint then gets a URL
fetcher that only answers from the same sandbox: it never opens a file or socket itself.

Modules: charset (which encoding a file is in), parse (bytes to a depth-checked lxml
tree, the recursion limit), sanitise (what is removed), inline (resources as data:
URLs), themes (the theme stylesheets), document (the prepared document every route
uses), weasy (WeasyPrint's fetcher and warnings), handover (the tree handed to
WeasyPrint without a second parse), pdf (layout) and converters (html -> html,
html -> pdf).
"""

from __future__ import annotations

from .document import (
    PdfDocument,
    add_style,
    ensure_charset,
    prepare_pdf_document,
    serialize_html,
    standalone_html,
)
from .inline import REFUSED_URL, Inliner, image_allowed, resource_css
from .parse import LAYOUT_RECURSION_LIMIT, MAX_DEPTH, MAX_SOURCE_BYTES, parse_html, recursion_limit
from .pdf import page_size_css, render_pdf
from .sanitise import name_as_id, sanitise
from .themes import THEMES, THEMES_DIR, check_theme, theme_css
from .weasy import sandbox_fetcher

__all__ = [
    "LAYOUT_RECURSION_LIMIT",
    "MAX_DEPTH",
    "MAX_SOURCE_BYTES",
    "REFUSED_URL",
    "THEMES",
    "THEMES_DIR",
    "Inliner",
    "PdfDocument",
    "add_style",
    "check_theme",
    "ensure_charset",
    "image_allowed",
    "name_as_id",
    "page_size_css",
    "parse_html",
    "prepare_pdf_document",
    "recursion_limit",
    "render_pdf",
    "resource_css",
    "sandbox_fetcher",
    "sanitise",
    "serialize_html",
    "standalone_html",
    "theme_css",
]
