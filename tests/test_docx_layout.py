"""DOCX page setup (page sizes from spool/pages.py, the margins option) and table grids."""

from __future__ import annotations

import shutil
from pathlib import Path

import docx
import pytest
from docx.shared import Mm

from spoold.convert.docx.grid import Placed, SourceCell, column_widths, layout_grid
from spoold.errors import ErrorCode, JobError
from spoold.spool.pages import PageSize, parse_page_size

from .docx_support import FIXTURES, NS, convert, load


@pytest.fixture
def job(tmp_path: Path) -> Path:
    root = tmp_path / "job"
    shutil.copytree(FIXTURES, root)
    return root


def sides_mm(path: Path) -> tuple[float, float, float, float]:
    """(top, right, bottom, left) margins of the first section, in mm."""
    s = load(path).sections[0]
    top, right, bottom, left = (
        round(m.mm, 1) for m in (s.top_margin, s.right_margin, s.bottom_margin, s.left_margin)
    )
    return top, right, bottom, left


def test_margins_option_sets_the_page_margins_in_css_order(job: Path) -> None:
    out = job.parent / "m.docx"
    convert(job / "features.md", out, margins="20mm 15mm 25mm 1in")
    assert sides_mm(out) == (20.0, 15.0, 25.0, 25.4)
    doc = load(out)
    section = doc.sections[0]
    text_width = section.page_width - section.left_margin - section.right_margin
    # The table fills the new text width, and pictures are scaled to it.
    grid = doc.tables[0]._tbl.findall("w:tblGrid/w:gridCol", NS)
    assert sum(int(g.get(f"{{{NS['w']}}}w")) for g in grid) * 635 == text_width
    assert doc.inline_shapes[0].width <= text_width


def test_theme_margins_keep_one_inch(job: Path) -> None:
    out = job.parent / "m.docx"
    convert(job / "features.md", out)
    assert sides_mm(out) == (25.4, 25.4, 25.4, 25.4)
    convert(job / "features.md", out, margins="2cm")
    assert sides_mm(out) == (20.0, 20.0, 20.0, 20.0)


def test_margins_override_a_reference_docx_and_theme_keeps_its_own(job: Path) -> None:
    ref = docx.Document()
    section = ref.sections[0]
    section.page_width, section.page_height = Mm(148), Mm(210)
    section.top_margin = section.bottom_margin = Mm(12)
    section.left_margin = section.right_margin = Mm(15)
    ref.save(str(job / "reference.docx"))
    out = job.parent / "m.docx"
    convert(job / "features.md", out, reference_docx=job / "reference.docx")
    assert sides_mm(out) == (12.0, 15.0, 12.0, 15.0)
    convert(job / "features.md", out, reference_docx=job / "reference.docx", margins="10mm 5mm")
    assert sides_mm(out) == (10.0, 5.0, 10.0, 5.0)
    assert round(load(out).sections[0].page_width.mm) == 148  # the reference's page stays
    # Checked against the reference's page, not page_size: 100 mm sides leave no text on A5.
    with pytest.raises(JobError) as err:
        convert(job / "features.md", out, reference_docx=job / "reference.docx", margins="5mm 50mm")
    assert "reference.docx" in err.value.message


@pytest.mark.parametrize(
    ("margins", "page_size", "ok"),
    [
        ("60mm", "A6", False),
        ("60mm", "A4", True),
        ("12 furlongs", "A4", False),
        ("-3mm", "A4", False),
    ],
)
def test_bad_margins_fail_the_job_naming_the_key(
    job: Path, margins: str, page_size: str, ok: bool
) -> None:
    out = job.parent / "m.docx"
    if ok:
        convert(job / "features.md", out, margins=margins, page_size=page_size)
        assert sides_mm(out) == (60.0, 60.0, 60.0, 60.0)
        return
    with pytest.raises(JobError) as err:
        convert(job / "features.md", out, margins=margins, page_size=page_size)
    assert err.value.code == ErrorCode.INPUT_INVALID
    assert err.value.message.startswith("margins ")
    assert not out.exists()


def test_page_sizes_are_defined_once_for_every_target() -> None:
    assert parse_page_size("a5") == PageSize("A5", False, 148.0, 210.0)
    assert parse_page_size("Letter  LANDSCAPE") == PageSize("Letter", True, 279.4, 215.9)
    for bad in ("", "A4 sideways", "Postcard", "A4 landscape extra"):
        with pytest.raises(JobError) as err:
            parse_page_size(bad)
        assert err.value.code == ErrorCode.INPUT_INVALID
        assert "allowed: A3, A4, A5, A6, B4, B5, Letter, Legal, Ledger" in err.value.message


def test_ledger_landscape_docx_page(job: Path) -> None:
    out = job.parent / "l.docx"
    convert(job / "features.md", out, page_size="ledger landscape")
    s = load(out).sections[0]
    assert (s.page_width.twips, s.page_height.twips) == (24480, 15840)
    assert s.orientation == 1  # landscape


# --- the table grid (pure) ------------------------------------------------------------


def test_grid_places_rowspans_and_colspans() -> None:
    # | a (rowspan 2) | b (colspan 2) |
    # |               | c   | d       |
    # | e | f                          (ragged: one cell short)
    rows = [
        [SourceCell("a", rowspan=2), SourceCell("b", colspan=2)],
        [SourceCell("c"), SourceCell("d")],
        [SourceCell("e"), SourceCell("f")],
    ]
    grid, ncols = layout_grid(rows)
    assert ncols == 3
    assert grid[0] == [Placed("a", 0, 1, "restart"), Placed("b", 1, 2)]
    assert grid[1] == [Placed(None, 0, 1, "continue"), Placed("c", 1, 1), Placed("d", 2, 1)]
    assert grid[2] == [Placed("e", 0, 1), Placed("f", 1, 1)]


def test_grid_counts_down_rowspans_past_short_rows_and_caps_columns() -> None:
    rows = [[SourceCell("a"), SourceCell("b", rowspan=3)], [SourceCell("c")], [], [SourceCell("d")]]
    grid, ncols = layout_grid(rows)
    assert grid[1] == [Placed("c", 0, 1), Placed(None, 1, 1, "continue")]
    assert grid[2] == [Placed(None, 1, 1, "continue")]
    assert grid[3] == [Placed("d", 0, 1)]
    _, ncols = layout_grid([[SourceCell("x", colspan=500)]])
    assert ncols == 63


def test_column_widths_share_the_width_by_content() -> None:
    grid, ncols = layout_grid([[SourceCell("id"), SourceCell("a long description " * 5)]])
    widths = column_widths(grid, ncols, 9000, len)
    assert sum(widths) == 9000
    assert widths[1] > 3 * widths[0]
    # No column starves: a one-letter column still gets its minimum share.
    grid, ncols = layout_grid([[SourceCell("x"), SourceCell("y" * 500)]])
    widths = column_widths(grid, ncols, 6400, len)
    assert widths[0] == 6400 * 4 // 64
