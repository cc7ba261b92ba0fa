"""Small WordprocessingML and HTML helpers shared by the writer's modules."""

from __future__ import annotations

import functools
import re
from typing import Any

from docx.oxml.ns import qn
from lxml.etree import SubElement

WS = re.compile(r"[ \t\n\r\f\v]+")
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
# Characters XML 1.0 cannot carry (lxml refuses them): control characters but tab/LF/CR.
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_PRE_SPLIT = re.compile("([\t\r\n])")
_ALIGNMENTS = {
    "left": "left",
    "start": "left",
    "right": "right",
    "end": "right",
    "center": "center",
    "justify": "both",
}


# The children of w:pPr in the order the schema requires (ECMA-376 CT_PPrBase, then
# CT_PPr's own): a child inserted later must go before the first that follows it.
PPR_ORDER = (
    "pStyle", "keepNext", "keepLines", "pageBreakBefore", "framePr", "widowControl",
    "numPr", "suppressLineNumbers", "pBdr", "shd", "tabs", "suppressAutoHyphens",
    "kinsoku", "wordWrap", "overflowPunct", "topLinePunct", "autoSpaceDE", "autoSpaceDN",
    "bidi", "adjustRightInd", "snapToGrid", "spacing", "ind", "contextualSpacing",
    "mirrorIndents", "suppressOverlap", "jc", "textDirection", "textAlignment",
    "textboxTightWrap", "outlineLvl", "divId", "cnfStyle", "rPr", "sectPr", "pPrChange",
)  # fmt: skip


@functools.cache
def ppr_after(tag: str) -> frozenset[str]:
    """Clark names of the w:pPr children that come after w:`tag` in schema order."""
    return frozenset(q(f"w:{t}") for t in PPR_ORDER[PPR_ORDER.index(tag) + 1 :])


@functools.cache
def q(tag: str) -> str:
    """Clark name of a prefixed tag ('w:p'), cached: the walk asks for a few tags often."""
    return str(qn(tag))


def val(parent: Any, tag: str, value: str) -> Any:
    """Append <tag w:val=value/> to parent."""
    el = SubElement(parent, q(tag))
    el.set(q("w:val"), value)
    return el


def xml_safe(text: str) -> str:
    return _BAD_XML.sub("", text)


def append_pre_text(r: Any, text: str) -> Any:
    """Fill the new run `r` as python-docx's `run.text = text` does (\\t becomes w:tab,
    \\r and \\n w:br), without its per-character loop; return the last w:t or None."""
    last_t = None
    for piece in _PRE_SPLIT.split(text):
        if not piece:
            continue
        if piece == "\t":
            SubElement(r, q("w:tab"))
        elif piece in ("\r", "\n"):
            SubElement(r, q("w:br"))
        else:
            last_t = SubElement(r, q("w:t"))
            last_t.text = piece
            if len(piece.strip()) < len(piece):
                last_t.set(XML_SPACE, "preserve")
    return last_t


# --- reading the HTML tree


def tag_of(el: Any) -> str:
    """Lower-case local name of an element; '' for comments and processing instructions."""
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].lower()


def classes(el: Any) -> set[str]:
    return set((el.get("class") or "").split())


def style_props(el: Any) -> dict[str, str]:
    """The declarations of a `style` attribute, lower-cased."""
    out: dict[str, str] = {}
    for decl in (el.get("style") or "").split(";"):
        key, sep, value = decl.partition(":")
        if sep:
            out[key.strip().lower()] = value.strip().lower()
    return out


def alignment(el: Any) -> str | None:
    """The Word w:jc value of an `align` attribute or `text-align` style, if any."""
    align = el.get("align")
    if align is None and el.get("style") is None:
        return None
    value = (align or style_props(el).get("text-align") or "").lower()
    return _ALIGNMENTS.get(value)
