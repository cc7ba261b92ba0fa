"""Right-to-left text in DOCX: `w:bidi` paragraphs, `w:rtl` runs, mirrored tables.

In a document whose direction is right to left (`<html dir="rtl">`, from front matter
`dir`/`lang`, the HTML, or the text's script: spoold.convert.scripts) every paragraph
but code is a right-to-left paragraph, tables are mirrored (`w:bidiVisual`) and so is
the section. Elsewhere a paragraph whose first letter is Arabic, Hebrew or another
right-to-left script is one too. A run holding right-to-left letters is marked `w:rtl`
so Word shapes and orders it as such.
"""

from __future__ import annotations

from typing import Any

from docx.oxml.ns import nsmap
from lxml.etree import SubElement, XPath

from ..scripts import first_strong_rtl, has_rtl
from .xml import ppr_after, q

# rPr children that come after w:rtl.
_AFTER_RTL = frozenset(
    q(f"w:{tag}") for tag in ("cs", "em", "lang", "eastAsianLayout", "specVanish", "oMath")
)


def _insert(parent: Any, tag: str, after: frozenset[str]) -> None:
    if parent.find(q(tag)) is not None:
        return
    el = parent.makeelement(q(tag), {})
    later = next((c for c in parent if c.tag in after), None)
    if later is not None:
        later.addprevious(el)
    else:
        parent.append(el)


def _properties(el: Any, tag: str) -> Any:
    """The element's properties child (w:pPr, w:rPr), made first child when missing."""
    props = el.find(q(tag))
    if props is None:
        props = el.makeelement(q(tag), {})
        el.insert(0, props)
    return props


def _ppr(p: Any) -> Any:
    return _properties(p, "w:pPr")


def _rpr(r: Any) -> Any:
    return _properties(r, "w:rPr")


def _text(el: Any) -> str:
    return "".join(t.text or "" for t in el.iter(q("w:t")))


# All text of a body, in C (a walk in Python makes a proxy per w:t).
_ALL_TEXT = XPath("descendant::w:t/text()", namespaces={"w": nsmap["w"]}, smart_strings=False)


def mark_rtl(body: Any, document_rtl: bool, code_style: str | None) -> None:
    """Mark the right-to-left paragraphs, runs, tables and section of `body`."""
    if not document_rtl and not has_rtl("".join(_ALL_TEXT(body))):
        return
    for p in body.iter(q("w:p")):
        style = p.find(f"{q('w:pPr')}/{q('w:pStyle')}")
        is_code = style is not None and style.get(q("w:val")) == code_style
        text = _text(p)
        if (document_rtl and not is_code) or first_strong_rtl(text):
            _insert(_ppr(p), "w:bidi", ppr_after("bidi"))
        for r in p.iter(q("w:r")):
            if has_rtl(_text(r)):
                _insert(_rpr(r), "w:rtl", _AFTER_RTL)
    if document_rtl:
        for tbl_pr in body.iter(q("w:tblPr")):
            _insert(tbl_pr, "w:bidiVisual", _TBL_AFTER)
        for sect in body.iter(q("w:sectPr")):
            _bidi_section(sect)


# tblPr children after w:bidiVisual (schema order).
_TBL_AFTER = frozenset(
    q(f"w:{tag}")
    for tag in (
        "tblStyleRowBandSize",
        "tblStyleColBandSize",
        "tblW",
        "jc",
        "tblCellSpacing",
        "tblInd",
        "tblBorders",
        "shd",
        "tblLayout",
        "tblCellMar",
        "tblLook",
        "tblCaption",
        "tblDescription",
    )
)
_SECT_AFTER = frozenset(q(f"w:{tag}") for tag in ("rtlGutter", "docGrid", "printerSettings"))


def _bidi_section(sect: Any) -> None:
    if sect.find(q("w:bidi")) is None:
        el = SubElement(sect, q("w:bidi"))
        later = next((c for c in sect if c.tag in _SECT_AFTER), None)
        if later is not None:
            later.addprevious(el)
