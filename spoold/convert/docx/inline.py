"""Inline HTML (text-level elements) as runs: formatting, links, pictures, note marks."""

from __future__ import annotations

import functools
import urllib.parse
from dataclasses import replace
from typing import Any

from lxml.etree import SubElement

from ..base import ConversionContext
from .anchors import Anchors
from .footnotes import Footnotes
from .images import Images
from .links import LINK_SCHEMES, ExternalLinks
from .paragraphs import Block, Fmt, Para
from .tags import SKIP
from .xml import q, style_props, tag_of

CHECKED = "☒"
UNCHECKED = "☐"
SVG_SKIPPED = "an inline SVG image was skipped (SVG is not supported in DOCX output)"
# Elements that only change the character formatting of their content.
_FORMAT_GROUPS: tuple[tuple[tuple[str, ...], dict[str, bool]], ...] = (
    (("strong", "b"), {"bold": True}),
    (("em", "i", "cite", "dfn", "var"), {"italic": True}),
    (("u", "ins"), {"underline": True}),
    (("s", "del", "strike"), {"strike": True}),
    (("code", "kbd", "samp", "tt"), {"code": True}),
    (("sub",), {"sub": True, "sup": False}),
    (("mark",), {"mark": True}),
)
_FORMATS = {tag: change for tags, change in _FORMAT_GROUPS for tag in tags}
_CHANGES = {**_FORMATS, "sup": {"sup": True, "sub": False}, "a": {"link": True}}


@functools.cache
def _formatted(fmt: Fmt, tag: str) -> Fmt:
    """`fmt` inside a `tag` element (_CHANGES): one Fmt per pair, made once, as
    dataclasses.replace costs more than writing the run it formats."""
    return replace(fmt, **_CHANGES[tag])


def css_fmt(el: Any, fmt: Fmt) -> Fmt:
    """`fmt` with the bold, italic, underline and strike a `style` attribute asks for."""
    props = style_props(el)
    weight = props.get("font-weight", "")
    if weight == "bold" or (weight.isdigit() and int(weight) >= 600):
        fmt = replace(fmt, bold=True)
    if props.get("font-style") in ("italic", "oblique"):
        fmt = replace(fmt, italic=True)
    deco = props.get("text-decoration", "") + " " + props.get("text-decoration-line", "")
    if "underline" in deco:
        fmt = replace(fmt, underline=True)
    if "line-through" in deco:
        fmt = replace(fmt, strike=True)
    return fmt


class Inline:
    def __init__(
        self,
        ctx: ConversionContext,
        footnotes: Footnotes,
        images: Images,
        links: ExternalLinks,
        anchors: Anchors,
    ) -> None:
        self.ctx = ctx
        self.anchors = anchors
        self.footnotes = footnotes
        self.images = images
        self.links = links

    def children(self, el: Any, para: Para, fmt: Fmt, blk: Block) -> None:
        """Write el's text and inline children into para."""
        para.text(el.text or "", fmt)
        for child in el:
            tag = tag_of(child)
            if tag:
                self.element(child, tag, para, fmt, blk)
            para.text(child.tail or "", fmt)

    def element(self, el: Any, tag: str, para: Para, fmt: Fmt, blk: Block) -> None:
        """Write one inline element (not its tail) into para."""
        if el.get("id") is not None and tag not in SKIP:
            self.anchors.mark_element(el, para.target)
        if tag in _FORMATS:
            fmt = _formatted(fmt, tag)
        elif tag == "sup":
            note = None if blk.in_footnote else self.footnotes.target_of(el)
            if note is not None:
                self.footnotes.add(note, para, fmt)
                return
            fmt = _formatted(fmt, "sup")
        elif tag in ("span", "font"):
            fmt = css_fmt(el, fmt)
        elif tag in SKIP:
            return
        elif tag in _SPECIAL:
            _SPECIAL[tag](self, el, para, fmt, blk)
            return
        self.children(el, para, fmt, blk)

    def _br(self, el: Any, para: Para, fmt: Fmt, blk: Block) -> None:
        para.br()

    def _img(self, el: Any, para: Para, fmt: Fmt, blk: Block) -> None:
        self.images.place(el, para)

    def _input(self, el: Any, para: Para, fmt: Fmt, blk: Block) -> None:
        if (el.get("type") or "").lower() == "checkbox":
            para.text((CHECKED if el.get("checked") is not None else UNCHECKED) + " ", fmt)

    def _q(self, el: Any, para: Para, fmt: Fmt, blk: Block) -> None:
        para.text("“", fmt)
        self.children(el, para, fmt, blk)
        para.text("”", fmt)

    def _svg(self, el: Any, para: Para, fmt: Fmt, blk: Block) -> None:
        self.ctx.warn(SVG_SKIPPED)

    def _a(self, el: Any, para: Para, fmt: Fmt, blk: Block) -> None:
        href = (el.get("href") or "").strip()
        fragment = href[1:] if href.startswith("#") else ""
        if fragment and fragment in self.footnotes.items and not blk.in_footnote:
            self.footnotes.add(fragment, para, fmt)
            return
        scheme = urllib.parse.urlsplit(href).scheme.lower() if href else ""
        bookmark = self.anchors.name_for(fragment) if fragment else None
        if para.target is not para.p or (bookmark is None and scheme not in LINK_SCHEMES):
            # Links in links, unknown anchors, relative and unsafe links: text only.
            self.children(el, para, fmt, blk)
            return
        if bookmark is not None:
            self._fill_link(self.anchors.link(para.p, bookmark), el, para, fmt, blk)
            return
        link = SubElement(para.p, q("w:hyperlink"))
        link.set(q("r:id"), self.links.rid(para.part, href))
        link.set(q("w:history"), "1")
        self._fill_link(link, el, para, fmt, blk)

    def _fill_link(self, link: Any, el: Any, para: Para, fmt: Fmt, blk: Block) -> None:
        para.target = link
        try:
            self.children(el, para, _formatted(fmt, "a"), blk)
        finally:
            para.target = para.p
        if len(link) == 0:
            para.p.remove(link)


_SPECIAL = {
    "br": Inline._br,
    "img": Inline._img,
    "input": Inline._input,
    "q": Inline._q,
    "svg": Inline._svg,
    "a": Inline._a,
}
