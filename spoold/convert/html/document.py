"""The document as spoold hands it on: sanitised, inlined, UTF-8, one tree for every route.

`standalone_html` is the HTML output; `prepare_pdf_document` is what WeasyPrint lays
out, the same for the unsplit PDF route and for the parts route (parts/prepare.py), so
both see exactly the same document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lxml.etree
import lxml.html

from ..base import ConversionContext
from ..scripts import apply_language
from .authored import Layout, choose_layout
from .inline import Inliner, resource_css
from .parse import parse_html
from .sanitise import sanitise
from .themes import NONE, theme_css


@dataclass
class PdfDocument:
    """The tree WeasyPrint lays out, and how to name its inlined resources in warnings."""

    root: Any  # lxml <html> element
    written: Mapping[str, str]  # data: URL -> the reference as the document wrote it
    layout: Layout  # the theme, or the document's own styles alone


def prepare_pdf_document(text: str | bytes, ctx: ConversionContext, base: Path) -> PdfDocument:
    """Parse (depth-checked), choose the layout (html/authored.py), sanitise and inline
    through the job's sandbox, append resources/*.css, force UTF-8, set the language
    and direction the text implies, and add the running title the themes print."""
    ctx.stage("parsing")
    root = parse_html(text)
    layout = choose_layout(root, ctx.options.theme)
    inliner = sanitise(root, ctx, base)
    _add_resource_css(root, ctx, inliner)
    ensure_charset(root)
    apply_language(root)
    if layout.themed:
        _running_title(root)
    return PdfDocument(root, inliner.written, layout)


def standalone_html(
    text: str | bytes, ctx: ConversionContext, base: Path, with_theme: bool = False
) -> bytes:
    """A sanitised, self-contained copy of an HTML document (UTF-8 bytes)."""
    ctx.stage("parsing")
    root = parse_html(text)
    inliner = sanitise(root, ctx, base)
    apply_language(root)
    if with_theme and ctx.options.theme != NONE:
        add_style(root, theme_css(ctx.options.theme), first=True)
    _add_resource_css(root, ctx, inliner)
    ensure_charset(root)
    ctx.stage("writing")
    return serialize_html(root)


def serialize_html(root: Any) -> bytes:
    """The tree as an HTML5 file (UTF-8, ending in a newline)."""
    out: bytes = lxml.html.tostring(root, doctype="<!DOCTYPE html>", encoding="utf-8")
    return out if out.endswith(b"\n") else out + b"\n"


def add_style(root: Any, css: str, first: bool = False) -> None:
    """Add a <style> to the head: last, or `first` before the document's own styles."""
    head = _head(root)
    style = lxml.etree.Element("style")
    style.text = css
    if first:
        # After <meta charset>/<title>, before the document's own styles.
        index = 0
        for i, child in enumerate(head):
            if child.tag in ("meta", "title"):
                index = i + 1
        head.insert(index, style)
    else:
        head.append(style)


def ensure_charset(root: Any) -> None:
    """Declare UTF-8, the encoding serialize_html writes."""
    head = _head(root)
    for meta in head.findall("meta"):
        if meta.get("charset") is not None:
            meta.set("charset", "utf-8")
            return
    meta = lxml.etree.Element("meta")
    meta.set("charset", "utf-8")
    head.insert(0, meta)


def _add_resource_css(root: Any, ctx: ConversionContext, inliner: Inliner) -> None:
    for css, folder in resource_css(ctx):
        add_style(root, inliner.css(css, folder))


def _running_title(root: Any) -> None:
    """The <title> as a hidden first element of the body, for the handout's header."""
    title = root.findtext(".//title") or ""
    body = root.find("body")
    if body is None or not title.strip():
        return
    div = lxml.etree.Element("div")
    div.set("class", "spoold-running-title")
    div.set("aria-hidden", "true")
    div.text = title.strip()
    body.insert(0, div)


def _head(root: Any) -> Any:
    head = root.find("head")
    if head is None:
        head = lxml.etree.Element("head")
        root.insert(0, head)
    return head
