"""The stamp: the theme's margin boxes (page numbers, totals, running header) alone.

Parts are laid out with their margin boxes switched off. Once every part's page count
is known, the stamp document -- the document's <head>, its running title and one empty
page per page of the merged document -- is laid out with the same stylesheets, so its
page n carries exactly what page n of the unsplit layout carries in its margins; the
merge draws it over content page n.

The stamp is laid out in chunks, on all workers at once (tasks.stamp_ranges). A chunk
starting at page f of N gets `counter(pages)` replaced by "N", its page counter reset
to f on its first page, and the theme's `@page :first` rules disabled (only page 1 of
the document is :first). A document whose CSS prints the total in another counter
style is stamped in one go (`may_chunk`). The split writes the template once; each
chunk's document is built from it in the process that lays the chunk out.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import lxml.etree

from .split import copy_without_ids, empty_document

STAMP_PAGE_CLASS = "spoold-stamp-page"
_PAGES_COUNTER = re.compile(r"counter\(\s*pages\s*\)", re.I)
_PAGES_COUNTER_STYLED = re.compile(r"counter\(\s*pages\s*,", re.I)
_FIRST_PAGE = re.compile(r"(@page\b[^{]*?):first\b", re.I)


def stamp_template(root: Any) -> Any:
    """The document's head and running title, with no pages yet."""
    html, body = empty_document(root, first=False)
    body.text = None
    src_body = root.find("body")
    if src_body is not None:
        for el in src_body.iter("div"):
            if el.get("class") == "spoold-running-title":
                body.append(copy_without_ids(el))
                break
    return html


def may_chunk(template: Any, theme_css: str) -> bool:
    """False when the CSS prints the page total in a counter style number_css cannot fake."""
    css = "\n".join([theme_css, *(s.text or "" for s in template.iter("style"))])
    return not _PAGES_COUNTER_STYLED.search(css)


def number_css(css: str, first_page: int, total: int) -> str:
    """`css` as a chunk starting at `first_page` of `total` pages must see it.

    `total` 0 stands for a stamp of the whole document, which needs no rewriting.
    """
    if total <= 0:
        return css
    css = _PAGES_COUNTER.sub(f'"{total}"', css)
    if first_page > 1:
        css = _FIRST_PAGE.sub(r"\1:nth(0)", css)  # :nth(0) matches no page
    return css


def counter_css(first_page: int) -> str:
    return f"@page :nth(1) {{ counter-reset: page {first_page} }}\n" if first_page > 1 else ""


def stamp_chunk(template: Any, first_page: int, pages: int, total: int) -> Any:
    """The stamp document for pages [first_page, first_page + pages) (see number_css)."""
    root = copy.deepcopy(template)
    for style in root.iter("style"):
        style.text = number_css(style.text or "", first_page, total)
    body = root.find("body")
    for _ in range(pages):
        lxml.etree.SubElement(body, "div", {"class": STAMP_PAGE_CLASS})
    return root
