"""The Word styles the writer uses, as one table, and how they are defined in a document.

Names follow Word's built-ins, and pandoc's for code and definition lists, so a
reference.docx made for Word or pandoc styles our output too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from docx.enum.style import WD_STYLE_TYPE
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Pt, RGBColor, Twips
from docx.styles import BabelFish
from docx.styles.style import StyleFactory

from .xml import ppr_after, q

P, C, T = WD_STYLE_TYPE.PARAGRAPH, WD_STYLE_TYPE.CHARACTER, WD_STYLE_TYPE.TABLE
HEADING_BLUE = RGBColor(0x1F, 0x3A, 0x5F)


@dataclass(frozen=True)
class StyleLook:
    """spoold's look for a style; None leaves a property as the base style has it."""

    font: str | None = None
    size: float | None = None  # pt
    bold: bool | None = None
    italic: bool | None = None
    underline: bool | None = None
    superscript: bool | None = None
    color: RGBColor | None = None
    no_proof: bool | None = None
    centred: bool = False
    left_indent: int | None = None  # twips
    right_indent: int | None = None  # twips
    space_before: float | None = None  # pt
    space_after: float | None = None  # pt
    line_spacing: float | None = None  # multiple of single
    keep_with_next: bool | None = None
    border_left: str | None = None  # hex colour of a bar left of the text
    shading: str | None = None  # hex background colour


@dataclass(frozen=True)
class StyleSpec:
    name: str
    kind: WD_STYLE_TYPE
    look: StyleLook
    base: str = "Normal"  # for paragraph styles this writer adds


# GitHub alerts: type -> (bar colour, background), GitHub's own colours.
ALERT_TYPES: dict[str, tuple[str, str]] = {
    "note": ("0969DA", "DDF4FF"),
    "tip": ("1A7F37", "DAFBE1"),
    "important": ("8250DF", "FBEFFF"),
    "warning": ("9A6700", "FFF8C5"),
    "caution": ("D1242F", "FFEBE9"),
}


def _alert(kind: str, bar: str, background: str) -> StyleSpec:
    # Based on "Quote" so readers (pandoc) take the callout for a block quote.
    look = StyleLook(
        italic=False,
        color=RGBColor(0x1F, 0x23, 0x28),
        left_indent=288,
        right_indent=0,
        border_left=bar,
        shading=background,
    )
    return StyleSpec(f"Alert {kind.title()}", P, look, base="Quote")


def _heading(level: int) -> StyleSpec:
    look = StyleLook(
        font="Calibri",
        size=(20, 16, 14, 12, 11, 11)[level - 1],
        bold=True,
        italic=level == 6,
        color=HEADING_BLUE,
        space_before=(18, 14, 12, 10, 8, 8)[level - 1],
        space_after=4,
        keep_with_next=True,
    )
    return StyleSpec(f"Heading {level}", P, look)


# In the order they are added to a document that lacks them.
STYLES: tuple[StyleSpec, ...] = (
    StyleSpec("Normal", P, StyleLook(font="Calibri", size=11, space_after=6, line_spacing=1.15)),
    *(_heading(n) for n in range(1, 7)),
    StyleSpec(
        "Title", P, StyleLook(font="Calibri", size=26, bold=True, centred=True, space_after=6)
    ),
    StyleSpec("Author", P, StyleLook(centred=True, space_after=2)),
    StyleSpec("Date", P, StyleLook(centred=True, space_after=2)),
    StyleSpec(
        "Quote",
        P,
        StyleLook(italic=True, color=RGBColor(0x40, 0x40, 0x40), left_indent=720, right_indent=360),
    ),
    StyleSpec(
        "Source Code",
        P,
        StyleLook(
            font="Courier New",
            size=9,
            no_proof=True,
            space_before=0,
            space_after=6,
            line_spacing=1.0,
        ),
    ),
    StyleSpec("Verbatim Char", C, StyleLook(font="Courier New", size=10, no_proof=True)),
    StyleSpec("Hyperlink", C, StyleLook(color=RGBColor(0x05, 0x63, 0xC1), underline=True)),
    StyleSpec("Footnote Text", P, StyleLook(size=9, space_after=0, line_spacing=1.0)),
    StyleSpec("Footnote Reference", C, StyleLook(superscript=True)),
    StyleSpec("List Paragraph", P, StyleLook(space_after=2)),
    StyleSpec("Definition Term", P, StyleLook(bold=True, space_after=0, keep_with_next=True)),
    StyleSpec("Definition", P, StyleLook(left_indent=720)),
    StyleSpec("Caption", P, StyleLook(italic=True, size=9)),
    StyleSpec("Table Grid", T, StyleLook()),
    *(_alert(kind, *colours) for kind, colours in ALERT_TYPES.items()),
)
STYLE_NAMES: tuple[tuple[str, WD_STYLE_TYPE], ...] = tuple((s.name, s.kind) for s in STYLES)


