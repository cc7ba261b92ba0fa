"""Join laid-out parts into one PDF that reads as one document (pikepdf, i.e. qpdf).

- pages: every part's pages in order, each with the stamp page of the same number
  (page numbers, totals, running header) drawn over it as a form XObject. qpdf copies
  content streams, fonts and link annotations as they are, in C++: the merge of a
  400-page document takes a fraction of a second (pypdf took 1.6 s, serially, after
  every part was done).
- links stay as WeasyPrint wrote them in each part (an internal link is a /Dest name);
  a link to another part's anchor, a `spoold-dest:` URI action (split.py), becomes a
  /Dest name here, on the pages the layout recorded. The named destinations and the outline are not in the part files but written here
  from the parts' data, the way WeasyPrint writes them for one document: one sorted
  name tree (the first anchor of a name wins) and the outline built with WeasyPrint's
  own nesting rules;
- metadata: the info dictionary and /Lang of the first part (all parts share the head);
- deterministic bytes: qpdf's object order and a file identifier derived from the
  content, so the same input gives the same output.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pikepdf
from pikepdf import Array, Dictionary, Name, String
from weasyprint.anchors import make_page_bookmark_tree

from ...spool.parts import Bookmark, PartResult
from .split import dest_name

STAMP_FORM = Name("/SpooldStamp")


@dataclass
class MergeReport:
    pages: int
    named_destinations: int
    links_across_parts: int
    outline_entries: int = 0


def first_anchors(parts: list[PartResult]) -> dict[str, tuple[int, float, float]]:
    """Anchor name -> (global page, x, y); the first of a name wins, as in WeasyPrint."""
    out: dict[str, tuple[int, float, float]] = {}
    offset = 0
    for part in parts:
        for anchor in part.anchors:
            out.setdefault(anchor.name, (offset + anchor.page, anchor.x, anchor.y))
        offset += part.pages
    return out


def _dest(page: Any, x: float, y: float) -> Array:
    return Array([page, Name.XYZ, x, y, 0])


def _outline(pdf: pikepdf.Pdf, tree: list[Any], pages: list[Any]) -> int:
    """Write WeasyPrint-style outline items (see weasyprint.pdf.anchors.add_outlines)."""

    def add(items: list[Any], parent: Any) -> tuple[list[Any], int]:
        count = len(items)
        refs: list[Any] = []
        for title, (page, x, y), children, state in items:
            item = pdf.make_indirect(
                Dictionary(Title=String(title), Dest=_dest(pages[page], x, y), Parent=parent)
            )
            kids, kid_count = add(children, item)
            item.Count = -kid_count if state == "closed" else kid_count
            if state != "closed":
                count += kid_count
            if refs:
                item.Prev = refs[-1]
                refs[-1].Next = item
            if kids:
                item.First, item.Last = kids[0], kids[-1]
            refs.append(item)
        return refs, count

    if not tree:
        return 0
    root = pdf.make_indirect(Dictionary())
    tops, count = add(tree, root)
    root.Count, root.First, root.Last = count, tops[0], tops[-1]
    pdf.Root.Outlines = root
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


def _overlay(pdf: pikepdf.Pdf, page: pikepdf.Page, stamp_page: pikepdf.Page) -> None:
    """Draw `stamp_page` over `page`, as a form XObject, at the same place.

    Not pikepdf's add_overlay: that names the resource at random (the bytes would differ
    on every run) and scales to the trim box; both pages have the same size anyway. The
    page gets resources of its own: WeasyPrint shares one dictionary between pages.
    """
    form = pdf.copy_foreign(stamp_page.as_form_xobject())
    resources = Dictionary(dict(page.obj.get(Name.Resources, Dictionary()).items()))
    xobjects = Dictionary(dict(resources.get(Name.XObject, Dictionary()).items()))
    xobjects[STAMP_FORM] = form
    resources.XObject = xobjects
    page.obj.Resources = resources
    page.contents_add(b"q\n", prepend=True)
    page.contents_add(b"Q\nq " + bytes(STAMP_FORM) + b" Do Q\n", prepend=False)


def _stamped_pages(pdf: pikepdf.Pdf, parts: list[PartResult], stamp_pdfs: list[Path]) -> None:
    """Every part's pages into `pdf`, each with its stamp page drawn over it."""
    for part in parts:
        with pikepdf.open(part.output_path) as source, warnings.catch_warnings():
            # "named destinations are not preserved": the merge writes its own.
            warnings.simplefilter("ignore", pikepdf.PageCopyWarning)
            pdf.pages.extend(source.pages)
    stamps = [pikepdf.open(path) for path in stamp_pdfs]
    try:
        stamp_pages = [page for stamp in stamps for page in stamp.pages]
        if stamp_pages and len(stamp_pages) != len(pdf.pages):
            raise ValueError(f"the stamp has {len(stamp_pages)} pages, the parts {len(pdf.pages)}")
        for page, stamp_page in zip(pdf.pages, stamp_pages, strict=False):
            # Placed on the page's own box: the stamp was laid out on the same page size.
            _overlay(pdf, page, stamp_page)
    finally:
        for stamp in stamps:
            stamp.close()


