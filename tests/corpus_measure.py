"""Measure how much of a Markdown document survives conversion, with real readers.

Shared by tests/test_corpus.py and bench/bench_corpus.py. The source is counted with
markdown-it-py tokens (spoold's own parser configuration); the DOCX is read back by
pandoc (`pandoc -f docx -t json`) and its blocks counted by kind; PDFs are read with
pypdf; HTML with lxml.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.parse
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lxml.etree
import lxml.html
from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject

from spoold.convert import ConversionContext, get_converter, load_converters
from spoold.convert.markdown import _md

CORPUS = Path(__file__).with_name("corpus")
KINDS = (
    "heading",
    "paragraph",
    "list item",
    "code block",
    "table",
    "block quote",
    "definition",
)
_SOURCE_KIND = {
    "heading_open": "heading",
    "paragraph_open": "paragraph",
    "list_item_open": "list item",
    "fence": "code block",
    "code_block": "code block",
    "table_open": "table",
    "blockquote_open": "block quote",
    "alert_open": "block quote",  # GitHub alerts are block quotes with a title
    "dt_open": "definition",
}
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_HEADING_ATTRS = re.compile(r"^#{1,6} .*\{:? *#[^}]*\} *$", re.MULTILINE)
# An attribute block left in heading text: `{#id}`, `{: #id }`, `{ .class }`.
_SHOWN_ATTRS = re.compile(r"\{:? *[#.][\w-]")


def corpus_documents() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*.md") if p.name != "SOURCES.md")


# --- converting ------------------------------------------------------------------------


def convert(source: Path, target: str, out_dir: Path) -> Path:
    """Convert with the converter the worker uses for md -> target; return the file."""
    load_converters()
    converter = get_converter("md", target)
    assert converter is not None, target
    output = out_dir / f"{source.stem}.{target}"
    converter.convert(source, output, ConversionContext(job_root=source.parent))
    return output


# --- counting blocks -------------------------------------------------------------------


def source_counts(text: str) -> Counter[str]:
    """Blocks of the Markdown source by kind; footnote bodies are not counted (DOCX
    turns them into Word footnotes, which pandoc reads as inline notes)."""
    counts: Counter[str] = Counter()
    in_footnotes = 0
    for token in _md().parse(text, {}):
        if token.type == "footnote_block_open":
            in_footnotes += 1
        elif token.type == "footnote_block_close":
            in_footnotes -= 1
        elif not in_footnotes and token.type in _SOURCE_KIND:
            counts[_SOURCE_KIND[token.type]] += 1
    return counts


def pandoc_json(docx: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["pandoc", "-f", "docx", "-t", "json", str(docx)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    document: dict[str, Any] = json.loads(out)
    return document


def pandoc_blocks(docx: Path) -> list[Any]:
    blocks: list[Any] = pandoc_json(docx)["blocks"]
    return blocks


def _walk(blocks: list[Any]) -> Iterator[dict[str, Any]]:
    """Every block, depth first; table cells are skipped (Markdown cells hold no blocks)."""
    stack = list(reversed(blocks))
    while stack:
        block = stack.pop()
        yield block
        kind, content = block["t"], block.get("c")
        children: list[Any] = []
        if kind in ("BlockQuote", "Figure"):
            children = content if kind == "BlockQuote" else content[2]
        elif kind == "Div":
            children = content[1]
        elif kind == "BulletList":
            children = [b for item in content for b in item]
        elif kind == "OrderedList":
            children = [b for item in content[1] for b in item]
        elif kind == "DefinitionList":
            children = [b for _, defs in content for d in defs for b in d]
        stack.extend(reversed(children))


def docx_counts(docx: Path) -> Counter[str]:
    """Blocks pandoc finds in a DOCX, by the same kinds as `source_counts`."""
    counts: Counter[str] = Counter()
    document = pandoc_json(docx)
    # A front matter title's block replaces a leading H1 of the same text; pandoc reads
    # its Word "Title" paragraph as the document's title: that is the heading, found.
    if "title" in document.get("meta", {}):
        counts["heading"] += 1
    for block in _walk(document["blocks"]):
        kind = block["t"]
        if kind == "Header":
            counts["heading"] += 1
        elif kind in ("Para", "Plain"):
            counts["paragraph"] += 1
        elif kind == "BulletList":
            counts["list item"] += len(block["c"])
        elif kind == "OrderedList":
            counts["list item"] += len(block["c"][1])
        elif kind == "CodeBlock":
            counts["code block"] += 1
        elif kind == "Table":
            counts["table"] += 1
        elif kind == "BlockQuote":
            counts["block quote"] += 1
        elif kind == "DefinitionList":
            counts["definition"] += len(block["c"])
    return counts


def shares(source: Counter[str], found: Counter[str]) -> dict[str, float]:
    """min(found, source) / source for every kind the source has."""
    return {k: min(found[k], source[k]) / source[k] for k in KINDS if source[k]}


def macro_mean(share: dict[str, float]) -> float:
    return sum(share.values()) / len(share) if share else 1.0


def pandoc_heading_texts(docx: Path) -> list[str]:
    texts = []
    for block in _walk(pandoc_blocks(docx)):
        if block["t"] == "Header":
            texts.append(_inline_text(block["c"][2]))
    return texts


def _inline_text(inlines: list[Any]) -> str:
    parts: list[str] = []
    for node in inlines:
        kind, content = node["t"], node.get("c")
        if kind in ("Str", "Code"):
            parts.append(content if kind == "Str" else content[1])
        elif kind in ("Space", "SoftBreak", "LineBreak"):
            parts.append(" ")
        elif isinstance(content, list) and content and isinstance(content[-1], list):
            parts.append(_inline_text([c for c in content[-1] if isinstance(c, dict)]))
    return "".join(parts)


# --- links and anchors -----------------------------------------------------------------


@dataclass
class HtmlLinks:
    ids: set[str]
    targets: list[str]  # the id every `<a href="#...">` names, in document order
    footnote_targets: list[str] = field(default_factory=list)

    @property
    def unresolved(self) -> list[str]:
        return [t for t in self.targets + self.footnote_targets if t not in self.ids]


def html_links(html: bytes) -> HtmlLinks:
    root = lxml.html.document_fromstring(html)
    ids = {str(el.get("id")) for el in root.iter() if isinstance(el.tag, str) and el.get("id")}
    links = HtmlLinks(ids=ids, targets=[])
    for a in root.iter("a"):
        href = a.get("href") or ""
        if not href.startswith("#") or len(href) < 2:
            continue
        target = urllib.parse.unquote(href[1:])
        classes = (a.get("class") or "").split()
        parent = a.getparent()
        parent_classes = (parent.get("class") or "").split() if parent is not None else []
        # Footnote references and back-links become native Word footnotes in DOCX.
        if "footnote-backref" in classes or "footnote-ref" in parent_classes:
            links.footnote_targets.append(target)
        else:
            links.targets.append(target)
    return links


def heading_texts(html: bytes) -> list[str]:
    root = lxml.html.document_fromstring(html)
    return [h.text_content() for h in root.iter("h1", "h2", "h3", "h4", "h5", "h6")]


@dataclass
class PdfLinks:
    destinations: dict[str, int]  # named destination -> page index
    targets: list[str | None]  # per internal link annotation: the name it jumps to
    resolved: list[bool]  # per internal link annotation: lands on a page


def pdf_links(pdf: Path) -> PdfLinks:
    """Internal link annotations of a PDF and the named destinations they can reach."""
    reader = PdfReader(pdf)
    destinations: dict[str, int] = {}
    for name, dest in reader.named_destinations.items():
        page = reader.get_destination_page_number(dest)
        if page is not None and page >= 0:
            destinations[str(name)] = page
    links = PdfLinks(destinations=destinations, targets=[], resolved=[])
    for page in reader.pages:
        for ref in page.get("/Annots") or []:
            annot = ref.get_object()
            if annot.get("/Subtype") != "/Link":
                continue
            action = annot.get("/A")
            dest = annot.get("/Dest")
            if dest is None and isinstance(action, DictionaryObject):
                if action.get("/S") != "/GoTo":
                    continue  # URI and other actions leave the document
                dest = action.get("/D")
            if dest is None:
                continue
            dest = dest.get_object() if hasattr(dest, "get_object") else dest
            if isinstance(dest, ArrayObject):
                # An explicit destination: a page reference and a position.
                pages = [p.indirect_reference for p in reader.pages]
                links.targets.append(None)
                links.resolved.append(dest[0] in pages)
            else:
                links.targets.append(str(dest))
                links.resolved.append(str(dest) in destinations)
    return links


@dataclass
class DocxLinks:
    bookmarks: set[str]
    anchors: list[str]  # w:anchor of every internal w:hyperlink

    @property
    def unresolved(self) -> list[str]:
        return [a for a in self.anchors if a not in self.bookmarks]


def docx_links(docx: Path) -> DocxLinks:
    bookmarks: set[str] = set()
    anchors: list[str] = []
    with zipfile.ZipFile(docx) as package:
        for name in ("word/document.xml", "word/footnotes.xml"):
            if name not in package.namelist():
                continue
            root = lxml.etree.fromstring(package.read(name))
            bookmarks.update(str(b.get(f"{_W}name")) for b in root.iter(f"{_W}bookmarkStart"))
            anchors.extend(
                str(h.get(f"{_W}anchor"))
                for h in root.iter(f"{_W}hyperlink")
                if h.get(f"{_W}anchor")
            )
    return DocxLinks(bookmarks=bookmarks, anchors=anchors)


# --- one document ----------------------------------------------------------------------


@dataclass
class Measure:
    name: str
    source: Counter[str]
    found: Counter[str]
    share: dict[str, float]
    macro: float
    heading_attrs: int  # source headings that end in an attribute block `{... #id ...}`
    heading_braces: int  # headings (HTML, PDF outline, DOCX) showing `{#id}`, `{: #id}`...
    html_unresolved: list[str]
    pdf_unresolved: list[str]
    docx_internal_links: int  # internal links expected in DOCX (footnotes excluded)
    docx_unresolved: int


def pdf_outline_titles(pdf: Path) -> list[str]:
    titles: list[str] = []
    stack: list[Any] = list(PdfReader(pdf).outline)
    while stack:
        item = stack.pop(0)
        if isinstance(item, list):
            stack[:0] = item
        else:
            titles.append(str(item.title))
    return titles


def measure(source: Path, out_dir: Path) -> Measure:
    html = convert(source, "html", out_dir).read_bytes()
    pdf = convert(source, "pdf", out_dir)
    docx = convert(source, "docx", out_dir)
    src = source_counts(source.read_text(encoding="utf-8"))
    found = docx_counts(docx)
    share = shares(src, found)
    headings = heading_texts(html) + pdf_outline_titles(pdf) + pandoc_heading_texts(docx)
    hl = html_links(html)
    pl = pdf_links(pdf)
    reachable = {t for t, ok in zip(pl.targets, pl.resolved, strict=True) if ok and t}
    # A link whose target exists in the HTML must land somewhere in the PDF.
    pdf_unresolved = sorted(
        {t for t in hl.targets + hl.footnote_targets if t in hl.ids and t not in reachable}
    )
    pdf_unresolved += [str(t) for t, ok in zip(pl.targets, pl.resolved, strict=True) if not ok]
    dl = docx_links(docx)
    expected = sum(1 for t in hl.targets if t in hl.ids)
    resolved_docx = len(dl.anchors) - len(dl.unresolved)
    return Measure(
        name=source.name,
        source=src,
        found=found,
        share=share,
        macro=macro_mean(share),
        heading_attrs=len(_HEADING_ATTRS.findall(source.read_text(encoding="utf-8"))),
        heading_braces=sum(bool(_SHOWN_ATTRS.search(h)) for h in headings),
        html_unresolved=hl.unresolved,
        pdf_unresolved=pdf_unresolved,
        docx_internal_links=expected,
        docx_unresolved=max(expected - resolved_docx, 0) + len(dl.unresolved),
    )
