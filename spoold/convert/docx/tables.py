"""HTML tables as Word tables: header rows, merged cells, widths shared by content."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from lxml.etree import SubElement

from .grid import MAX_COLUMNS, MAX_ROWSPAN, Placed, SourceCell, column_widths, layout_grid
from .paragraphs import BOLD, PLAIN, Block, Paragraphs, Sink
from .xml import alignment, q, tag_of, val

EMU_PER_TWIP = 635
WriteBlocks = Callable[[Any, Block, Sink], None]
WriteCaption = Callable[[Any, Block, Sink], None]
_TABLE_LOOK = (
    ("w:firstRow", "1"),
    ("w:lastRow", "0"),
    ("w:firstColumn", "0"),
    ("w:lastColumn", "0"),
    ("w:noHBand", "0"),
    ("w:noVBand", "1"),
)


@dataclass(frozen=True)
class _Row:
    tr: Any
    header: bool


def _rows(table: Any) -> tuple[list[_Row], Any]:
    """The table's rows (header or not) and its caption element, if any."""
    rows: list[_Row] = []
    caption = None
    for child in table:
        tag = tag_of(child)
        if tag == "caption":
            caption = child
        elif tag == "tr":
            rows.append(_Row(child, False))
        elif tag in ("thead", "tbody", "tfoot"):
            rows.extend(_Row(tr, tag == "thead") for tr in child if tag_of(tr) == "tr")
    # Leading rows of only <th> cells are header rows too.
    if not any(r.header for r in rows):
        for i, row in enumerate(rows):
            cells = _cells(row.tr)
            if not cells or any(tag_of(c) != "th" for c in cells):
                break
            rows[i] = _Row(row.tr, True)
    return rows, caption


def _cells(tr: Any) -> list[Any]:
    return [c for c in tr if tag_of(c) in ("td", "th")]


def _span_attr(cell: Any, name: str, limit: int) -> int:
    try:
        return max(1, min(int((cell.get(name) or "1").strip()), limit))
    except ValueError:
        return 1


def _longest_line(cell: Any) -> int:
    return max((len(line) for line in cell.text_content().split("\n")), default=0)


class Tables:
    def __init__(
        self,
        styles: Mapping[str, str],
        paragraphs: Paragraphs,
        write_blocks: WriteBlocks,
        write_caption: WriteCaption,
        text_width_emu: int,
        body_part: Any,
    ) -> None:
        self.styles = styles
        self.paragraphs = paragraphs
        self.write_blocks = write_blocks
        self.write_caption = write_caption
        self.text_width_emu = text_width_emu
        self.body_part = body_part  # tables are written in the body only
        # Frozen Blocks without a pending number: cells with the same look share one.
        self.cell_blocks: dict[tuple[bool, str | None, bool], Block] = {}

    def write(self, el: Any, blk: Block, sink: Sink) -> None:
        rows, caption = _rows(el)
        if caption is not None:
            self.write_caption(caption, replace(blk, pending=None), sink)
        if not rows:
            return
        source = [
            [
                SourceCell(
                    c, _span_attr(c, "colspan", MAX_COLUMNS), _span_attr(c, "rowspan", MAX_ROWSPAN)
                )
                for c in _cells(row.tr)
            ]
            for row in rows
        ]
        grid, ncols = layout_grid(source)
        widths = column_widths(grid, ncols, self.text_width_emu // EMU_PER_TWIP, _longest_line)
        if sink.last_kind == "table":
            self.paragraphs.new(sink, Block()).finish()  # Word would merge adjacent tables
        tbl = sink.add("w:tbl")
        self._properties(tbl, widths)
        header_run = True
        for row, cells in zip(rows, grid, strict=True):
            header_run = header_run and row.header
            self._row(tbl, row, cells, widths, blk, header_run)
        sink.last_kind = "table"

    def _properties(self, tbl: Any, widths: list[int]) -> None:
        tbl_pr = SubElement(tbl, q("w:tblPr"))
        if "Table Grid" in self.styles:
            val(tbl_pr, "w:tblStyle", self.styles["Table Grid"])
        tw = SubElement(tbl_pr, q("w:tblW"))
        tw.set(q("w:w"), str(sum(widths)))
        tw.set(q("w:type"), "dxa")
        SubElement(tbl_pr, q("w:tblLayout")).set(q("w:type"), "fixed")
        look = val(tbl_pr, "w:tblLook", "04A0")
        for key, value in _TABLE_LOOK:
            look.set(q(key), value)
        tbl_grid = SubElement(tbl, q("w:tblGrid"))
        for w in widths:
            SubElement(tbl_grid, q("w:gridCol")).set(q("w:w"), str(w))

    def _row(
        self,
        tbl: Any,
        row: _Row,
        cells: list[Placed[Any]],
        widths: list[int],
        blk: Block,
        repeat: bool,
    ) -> None:
        tr = SubElement(tbl, q("w:tr"))
        if repeat:
            # Only leading header rows may repeat on each page.
            SubElement(SubElement(tr, q("w:trPr")), q("w:tblHeader"))
        row_align = alignment(row.tr)
        ncols = len(widths)
        col = 0
        for placed in cells:
            if placed.col >= ncols:
                break
            if placed.col > col:  # ragged row: pad
                self._cell(tr, Placed(None, col, placed.col - col), widths, blk, False, None)
            cs = min(placed.span, ncols - placed.col)
            cell = placed.cell
            align = alignment(cell) if cell is not None else None
            bold = row.header or (cell is not None and tag_of(cell) == "th")
            self._cell(tr, replace(placed, span=cs), widths, blk, bold, align or row_align)
            col = placed.col + cs
        if col < ncols:
            self._cell(tr, Placed(None, col, ncols - col), widths, blk, False, None)

    def _cell(
        self,
        tr: Any,
        placed: Placed[Any],
        widths: list[int],
        blk: Block,
        bold: bool,
        align: str | None,
    ) -> None:
        tc = SubElement(tr, q("w:tc"))
        tc_pr = SubElement(tc, q("w:tcPr"))
        tcw = SubElement(tc_pr, q("w:tcW"))
        tcw.set(q("w:w"), str(sum(widths[placed.col : placed.col + placed.span])))
        tcw.set(q("w:type"), "dxa")
        if placed.span > 1:
            val(tc_pr, "w:gridSpan", str(placed.span))
        if placed.vmerge is not None:
            vm = SubElement(tc_pr, q("w:vMerge"))
            if placed.vmerge == "restart":
                vm.set(q("w:val"), "restart")
        if placed.cell is not None:
            key = (bold, align, blk.in_footnote)
            sub = self.cell_blocks.get(key)
            if sub is None:
                sub = Block(
                    fmt=BOLD if bold else PLAIN,
                    align=align,
                    in_table=True,
                    in_footnote=blk.in_footnote,
                )
                self.cell_blocks[key] = sub
            self.write_blocks(placed.cell, sub, Sink(tc, self.body_part))
        # A cell must end with a paragraph.
        if len(tc) == 1 or tc[-1].tag != q("w:p"):
            SubElement(tc, q("w:p"))
