"""Markdown to HTML (markdown-it-py): the first step of every Markdown route."""

from __future__ import annotations

import html
from pathlib import Path

from markdown_it import MarkdownIt

from ..errors import ErrorCode, JobError
from .base import ConversionContext, ConversionResult, register

_MD = MarkdownIt("commonmark").enable("table").enable("strikethrough")


def read_text(source: Path) -> str:
    try:
        return source.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise JobError(
            ErrorCode.INPUT_INVALID,
            f"{source.name} is not UTF-8 text (byte {exc.start})",
            hint="Save the document as UTF-8 and drop it again.",
        ) from exc


def markdown_to_html(text: str, title: str) -> str:
    body = _MD.render(text)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n{body}</body></html>\n"
    )


class MarkdownToHtml:
    source_type = "md"
    target = "html"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        ctx.stage("parsing")
        text = read_text(source)
        ctx.stage("writing")
        output.write_text(markdown_to_html(text, source.stem), encoding="utf-8")
        return ConversionResult()


register(MarkdownToHtml())
