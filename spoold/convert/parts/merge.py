"""Join laid-out parts into one PDF that reads as one document (pypdf).

- pages: every part's pages in order; each page's content becomes a form XObject drawn
  first, then the stamp page of the same number (page numbers, totals, running header)
  on top. Content streams are copied as they are, never parsed or recompressed.
- named destinations, links and the outline are not read from the part files (the
  layout took them out, see layout.take_navigation) but written from the parts' data,
  the way WeasyPrint writes them for one document: one sorted name tree (the first
  anchor of a name wins), link annotations (`spoold-dest:` URIs, anchors in another
  part, become named-destination links; links to no anchor are dropped, as WeasyPrint
  drops them), and the outline built with WeasyPrint's own nesting rules;
- metadata: the info dictionary and /Lang of the first part (all parts share the head);
- a file identifier derived from the parts' bytes: same input, same output bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NumberObject,
    StreamObject,
    TextStringObject,
)
from weasyprint.anchors import make_page_bookmark_tree

from .split import dest_name
from .tasks import Bookmark, Link, PartResult

_N = NameObject
CONTENT_FORM = "/SpooldContent"
STAMP_FORM = "/SpooldStamp"


@dataclass
class MergeReport:
    pages: int
    named_destinations: int
    links_across_parts: int
    outline_entries: int = 0
    unresolved_links: list[str] = field(default_factory=list)


def _stream(writer: PdfWriter, data: bytes) -> IndirectObject:
    stream = DecodedStreamObject()
    stream.set_data(data)
    return writer._add_object(stream)


def _form(contents: IndirectObject, resources: Any, box: Any) -> IndirectObject:
    """Turn a page's one content stream into a form XObject (its bytes untouched)."""
    form = contents.get_object()
    if not isinstance(form, StreamObject):
        raise ValueError("expected one content stream per page (WeasyPrint writes one)")
    form[_N("/Type")] = _N("/XObject")
    form[_N("/Subtype")] = _N("/Form")
    form[_N("/BBox")] = ArrayObject(FloatObject(v) for v in box)
    form[_N("/Resources")] = resources
    return contents


def _draw_forms(writer: PdfWriter, page: Any, stamp: Any | None, draw: IndirectObject) -> None:
    """Make `page` (already in `writer`) draw its own content, then the stamp page."""
    content = _form(page.raw_get("/Contents"), page.raw_get("/Resources"), page["/MediaBox"])
    forms = DictionaryObject({_N(CONTENT_FORM): content})
    if stamp is not None:
        forms[_N(STAMP_FORM)] = _form(
            stamp.raw_get("/Contents").clone(writer),
            stamp.raw_get("/Resources").clone(writer),
            stamp["/MediaBox"],
        )
    page[_N("/Resources")] = DictionaryObject({_N("/XObject"): forms})
    page[_N("/Contents")] = draw


def _ref(page: Any) -> IndirectObject:
    ref = page.indirect_reference
    if not isinstance(ref, IndirectObject):
        raise ValueError("a page without an object number")
    return ref


def first_anchors(parts: list[PartResult]) -> dict[str, tuple[int, float, float]]:
    """Anchor name -> (global page, x, y); the first of a name wins, as in WeasyPrint."""
    out: dict[str, tuple[int, float, float]] = {}
    offset = 0
    for part in parts:
        for anchor in part.anchors:
            out.setdefault(anchor.name, (offset + anchor.page, anchor.x, anchor.y))
        offset += part.pages
    return out


def _link_annotation(link: Link, names: dict[str, Any], report: MergeReport) -> Any | None:
    """A link annotation as WeasyPrint writes one (weasyprint.pdf.anchors.add_links)."""
    kind, target = link.kind, link.target
    across = dest_name(target) if kind == "external" else None
    if across is not None:
        kind, target = "internal", across
        report.links_across_parts += 1
    annot = DictionaryObject(
        {
            _N("/Type"): _N("/Annot"),
            _N("/Subtype"): _N("/Link"),
            _N("/Rect"): ArrayObject(FloatObject(v) for v in link.rect),
            _N("/BS"): DictionaryObject({_N("/W"): NumberObject(0)}),
        }
    )
    if kind == "internal":
        if target not in names:
            report.unresolved_links.append(target)  # WeasyPrint drops these too
            return None
        annot[_N("/Dest")] = TextStringObject(target)
    else:
        action = DictionaryObject({_N("/Type"): _N("/Action"), _N("/S"): _N("/URI")})
        action[_N("/URI")] = TextStringObject(target)
        annot[_N("/A")] = action
    return annot


def _add_links(
    writer: PdfWriter, parts: list[PartResult], pages: list[IndirectObject], report: MergeReport
) -> None:
    names = first_anchors(parts)
    offset = 0
    for part in parts:
        for link in part.links:
            annot = _link_annotation(link, names, report)
            if annot is None:
                continue
            page: Any = pages[offset + link.page].get_object()
            if "/Annots" not in page:
                page[_N("/Annots")] = ArrayObject()
            page["/Annots"].append(writer._add_object(annot))
        offset += part.pages