def _link_across(pdf: pikepdf.Pdf, parts: list[PartResult]) -> int:
    """Point `spoold-dest:` link actions at the merged document's named destinations."""
    count = 0
    offset = 0
    for part in parts:
        for number in sorted(set(part.links_across)):
            for annot in pdf.pages[offset + number].obj.get(Name.Annots, Array()):
                action = annot.get(Name.A)
                uri = action.get(Name.URI) if action is not None else None
                name = dest_name(str(uri)) if uri is not None else None
                if name is not None:
                    del annot.A
                    annot.Dest = String(name)
                    count += 1
        offset += part.pages
    return count


def merge_parts(parts: list[PartResult], stamp_pdfs: list[Path], output: Path) -> MergeReport:
    """Write the merged document of `parts` (in order) to `output`."""
    with pikepdf.new() as pdf:
        _stamped_pages(pdf, parts, stamp_pdfs)
        pages = [page.obj for page in pdf.pages]
        anchors = first_anchors(parts)
        _name_tree(pdf, anchors, pages)
        across = _link_across(pdf, parts)
        bookmarks: list[Bookmark] = []
        offset = 0
        for part in parts:
            bookmarks.extend(
                Bookmark(b.level, b.label, offset + b.page, b.x, b.y, b.closed)
                for b in part.bookmarks
            )
            offset += part.pages
        _outline(pdf, bookmark_tree(bookmarks), pages)
        with pikepdf.open(parts[0].output_path) as first:
            _metadata(pdf, first)
            version = first.pdf_version
        pdf.save(
            output,
            min_version=version,
            fix_metadata_version=False,  # the parts' XMP, if any, stays as WeasyPrint wrote it
            deterministic_id=True,
        )
    return MergeReport(
        pages=len(pages),
        named_destinations=len(anchors),
        links_across_parts=across,
        outline_entries=len(bookmarks),
    )


def _name_tree(
    pdf: pikepdf.Pdf, anchors: dict[str, tuple[int, float, float]], pages: list[Any]
) -> None:
    """One flat, sorted /Dests name tree, as WeasyPrint writes it."""
    if not anchors:
        return
    flat = Array()
    for name in sorted(anchors):
        page, x, y = anchors[name]
        flat.append(String(name))
        flat.append(_dest(pages[page], x, y))
    pdf.Root.Names = Dictionary(Dests=pdf.make_indirect(Dictionary(Names=flat)))


def _metadata(pdf: pikepdf.Pdf, first: pikepdf.Pdf) -> None:
    """The first part's info dictionary (WeasyPrint's producer, title...) and /Lang."""
    info = first.trailer.get(Name.Info)
    if info is not None:
        pdf.trailer.Info = pdf.make_indirect(pdf.copy_foreign(info))
    lang = first.Root.get(Name.Lang)
    if lang is not None:
        pdf.Root.Lang = String(str(lang))
