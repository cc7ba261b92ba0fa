"""HTML -> DOCX with python-docx: the one writer behind html->docx, md->docx and pdf->docx.

Markdown and PDF first become HTML (markdown_to_html, pdf_to_html); the writer walks that
HTML once and writes real Word structure: heading styles, numbering definitions, tables
with repeating header rows, hyperlinks, inline pictures scaled to the text width, native
footnotes, and the head's metadata as document properties. python-docx has no API for
footnotes, numbering or hyperlinks, so those are built as WordprocessingML here.

Modules: styles (the style table), template (default template, reference.docx, page
setup), template_styles (the template's styles.xml, parsed only if needed), properties (core.xml), paragraphs (runs and w:p), numbering, footnotes, grid
(pure table layout) and tables, images, links, anchors (ids as bookmarks), tags and
walker/inline (the HTML walk), package (the reproducible zip), check (reading anchors
back from a DOCX).

Output is reproducible: dates in core.xml are fixed (front matter date, else 2000-01-01)
and the zip is written with fixed timestamps and order, so the same input and options
give the same bytes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lxml.etree import XPath

from ...errors import ErrorCode, JobError
from ..base import ConversionContext, ConversionResult, register
from .anchors import map_ids
from .bidi import mark_rtl
from .footnotes import collect_footnotes
from .package import docx_bytes
from .properties import document_metadata, set_properties
from .template import apply_page_setup, start_document
from .walker import Writer

__all__ = ["HtmlToDocx", "MarkdownToDocx", "PdfToDocx", "write_docx"]

# The walk recurses about two frames per HTML level; parse_html caps nesting at 256
# levels, so this limit always suffices (restored afterwards).
WALK_RECURSION_LIMIT = 4000


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Run the block with Python's cyclic garbage collector paused (and restored after).

    Markdown parsing and the walk allocate hundreds of thousands of containers that
    live until the document is written (tokens, proxies of the HTML and DOCX trees), so
    the collections during a conversion walk them again and find next to nothing: a
    few hundred objects of cyclic garbage per document (python-docx's package graph,
    collected after the job). Measured on the corpus: 2-5 % of the conversion's CPU,
    more in a worker whose heap holds earlier jobs' caches (a full collection walks
    them all). The setting is per process; a worker converts one document at a time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# The id attributes of an element and its descendants, in document order (in C: a walk
# in Python makes a proxy per element).
_ID_VALUES = XPath("descendant-or-self::*/@id", smart_strings=False)


def _ids(body: Any | None, notes: Iterable[Any]) -> Iterator[str]:
    """Every id in the body, then in the footnotes, in document order."""
    for tree in [body, *notes]:
        if tree is None:
            continue
        yield from (anchor_id for anchor_id in _ID_VALUES(tree) if anchor_id)


def write_docx(html: str | bytes, output: Path, ctx: ConversionContext, base: Path) -> None:
    """Write the HTML document `html` as DOCX to `output`; images resolve against `base`."""
    # The depth-checked lxml parse and `<a name>` anchors as the PDF route has them.
    from ..html import name_as_id, parse_html, recursion_limit
    from ..scripts import apply_language

    ctx.stage("parsing")
    root = parse_html(html, "document")
    for a in root.iter("a"):
        name_as_id(a)
    apply_language(root)
    doc = start_document(ctx)
    _own_page_setup(doc, root, ctx, base)
    meta = document_metadata(root, ctx.options.metadata)
    ctx.stage("writing")
    body = root.find("body")
    try:
        with recursion_limit(WALK_RECURSION_LIMIT):
            notes = collect_footnotes(root)
            names = map_ids(_ids(body, notes.values()))
            writer = Writer(doc, ctx, base, notes, names)
            writer.write_body(body)
    except RecursionError as exc:
        raise JobError(ErrorCode.INPUT_INVALID, "document nests elements too deeply") from exc
    rtl = (root.get("dir") or "").lower() == "rtl"
    mark_rtl(doc.element.body, rtl, writer.styles.get("Source Code"))
    set_properties(doc, meta)
    output.write_bytes(docx_bytes(doc))


def _own_page_setup(doc: Any, root: Any, ctx: ConversionContext, base: Path) -> None:
    """A document with its own styles: the page size and margins of its `@page`."""
    from ..html import Inliner
    from ..html.authored import choose_layout, own_page_setup, stylesheets

    if choose_layout(root, ctx.options.theme).themed:
        return
    inliner = Inliner(ctx, base)

    def load(href: str) -> str | None:
        got = inliner.css_text(href, base)
        return got[0] if got is not None else None

    apply_page_setup(doc, ctx.options, own_page_setup(stylesheets(root, load)))


class HtmlToDocx:
    source_type = "html"
    target = "docx"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        with no_cycle_collection():
            write_docx(source.read_bytes(), output, ctx, source.parent)
        return ConversionResult()


class MarkdownToDocx:
    source_type = "md"
    target = "docx"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        from ..markdown import markdown_to_html, read_text

        ctx.stage("parsing")
        with no_cycle_collection():
            html = markdown_to_html(read_text(source), source.stem, warn=ctx.warn)
            write_docx(html, output, ctx, source.parent)
        return ConversionResult()


class PdfToDocx:
    source_type = "pdf"
    target = "docx"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        from ..pdf import pdf_to_html

        html = pdf_to_html(source, ctx)
        with no_cycle_collection():
            write_docx(html, output, ctx, ctx.job_root)
        return ConversionResult()


register(HtmlToDocx())
register(MarkdownToDocx())
register(PdfToDocx())
