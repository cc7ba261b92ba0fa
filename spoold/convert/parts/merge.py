"""Join laid-out parts into one PDF that reads as one document (pypdf).

- pages: every part's pages in order; each page's content becomes a form XObject drawn
  first, then the stamp page of the same number (page numbers, totals, running header)
  on top. Content streams are copied as they are, never parsed or recompressed.
- named destinations: every part's, on their global pages, in one sorted name tree;
- links: `spoold-dest:` URI links (anchors in another part, see split.py) become plain
  named-destination links, like WeasyPrint writes within one document;
- outline: rebuilt from every part's bookmarks with WeasyPrint's own nesting rules,
  so it equals the outline of the unsplit layout;
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
from .tasks import Bookmark, PartResult

_N = NameObject
CONTENT_FORM = "/SpooldContent"
STAMP_FORM = "/SpooldStamp"


@dataclass
class MergeReport:
    pages: int
    named_destinations: int
    links_across_parts: int
    outline_entries: int
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


def _page_dests(reader: PdfReader) -> list[tuple[str, int, ArrayObject]]:
    """(name, page index, destination array) from a WeasyPrint PDF's flat name tree."""
    root: Any = reader.trailer["/Root"]
    names: Any = root.get("/Names")
    if names is None or "/Dests" not in names.get_object():
        return []
    flat = names.get_object()["/Dests"].get_object().get("/Names", ArrayObject())
    index = {_ref(p).idnum: i for i, p in enumerate(reader.pages)}
    out = []
    for i in range(0, len(flat) - 1, 2):
        dest = flat[i + 1].get_object()
        out.append((str(flat[i]), index[dest[0].idnum], dest))
    return out


def _fix_links(page: Any, names: set[str], report: MergeReport) -> None:
    for ref in page.get("/Annots", ArrayObject()):
        annot = ref.get_object()
        action = annot.get("/A")
        if action is not None:
            name = dest_name(str(action.get_object().get("/URI", "")))
            if name is None:
                continue
            del annot["/A"]
            annot[_N("/Dest")] = TextStringObject(name)
            report.links_across_parts += 1
        target = annot.get("/Dest")
        if isinstance(target, str) and str(target) not in names:
            report.unresolved_links.append(str(target))


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
    stamp_readers = [PdfReader(p) for p in stamp_pdfs]
    stamp_pages = [page for r in stamp_readers for page in r.pages]
    draw = _stream(
        writer,
        f"q {CONTENT_FORM} Do Q\n".encode()
        + (f"q {STAMP_FORM} Do Q\n".encode() if stamp_pages else b""),
    )
    pages: list[IndirectObject] = []
    dests: list[tuple[str, int, ArrayObject]] = []
    bookmarks: list[Bookmark] = []
    total = sum(len(r.pages) for r in readers)
    if stamp_pages and len(stamp_pages) != total:
        raise ValueError(f"the stamp has {len(stamp_pages)} pages, the parts {total}")
    for part, reader in zip(parts, readers, strict=True):
        offset = len(pages)
        dests.extend((name, offset + i, d) for name, i, d in _page_dests(reader))
        bookmarks.extend(
            Bookmark(b.level, b.label, offset + b.page, b.x, b.y, b.closed) for b in part.bookmarks
        )
        for page in reader.pages:
            added = writer.add_page(page)
            stamp_page = stamp_pages[len(pages)] if stamp_pages else None
            _draw_forms(writer, added, stamp_page, draw)
            pages.append(_ref(added))
    report = MergeReport(
        pages=len(pages), named_destinations=len(dests), links_across_parts=0, outline_entries=0
    )
    _name_tree(writer, dests, pages)
    names = {name for name, _, _ in dests}
    for ref in pages:
        _fix_links(ref.get_object(), names, report)
    report.outline_entries = len(bookmarks)
    _outline(writer, bookmark_tree(bookmarks), pages)
    _metadata(writer, readers[0])
    digest = hashlib.sha256()
    for path in [*(p.output_path for p in parts), *map(str, stamp_pdfs)]:
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    ident = ByteStringObject(digest.digest()[:16])
    writer._ID = ArrayObject([ident, ident])
    with output.open("wb") as fh:
        writer.write(fh)
    return report


def _name_tree(
    writer: PdfWriter, dests: list[tuple[str, int, ArrayObject]], pages: list[IndirectObject]
) -> None:
    if not dests:
        return
    flat = ArrayObject()
    for name, page, dest in sorted(dests, key=lambda d: d[0]):
        flat.append(TextStringObject(name))
        flat.append(ArrayObject([pages[page], *dest[1:]]))
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
