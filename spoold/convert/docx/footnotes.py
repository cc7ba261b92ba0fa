"""Native Word footnotes (word/footnotes.xml) from an HTML footnotes section.

Markdown footnotes (and HTML in the same form) are a section of `<li id>` items that
links `<a href="#id">` point to; each reference becomes a w:footnoteReference to a copy
of the item's content, and the section leaves the body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from docx.opc.constants import CONTENT_TYPE as CT
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.oxml import OxmlElement, parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.parts.story import StoryPart

from .paragraphs import Block, Fmt, Para, Paragraphs, Sink
from .xml import classes, tag_of

WriteBlocks = Callable[[Any, Block, Sink], None]
_SEPARATOR = (
    '<w:footnote w:type="{kind}" w:id="{id}"><w:p><w:pPr>'
    '<w:spacing w:after="0" w:line="240" w:lineRule="auto"/></w:pPr>'
    "<w:r><w:{kind}/></w:r></w:p></w:footnote>"
)


# The elements a footnotes section can be (the HTML parser gives lower-case tags).
_SECTION_TAGS = ("section", "div", "aside", "ol")


def collect_footnotes(root: Any) -> dict[str, Any]:
    """Take the footnotes sections out of the tree; return their items by id."""
    items: dict[str, Any] = {}
    sections = [
        el
        for el in root.iter(*_SECTION_TAGS)
        if "footnotes" in classes(el) or el.get("role") == "doc-endnotes"
    ]
    for sec in sections:
        if sec.getparent() is None:
            continue
        for li in sec.iter("li"):
            lid = li.get("id")
            if lid:
                items[lid] = li
        for back in [
            a
            for a in sec.iter("a")
            if "footnote-backref" in classes(a) or a.get("role") == "doc-backlink"
        ]:
            back.drop_tree()
        prev = sec.getprevious()
        sec.drop_tree()
        if prev is not None and tag_of(prev) == "hr" and "footnotes-sep" in classes(prev):
            prev.drop_tree()
    return items


class Footnotes:
    """The footnotes part and the notes written into it."""

    def __init__(
        self,
        doc: Any,
        items: dict[str, Any],
        styles: Mapping[str, str],
        paragraphs: Paragraphs,
        write_blocks: WriteBlocks,
    ) -> None:
        self.doc = doc
        self.items = items
        self.styles = styles
        self.paragraphs = paragraphs
        self.write_blocks = write_blocks
        self.root: Any = None
        self.part: Any = None
        self.next_id = 1

    def target_of(self, sup: Any) -> str | None:
        """The note a `<sup><a href="#id"></a></sup>` footnote mark refers to, if any."""
        if len(sup) != 1 or (sup.text or "").strip():
            return None
        a = sup[0]
        href = (a.get("href") or "").strip() if tag_of(a) == "a" else ""
        if href.startswith("#") and href[1:] in self.items:
            return href[1:]
        return None

    def add(self, note_id: str, para: Para, fmt: Fmt) -> None:
        """Write note `note_id` as a new footnote referenced at the end of `para`."""
        root, part = self._story()
        fid = self.next_id
        self.next_id += 1
        note = OxmlElement("w:footnote")
        note.set(qn("w:id"), str(fid))
        root.append(note)
        sink = Sink(note, part)
        self.write_blocks(self.items[note_id], Block(style="Footnote Text", in_footnote=True), sink)
        paras = note.findall(qn("w:p"))
        if not paras:
            self.paragraphs.new(sink, Block(style="Footnote Text")).finish()
            paras = note.findall(qn("w:p"))
        ref_style = self.styles.get("Footnote Reference")
        mark = OxmlElement("w:r")
        mark.append(_ref_rpr(ref_style))
        mark.append(OxmlElement("w:footnoteRef"))
        space = OxmlElement("w:r")
        space.text = " "
        ppr = paras[0].find(qn("w:pPr"))
        if ppr is not None:
            ppr.addnext(mark)
        else:
            paras[0].insert(0, mark)
        mark.addnext(space)
        ref = OxmlElement("w:r")
        ref.append(_ref_rpr(ref_style))
        fref = OxmlElement("w:footnoteReference")
        fref.set(qn("w:id"), str(fid))
        ref.append(fref)
        para.target.append(ref)
        para.placed()

    def _story(self) -> tuple[Any, Any]:
        if self.root is None:
            part = self._editable_part()
            ids = [
                int(v)
                for v in (n.get(qn("w:id")) or "" for n in part.element.iter(qn("w:footnote")))
                if v.lstrip("-").isdigit()
            ]
            self.next_id = max([0, *ids]) + 1
            self.root = part.element
            self.part = part
        return self.root, self.part

    def _editable_part(self) -> StoryPart:
        doc_part = self.doc.part
        try:
            part = doc_part.part_related_by(RT.FOOTNOTES)
        except KeyError:
            xml = (
                f"<w:footnotes {nsdecls('w', 'r')}>"
                + _SEPARATOR.format(kind="separator", id="-1")
                + _SEPARATOR.format(kind="continuationSeparator", id="0")
                + "</w:footnotes>"
            )
            part = StoryPart(
                PackURI("/word/footnotes.xml"), CT.WML_FOOTNOTES, parse_xml(xml), doc_part.package
            )
            doc_part.relate_to(part, RT.FOOTNOTES)
        if not isinstance(part, StoryPart):
            # Loaded as an opaque part: swap in an editable one with the same content.
            old = part
            part = StoryPart(old.partname, old.content_type, parse_xml(old.blob), old.package)
            for rid, rel in list(doc_part.rels.items()):
                if rel.reltype == RT.FOOTNOTES:
                    del doc_part.rels[rid]
            doc_part.relate_to(part, RT.FOOTNOTES)
        return part


def _ref_rpr(style_id: str | None) -> Any:
    rpr = OxmlElement("w:rPr")
    if style_id is not None:
        rpr.style = style_id
    else:
        rpr.superscript = True
    return rpr
