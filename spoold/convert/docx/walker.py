"""The HTML walk: block-level elements become paragraphs, lists, tables and notes.

One pass over the lxml tree. Blocks carry how their paragraphs look (a frozen Block);
inline content is handed to Inline; tables, numbering, footnotes, pictures and anchors
(bookmarks for ids) have their own modules.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Twips

from ..base import ConversionContext
from .anchors import Anchors, first_free_bookmark_id
from .footnotes import Footnotes
from .images import Images
from .inline import SVG_SKIPPED, Inline
from .links import ExternalLinks
from .numbering import INDENT_TWIPS, LEVELS, OL_FORMATS, Numbering
from .paragraphs import PLAIN, Block, Para, Paragraphs, Pending, Sink
from .styles import ALERT_TYPES
from .tables import Tables
from .tags import BLOCKS, HEADINGS, SKIP
from .template_styles import style_ids
from .toc import ask_to_update_fields, is_toc, toc_style, write_toc
from .xml import alignment, classes, tag_of

# Elements an item may start with that keep its list marker on a line of its own.
_BLOCK_STARTS = ("ul", "ol", "table", "pre")


def _text_area(doc: Any) -> tuple[int, int]:
    """Text width and height of the first section in EMU (at least 1 in each)."""
    section = doc.sections[0]
    width = (section.page_width or Twips(12240)) - (section.left_margin or 0)
    width -= section.right_margin or 0
    height = (section.page_height or Twips(15840)) - (section.top_margin or 0)
    height -= section.bottom_margin or 0
    return max(int(width), int(Twips(1440))), max(int(height), int(Twips(1440)))


class Writer:
    def __init__(
        self,
        doc: Any,
        ctx: ConversionContext,
        base: Path,
        footnote_items: dict[str, Any],
        bookmark_names: dict[str, str],
    ) -> None:
        self.doc = doc
        self.ctx = ctx
        self.styles = style_ids(doc)
        text_area = _text_area(doc)
        body = doc.element.body
        self.body = Sink(body, doc.part, before=body.find(qn("w:sectPr")))
        self.anchors = Anchors(
            bookmark_names, first_free_bookmark_id(doc), self.styles.get("Hyperlink")
        )
        self.paragraphs = Paragraphs(self.styles, self.anchors)
        self.numbering = Numbering(doc)
        self.footnotes = Footnotes(doc, footnote_items, self.styles, self.paragraphs, self.blocks)
        images = Images(ctx, base, text_area)
        self.inline = Inline(ctx, self.footnotes, images, ExternalLinks(), self.anchors)
        self.tables = Tables(
            self.styles, self.paragraphs, self.blocks, self._caption, text_area[0], doc.part
        )

    def write_body(self, body: Any | None) -> None:
        if body is not None:
            self.blocks(body, Block(), self.body)
        if len(self.doc.element.body) <= 1 or self.anchors.pending:
            # Word wants at least one paragraph; ids at the very end need one to mark.
            self.new_para(self.body, Block()).finish()
        self.anchors.unwrap_dangling()

    def new_para(self, sink: Sink, blk: Block, style: str | None = None) -> Para:
        return self.paragraphs.new(sink, blk, style)

    def blocks(self, el: Any, blk: Block, sink: Sink) -> None:
        """Write el's children as blocks; loose inline content gets implicit paragraphs."""
        self.anchors.expect(el)
        para: Para | None = None

        def loose(text: str | None) -> None:
            nonlocal para
            if not text:
                return
            if para is None:
                if not text.strip():
                    return
                para = self.new_para(sink, blk)
            para.text(text, blk.fmt)

        loose(el.text)
        for child in el:
            tag = tag_of(child)
            if tag and tag in BLOCKS:
                if para is not None:
                    para.finish()
                    para = None
                self.block(child, tag, blk, sink)
            elif tag:
                if para is None:
                    para = self.new_para(sink, blk)
                self.inline.element(child, tag, para, blk.fmt, blk)
            loose(child.tail)
        if para is not None:
            para.finish()

    def block(self, el: Any, tag: str, blk: Block, sink: Sink) -> None:
        if tag in SKIP:
            return
        self.anchors.expect(el)
        align = alignment(el)
        if align is not None:
            blk = replace(blk, align=align)
        if tag in HEADINGS:
            name = f"Heading {HEADINGS[tag]}"
            if tag == "h1" and "title" in classes(el):
                name = "Title"
            self.paragraph(el, blk, sink, name)
        elif tag == "p":
            self.paragraph(el, _alert_title(el, blk), sink, _title_block_style(el))
        elif tag == "summary":  # <details> shows its summary, then its content
            self.paragraph(el, replace(blk, fmt=replace(blk.fmt, bold=True)), sink, None)
        elif tag == "pre":
            self.code_block(el, blk, sink)
        elif tag in ("ul", "ol"):
            self.list_(el, tag, blk, sink)
        elif tag == "blockquote":
            self.blockquote(el, blk, sink)
        elif tag == "hr":
            if "footnotes-sep" not in classes(el):
                self.rule(sink, blk)
        elif tag == "table":
            if blk.in_footnote:
                self.blocks(el, blk, sink)  # tables in footnotes are flattened
            else:
                self.tables.write(el, blk, sink)
        elif tag == "dl":
            self.definition_list(el, blk, sink)
        elif tag == "figcaption":
            self.paragraph(el, blk, sink, "Caption")
        elif tag == "svg":
            self.ctx.warn(SVG_SKIPPED)
        elif tag == "math":
            self.paragraph(el, blk, sink, None)
        elif tag == "div" and "markdown-alert" in classes(el):
            self.alert(el, blk, sink)
        elif is_toc(el):
            style = partial(toc_style, self.doc, self.styles)
            write_toc(el, blk, sink, self.new_para, self._toc_entry, style)
            ask_to_update_fields(self.doc)
        else:
            self.blocks(el, blk, sink)

    def paragraph(self, el: Any, blk: Block, sink: Sink, style: str | None) -> None:
        """A block element whose content is inline; nested blocks end it and follow."""
        self.anchors.expect(el)
        if any(tag_of(c) in BLOCKS for c in el):
            # Invalid but common (a div inside a p): keep order, accept extra paragraphs.
            sub = replace(blk, style=style) if style else blk
            self.blocks(el, sub, sink)
            return
        para = self.new_para(sink, blk, style)
        self.inline.children(el, para, blk.fmt, blk)
        para.finish()

    def _toc_entry(self, a: Any, para: Para, blk: Block) -> None:
        self.inline.element(a, "a", para, blk.fmt, blk)

    def _caption(self, el: Any, blk: Block, sink: Sink) -> None:
        self.paragraph(el, blk, sink, "Caption")

    def code_block(self, el: Any, blk: Block, sink: Sink) -> None:
        text = el.text_content()
        # HTML drops one newline right after <pre>; markdown adds one at the end.
        text = text.removeprefix("\n").removesuffix("\n").replace("\r\n", "\n")
        # Indented code (in a list item or quote) reads as a quoted code block in pandoc.
        kind = "quote" if blk.list_level >= 0 or blk.indent else "code"
        if self.anchors.pending and not blk.in_table and not blk.in_footnote:
            self.paragraphs.separator(sink)  # the code block's id, where readers see it
        else:
            self._keep_apart(sink, kind)
        para = self.new_para(sink, replace(blk, fmt=PLAIN), "Source Code")
        para.text(text, PLAIN)
        sink.last_kind = kind

    def blockquote(self, el: Any, blk: Block, sink: Sink, style: str = "Quote") -> None:
        self._keep_apart(sink, "quote")
        depth = blk.quote_depth + 1
        indent = INDENT_TWIPS * depth if depth > 1 else blk.indent
        self.blocks(el, replace(blk, style=style, quote_depth=depth, indent=indent), sink)
        sink.last_kind = "quote"

    def alert(self, el: Any, blk: Block, sink: Sink) -> None:
        """A GitHub alert (div.markdown-alert-TYPE): a quote in the type's callout style."""
        kinds = [c.removeprefix("markdown-alert-") for c in sorted(classes(el))]
        kind = next((k for k in kinds if k in ALERT_TYPES), "note")
        style = f"Alert {kind.title()}"
        self.blockquote(el, blk, sink, style if style in self.styles else "Quote")

    def _keep_apart(self, sink: Sink, kind: str) -> None:
        """Two code blocks (or quotes) in a row stay two for readers that merge them."""
        if sink.last_kind == kind:
            self.paragraphs.separator(sink)

    def rule(self, sink: Sink, blk: Block) -> None:
        para = self.new_para(sink, replace(blk, pending=None))
        ppr = para.p.get_or_add_pPr()
        bdr = OxmlElement("w:pBdr")
        bottom = OxmlElement("w:bottom")
        for key, value in (
            ("w:val", "single"),
            ("w:sz", "6"),
            ("w:space", "1"),
            ("w:color", "auto"),
        ):
            bottom.set(qn(key), value)
        bdr.append(bottom)
        # pBdr must precede spacing/ind/jc in pPr; it follows pStyle, keepNext and numPr.
        anchor = None
        for child in ppr:
            if child.tag in (qn("w:pStyle"), qn("w:keepNext"), qn("w:numPr")):
                anchor = child
        if anchor is None:
            ppr.insert(0, bdr)
        else:
            anchor.addnext(bdr)

    def definition_list(self, el: Any, blk: Block, sink: Sink) -> None:
        for child in el:
            tag = tag_of(child)
            if tag == "dt":
                self.paragraph(child, blk, sink, "Definition Term")
            elif tag == "dd":
                self.blocks(child, replace(blk, style="Definition"), sink)
            elif tag == "div":  # HTML allows dt/dd grouped in divs
                self.definition_list(child, blk, sink)

    def list_(self, el: Any, tag: str, blk: Block, sink: Sink) -> None:
        level = min(blk.list_level + 1, LEVELS - 1)
        if tag == "ol":
            fmt = OL_FORMATS.get((el.get("type") or "1").strip(), "decimal")
            try:
                start = int((el.get("start") or "1").strip())
            except ValueError:
                start = 1
            # A new num per <ol>: each list restarts at its own start value.
            num_id = self.numbering.new_num(fmt, level, max(start, 0))
        else:
            num_id = self.numbering.bullets()
        style = "List Paragraph" if "List Paragraph" in self.styles else "Normal"
        base = replace(blk, list_level=level, indent=None, style=style)
        for child in el:
            ctag = tag_of(child)
            if ctag != "li":
                if ctag in ("ul", "ol"):  # a list directly inside a list
                    self.list_(child, ctag, blk if level == 0 else base, sink)
                continue
            # A task list's check box is the item's first <input>: Inline draws it.
            self.list_item(child, replace(base, pending=Pending(num_id=num_id, ilvl=level)), sink)

    def list_item(self, li: Any, blk: Block, sink: Sink) -> None:
        first = next((c for c in li if tag_of(c)), None)
        if (li.text or "").strip() == "" and first is not None and tag_of(first) in _BLOCK_STARTS:
            # The item starts with a nested block: keep its marker on an empty line.
            self.new_para(sink, blk).finish()
        self.blocks(li, blk, sink)
        if blk.pending is not None and not blk.pending.used:
            self.new_para(sink, blk).finish()  # an empty <li> still counts


def _alert_title(p: Any, blk: Block) -> Block:
    """An alert's title line ("Note", "Warning") is bold; its icon, if any, is left out."""
    if not {"markdown-alert-title", "tabbed-title"} & classes(p):
        return blk
    for svg in [c for c in p.iter() if tag_of(c) == "svg"]:
        svg.drop_tree()
    return replace(blk, fmt=replace(blk.fmt, bold=True))


def _title_block_style(p: Any) -> str | None:
    """ "Author" or "Date" for those lines of a front matter title block."""
    parent = p.getparent()
    if parent is None or "title-block" not in classes(parent):
        return None
    cls = classes(p)
    return "Author" if "author" in cls else "Date" if "date" in cls else None
