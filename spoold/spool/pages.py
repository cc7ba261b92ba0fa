"""Page sizes and margins: the `page_size` and `margins` options of a job, defined once
for settings, PDF and DOCX and checked the same way in settings and at layout."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ErrorCode, JobError

THEME_MARGINS = "theme"  # the default: whatever @page margin the theme sets
MARGIN_UNITS_MM = {
    "mm": 1.0,
    "cm": 10.0,
    "q": 0.25,
    "in": 25.4,
    "pt": 25.4 / 72,
    "pc": 25.4 / 6,
    "px": 25.4 / 96,
}
# No single margin wider than this; anything more is a typo, not a layout.
MAX_MARGIN_MM = 150.0
# Margins must leave at least this much text area; WeasyPrint would otherwise set one
# word per page and run until the job's timeout.
MIN_TEXT_MM = 50.0
# Portrait (width, height) in mm of the page sizes spoold accepts.
PAGE_SIZES_MM = {
    "a3": (297.0, 420.0),
    "a4": (210.0, 297.0),
    "a5": (148.0, 210.0),
    "a6": (105.0, 148.0),
    "b4": (250.0, 353.0),
    "b5": (176.0, 250.0),
    "letter": (215.9, 279.4),
    "legal": (215.9, 355.6),
    "ledger": (279.4, 431.8),
}
PAGE_SIZE_NAMES = ("A3", "A4", "A5", "A6", "B4", "B5", "Letter", "Legal", "Ledger")
_LENGTH = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([a-z]*)", re.IGNORECASE)
MARGINS_HELP = "'theme' or 1 to 4 CSS lengths in mm, cm, in, pt, pc or px, e.g. '20mm 15mm'"


@dataclass(frozen=True)
class PageSize:
    """A checked page_size: its canonical name and its oriented size in mm."""

    name: str  # "A4", "Letter"
    landscape: bool
    width_mm: float
    height_mm: float

    @property
    def css(self) -> str:
        """The CSS `size` value of the PDF's @page: 'A4', 'Letter landscape'."""
        return f"{self.name} landscape" if self.landscape else self.name


def parse_page_size(page_size: str) -> PageSize:
    """'A4', 'letter landscape' ...; JobError(input_invalid) naming the allowed values."""
    words = page_size.split()
    known = {p.lower(): p for p in PAGE_SIZE_NAMES}
    orient = words[1].lower() if len(words) == 2 else "portrait"
    if (
        not words
        or len(words) > 2
        or words[0].lower() not in known
        or orient
        not in (
            "portrait",
            "landscape",
        )
    ):
        raise JobError(
            ErrorCode.INPUT_INVALID,
            f"unknown page_size {page_size!r}; allowed: {', '.join(PAGE_SIZE_NAMES)}"
            " (optionally followed by 'landscape')",
            hint="Set page_size to one of the allowed values in job.json or spool.toml.",
        )
    width, height = PAGE_SIZES_MM[words[0].lower()]
    if orient == "landscape":
        width, height = height, width
    return PageSize(known[words[0].lower()], orient == "landscape", width, height)


def parse_margins(value: str) -> tuple[float, float, float, float] | None:
    """(top, right, bottom, left) in mm, None for 'theme'; ValueError when malformed.

    1 to 4 values expand as in CSS: "20mm" is all sides, "20mm 15mm" is top/bottom and
    right/left, "20mm 15mm 25mm" is top, right/left, bottom.
    """
    words = value.split()
    if [w.lower() for w in words] == [THEME_MARGINS]:
        return None
    if not 1 <= len(words) <= 4:
        raise ValueError(f"must be {MARGINS_HELP}")
    mm: list[float] = []
    for word in words:
        m = _LENGTH.fullmatch(word)
        unit = m.group(2).lower() if m else ""
        if m is None or (unit not in MARGIN_UNITS_MM and not (unit == "" and float(m[1]) == 0)):
            raise ValueError(f"{word!r} is not a length; must be {MARGINS_HELP}")
        length = float(m.group(1)) * MARGIN_UNITS_MM.get(unit, 0.0)
        if length > MAX_MARGIN_MM:
            raise ValueError(f"{word!r} is wider than {MAX_MARGIN_MM:g} mm")
        mm.append(length)
    return _expand(mm)


def _expand(mm: list[float]) -> tuple[float, float, float, float]:
    if len(mm) == 1:
        return mm[0], mm[0], mm[0], mm[0]
    if len(mm) == 2:
        return mm[0], mm[1], mm[0], mm[1]
    if len(mm) == 3:
        return mm[0], mm[1], mm[2], mm[1]
    return mm[0], mm[1], mm[2], mm[3]


def margins_mm(
    margins: str, width_mm: float, height_mm: float, page: str
) -> tuple[float, float, float, float] | None:
    """(top, right, bottom, left) in mm for a page of that size, None for 'theme'.

    Raises JobError(input_invalid) naming the key when the margins are malformed or leave
    less than MIN_TEXT_MM of text width or height on the page (`page` names it).
    """
    try:
        sides = parse_margins(margins)
    except ValueError as exc:
        raise JobError(
            ErrorCode.INPUT_INVALID,
            f"margins {margins!r}: {exc}",
            hint="Set margins in job.json or spool.toml to 'theme' or CSS lengths.",
        ) from exc
    if sides is None:
        return None
    top, right, bottom, left = sides
    if width_mm - left - right < MIN_TEXT_MM or height_mm - top - bottom < MIN_TEXT_MM:
        raise JobError(
            ErrorCode.INPUT_INVALID,
            f"margins {margins!r} leave less than {MIN_TEXT_MM:g} mm of text width or"
            f" height on a {page} page",
            hint="Use smaller margins or a larger page_size.",
        )
    return sides


def margins_css(margins: str, page_size: str) -> str | None:
    """The @page margin value for the job, or None to keep the theme's.

    `page_size` is the option as written ('A4', 'letter landscape'). Raises
    JobError(input_invalid) as parse_page_size and margins_mm do.
    """
    size = parse_page_size(page_size)
    if margins_mm(margins, size.width_mm, size.height_mm, page_size) is None:
        return None
    return " ".join(margins.split()).lower()