def define_style(doc: Any, spec: StyleSpec, tune: bool) -> None:
    """Create the style when missing; with `tune`, also give it spoold's look.

    Without `tune` (a reference.docx) an existing style is left exactly as it is.
    """
    styles = doc.styles
    try:
        style = styles[spec.name]
        exists = True
    except KeyError:
        style = styles.add_style(spec.name, spec.kind)
        exists = False
    if exists and not tune:
        return
    if spec.kind == T:
        if not exists:
            _add_table_borders(style)
        return
    if spec.kind == P and spec.name != "Normal" and not exists:
        style.base_style = _paragraph_style(styles, spec.base) or styles["Normal"]
    _apply_font(style.font, spec.look)
    if spec.kind == P:
        _apply_paragraph(style.paragraph_format, spec.look)


def _paragraph_style(styles: Any, name: str) -> Any:
    try:
        style = styles[name]
    except KeyError:
        return None
    return style if style.type == P else None


def _apply_font(font: Any, look: StyleLook) -> None:
    if look.font is not None:
        font.name = look.font
        # East Asian and complex-script text otherwise keep the theme font.
        rfonts = font.element.rPr.get_or_add_rFonts() if font.element.rPr is not None else None
        if rfonts is not None:
            for attr in ("w:eastAsia", "w:cs"):
                rfonts.set(qn(attr), look.font)
    if look.size is not None:
        font.size = Pt(look.size)
    for attr in ("bold", "italic", "underline", "superscript", "no_proof"):
        value = getattr(look, attr)
        if value is not None:
            setattr(font, attr, value)
    if look.color is not None:
        font.color.rgb = look.color


def _apply_paragraph(pf: Any, look: StyleLook) -> None:
    # Set in this order: the w:spacing and w:ind attributes keep it.
    if look.centred:
        pf.alignment = WD_ALIGN_PARAGRAPH.CENTER
    if look.left_indent is not None:
        pf.left_indent = Twips(look.left_indent)
    if look.right_indent is not None:
        pf.right_indent = Twips(look.right_indent)
    if look.space_before is not None:
        pf.space_before = Pt(look.space_before)
    if look.space_after is not None:
        pf.space_after = Pt(look.space_after)
    if look.line_spacing is not None:
        pf.line_spacing = look.line_spacing
    if look.keep_with_next is not None:
        pf.keep_with_next = look.keep_with_next
    if look.border_left is not None or look.shading is not None:
        _add_box(pf._element.get_or_add_pPr(), look)


def _add_box(ppr: Any, look: StyleLook) -> None:
    """A coloured bar left of the paragraphs and a background: a callout box."""
    new = []
    if look.border_left is not None:
        bdr = OxmlElement("w:pBdr")
        left = OxmlElement("w:left")
        for key, value in (("w:val", "single"), ("w:sz", "24"), ("w:space", "8")):
            left.set(qn(key), value)
        left.set(qn("w:color"), look.border_left)
        bdr.append(left)
        new.append(bdr)
    if look.shading is not None:
        shd = OxmlElement("w:shd")
        for key, value in (("w:val", "clear"), ("w:color", "auto")):
            shd.set(qn(key), value)
        shd.set(qn("w:fill"), look.shading)
        new.append(shd)
    later = next((c for c in ppr if c.tag in ppr_after("shd")), None)
    for el in new:
        if later is not None:
            later.addprevious(el)
        else:
            ppr.append(el)


def _add_table_borders(style: Any) -> None:
    tbl_pr = style.element.find(qn("w:tblPr"))
    if tbl_pr is None:
        tbl_pr = OxmlElement("w:tblPr")
        style.element.append(tbl_pr)
    borders = OxmlElement("w:tblBorders")
    for side in ("top", "left", "bottom", "right", "insideH", "insideV"):
        b = OxmlElement(f"w:{side}")
        for key, value in (
            ("w:val", "single"),
            ("w:sz", "4"),
            ("w:space", "0"),
            ("w:color", "auto"),
        ):
            b.set(qn(key), value)
        borders.append(b)
    tbl_pr.append(borders)
    mar = OxmlElement("w:tblCellMar")
    for side, width in (("left", "108"), ("right", "108")):
        m = OxmlElement(f"w:{side}")
        m.set(qn("w:w"), width)
        m.set(qn("w:type"), "dxa")
        mar.append(m)
    tbl_pr.append(mar)


def styles_ids(styles: Any) -> dict[str, str]:
    """Style id per name in STYLES (of python-docx Styles), for the styles of the kind
    this writer expects: one pass over styles.xml instead of python-docx's xpath query
    per name."""
    by_name: dict[str, Any] = {}
    for el in styles.element.iterchildren(q("w:style")):
        for name_el in el.iterchildren(q("w:name")):
            name = name_el.get(q("w:val"))
            if name is not None:
                by_name.setdefault(name, el)
    out: dict[str, str] = {}
    for spec in STYLES:
        el = by_name.get(BabelFish.ui2internal(spec.name))
        # Not found by name: python-docx's lookup (and its fallbacks) decides.
        style = StyleFactory(el) if el is not None else styles[spec.name]
        if style.type != spec.kind:
            continue  # a reference.docx with a same-named style of another kind
        out[spec.name] = style.style_id
    return out
