"""The html -> html and html -> pdf converters (html -> docx is spoold.convert.docx)."""

from __future__ import annotations

from pathlib import Path

from ..base import ConversionContext, ConversionResult, register
from .document import standalone_html
from .pdf import render_pdf


class HtmlToHtml:
    source_type = "html"
    target = "html"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        output.write_bytes(standalone_html(source.read_bytes(), ctx, source.parent))
        return ConversionResult()


class HtmlToPdf:
    source_type = "html"
    target = "pdf"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        pages = render_pdf(source.read_bytes(), ctx, source.parent, output)
        return ConversionResult(pages=pages, layout=ctx.layout)


register(HtmlToHtml())
register(HtmlToPdf())