def _outline(writer: PdfWriter, tree: list[Any], pages: list[IndirectObject]) -> int:
    """Write WeasyPrint-style outline items (see weasyprint.pdf.anchors.add_outlines)."""

    def add(items: list[Any], parent: IndirectObject) -> tuple[list[IndirectObject], int]:
        count = len(items)
        refs: list[IndirectObject] = []
        for title, (page, x, y), children, state in items:
            item = DictionaryObject(
                {
                    _N("/Title"): TextStringObject(title),
                    _N("/Dest"): ArrayObject(
                        [pages[page], _N("/XYZ"), FloatObject(x), FloatObject(y), NumberObject(0)]
                    ),
                    _N("/Parent"): parent,
                }
            )
            ref = writer._add_object(item)
            kids, kid_count = add(children, ref)
            item[_N("/Count")] = NumberObject(-kid_count if state == "closed" else kid_count)
            if state != "closed":
                count += kid_count
            if refs:
                item[_N("/Prev")] = refs[-1]
                previous: Any = refs[-1].get_object()
                previous[_N("/Next")] = ref
            if kids:
                item[_N("/First")], item[_N("/Last")] = kids[0], kids[-1]
            refs.append(ref)
        return refs, count

    if not tree:
        return 0
    root = DictionaryObject()
    root_ref = writer._add_object(root)
    tops, count = add(tree, root_ref)
    root.update({_N("/Count"): NumberObject(count), _N("/First"): tops[0], _N("/Last"): tops[-1]})
    writer._root_object[_N("/Outlines")] = root_ref
    return count


def bookmark_tree(bookmarks: list[Bookmark]) -> list[Any]:
    """WeasyPrint's own tree building over the document's bookmarks in order."""
    by_page: dict[int, list[Bookmark]] = {}
    for b in bookmarks:
        by_page.setdefault(b.page, []).append(b)
    root: list[Any] = []
    skipped: list[int] = []
    last_by_depth: list[list[Any]] = [root]
    previous = 0
    identity = SimpleNamespace(transform_point=lambda x, y: (x, y))
    for page in sorted(by_page):
        marks = [
            (b.level, b.label, (b.x, b.y), "closed" if b.closed else "open") for b in by_page[page]
        ]
        previous = make_page_bookmark_tree(
            SimpleNamespace(bookmarks=marks), skipped, last_by_depth, previous, page, identity
        )
    return root


def merge_parts(parts: list[PartResult], stamp_pdfs: list[Path], output: Path) -> MergeReport:
    """Write the merged document of `parts` (in order) to `output`."""
    writer = PdfWriter()
    readers = [PdfReader(p.output_path) for p in parts]
    stamp_pages = [page for path in stamp_pdfs for page in PdfReader(path).pages]
    total = sum(len(r.pages) for r in readers)
    if stamp_pages and len(stamp_pages) != total:
        raise ValueError(f"the stamp has {len(stamp_pages)} pages, the parts {total}")
    draw = _stream(
        writer,
        f"q {CONTENT_FORM} Do Q\n".encode()
        + (f"q {STAMP_FORM} Do Q\n".encode() if stamp_pages else b""),
    )
    pages: list[IndirectObject] = []
    for reader in readers:
        for page in reader.pages:
            added = writer.add_page(page)
            stamp_page = stamp_pages[len(pages)] if stamp_pages else None
            _draw_forms(writer, added, stamp_page, draw)
            pages.append(_ref(added))
    report = MergeReport(pages=len(pages), named_destinations=0, links_across_parts=0)
    anchors = first_anchors(parts)
    report.named_destinations = len(anchors)
    _name_tree(writer, anchors, pages)
    _add_links(writer, parts, pages, report)
    bookmarks: list[Bookmark] = []
    offset = 0
    for part in parts:
        bookmarks.extend(
            Bookmark(b.level, b.label, offset + b.page, b.x, b.y, b.closed) for b in part.bookmarks
        )
        offset += part.pages
    report.outline_entries = len(bookmarks)
    _outline(writer, bookmark_tree(bookmarks), pages)
    _metadata(writer, readers[0])
    digest = hashlib.sha256()
    for path in [*(p.output_path for p in parts), *map(str, stamp_pdfs)]:
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    # The navigation data is not in the part files: it counts too.
    digest.update(repr([(p.bookmarks, p.links, p.anchors) for p in parts]).encode())
    ident = ByteStringObject(digest.digest()[:16])
    writer._ID = ArrayObject([ident, ident])
    with output.open("wb") as fh:
        writer.write(fh)
    return report


def _name_tree(
    writer: PdfWriter, anchors: dict[str, tuple[int, float, float]], pages: list[IndirectObject]
) -> None:
    """One flat, sorted /Dests name tree, as WeasyPrint writes it."""
    if not anchors:
        return
    flat = ArrayObject()
    for name in sorted(anchors):
        page, x, y = anchors[name]
        flat.append(TextStringObject(name))
        flat.append(
            ArrayObject([pages[page], _N("/XYZ"), FloatObject(x), FloatObject(y), NumberObject(0)])
        )
    tree = writer._add_object(DictionaryObject({_N("/Names"): flat}))
    writer._root_object[_N("/Names")] = DictionaryObject({_N("/Dests"): tree})


def _metadata(writer: PdfWriter, first: PdfReader) -> None:
    info: Any = first.trailer.get("/Info")
    # Replaces pypdf's own /Producer: the document says WeasyPrint, like the unsplit one.
    writer._info = DictionaryObject(info.get_object() if info is not None else {})
    root: Any = first.trailer["/Root"]
    lang = root.get("/Lang")
    if lang is not None:
        writer._root_object[_N("/Lang")] = TextStringObject(str(lang))
