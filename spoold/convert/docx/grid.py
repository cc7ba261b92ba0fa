"""Table grid layout as pure functions: where each HTML cell lands in Word's column grid.

HTML tables place cells implicitly (rowspans push later cells right, rows may be ragged);
Word needs every row to cover the grid, with w:gridSpan for colspans and w:vMerge
continuation cells under each rowspan. Nothing here touches XML.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

Cell = TypeVar("Cell")
VMerge = Literal["restart", "continue"] | None
MAX_COLUMNS = 63  # Word's limit
MAX_ROWSPAN = 1000
# Share of the width per column, in characters of its longest line: none starves.
MIN_WEIGHT, MAX_WEIGHT = 4, 60


@dataclass(frozen=True)
class SourceCell(Generic[Cell]):
    """A cell as the HTML row gives it."""

    cell: Cell
    colspan: int = 1
    rowspan: int = 1


@dataclass(frozen=True)
class Placed(Generic[Cell]):
    """A cell on the grid; `cell` is None for the continuation of a rowspan above."""

    cell: Cell | None
    col: int
    span: int
    vmerge: VMerge = None


def layout_grid(
    rows: Sequence[Sequence[SourceCell[Cell]]],
) -> tuple[list[list[Placed[Cell]]], int]:
    """Place the rows' cells on a grid; return the placed rows and the column count."""
    grid: list[list[Placed[Cell]]] = []
    carry: dict[int, tuple[int, int]] = {}  # col -> (rows left, colspan) of open rowspans
    ncols = 0
    for row in rows:
        out: list[Placed[Cell]] = []
        col = 0
        seen: set[int] = set()
        for src in row:
            col = _continue_rowspans(carry, out, col, seen)
            cs = max(1, min(src.colspan, MAX_COLUMNS))
            rs = max(1, min(src.rowspan, MAX_ROWSPAN))
            out.append(Placed(src.cell, col, cs, "restart" if rs > 1 else None))
            if rs > 1:
                carry[col] = (rs - 1, cs)
                seen.add(col)
            col += cs
        col = _continue_rowspans(carry, out, col, seen)
        for ccol in sorted(c for c in carry if c not in seen):
            # Spans beyond this row's cells (or overlapped by a colspan) still count down.
            if ccol >= col:
                out.append(Placed(None, ccol, carry[ccol][1], "continue"))
            _count_down(carry, ccol)
        ncols = max(ncols, max((p.col + p.span for p in out), default=0))
        grid.append(out)
    return grid, min(max(ncols, 1), MAX_COLUMNS)


def _count_down(carry: dict[int, tuple[int, int]], col: int) -> None:
    left, cs = carry[col]
    if left <= 1:
        del carry[col]
    else:
        carry[col] = (left - 1, cs)


def _continue_rowspans(
    carry: dict[int, tuple[int, int]], out: list[Placed[Cell]], col: int, seen: set[int]
) -> int:
    """Emit vMerge continuation cells for rowspans covering `col`; return the next column."""
    while col in carry and col not in seen:
        cs = carry[col][1]
        out.append(Placed(None, col, cs, "continue"))
        seen.add(col)
        _count_down(carry, col)
        col += cs
    return col


def column_widths(
    grid: Sequence[Sequence[Placed[Cell]]],
    ncols: int,
    total: int,
    longest_line: Callable[[Cell], int],
) -> list[int]:
    """Share `total` (twips) by content length: long columns get more, none starve."""
    lengths = [1] * ncols
    for row in grid:
        for placed in row:
            if placed.cell is None or placed.col >= ncols:
                continue
            per = max(1, longest_line(placed.cell) // placed.span)
            for c in range(placed.col, min(placed.col + placed.span, ncols)):
                lengths[c] = max(lengths[c], per)
    weights = [min(max(n, MIN_WEIGHT), MAX_WEIGHT) for n in lengths]
    widths = [max(1, total * w // sum(weights)) for w in weights]
    widths[-1] += total - sum(widths)
    return widths
