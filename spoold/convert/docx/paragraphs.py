"""Paragraphs and runs: the formatting state of the walk and the w:p builder."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lxml.etree import SubElement

from .anchors import Anchors
from .xml import WS, XML_SPACE, append_pre_text, q, val, xml_safe


@dataclass(frozen=True)
class Fmt:
    """Character formatting of the text being written."""

    bold: bool = False
    italic: bool = False
    underline: bool = False
    strike: bool = False
    code: bool = False
    sub: bool = False
    sup: bool = False
    mark: bool = False
    link: bool = False


PLAIN = Fmt()
BOLD = Fmt(bold=True)


@dataclass
class Pending:
    """Numbering for the first paragraph of a list item."""

    num_id: int
    ilvl: int
    used: bool = False


@dataclass(frozen=True)
class Block:
    """How paragraphs created in this part of the tree look."""

    style: str = "Normal"
    fmt: Fmt = PLAIN
    align: str | None = None
    indent: int | None = None  # left indent in twips, overriding the style's
    quote_depth: int = 0
    list_level: int = -1
    pending: Pending | None = None
    in_footnote: bool = False
    in_table: bool = False


@dataclass
class Sink:
    """Where block content goes: the body, a table cell or a footnote, and its part."""

    element: Any
    part: Any
    before: Any = None  # insert before this child (the body's sectPr)
    # What the last child was when readers would merge it with a next one of its kind:
    # "table", "code" (a code block) or "quote" (a block quote or alert); else None.
    last_kind: str | None = None

    def add(self, tag: str) -> Any:
        """A new child element `tag` at the end of this container."""
        el = SubElement(self.element, q(tag))
        if self.before is not None:
            self.before.addprevious(el)  # moves it in front of the sectPr
        self.last_kind = "table" if tag == "w:tbl" else None
        return el


def run_props(r: Any, fmt: Fmt, styles: Mapping[str, str]) -> None:
    """Give run `r` the properties of `fmt`."""
    # Children in schema order: rStyle, b, i, strike, highlight, u, vertAlign.
    rpr = SubElement(r, q("w:rPr"))
    style = "Hyperlink" if fmt.link else "Verbatim Char" if fmt.code else None
    if style is not None and style in styles:
        val(rpr, "w:rStyle", styles[style])
    if fmt.bold:
        SubElement(rpr, q("w:b"))
    if fmt.italic:
        SubElement(rpr, q("w:i"))
    if fmt.strike:
        SubElement(rpr, q("w:strike"))
    if fmt.mark:
        val(rpr, "w:highlight", "yellow")
    if fmt.underline:
        val(rpr, "w:u", "single")
    if fmt.sup or fmt.sub:
        val(rpr, "w:vertAlign", "superscript" if fmt.sup else "subscript")


class Para:
    """One w:p being filled with runs; HTML whitespace is collapsed as browsers do."""

    def __init__(
        self, styles: Mapping[str, str], p: Any, part: Any, preformatted: bool = False
    ) -> None:
        self.styles = styles
        self.p = p
        self.part = part
        self.target = p  # the w:p, or a w:hyperlink inside it
        self.pre = preformatted
        self.at_space = True
        self.last_t: Any = None

    def run(self, fmt: Fmt) -> Any:
        r = SubElement(self.target, q("w:r"))
        if fmt is not PLAIN and fmt != PLAIN:
            run_props(r, fmt, self.styles)
        return r

    def text(self, text: str, fmt: Fmt) -> None:
        if not text:
            return
        # Printable text has none of \t\n\r\f\v and nothing xml_safe removes: without
        # two spaces in a row, both substitutions would give it back unchanged.
        clean = text.isprintable() and "  " not in text
        if not self.pre:
            if not clean:
                text = WS.sub(" ", text)
            if self.at_space:
                text = text.lstrip(" ")
            if not text:
                return
            self.at_space = text.endswith(" ")
        r = self.run(fmt)
        if self.pre:
            self.last_t = append_pre_text(r, xml_safe(text))
            return
        t = SubElement(r, q("w:t"))
        t.text = text if clean else xml_safe(text)
        if text[0] == " " or text[-1] == " ":
            t.set(XML_SPACE, "preserve")
        self.last_t = t

    def br(self) -> None:
        r = SubElement(self.target, q("w:r"))
        SubElement(r, q("w:br"))
        self.at_space = True
        self.last_t = None

    def placed(self) -> None:
        """Something other than text (a picture, a footnote mark) was appended."""
        self.at_space = False
        self.last_t = None

    def finish(self) -> None:
        t = self.last_t
        if t is not None and not self.pre and t.text and t.text.endswith(" "):
            t.text = t.text.rstrip(" ")


class Paragraphs:
    """Makes paragraphs: style, list numbering, indentation and alignment in w:pPr, and
    the bookmarks of the elements that start there."""

    def __init__(self, styles: Mapping[str, str], anchors: Anchors) -> None:
        self.styles = styles
        self.anchors = anchors

    def new(self, sink: Sink, blk: Block, style: str | None = None) -> Para:
        para = self._new(sink, blk, style)
        if self.anchors.pending:
            self.anchors.place_pending(para.p)
        return para

    def separator(self, sink: Sink) -> None:
        """A 1 pt paragraph holding bookmarks: those waiting for the next paragraph, else
        a hidden one. It goes before a code block, where pandoc's reader would not see
        a bookmark, and between two code blocks (or quotes), which it would merge: it
        drops empty paragraphs, not this one."""
        p = sink.add("w:p")
        ppr = SubElement(p, q("w:pPr"))
        spacing = SubElement(ppr, q("w:spacing"))
        for key, value in (("w:before", "0"), ("w:after", "0"), ("w:line", "20")):
            spacing.set(q(key), value)
        spacing.set(q("w:lineRule"), "exact")
        val(SubElement(ppr, q("w:rPr")), "w:sz", "2")
        # Empty runs around the bookmarks: pandoc's reader takes a bookmark that follows
        # another with nothing read in between (code is not) for an alias of the first.
        SubElement(p, q("w:r"))
        if self.anchors.pending:
            self.anchors.place_pending(p)
        else:
            self.anchors.separator(p)
        SubElement(p, q("w:r"))

    def _new(self, sink: Sink, blk: Block, style: str | None) -> Para:
        p = sink.add("w:p")
        name = style or blk.style
        style_id = self.styles.get(name) if name != "Normal" else None
        pending = blk.pending
        preformatted = name == "Source Code"
        if (
            style_id is None
            and pending is None
            and blk.list_level < 0
            and blk.indent is None
            and blk.align is None
        ):
            return Para(self.styles, p, sink.part, preformatted=preformatted)  # no w:pPr
        # Children in schema order: pStyle, numPr, ind, jc.
        ppr = SubElement(p, q("w:pPr"))
        if style_id is not None:
            val(ppr, "w:pStyle", style_id)
        left: int | None = None
        if pending is not None and not pending.used:
            pending.used = True
            num_pr = SubElement(ppr, q("w:numPr"))
            val(num_pr, "w:ilvl", str(pending.ilvl))
            val(num_pr, "w:numId", str(pending.num_id))
        elif blk.list_level >= 0:
            # A later paragraph of a list item lines up with the item's text.
            left = 720 * (blk.list_level + 1)
        if blk.indent is not None and blk.list_level < 0:
            left = blk.indent
        if left is not None:
            SubElement(ppr, q("w:ind")).set(q("w:left"), str(left))
        if blk.align is not None:
            val(ppr, "w:jc", blk.align)
        if len(ppr) == 0:
            p.remove(ppr)
        return Para(self.styles, p, sink.part, preformatted=preformatted)
