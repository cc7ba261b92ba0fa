"""A table of contents (`<nav class="toc">`, from md_toc.py) as a Word TOC field.

The field (`TOC \\o "1-6" \\h \\z \\u`: heading levels, hyperlinked entries) holds the
entries spoold already knows as its current result: one paragraph per heading,
indented by level, each an internal hyperlink to the heading's bookmark. Word rebuilds
the result with page numbers when it updates fields (the document asks it to on
opening: `w:updateFields` in settings.xml); LibreOffice and readers that do not
update fields (pandoc) show the entries as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from lxml.etree import SubElement

from .paragraphs import Block, Para, Sink
from .styles import P, StyleLook, StyleSpec
from .template_styles import ensure_style
from .xml import XML_SPACE, q, tag_of

TOC_INSTRUCTION = ' TOC \\o "1-6" \\h \\z \\u '
# settings.xml children that come after w:updateFields (schema order).
_AFTER_UPDATE_FIELDS = frozenset(
    q(f"w:{tag}")
    for tag in (
        "hdrShapeDefaults",
        "footnotePr",
        "endnotePr",
        "compat",
        "docVars",
        "rsids",
        "mathPr",
        "attachedSchema",
        "themeFontLang",
        "clrSchemeMapping",
        "doNotIncludeSubdocsInStats",
        "doNotAutoCompressPictures",
        "forceUpgrade",
        "captions",
        "readModeInkLockDown",
        "smartTagType",
        "schemaLibrary",
        "shapeDefaults",
        "doNotEmbedSmartTags",
        "decimalSymbol",
        "listSeparator",
    )
)


def is_toc(el: Any) -> bool:
    return tag_of(el) == "nav" and "toc" in (el.get("class") or "").split()


def toc_entries(nav: Any) -> Iterator[tuple[int, Any]]:
    """(depth, <a>) of every entry, in order; depth 0 for the outermost list."""
    for a in nav.iter("a"):
        depth, parent = -1, a.getparent()
        while parent is not None and parent is not nav:
            depth += tag_of(parent) in ("ul", "ol")
            parent = parent.getparent()
        yield max(depth, 0), a


def _field_run(p: Any, kind: str, before: Any | None = None) -> None:
    r = SubElement(p, q("w:r"))
    SubElement(r, q("w:fldChar")).set(q("w:fldCharType"), kind)
    if before is not None:
        before.addprevious(r)


def _instruction(p: Any, before: Any | None) -> None:
    r = SubElement(p, q("w:r"))
    text = SubElement(r, q("w:instrText"))
    text.set(XML_SPACE, "preserve")
    text.text = TOC_INSTRUCTION
    if before is not None:
        before.addprevious(r)


def toc_style(doc: Any, styles: dict[str, str], depth: int) -> str:
    """Word's "toc N" paragraph style for entries of `depth`, added when first used (so
    documents without a contents list keep the template as it was)."""
    name = f"toc {min(depth, 8) + 1}"
    if name not in styles:
        spec = StyleSpec(name, P, StyleLook(left_indent=240 * min(depth, 8), space_after=2))
        styles[name] = ensure_style(doc, spec)
    return name


def write_toc(
    nav: Any,
    blk: Block,
    sink: Sink,
    new_para: Callable[[Sink, Block, str], Para],
    link: Callable[[Any, Para, Block], None],
    style: Callable[[int], str],
) -> None:
    """The contents as a TOC field; `link` writes one entry's <a> into a paragraph,
    `style(depth)` names the entry's paragraph style."""
    paras: list[Para] = []
    for depth, a in toc_entries(nav):
        para = new_para(sink, replace(blk, indent=None), style(depth))
        link(a, para, blk)
        para.finish()
        paras.append(para)
    if not paras:
        return
    first, last = paras[0].p, paras[-1].p
    start = next((c for c in first if c.tag != q("w:pPr")), None)
    _field_run(first, "begin", start)
    _instruction(first, start)
    _field_run(first, "separate", start)
    _field_run(last, "end")


def ask_to_update_fields(doc: Any) -> None:
    """settings.xml: Word updates the fields (the TOC's page numbers) on opening."""
    settings = doc.settings.element
    if settings.find(q("w:updateFields")) is not None:
        return
    el = settings.makeelement(q("w:updateFields"), {q("w:val"): "true"})
    later = next((c for c in settings if c.tag in _AFTER_UPDATE_FIELDS), None)
    if later is not None:
        later.addprevious(el)
    else:
        settings.append(el)
