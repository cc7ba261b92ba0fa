"""HTML to PDF: the prepared document laid out by WeasyPrint with the job's theme,
page size and margins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ErrorCode, JobError
from ...spool.pages import margins_css, parse_page_size
from ..base import ConversionContext
from ..scripts import font_warnings
from .document import PdfDocument, prepare_pdf_document
from .handover import weasy_html
from .parse import LAYOUT_RECURSION_LIMIT, recursion_limit
from .themes import check_theme, theme_css
from .weasy import font_config, layout_warnings, sandbox_fetcher, weasy_css


def page_size_css(page_size: str) -> str:
    """The @page size value for `page_size` ('A4', 'letter landscape'...), from page.py's
    one table; JobError(input_invalid) naming the allowed values."""
    return parse_page_size(page_size).css


def render_pdf(text: str | bytes, ctx: ConversionContext, base: Path, output: Path) -> int:
    """Lay out an HTML document with the job's theme (or its own styles alone: see
    html/authored.py) and write the PDF; return pages. `ctx.layout` says which."""
    page = _page_css(ctx)
    doc = prepare_pdf_document(text, ctx, base)
    ctx.layout = doc.layout.describe()
    missing_fonts = font_warnings(doc.root)
    for message in missing_fonts:
        ctx.warn(message)
    stylesheets = [weasy_css(page)]
    if doc.layout.theme is not None:
        stylesheets.insert(0, weasy_css(theme_css(doc.layout.theme)))
    ctx.stage("layout")
    try:
        notdef = bool(missing_fonts)
        with layout_warnings(ctx, doc.written, notdef), recursion_limit(LAYOUT_RECURSION_LIMIT):
            return _lay_out(doc, ctx, base, stylesheets, output)
    except RecursionError as exc:
        raise JobError(
            ErrorCode.INPUT_INVALID, "the document is nested too deeply to lay out"
        ) from exc


def _page_css(ctx: ConversionContext) -> str:
    """The job's page size and margins as a user stylesheet: after the theme, and CSS
    from the document and from resources/ (author CSS) still wins over both. Checked
    before parsing, with the theme option."""
    check_theme(ctx.options.theme)
    size = page_size_css(ctx.options.page_size)
    margin = margins_css(ctx.options.margins, size)
    page = f"size: {size}" + (f"; margin: {margin}" if margin else "")
    return f"@page {{ {page} }}"


def _lay_out(
    doc: PdfDocument, ctx: ConversionContext, base: Path, stylesheets: list[Any], output: Path
) -> int:
    # The tree itself when it is what WeasyPrint's parser would build (handover.py).
    html = weasy_html(doc.root, base.resolve().as_uri() + "/", sandbox_fetcher(ctx, base))
    # The worker's warm font configuration: a new one after a job that added
    # @font-face fonts, which must not leak into the next job's layout (weasy.py).
    # Presentational hints: `<img width>`, `<p align=center>` as people write them in
    # Markdown READMEs; author CSS still wins over them.
    rendered = html.render(
        font_config=font_config(),
        stylesheets=stylesheets,
        presentational_hints=True,
    )
    ctx.stage("writing")
    rendered.write_pdf(target=str(output))
    return len(rendered.pages)
