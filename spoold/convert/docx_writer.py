"""HTML -> DOCX with python-docx: the one writer behind html->docx, md->docx and pdf->docx.

Markdown and PDF first become HTML (markdown_to_html, pdf_to_html); this module walks that
HTML once and writes real Word structure: heading styles, numbering definitions in
numbering.xml (a new w:num per list, so every <ol> restarts at its own start), tables with
repeating header rows, hyperlinks with relationships, inline pictures scaled to the text
width, native footnotes in word/footnotes.xml, and the head's metadata as document
properties. python-docx has no API for footnotes, numbering or hyperlinks, so those are
built as WordprocessingML elements here.

Output is reproducible: dates in core.xml are fixed (front matter date, else 2000-01-01)
and the zip is rewritten with fixed timestamps and order, so the same input and options
give the same bytes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import re
import sys
import urllib.parse
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import docx
from docx.enum.style import WD_STYLE_TYPE
from docx.opc.constants import CONTENT_TYPE as CT
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.opc.pkgwriter import PackageWriter
from docx.oxml import OxmlElement, parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.parts.numbering import NumberingPart
from docx.parts.story import StoryPart
from docx.shared import Emu, Pt, RGBColor, Twips
from docx.styles import BabelFish
from docx.styles.style import StyleFactory
from lxml.etree import SubElement

from ..errors import ErrorCode, JobError
from .base import ConversionContext, ConversionResult, register
from .fetcher import fetch_bytes

EMU_PER_PX = 9525  # 914400 EMU per inch / 96 CSS px per inch
EMU_PER_TWIP = 635
FIXED_DATE = dt.datetime(2000, 1, 1, 0, 0, 0)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Our walk recurses about two frames per HTML level; parse_html caps nesting at 256
# levels, so this limit always suffices (restored afterwards).
WALK_RECURSION_LIMIT = 4000
# A reference.docx is a zip: refuse bombs before python-docx inflates every part.
MAX_REFERENCE_MEMBERS = 2000
MAX_REFERENCE_BYTES = 200 * 1024 * 1024

# Page sizes in twips (portrait); the same names html.py accepts for PDF.
_MM = 1440 / 25.4
PAGE_SIZES_TWIPS: dict[str, tuple[int, int]] = {
    "a3": (round(297 * _MM), round(420 * _MM)),
    "a4": (round(210 * _MM), round(297 * _MM)),
    "a5": (round(148 * _MM), round(210 * _MM)),
    "a6": (round(105 * _MM), round(148 * _MM)),
    "b4": (round(250 * _MM), round(353 * _MM)),
    "b5": (round(176 * _MM), round(250 * _MM)),
    "letter": (12240, 15840),
    "legal": (12240, 20160),
    "ledger": (15840, 24480),
}

_LINK_SCHEMES = ("http", "https", "mailto", "ftp", "ftps", "tel", "news")
_WS = re.compile(r"[ \t\n\r\f\v]+")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_SKIP = {
    "head",
    "script",
    "style",
    "template",
    "noscript",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "param",
    "audio",
    "video",
    "canvas",
    "map",
    "title",
    "meta",
    "link",
    "base",
    "button",
    "select",
    "textarea",
    "datalist",
    "source",
    "track",
}
_CONTAINERS = {
    "html",
    "body",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "nav",
    "aside",
    "figure",
    "details",
    "summary",
    "address",
    "center",
    "fieldset",
    "form",
    "hgroup",
    "search",
    "li",
    "dt",
    "dd",
    "caption",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "td",
    "th",
    "legend",
    "picture",
    "dialog",
    "menu",
}
_BLOCKS = (
    set(_HEADINGS)
    | _CONTAINERS
    | {"p", "pre", "ul", "ol", "blockquote", "hr", "table", "dl", "figcaption", "svg", "math"}
) - {"li", "dt", "dd", "caption", "thead", "tbody", "tfoot", "tr", "td", "th", "legend"}
_BLOCKS |= _SKIP
_OL_FORMATS = {
    "1": "decimal",
    "a": "lowerLetter",
    "A": "upperLetter",
    "i": "lowerRoman",
    "I": "upperRoman",
}
_BULLETS = ("•", "◦", "▪")
_CHECKED = "☒"
_UNCHECKED = "☐"

# Styles this writer uses: (name, type). Names follow Word's built-ins, and pandoc's for
# code and definition lists, so a reference.docx made for pandoc styles our output too.
P, C, T = WD_STYLE_TYPE.PARAGRAPH, WD_STYLE_TYPE.CHARACTER, WD_STYLE_TYPE.TABLE
STYLE_NAMES: tuple[tuple[str, WD_STYLE_TYPE], ...] = (
    ("Normal", P),
    *((f"Heading {n}", P) for n in range(1, 7)),
    ("Title", P),
    ("Author", P),
    ("Date", P),
    ("Quote", P),
    ("Source Code", P),
    ("Verbatim Char", C),
    ("Hyperlink", C),
    ("Footnote Text", P),
    ("Footnote Reference", C),
    ("List Paragraph", P),
    ("Definition Term", P),
    ("Definition", P),
    ("Caption", P),
    ("Table Grid", T),
)


# --- styles and template --------------------------------------------------------------


def _set_font(font: Any, name: str | None = None, size: float | None = None) -> None:
    if name is not None:
        font.name = name
        # East Asian and complex-script text otherwise keep the theme font.
        rfonts = font.element.rPr.get_or_add_rFonts() if font.element.rPr is not None else None
        if rfonts is not None:
            for attr in ("w:eastAsia", "w:cs"):
                rfonts.set(qn(attr), name)
    if size is not None:
        font.size = Pt(size)


def _add_table_borders(style: Any) -> None:
    tbl_pr = style.element.find(qn("w:tblPr"))
    if tbl_pr is None:
        tbl_pr = OxmlElement("w:tblPr")
        style.element.append(tbl_pr)
    borders = OxmlElement("w:tblBorders")
    for side in ("top", "left", "bottom", "right", "insideH", "insideV"):
        b = OxmlElement(f"w:{side}")
        b.set(qn("w:val"), "single")
        b.set(qn("w:sz"), "4")
        b.set(qn("w:space"), "0")
        b.set(qn("w:color"), "auto")
        borders.append(b)
    tbl_pr.append(borders)
    mar = OxmlElement("w:tblCellMar")
    for side, width in (("left", "108"), ("right", "108")):
        m = OxmlElement(f"w:{side}")
        m.set(qn("w:w"), width)
        m.set(qn("w:type"), "dxa")
        mar.append(m)
    tbl_pr.append(mar)


def _define_style(doc: Any, name: str, kind: WD_STYLE_TYPE, tune: bool) -> None:
    """Create style `name` when missing; with `tune`, also give it spoold's look.

    Without `tune` (a reference.docx) an existing style is left exactly as it is.
    """
    styles = doc.styles
    try:
        style = styles[name]
        exists = True
    except KeyError:
        style = styles.add_style(name, kind)
        exists = False
    if exists and not tune:
        return
    if kind == T:
        if not exists:
            _add_table_borders(style)
        return
    font = style.font
    pf = style.paragraph_format if kind == P else None
    normal_based = kind == P and name != "Normal"
    if normal_based and not exists:
        style.base_style = styles["Normal"]
    if name == "Normal":
        _set_font(font, "Calibri", 11)
        assert pf is not None
        pf.space_after = Pt(6)
        pf.line_spacing = 1.15
    elif name.startswith("Heading "):
        level = int(name[-1])
        _set_font(font, "Calibri", (20, 16, 14, 12, 11, 11)[level - 1])
        font.bold = True
        font.italic = level == 6
        font.color.rgb = RGBColor(0x1F, 0x3A, 0x5F)
        assert pf is not None
        pf.space_before = Pt((18, 14, 12, 10, 8, 8)[level - 1])
        pf.space_after = Pt(4)
        pf.keep_with_next = True
    elif name == "Title":
        _set_font(font, "Calibri", 26)
        font.bold = True
        assert pf is not None
        pf.alignment = 1
        pf.space_after = Pt(6)
    elif name in ("Author", "Date"):
        assert pf is not None
        pf.alignment = 1
        pf.space_after = Pt(2)
    elif name == "Quote":
        font.italic = True
        font.color.rgb = RGBColor(0x40, 0x40, 0x40)
        assert pf is not None
        pf.left_indent = Twips(720)
        pf.right_indent = Twips(360)
    elif name == "Source Code":
        _set_font(font, "Courier New", 9)
        assert pf is not None
        pf.space_before = Pt(0)
        pf.space_after = Pt(6)
        pf.line_spacing = 1.0
        font.no_proof = True
    elif name == "Verbatim Char":
        _set_font(font, "Courier New", 10)
        font.no_proof = True
    elif name == "Hyperlink":
        font.color.rgb = RGBColor(0x05, 0x63, 0xC1)
        font.underline = True
    elif name == "Footnote Text":
        _set_font(font, None, 9)
        assert pf is not None
        pf.space_after = Pt(0)
        pf.line_spacing = 1.0
    elif name == "Footnote Reference":
        font.superscript = True
    elif name == "List Paragraph":
        assert pf is not None
        pf.space_after = Pt(2)
    elif name == "Definition Term":
        font.bold = True
        assert pf is not None
        pf.space_after = Pt(0)
        pf.keep_with_next = True
    elif name == "Definition":
        assert pf is not None
        pf.left_indent = Twips(720)
    elif name == "Caption":
        font.italic = True
        _set_font(font, None, 9)


@functools.cache
def _default_template() -> bytes:
    """python-docx's template with spoold's styles, built once per process."""
    doc = docx.Document()
    for name, kind in STYLE_NAMES:
        _define_style(doc, name, kind, tune=True)
    section = doc.sections[0]
    for side in ("top_margin", "bottom_margin", "left_margin", "right_margin"):
        setattr(section, side, Twips(1440))
    # The template's preview image shows python-docx's sample page, not ours.
    pkg_rels = doc.part.package.rels
    for rid, rel in list(pkg_rels.items()):
        if rel.reltype == RT.THUMBNAIL:
            del pkg_rels[rid]
    buf = io.BytesIO()
    doc.save(buf)
    # Stored, not deflated: every job opens this, and inflating ~1 MB of styles costs more
    # than reading it. The parts are the same either way.
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    return out.getvalue()


def _load_reference(ctx: ConversionContext, path: Path) -> Any:
    """Open reference.docx: its styles, numbering and page setup stay, its body goes."""
    if not path.is_absolute():
        path = ctx.job_root / path

    def invalid(why: str) -> JobError:
        return JobError(
            ErrorCode.INPUT_INVALID,
            f"reference.docx is not a valid Word document: {why}"[:300],
            hint="Save the reference document from Word (or LibreOffice) as .docx and drop it again.",
        )

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise invalid(f"cannot read {path.name} ({exc.strerror or exc})") from exc
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_REFERENCE_MEMBERS:
                raise invalid(f"more than {MAX_REFERENCE_MEMBERS} parts")
            if sum(i.file_size for i in infos) > MAX_REFERENCE_BYTES:
                raise invalid(f"unpacks to more than {MAX_REFERENCE_BYTES} bytes")
        doc = docx.Document(io.BytesIO(data))
    except JobError:
        raise
    except Exception as exc:  # python-docx raises many types for broken packages
        raise invalid(f"{type(exc).__name__}: {exc}") from exc
    for name, kind in STYLE_NAMES:
        try:
            _define_style(doc, name, kind, tune=False)
        except Exception as exc:
            raise invalid(f"its styles cannot be used ({type(exc).__name__}: {exc})") from exc
    body = doc.element.body
    children = list(body)
    last_sect = children[-1] if children and children[-1].tag == qn("w:sectPr") else None
    for child in children:
        if child is not last_sect:
            body.remove(child)
    _prune_reference_rels(doc)
    return doc


# Relationships the reference's (now removed) body may have used.
_BODY_RELTYPES = {
    RT.IMAGE,
    RT.HYPERLINK,
    RT.OLE_OBJECT,
    RT.PACKAGE,
    RT.CHART,
    RT.DIAGRAM_COLORS,
    RT.DIAGRAM_DATA,
    RT.DIAGRAM_LAYOUT,
    RT.DIAGRAM_QUICK_STYLE,
    RT.COMMENTS,
}


def _prune_reference_rels(doc: Any) -> None:
    part = doc.part
    used = set(part.element.xpath("//@r:*"))
    for rid, rel in list(part.rels.items()):
        if rel.reltype in _BODY_RELTYPES and rid not in used:
            del part.rels[rid]
        elif rel.reltype in (RT.FOOTNOTES, RT.ENDNOTES):
            # Keep only the separators: the notes belonged to the removed body.
            target = rel.target_part
            root = parse_xml(target.blob)
            for note in list(root):
                if note.get(qn("w:type")) in (None, "normal"):
                    root.remove(note)
            new = StoryPart(target.partname, target.content_type, root, target.package)
            del part.rels[rid]
            part.relate_to(new, rel.reltype)


def _page_setup(doc: Any, page_size: str) -> None:
    words = page_size.split()
    size = PAGE_SIZES_TWIPS.get(words[0].lower()) if words else None
    orient = words[1].lower() if len(words) == 2 else "portrait"
    if size is None or len(words) > 2 or orient not in ("portrait", "landscape"):
        raise JobError(
            ErrorCode.INPUT_INVALID,
            f"unknown page_size {page_size!r}; allowed: A3, A4, A5, A6, B4, B5, Letter,"
            " Legal, Ledger (optionally followed by 'landscape')",
            hint="Set page_size to one of the allowed values in job.json or spool.toml.",
        )
    width, height = size
    section = doc.sections[0]
    if orient == "landscape":
        from docx.enum.section import WD_ORIENT

        width, height = height, width
        section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width = Twips(width)
    section.page_height = Twips(height)


# --- document properties -------------------------------------------------------------


def _parse_date(value: str) -> dt.datetime | None:
    value = value.strip()
    if not value:
        return None
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})", value)
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        if not m:
            return None
        try:
            parsed = dt.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed if 1900 <= parsed.year <= 9999 else None


def _as_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _head_metadata(root: Any) -> dict[str, str]:
    meta: dict[str, str] = {}
    title = root.find(".//head/title")
    if title is not None and (title.text or "").strip():
        meta["title"] = _WS.sub(" ", title.text_content()).strip()
    for el in root.iterfind(".//head/meta"):
        name = (el.get("name") or "").strip().lower()
        content = (el.get("content") or "").strip()
        if not content:
            continue
        if name in ("author", "keywords", "subject", "description"):
            meta[name] = content
        elif name in ("dcterms.created", "date", "dc.date"):
            meta["date"] = content
    lang = (root.get("lang") or "").strip()
    if lang:
        meta["lang"] = lang
    return meta


def _set_properties(doc: Any, meta: Mapping[str, str]) -> None:
    def cap(s: str) -> str:
        return _xml_safe(s)[:255]  # python-docx refuses longer core property values

    cp = doc.core_properties
    cp.title = cap(meta.get("title", ""))
    cp.author = cap(meta.get("author", ""))
    cp.keywords = cap(meta.get("keywords", ""))
    cp.subject = cap(meta.get("subject") or meta.get("description", ""))
    cp.comments = cap(meta.get("description", ""))
    cp.category = cap(meta.get("category", ""))
    cp.language = cap(meta.get("lang", ""))
    cp.last_modified_by = "spoold"
    cp.revision = 1
    when = _parse_date(meta.get("date", "")) or FIXED_DATE
    cp.created = when
    cp.modified = when
    cp.last_printed = when


# --- writer state ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Fmt:
    bold: bool = False
    italic: bool = False
    underline: bool = False
    strike: bool = False
    code: bool = False
    sub: bool = False
    sup: bool = False
    mark: bool = False
    link: bool = False


_PLAIN = _Fmt()
_BOLD = _Fmt(bold=True)
_XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
# Characters XML 1.0 cannot carry (lxml refuses them): control characters but tab/LF/CR.
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@functools.cache
def _q(tag: str) -> str:
    return str(qn(tag))


def _val(parent: Any, tag: str, value: str) -> Any:
    el = SubElement(parent, _q(tag))
    el.set(_q("w:val"), value)
    return el


def _xml_safe(text: str) -> str:
    return _BAD_XML.sub("", text)


@dataclass
class _Pending:
    """Numbering for the first paragraph of a list item."""

    num_id: int
    ilvl: int
    used: bool = False


@dataclass(frozen=True)
class _Block:
    """How paragraphs created in this part of the tree look."""

    style: str = "Normal"
    fmt: _Fmt = _Fmt()
    align: str | None = None
    indent: int | None = None  # left indent in twips, overriding the style's
    quote_depth: int = 0
    list_level: int = -1
    pending: _Pending | None = None
    in_footnote: bool = False
    in_table: bool = False


@dataclass
class _Sink:
    """Where block content goes: the body, a table cell or a footnote, and its part."""

    element: Any
    part: Any
    before: Any = None  # insert before this child (the body's sectPr)
    last_was_table: bool = False

    def add(self, tag: str) -> Any:
        """A new child element `tag` at the end of this container."""
        el = SubElement(self.element, _q(tag))
        if self.before is not None:
            self.before.addprevious(el)  # moves it in front of the sectPr
        self.last_was_table = tag == "w:tbl"
        return el


class _Para:
    """One w:p being filled with runs; HTML whitespace is collapsed as browsers do."""

    def __init__(self, writer: _Writer, p: Any, part: Any, preformatted: bool = False) -> None:
        self.w = writer
        self.p = p
        self.part = part
        self.target = p  # the w:p, or a w:hyperlink inside it
        self.pre = preformatted
        self.at_space = True
        self.last_t: Any = None

    def run(self, fmt: _Fmt) -> Any:
        r = SubElement(self.target, _q("w:r"))
        if fmt != _PLAIN:
            self.w.run_props(r, fmt)
        return r

    def text(self, text: str, fmt: _Fmt) -> None:
        if not text:
            return
        if not self.pre:
            text = _WS.sub(" ", text)
            if self.at_space:
                text = text.lstrip(" ")
            if not text:
                return
            self.at_space = text.endswith(" ")
        r = self.run(fmt)
        if self.pre:
            self.last_t = _append_pre_text(r, _xml_safe(text))
            return
        t = SubElement(r, _q("w:t"))
        t.text = _xml_safe(text)
        if text[0] == " " or text[-1] == " ":
            t.set(_XML_SPACE, "preserve")
        self.last_t = t

    def br(self) -> None:
        r = SubElement(self.target, _q("w:r"))
        SubElement(r, _q("w:br"))
        self.at_space = True
        self.last_t = None

    def finish(self) -> None:
        t = self.last_t
        if t is not None and not self.pre and t.text and t.text.endswith(" "):
            t.text = t.text.rstrip(" ")


_PRE_SPLIT = re.compile("([\t\r\n])")


def _append_pre_text(r: Any, text: str) -> Any:
    """Fill the new run `r` as python-docx's `run.text = text` does (\t becomes w:tab,
    \r and \n w:br), without its per-character loop; return the last w:t or None."""
    last_t = None
    for piece in _PRE_SPLIT.split(text):
        if not piece:
            continue
        if piece == "\t":
            SubElement(r, _q("w:tab"))
        elif piece in ("\r", "\n"):
            SubElement(r, _q("w:br"))
        else:
            last_t = SubElement(r, _q("w:t"))
            last_t.text = piece
            if len(piece.strip()) < len(piece):
                last_t.set(_XML_SPACE, "preserve")
    return last_t


def _classes(el: Any) -> set[str]:
    return set((el.get("class") or "").split())


def _tag(el: Any) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].lower()


def _style_props(el: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for decl in (el.get("style") or "").split(";"):
        key, sep, value = decl.partition(":")
        if sep:
            out[key.strip().lower()] = value.strip().lower()
    return out


def _alignment(el: Any) -> str | None:
    align = el.get("align")
    if align is None and el.get("style") is None:
        return None
    value = (align or _style_props(el).get("text-align") or "").lower()
    return {
        "left": "left",
        "start": "left",
        "right": "right",
        "end": "right",
        "center": "center",
        "justify": "both",
    }.get(value)


def _style_ids(doc: Any) -> dict[str, str]:
    """Style id per name in STYLE_NAMES, for the styles of the kind this writer expects.

    One pass over styles.xml instead of python-docx's xpath query per name.
    """
    styles = doc.styles
    by_name: dict[str, Any] = {}
    for el in styles.element.iterchildren(_q("w:style")):
        for name_el in el.iterchildren(_q("w:name")):
            val = name_el.get(_q("w:val"))
            if val is not None:
                by_name.setdefault(val, el)
    out: dict[str, str] = {}
    for name, kind in STYLE_NAMES:
        el = by_name.get(BabelFish.ui2internal(name))
        # Not found by name: python-docx's lookup (and its fallbacks) decides.
        style = StyleFactory(el) if el is not None else styles[name]
        if style.type != kind:
            continue  # a reference.docx with a same-named style of another kind
        out[name] = style.style_id
    return out


class _Writer:
    def __init__(self, doc: Any, ctx: ConversionContext, base: Path) -> None:
        self.doc = doc
        self.ctx = ctx
        self.base = base
        self.styles = _style_ids(doc)
        section = doc.sections[0]
        width = (section.page_width or Twips(12240)) - (section.left_margin or 0)
        width -= section.right_margin or 0
        height = (section.page_height or Twips(15840)) - (section.top_margin or 0)
        height -= section.bottom_margin or 0
        self.text_width = max(int(width), int(Twips(1440)))
        self.text_height = max(int(height), int(Twips(1440)))
        body = doc.element.body
        sect = body.find(qn("w:sectPr"))
        self.body = _Sink(body, doc.part, before=sect)
        self.footnote_items: dict[str, Any] = {}
        self.footnotes_root: Any = None
        self.footnotes_part: Any = None
        self.next_footnote = 1
        self.numbering: Any = None
        self.abstract_ids: dict[str, int] = {}
        self.bullet_num: int | None = None
        self.next_abstract = 0
        self.next_num = 1
        self.next_pic_id = 1
        self.link_rids: dict[tuple[int, str], str] = {}
        self.cell_blocks: dict[tuple[bool, str | None, bool], _Block] = {}
        self.next_rid: dict[int, int] = {}

    # --- styles and runs

    def run_props(self, r: Any, fmt: _Fmt) -> None:
        # Children in schema order: rStyle, b, i, strike, highlight, u, vertAlign.
        rpr = SubElement(r, _q("w:rPr"))
        style = "Hyperlink" if fmt.link else "Verbatim Char" if fmt.code else None
        if style is not None and style in self.styles:
            _val(rpr, "w:rStyle", self.styles[style])
        if fmt.bold:
            SubElement(rpr, _q("w:b"))
        if fmt.italic:
            SubElement(rpr, _q("w:i"))
        if fmt.strike:
            SubElement(rpr, _q("w:strike"))
        if fmt.mark:
            _val(rpr, "w:highlight", "yellow")
        if fmt.underline:
            _val(rpr, "w:u", "single")
        if fmt.sup or fmt.sub:
            _val(rpr, "w:vertAlign", "superscript" if fmt.sup else "subscript")

    def new_para(self, sink: _Sink, blk: _Block, style: str | None = None) -> _Para:
        p = sink.add("w:p")
        name = style or blk.style
        style_id = self.styles.get(name) if name != "Normal" else None
        pending = blk.pending
        preformatted = name == "Source Code"
        if (
            style_id is None
            and pending is None
            and blk.list_level < 0
            and blk.indent is None
            and blk.align is None
        ):
            return _Para(self, p, sink.part, preformatted=preformatted)  # no w:pPr needed
        # Children in schema order: pStyle, numPr, ind, jc.
        ppr = SubElement(p, _q("w:pPr"))
        if style_id is not None:
            _val(ppr, "w:pStyle", style_id)
        left: int | None = None
        if pending is not None and not pending.used:
            pending.used = True
            num_pr = SubElement(ppr, _q("w:numPr"))
            _val(num_pr, "w:ilvl", str(pending.ilvl))
            _val(num_pr, "w:numId", str(pending.num_id))
        elif blk.list_level >= 0:
            # A later paragraph of a list item lines up with the item's text.
            left = 720 * (blk.list_level + 1)
        if blk.indent is not None and blk.list_level < 0:
            left = blk.indent
        if left is not None:
            SubElement(ppr, _q("w:ind")).set(_q("w:left"), str(left))
        if blk.align is not None:
            _val(ppr, "w:jc", blk.align)
        if len(ppr) == 0:
            p.remove(ppr)
        return _Para(self, p, sink.part, preformatted=preformatted)

    # --- block level

    def blocks(self, el: Any, blk: _Block, sink: _Sink) -> None:
        """Write el's children as blocks; loose inline content gets implicit paragraphs."""
        para: _Para | None = None

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
            tag = _tag(child)
            if tag and tag in _BLOCKS:
                if para is not None:
                    para.finish()
                    para = None
                self.block(child, tag, blk, sink)
            elif tag:
                if para is None:
                    para = self.new_para(sink, blk)
                self.inline(child, tag, para, blk.fmt, blk)
            loose(child.tail)
        if para is not None:
            para.finish()

    def block(self, el: Any, tag: str, blk: _Block, sink: _Sink) -> None:
        if tag in _SKIP:
            return
        align = _alignment(el)
        if align is not None:
            blk = replace(blk, align=align)
        if tag in _HEADINGS:
            name = f"Heading {_HEADINGS[tag]}"
            if tag == "h1" and "title" in _classes(el):
                name = "Title"
            self.paragraph(el, blk, sink, name)
        elif tag == "p":
            cls = _classes(el)
            name = None
            if el.getparent() is not None and "title-block" in _classes(el.getparent()):
                name = "Author" if "author" in cls else "Date" if "date" in cls else None
            self.paragraph(el, blk, sink, name)
        elif tag == "pre":
            self.code_block(el, blk, sink)
        elif tag in ("ul", "ol"):
            self.list_(el, tag, blk, sink)
        elif tag == "blockquote":
            depth = blk.quote_depth + 1
            self.blocks(
                el,
                replace(
                    blk,
                    style="Quote",
                    quote_depth=depth,
                    indent=720 * depth if depth > 1 else blk.indent,
                ),
                sink,
            )
        elif tag == "hr":
            if "footnotes-sep" not in _classes(el):
                self.rule(sink, blk)
        elif tag == "table":
            if blk.in_footnote:
                self.blocks(el, blk, sink)  # tables in footnotes are flattened
            else:
                self.table(el, blk, sink)
        elif tag == "dl":
            self.definition_list(el, blk, sink)
        elif tag == "figcaption":
            self.paragraph(el, blk, sink, "Caption")
        elif tag == "svg":
            self.ctx.warn("an inline SVG image was skipped (SVG is not supported in DOCX output)")
        elif tag == "math":
            self.paragraph(el, blk, sink, None)
        else:
            self.blocks(el, blk, sink)

    def paragraph(self, el: Any, blk: _Block, sink: _Sink, style: str | None) -> None:
        """A block element whose content is inline; nested blocks end it and follow."""
        if any(_tag(c) in _BLOCKS for c in el):
            # Invalid but common (a div inside a p): keep order, accept extra paragraphs.
            sub = replace(blk, style=style) if style else blk
            self.blocks(el, sub, sink)
            return
        para = self.new_para(sink, blk, style)
        self.inline_children(el, para, blk.fmt, blk)
        para.finish()

    def code_block(self, el: Any, blk: _Block, sink: _Sink) -> None:
        text = el.text_content()
        # HTML drops one newline right after <pre>; markdown adds one at the end.
        text = text.removeprefix("\n").removesuffix("\n").replace("\r\n", "\n")
        para = self.new_para(sink, replace(blk, fmt=_Fmt()), "Source Code")
        para.text(text, _Fmt())

    def rule(self, sink: _Sink, blk: _Block) -> None:
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

    def definition_list(self, el: Any, blk: _Block, sink: _Sink) -> None:
        for child in el:
            tag = _tag(child)
            if tag == "dt":
                self.paragraph(child, blk, sink, "Definition Term")
            elif tag == "dd":
                self.blocks(child, replace(blk, style="Definition"), sink)
            elif tag == "div":  # HTML allows dt/dd grouped in divs
                self.definition_list(child, blk, sink)

    # --- lists

    def _numbering_root(self) -> Any:
        if self.numbering is None:
            try:
                part = self.doc.part.part_related_by(RT.NUMBERING)
            except KeyError:
                part = NumberingPart(
                    PackURI("/word/numbering.xml"),
                    CT.WML_NUMBERING,
                    parse_xml(f"<w:numbering {nsdecls('w')}/>"),
                    self.doc.part.package,
                )
                self.doc.part.relate_to(part, RT.NUMBERING)
            root = part.element
            ids = [int(v) for v in root.xpath("./w:abstractNum/@w:abstractNumId") if v.isdigit()]
            nums = [int(v) for v in root.xpath("./w:num/@w:numId") if v.isdigit()]
            self.next_abstract = max(ids, default=-1) + 1
            self.next_num = max(nums, default=0) + 1
            self.numbering = root
        return self.numbering

    def _abstract(self, fmt: str) -> int:
        """One abstractNum per list format (bullet, decimal...), made on first use."""
        if fmt in self.abstract_ids:
            return self.abstract_ids[fmt]
        root = self._numbering_root()
        aid = self.next_abstract
        self.next_abstract += 1
        absn = OxmlElement("w:abstractNum")
        absn.set(qn("w:abstractNumId"), str(aid))
        multi = OxmlElement("w:multiLevelType")
        multi.set(qn("w:val"), "hybridMultilevel")
        absn.append(multi)
        for ilvl in range(9):
            lvl = OxmlElement("w:lvl")
            lvl.set(qn("w:ilvl"), str(ilvl))
            for tag, val in (
                ("w:start", "1"),
                ("w:numFmt", "bullet" if fmt == "bullet" else fmt),
                (
                    "w:lvlText",
                    _BULLETS[ilvl % len(_BULLETS)] if fmt == "bullet" else f"%{ilvl + 1}.",
                ),
                ("w:lvlJc", "left"),
            ):
                child = OxmlElement(tag)
                child.set(qn("w:val"), val)
                lvl.append(child)
            ppr = OxmlElement("w:pPr")
            ind = OxmlElement("w:ind")
            ind.set(qn("w:left"), str(720 * (ilvl + 1)))
            ind.set(qn("w:hanging"), "360")
            ppr.append(ind)
            lvl.append(ppr)
            absn.append(lvl)
        # Schema order: every abstractNum before the first num.
        first_num = root.find(qn("w:num"))
        if first_num is not None:
            first_num.addprevious(absn)
        else:
            last_abs = root.findall(qn("w:abstractNum"))
            if last_abs:
                last_abs[-1].addnext(absn)
            else:
                root.insert(0, absn)
        self.abstract_ids[fmt] = aid
        return aid

    def _new_num(self, fmt: str, ilvl: int | None = None, start: int | None = None) -> int:
        root = self._numbering_root()
        aid = self._abstract(fmt)
        nid = self.next_num
        self.next_num += 1
        num = OxmlElement("w:num")
        num.set(qn("w:numId"), str(nid))
        ref = OxmlElement("w:abstractNumId")
        ref.set(qn("w:val"), str(aid))
        num.append(ref)
        if ilvl is not None and start is not None:
            over = OxmlElement("w:lvlOverride")
            over.set(qn("w:ilvl"), str(ilvl))
            so = OxmlElement("w:startOverride")
            so.set(qn("w:val"), str(start))
            over.append(so)
            num.append(over)
        # w:numIdMacAtCleanup, if any, must stay last.
        cleanup = root.find(qn("w:numIdMacAtCleanup"))
        if cleanup is not None:
            cleanup.addprevious(num)
        else:
            root.append(num)
        return nid

    def list_(self, el: Any, tag: str, blk: _Block, sink: _Sink) -> None:
        level = min(blk.list_level + 1, 8)
        if tag == "ol":
            fmt = _OL_FORMATS.get((el.get("type") or "1").strip(), "decimal")
            try:
                start = int((el.get("start") or "1").strip())
            except ValueError:
                start = 1
            # A new num per <ol>: each list restarts at its own start value.
            num_id = self._new_num(fmt, level, max(start, 0))
        else:
            if self.bullet_num is None:
                self.bullet_num = self._new_num("bullet")
            num_id = self.bullet_num
        base = replace(blk, list_level=level, indent=None, style="List Paragraph")
        if "List Paragraph" not in self.styles:
            base = replace(base, style="Normal")
        for child in el:
            ctag = _tag(child)
            if ctag != "li":
                if ctag in ("ul", "ol"):  # a list directly inside a list
                    self.list_(child, ctag, blk if level == 0 else base, sink)
                continue
            # A task list's check box is the item's first <input>: inline() draws it.
            pending = _Pending(num_id=num_id, ilvl=level)
            self.list_item(child, replace(base, pending=pending), sink)

    def list_item(self, li: Any, blk: _Block, sink: _Sink) -> None:
        first = next((c for c in li if _tag(c)), None)
        if (
            (li.text or "").strip() == ""
            and first is not None
            and _tag(first)
            in (
                "ul",
                "ol",
                "table",
                "pre",
            )
        ):
            # The item starts with a nested block: keep its marker on an empty line.
            self.new_para(sink, blk).finish()
        self.blocks(li, blk, sink)
        if blk.pending is not None and not blk.pending.used:
            self.new_para(sink, blk).finish()  # an empty <li> still counts

    # --- inline level

    def inline_children(self, el: Any, para: _Para, fmt: _Fmt, blk: _Block) -> None:
        para.text(el.text or "", fmt)
        for child in el:
            tag = _tag(child)
            if tag:
                self.inline(child, tag, para, fmt, blk)
            para.text(child.tail or "", fmt)

    def inline(self, el: Any, tag: str, para: _Para, fmt: _Fmt, blk: _Block) -> None:
        if tag in ("strong", "b"):
            fmt = replace(fmt, bold=True)
        elif tag in ("em", "i", "cite", "dfn", "var"):
            fmt = replace(fmt, italic=True)
        elif tag in ("u", "ins"):
            fmt = replace(fmt, underline=True)
        elif tag in ("s", "del", "strike"):
            fmt = replace(fmt, strike=True)
        elif tag in ("code", "kbd", "samp", "tt"):
            fmt = replace(fmt, code=True)
        elif tag == "sub":
            fmt = replace(fmt, sub=True, sup=False)
        elif tag == "sup":
            note = None if blk.in_footnote else self._footnote_target(el)
            if note is not None:
                self.footnote(note, para, fmt)
                return
            fmt = replace(fmt, sup=True, sub=False)
        elif tag == "mark":
            fmt = replace(fmt, mark=True)
        elif tag == "br":
            para.br()
            return
        elif tag == "img":
            self.image(el, para)
            return
        elif tag == "input":
            if (el.get("type") or "").lower() == "checkbox":
                para.text((_CHECKED if el.get("checked") is not None else _UNCHECKED) + " ", fmt)
            return
        elif tag == "a":
            self.link(el, para, fmt, blk)
            return
        elif tag == "q":
            para.text("“", fmt)
            self.inline_children(el, para, fmt, blk)
            para.text("”", fmt)
            return
        elif tag in _SKIP:
            return
        elif tag == "svg":
            self.ctx.warn("an inline SVG image was skipped (SVG is not supported in DOCX output)")
            return
        elif tag == "span" or tag == "font":
            fmt = self._css_fmt(el, fmt)
        self.inline_children(el, para, fmt, blk)

    @staticmethod
    def _css_fmt(el: Any, fmt: _Fmt) -> _Fmt:
        props = _style_props(el)
        weight = props.get("font-weight", "")
        if weight == "bold" or (weight.isdigit() and int(weight) >= 600):
            fmt = replace(fmt, bold=True)
        if props.get("font-style") in ("italic", "oblique"):
            fmt = replace(fmt, italic=True)
        deco = props.get("text-decoration", "") + " " + props.get("text-decoration-line", "")
        if "underline" in deco:
            fmt = replace(fmt, underline=True)
        if "line-through" in deco:
            fmt = replace(fmt, strike=True)
        return fmt

    def link(self, el: Any, para: _Para, fmt: _Fmt, blk: _Block) -> None:
        href = (el.get("href") or "").strip()
        note_id = href[1:] if href.startswith("#") else ""
        if note_id and note_id in self.footnote_items and not blk.in_footnote:
            self.footnote(note_id, para, fmt)
            return
        scheme = urllib.parse.urlsplit(href).scheme.lower() if href else ""
        if scheme not in _LINK_SCHEMES or para.target is not para.p:
            # Internal anchors, relative and unsafe links (and links in links): text only.
            self.inline_children(el, para, fmt, blk)
            return
        key = (id(para.part), href)
        rid = self.link_rids.get(key)
        if rid is None:
            # python-docx's relate_to scans every relationship per call: quadratic in links.
            rels = para.part.rels
            n = self.next_rid.get(id(para.part), len(rels) + 1)
            while f"rId{n}" in rels:
                n += 1
            rid = f"rId{n}"
            self.next_rid[id(para.part)] = n + 1
            rels.add_relationship(RT.HYPERLINK, _xml_safe(href), rid, is_external=True)
            self.link_rids[key] = rid
        link = SubElement(para.p, _q("w:hyperlink"))
        link.set(_q("r:id"), rid)
        link.set(_q("w:history"), "1")
        para.target = link
        try:
            self.inline_children(el, para, replace(fmt, link=True), blk)
        finally:
            para.target = para.p
        if len(link) == 0:
            para.p.remove(link)

    # --- footnotes

    def collect_footnotes(self, root: Any) -> None:
        """Take the footnotes section out of the body; its items become native footnotes."""
        sections = [
            el
            for el in root.iter()
            if _tag(el) in ("section", "div", "aside", "ol")
            and ("footnotes" in _classes(el) or el.get("role") == "doc-endnotes")
        ]
        for sec in sections:
            if sec.getparent() is None:
                continue
            for li in sec.iter("li"):
                lid = li.get("id")
                if lid:
                    self.footnote_items[lid] = li
            for back in [
                a
                for a in sec.iter("a")
                if "footnote-backref" in _classes(a) or a.get("role") == "doc-backlink"
            ]:
                back.drop_tree()
            prev = sec.getprevious()
            sec.drop_tree()
            if prev is not None and _tag(prev) == "hr" and "footnotes-sep" in _classes(prev):
                prev.drop_tree()

    def _footnote_target(self, sup: Any) -> str | None:
        if len(sup) != 1 or (sup.text or "").strip():
            return None
        a = sup[0]
        href = (a.get("href") or "").strip() if _tag(a) == "a" else ""
        if href.startswith("#") and href[1:] in self.footnote_items:
            return href[1:]
        return None

    def _footnotes(self) -> tuple[Any, Any]:
        if self.footnotes_root is None:
            try:
                part = self.doc.part.part_related_by(RT.FOOTNOTES)
            except KeyError:
                sep = (
                    '<w:footnote w:type="{kind}" w:id="{id}"><w:p><w:pPr>'
                    '<w:spacing w:after="0" w:line="240" w:lineRule="auto"/></w:pPr>'
                    "<w:r><w:{kind}/></w:r></w:p></w:footnote>"
                )
                xml = (
                    f"<w:footnotes {nsdecls('w', 'r')}>"
                    + sep.format(kind="separator", id="-1")
                    + sep.format(kind="continuationSeparator", id="0")
                    + "</w:footnotes>"
                )
                part = StoryPart(
                    PackURI("/word/footnotes.xml"),
                    CT.WML_FOOTNOTES,
                    parse_xml(xml),
                    self.doc.part.package,
                )
                self.doc.part.relate_to(part, RT.FOOTNOTES)
            if not isinstance(part, StoryPart):
                # Loaded as an opaque part: swap in an editable one with the same content.
                old = part
                part = StoryPart(old.partname, old.content_type, parse_xml(old.blob), old.package)
                for rid, rel in list(self.doc.part.rels.items()):
                    if rel.reltype == RT.FOOTNOTES:
                        del self.doc.part.rels[rid]
                self.doc.part.relate_to(part, RT.FOOTNOTES)
            ids = [
                int(v)
                for v in (n.get(qn("w:id")) or "" for n in part.element.iter(qn("w:footnote")))
                if v.lstrip("-").isdigit()
            ]
            self.next_footnote = max([0, *ids]) + 1
            self.footnotes_root = part.element
            self.footnotes_part = part
        return self.footnotes_root, self.footnotes_part

    def footnote(self, note_id: str, para: _Para, fmt: _Fmt) -> None:
        root, part = self._footnotes()
        fid = self.next_footnote
        self.next_footnote += 1
        note = OxmlElement("w:footnote")
        note.set(qn("w:id"), str(fid))
        root.append(note)
        sink = _Sink(note, part)
        self.blocks(
            self.footnote_items[note_id], _Block(style="Footnote Text", in_footnote=True), sink
        )
        paras = note.findall(qn("w:p"))
        if not paras:
            self.new_para(sink, _Block(style="Footnote Text")).finish()
            paras = note.findall(qn("w:p"))
        ref_style = self.styles.get("Footnote Reference")
        first = paras[0]
        mark = OxmlElement("w:r")
        mark.append(self._ref_rpr(ref_style))
        mark.append(OxmlElement("w:footnoteRef"))
        space = OxmlElement("w:r")
        space.text = " "
        ppr = first.find(qn("w:pPr"))
        if ppr is not None:
            ppr.addnext(mark)
        else:
            first.insert(0, mark)
        mark.addnext(space)
        ref = OxmlElement("w:r")
        ref.append(self._ref_rpr(ref_style))
        fref = OxmlElement("w:footnoteReference")
        fref.set(qn("w:id"), str(fid))
        ref.append(fref)
        para.target.append(ref)
        para.at_space = False
        para.last_t = None

    @staticmethod
    def _ref_rpr(style_id: str | None) -> Any:
        rpr = OxmlElement("w:rPr")
        if style_id is not None:
            rpr.style = style_id
        else:
            rpr.superscript = True
        return rpr

    # --- images

    def image(self, el: Any, para: _Para) -> None:
        src = (el.get("src") or "").strip()
        alt = _WS.sub(" ", el.get("alt") or "").strip()

        def fallback() -> None:
            if alt:
                para.text(f"[{alt}]", _Fmt(italic=True))

        if not src:
            return
        short = src if len(src) <= 60 else src[:57] + "..."
        if src[:5].lower() != "data:" and urllib.parse.urlsplit(src).path.lower().endswith(".svg"):
            self.ctx.warn(f"image {short!r} skipped: SVG images are not supported in DOCX output")
            fallback()
            return
        data = fetch_bytes(self.ctx, src, self.base)
        if data is None:
            fallback()
            return
        prepared = self._prepare_image(data, short)
        if prepared is None:
            fallback()
            return
        blob, px_w, px_h = prepared
        width, height = self._display_size(el, px_w, px_h)
        try:
            inline = para.part.new_pic_inline(io.BytesIO(blob), Emu(width), Emu(height))
        except Exception as exc:  # python-docx's header parsers raise assorted errors
            self.ctx.warn(f"image {short!r} skipped: {type(exc).__name__}")
            fallback()
            return
        doc_pr = inline.docPr
        doc_pr.set("id", str(self.next_pic_id))
        doc_pr.set("name", f"Picture {self.next_pic_id}")
        if alt:
            doc_pr.set("descr", alt)
        self.next_pic_id += 1
        r = para.run(_PLAIN)
        SubElement(r, _q("w:drawing")).append(inline)
        para.at_space = False
        para.last_t = None

    def _prepare_image(self, data: bytes, short: str) -> tuple[bytes, int, int] | None:
        """Check the pixel cap and return (bytes Word can show, width, height) or None."""
        from PIL import Image, UnidentifiedImageError

        head = data[:256].lstrip().lower()
        if head.startswith((b"<svg", b"<?xml")) or b"<svg" in head:
            self.ctx.warn(f"image {short!r} skipped: SVG images are not supported in DOCX output")
            return None
        cap = self.ctx.options.max_image_pixels
        try:
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                fmt = im.format or ""
                if width * height > cap:
                    self.ctx.warn(
                        f"image {short!r} not loaded: {width}x{height} pixels is over the"
                        f" {cap}-pixel cap"
                    )
                    return None
                if fmt in ("PNG", "JPEG", "GIF", "BMP"):
                    return data, width, height
                # WebP, TIFF and friends: Word (or python-docx) cannot place them; PNG can.
                out = io.BytesIO()
                im.seek(0)
                frame = im.convert("RGBA" if "A" in im.getbands() or im.mode == "P" else "RGB")
                frame.save(out, format="PNG")
                return out.getvalue(), width, height
        except Image.DecompressionBombError:
            self.ctx.warn(f"image {short!r} not loaded: over the {cap}-pixel cap")
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            self.ctx.warn(f"image {short!r} skipped: not an image format Word can show")
        return None

    def _display_size(self, el: Any, px_w: int, px_h: int) -> tuple[int, int]:
        def attr_px(name: str) -> int | None:
            m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(px)?\s*", el.get(name) or "")
            return round(float(m.group(1))) if m and float(m.group(1)) >= 1 else None

        w_attr, h_attr = attr_px("width"), attr_px("height")
        px_w, px_h = max(px_w, 1), max(px_h, 1)
        if w_attr and h_attr:
            w, h = w_attr, h_attr
        elif w_attr:
            w, h = w_attr, max(1, round(px_h * w_attr / px_w))
        elif h_attr:
            w, h = max(1, round(px_w * h_attr / px_h)), h_attr
        else:
            w, h = px_w, px_h  # one image pixel per CSS pixel, as a browser shows it
        cx, cy = w * EMU_PER_PX, h * EMU_PER_PX
        scale = min(1.0, self.text_width / cx, self.text_height / cy)
        return max(1, int(cx * scale)), max(1, int(cy * scale))

    # --- tables

    def table(self, el: Any, blk: _Block, sink: _Sink) -> None:
        rows: list[tuple[Any, bool]] = []  # (tr, is header)
        caption = None
        for child in el:
            tag = _tag(child)
            if tag == "caption":
                caption = child
            elif tag == "tr":
                rows.append((child, False))
            elif tag in ("thead", "tbody", "tfoot"):
                rows.extend((tr, tag == "thead") for tr in child if _tag(tr) == "tr")
        if caption is not None:
            self.paragraph(caption, replace(blk, pending=None), sink, "Caption")
        if not rows:
            return
        # Leading rows of only <th> cells are header rows too.
        if not any(h for _, h in rows):
            for i, (tr, _) in enumerate(rows):
                cells = [c for c in tr if _tag(c) in ("td", "th")]
                if not cells or any(_tag(c) != "th" for c in cells):
                    break
                rows[i] = (tr, True)
        # Lay out the grid: (row cells as (td or None for a vMerge continuation, col, span)).
        grid: list[list[tuple[Any, int, int, str | None]]] = []
        carry: dict[int, tuple[int, int]] = {}  # col -> (rows left, colspan)
        ncols = 0

        def span(cell: Any, name: str, limit: int) -> int:
            try:
                return max(1, min(int((cell.get(name) or "1").strip()), limit))
            except ValueError:
                return 1

        for tr, _ in rows:
            out: list[tuple[Any, int, int, str | None]] = []
            col = 0
            seen: set[int] = set()
            for cell in tr:
                if _tag(cell) not in ("td", "th"):
                    continue
                col = _continue_rowspans(carry, out, col, seen)
                cs = span(cell, "colspan", 63)
                rs = span(cell, "rowspan", 1000)
                out.append((cell, col, cs, "restart" if rs > 1 else None))
                if rs > 1:
                    carry[col] = (rs - 1, cs)
                    seen.add(col)
                col += cs
            col = _continue_rowspans(carry, out, col, seen)
            for ccol in sorted(c for c in carry if c not in seen):
                # Spans beyond this row's cells (or overlapped by a colspan) still count down.
                left, cs = carry[ccol]
                if ccol >= col:
                    out.append((None, ccol, cs, "continue"))
                if left <= 1:
                    del carry[ccol]
                else:
                    carry[ccol] = (left - 1, cs)
            ncols = max(ncols, max((c + s for _, c, s, _ in out), default=0))
            grid.append(out)
        ncols = min(max(ncols, 1), 63)
        widths = self._column_widths(grid, ncols)
        total = sum(widths)

        if sink.last_was_table:
            self.new_para(sink, _Block()).finish()  # Word would merge adjacent tables
        tbl = sink.add("w:tbl")
        tbl_pr = SubElement(tbl, _q("w:tblPr"))
        if "Table Grid" in self.styles:
            _val(tbl_pr, "w:tblStyle", self.styles["Table Grid"])
        tw = SubElement(tbl_pr, _q("w:tblW"))
        tw.set(_q("w:w"), str(total))
        tw.set(_q("w:type"), "dxa")
        SubElement(tbl_pr, _q("w:tblLayout")).set(_q("w:type"), "fixed")
        look = _val(tbl_pr, "w:tblLook", "04A0")
        for key, value in (
            ("w:firstRow", "1"),
            ("w:lastRow", "0"),
            ("w:firstColumn", "0"),
            ("w:lastColumn", "0"),
            ("w:noHBand", "0"),
            ("w:noVBand", "1"),
        ):
            look.set(_q(key), value)
        tbl_grid = SubElement(tbl, _q("w:tblGrid"))
        for w in widths:
            SubElement(tbl_grid, _q("w:gridCol")).set(_q("w:w"), str(w))
        header_run = True
        for (tr, is_header), cells in zip(rows, grid, strict=True):
            row = SubElement(tbl, _q("w:tr"))
            header_run = header_run and is_header
            if header_run:
                # Only leading header rows may repeat on each page.
                SubElement(SubElement(row, _q("w:trPr")), _q("w:tblHeader"))
            row_align = _alignment(tr)
            col = 0
            for cell, ccol, cs, vmerge in cells:
                if ccol >= ncols:
                    break
                if ccol > col:  # ragged row: pad
                    self._cell(row, None, sum(widths[col:ccol]), ccol - col, None, blk, False, None)
                cs = min(cs, ncols - ccol)
                width = sum(widths[ccol : ccol + cs])
                align = _alignment(cell) if cell is not None else None
                bold = is_header or (cell is not None and _tag(cell) == "th")
                self._cell(row, cell, width, cs, vmerge, blk, bold, align or row_align)
                col = ccol + cs
            if col < ncols:
                self._cell(row, None, sum(widths[col:]), ncols - col, None, blk, False, None)
        sink.last_was_table = True

    def _cell(
        self,
        row: Any,
        cell: Any,
        width: int,
        span: int,
        vmerge: str | None,
        blk: _Block,
        bold: bool,
        align: str | None,
    ) -> None:
        tc = SubElement(row, _q("w:tc"))
        tc_pr = SubElement(tc, _q("w:tcPr"))
        tcw = SubElement(tc_pr, _q("w:tcW"))
        tcw.set(_q("w:w"), str(width))
        tcw.set(_q("w:type"), "dxa")
        if span > 1:
            _val(tc_pr, "w:gridSpan", str(span))
        if vmerge is not None:
            vm = SubElement(tc_pr, _q("w:vMerge"))
            if vmerge == "restart":
                vm.set(_q("w:val"), "restart")
        if cell is not None:
            key = (bold, align, blk.in_footnote)
            sub = self.cell_blocks.get(key)
            if sub is None:  # frozen and without a pending number: cells can share it
                sub = _Block(
                    fmt=_BOLD if bold else _PLAIN,
                    align=align,
                    in_table=True,
                    in_footnote=blk.in_footnote,
                )
                self.cell_blocks[key] = sub
            self.blocks(cell, sub, _Sink(tc, self.body.part))
        # A cell must end with a paragraph.
        if len(tc) == 1 or tc[-1].tag != _q("w:p"):
            SubElement(tc, _q("w:p"))

    def _column_widths(
        self, grid: list[list[tuple[Any, int, int, str | None]]], ncols: int
    ) -> list[int]:
        """Share the text width by content length: long columns get more, none starve."""
        lengths = [1] * ncols
        for cells in grid:
            for cell, col, cs, _ in cells:
                if cell is None or col >= ncols:
                    continue
                longest = max((len(line) for line in cell.text_content().split("\n")), default=0)
                per = max(1, longest // cs)
                for c in range(col, min(col + cs, ncols)):
                    lengths[c] = max(lengths[c], per)
        weights = [min(max(n, 4), 60) for n in lengths]
        total = self.text_width // EMU_PER_TWIP
        widths = [max(1, total * w // sum(weights)) for w in weights]
        widths[-1] += total - sum(widths)
        return widths


def _continue_rowspans(
    carry: dict[int, tuple[int, int]],
    out: list[tuple[Any, int, int, str | None]],
    col: int,
    seen: set[int],
) -> int:
    """Emit vMerge continuation cells for rowspans covering `col`; return the next column."""
    while col in carry and col not in seen:
        left, cs = carry[col]
        out.append((None, col, cs, "continue"))
        seen.add(col)
        if left <= 1:
            del carry[col]
        else:
            carry[col] = (left - 1, cs)
        col += cs
    return col


# --- the converter ---------------------------------------------------------------------


@contextlib.contextmanager
def _recursion_limit(limit: int) -> Iterator[None]:
    old = sys.getrecursionlimit()
    if old < limit:
        sys.setrecursionlimit(limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


class _Members:
    """A stand-in for python-docx's zip writer that keeps the package's members in memory.

    python-docx's save deflates every part, and the fixed-order zip would then inflate and
    deflate them all again; collecting the blobs skips both.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self.blobs: dict[str, bytes] = {}

    def write(self, pack_uri: Any, blob: bytes | str) -> None:
        name = str(pack_uri.membername)
        self.names.append(name)
        self.blobs[name] = blob.encode("utf-8") if isinstance(blob, str) else bytes(blob)

    def close(self) -> None:
        pass


def _package_members(doc: Any) -> tuple[list[str], dict[str, bytes]]:
    """The members python-docx's save would zip, as (names in write order, name -> bytes)."""
    package = doc.part.package
    parts = list(package.parts)
    for part in parts:
        part.before_marshal()
    members = _Members()
    # PackageWriter.write, minus the zip it opens itself (its helpers are untyped).
    writer: Any = PackageWriter
    writer._write_content_types_stream(members, parts)
    writer._write_pkg_rels(members, package.rels)
    writer._write_parts(members, parts)
    return members.names, members.blobs


# Raw deflate (level 6, as zipfile does it) of members that repeat from job to job: the
# template's styles, theme and settings are most of a small document's zip time. Keyed by
# content, so a cached member gives exactly the bytes a fresh deflate would.
_DEFLATE_LEVEL = 6
_DEFLATE_MIN_BYTES = 16 * 1024
_DEFLATE_CACHE_MAX_BYTES = 32 * 1024 * 1024
_DEFLATE_CACHE: dict[bytes, bytes] = {}
_PER_DOCUMENT_MEMBERS = frozenset(
    {
        "word/document.xml",
        "word/footnotes.xml",
        "word/endnotes.xml",
        "word/numbering.xml",
        "docProps/core.xml",
    }
)


def _cached_deflate(name: str, data: bytes) -> bytes | None:
    if (
        len(data) < _DEFLATE_MIN_BYTES
        or name in _PER_DOCUMENT_MEMBERS
        or name.startswith("word/media/")
    ):
        return None
    packed = _DEFLATE_CACHE.get(data)
    if packed is None:
        comp = zlib.compressobj(_DEFLATE_LEVEL, zlib.DEFLATED, -15)
        packed = comp.compress(data) + comp.flush()
        cached = sum(len(k) + len(v) for k, v in _DEFLATE_CACHE.items())
        while _DEFLATE_CACHE and cached + len(data) + len(packed) > _DEFLATE_CACHE_MAX_BYTES:
            oldest = next(iter(_DEFLATE_CACHE))  # first in, first out
            cached -= len(oldest) + len(_DEFLATE_CACHE.pop(oldest))
        if len(data) + len(packed) <= _DEFLATE_CACHE_MAX_BYTES:
            _DEFLATE_CACHE[data] = packed
    return packed


class _Precompressed:
    """Plays zipfile's compressor for one member whose deflate is already known."""

    def __init__(self, packed: bytes) -> None:
        self.packed = packed

    def compress(self, data: bytes) -> bytes:
        packed, self.packed = self.packed, b""
        return packed

    def flush(self) -> bytes:
        return b""


def _fixed_zip(names: list[str], blobs: Mapping[str, bytes]) -> bytes:
    """Zip the members with fixed timestamps, order and compression."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(names):
            data = blobs[name]
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0
            info.external_attr = 0
            packed = _cached_deflate(name, data)
            if packed is None:
                dst.writestr(info, data, compresslevel=_DEFLATE_LEVEL)
                continue
            # What writestr does, with the deflate taken from the cache (CRC and sizes
            # are still computed by zipfile from the data).
            info._compresslevel = _DEFLATE_LEVEL  # type: ignore[attr-defined]
            info.file_size = len(data)
            with dst.open(info, "w") as dest:
                cast(Any, dest)._compressor = _Precompressed(packed)
                dest.write(data)
    return out.getvalue()


def write_docx(html: str | bytes, output: Path, ctx: ConversionContext, base: Path) -> None:
    """Write the HTML document `html` as DOCX to `output`; images resolve against `base`."""
    from .html import parse_html  # depth-checked lxml parse shared with the PDF route

    ctx.stage("parsing")
    root = parse_html(html, "document")
    ref = ctx.options.reference_docx
    if ref is not None:
        doc = _load_reference(ctx, Path(ref))
    else:
        doc = docx.Document(io.BytesIO(_default_template()))
        _page_setup(doc, ctx.options.page_size)
    meta = _head_metadata(root)
    for key, value in ctx.options.metadata.items():
        k = str(key).lower()
        k = {"authors": "author", "tags": "keywords", "language": "lang"}.get(k, k)
        meta[k] = _as_text(value).strip()
    ctx.stage("writing")
    writer = _Writer(doc, ctx, base)
    body = root.find("body")
    try:
        with _recursion_limit(WALK_RECURSION_LIMIT):
            writer.collect_footnotes(root)
            if body is not None:
                writer.blocks(body, _Block(), writer.body)
    except RecursionError as exc:
        raise JobError(ErrorCode.INPUT_INVALID, "document nests elements too deeply") from exc
    if len(doc.element.body) <= 1:
        writer.new_para(writer.body, _Block()).finish()  # Word wants at least one paragraph
    _set_properties(doc, meta)
    output.write_bytes(_fixed_zip(*_package_members(doc)))


class HtmlToDocx:
    source_type = "html"
    target = "docx"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        write_docx(source.read_bytes(), output, ctx, source.parent)
        return ConversionResult()


class MarkdownToDocx:
    source_type = "md"
    target = "docx"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        from .markdown import markdown_to_html, read_text

        ctx.stage("parsing")
        html = markdown_to_html(read_text(source), source.stem)
        write_docx(html, output, ctx, source.parent)
        return ConversionResult()


class PdfToDocx:
    source_type = "pdf"
    target = "docx"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        from .pdf import pdf_to_html

        html = pdf_to_html(source, ctx)
        write_docx(html, output, ctx, ctx.job_root)
        return ConversionResult()


register(HtmlToDocx())
register(MarkdownToDocx())
register(PdfToDocx())
