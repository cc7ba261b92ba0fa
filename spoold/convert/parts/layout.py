"""Lay out one part (or the stamp) with WeasyPrint: the unit of work an executor runs.

`layout_part(task)` is a plain module-level function of a small frozen dataclass, so it
pickles and runs in any process: a local pool here, a daemon worker later. It applies
the same stylesheets as the unsplit route (theme, page size, margins) plus one user
stylesheet with `!important` rules that beat the document's own CSS:

- content parts: every page margin box is switched off (`content: none`), so a part
  prints no page number of its own; the stamp adds the right ones at merge time;
- the stamp: backgrounds are made transparent and the empty pages show nothing, so
  only the margin boxes are painted on top of the content.

The part HTML is self-contained (prepare.py inlined everything), so WeasyPrint gets a
fetcher that answers data: URLs and refuses anything else.
"""

from __future__ import annotations

import functools
import logging
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lxml.html
import weasyprint
from weasyprint.matrix import Matrix
from weasyprint.urls import URLFetcher, URLFetcherResponse

from ...errors import ErrorCode, JobError
from ...spool.pages import margins_css
from ...spool.parts import Anchor, Bookmark, PageOptions, PartResult, PartTask
from .. import html as html_conv
from ..fetcher import FetchRefused, decode_data_url
from ..html.handover import weasy_html
from ..html.weasy import font_config
from .split import dest_name
from .stamp import STAMP_PAGE_CLASS, counter_css, number_css, stamp_chunk

MAX_WARNINGS = 20
MAX_DATA_URL_BYTES = 50 * 1024 * 1024
PDF_SCALE = 0.75  # PDF points per CSS pixel, as WeasyPrint writes at zoom 1

MARGIN_BOXES = (
    "top-left-corner",
    "top-left",
    "top-center",
    "top-right",
    "top-right-corner",
    "right-top",
    "right-middle",
    "right-bottom",
    "bottom-right-corner",
    "bottom-right",
    "bottom-center",
    "bottom-left",
    "bottom-left-corner",
    "left-bottom",
    "left-middle",
    "left-top",
)
NO_MARGIN_BOXES_CSS = (
    "@page {\n"
    + "\n".join(f"  @{box} {{ content: none !important; }}" for box in MARGIN_BOXES)
    + "\n}\n"
)
STAMP_CSS = f"""
@page {{ background: transparent !important; }}
html, body {{ background: transparent !important; }}
.{STAMP_PAGE_CLASS} {{
  display: block !important; visibility: hidden !important;
  height: 1px !important; margin: 0 !important; padding: 0 !important;
  border: 0 !important; float: none !important; position: static !important;
  break-after: page !important;
}}
.{STAMP_PAGE_CLASS}:last-child {{ break-after: auto !important; }}
"""


class DataOnlyFetcher(URLFetcher):  # type: ignore[misc]
    """Parts are self-contained: answer data: URLs, refuse everything else."""

    def __init__(self) -> None:
        super().__init__(allowed_protocols=("data",), allow_redirects=False)

    def fetch(self, url: str, headers: Any = None) -> Any:
        if not url.startswith("data:"):
            raise FetchRefused(f"{url[:80]} refused: a part only reads what was inlined")
        data, mime = decode_data_url(url, MAX_DATA_URL_BYTES)
        return URLFetcherResponse(url, body=data, headers={"Content-Type": mime})


def page_css(page: PageOptions) -> str:
    """The job's @page size and margins, exactly as the unsplit route writes them."""
    size = html_conv.page_size_css(page.page_size)
    margin = margins_css(page.margins, size)
    return "@page { " + f"size: {size}" + (f"; margin: {margin}" if margin else "") + " }"


@functools.cache
def _css(text: str) -> Any:
    return weasyprint.CSS(string=text)


def stylesheets(task: PartTask) -> list[Any]:
    theme = html_conv.theme_css(task.page.theme)
    if task.kind != "stamp":
        return [_css(theme), _css(page_css(task.page)), _css(NO_MARGIN_BOXES_CSS)]
    theme = number_css(theme, task.first_page, task.total_pages)
    extra = STAMP_CSS + counter_css(task.first_page)
    return [_css(theme), _css(page_css(task.page)), _css(extra)]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.messages) < MAX_WARNINGS:
            self.messages.append(f"layout: {record.getMessage()}"[:300])


@contextmanager
def _layout_guard() -> Iterator[_Collect]:
    logger = logging.getLogger("weasyprint")
    handler = _Collect()
    logger.addHandler(handler)
    try:
        with html_conv.recursion_limit(html_conv.LAYOUT_RECURSION_LIMIT):
            yield handler
    finally:
        logger.removeHandler(handler)


@dataclass
class Navigation:
    """A part's bookmarks and anchors as data, and where its links to other parts are."""

    bookmarks: tuple[Bookmark, ...] = ()
    anchors: tuple[Anchor, ...] = ()
    across: tuple[int, ...] = ()  # the page of each link to an anchor in another part


def take_navigation(pages: list[Any]) -> Navigation:
    """Take the outline out of WeasyPrint's pages; record anchors and links across.

    The merge writes the outline and the named destinations for the whole document
    (with WeasyPrint's own rules). Links stay in the part: WeasyPrint writes an internal
    link as a /Dest name, which the merged name tree resolves (the part's own name tree
    is not merged). A link to another part's anchor is a `spoold-dest:` URI (split.py);
    the merge turns those into internal links, on the pages recorded here.
    """
    bookmarks: list[Bookmark] = []
    anchors: list[Anchor] = []
    across: list[int] = []
    for number, page in enumerate(pages):
        # The transforms of make_bookmark_tree and of generate_pdf (origin bottom-left).
        matrix = Matrix(a=PDF_SCALE, d=-PDF_SCALE, f=page.height * PDF_SCALE)
        for level, label, (x, y), state in page.bookmarks:
            px, py = matrix.transform_point(x, y)
            bookmarks.append(Bookmark(level, label, number, px, py, closed=state == "closed"))
        for name, (x, y, _, _) in page.anchors.items():
            px, py = matrix.transform_point(x, y)
            anchors.append(Anchor(name, number, px, py))
        for kind, target, _, _ in page.links:
            if kind == "external" and dest_name(target) is not None:
                across.append(number)
        page.bookmarks = []
    return Navigation(tuple(bookmarks), tuple(anchors), tuple(across))


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def layout_part(task: PartTask) -> PartResult:
    """Lay out the task's HTML file into its PDF file; failures come back as data."""
    t0, cpu0 = time.monotonic(), _cpu_s()
    try:
        pages, navigation, warnings = _layout(task)
    except JobError as exc:
        return _failed(task, exc, t0, cpu0)
    except MemoryError:
        err = JobError(ErrorCode.RESOURCE_LIMIT, "a part ran out of memory")
        return _failed(task, err, t0, cpu0)
    except RecursionError:
        msg = "the document is nested too deeply to lay out"
        return _failed(task, JobError(ErrorCode.INPUT_INVALID, msg), t0, cpu0)
    except Exception as exc:  # a layout bug must not take the executor down
        msg = f"part {task.index} failed: {type(exc).__name__}: {exc}"[:500]
        return _failed(task, JobError(ErrorCode.CONVERSION_FAILED, msg), t0, cpu0)
    return PartResult(
        index=task.index,
        output_path=task.output_path,
        pages=pages,
        bookmarks=navigation.bookmarks,
        anchors=navigation.anchors,
        links_across=navigation.across,
        warnings=warnings,
        peak_rss_mb=_peak_rss_mb(),
        cpu_s=round(_cpu_s() - cpu0, 3),
        wall_s=round(time.monotonic() - t0, 3),
    )


def _source(task: PartTask) -> tuple[Any, bytes | None]:
    """The part's tree and file; a stamp chunk's tree is built from the stamp template."""
    data = Path(task.html_path).read_bytes()
    # Not parse_html: a part is spoold's own file, its images inlined already, and may
    # be bigger than a source document may be.
    parser = lxml.html.HTMLParser(huge_tree=True, encoding="utf-8", remove_comments=True)
    tree = lxml.html.document_fromstring(data, parser=parser)
    if task.kind != "stamp":
        return tree, data
    return stamp_chunk(tree, task.first_page, task.page_count, task.total_pages), None


def _layout(task: PartTask) -> tuple[int, Navigation, tuple[str, ...]]:
    sheets = stylesheets(task)
    with _layout_guard() as collected:
        # lxml reads the part back in C; WeasyPrint gets a copy of that tree when its
        # own HTML5 parser would build the same from the file (handover.py).
        tree, data = _source(task)
        doc = weasy_html(tree, task.base_url or None, DataOnlyFetcher(), data)
        # The worker's warm font configuration, replaced after a part that added
        # @font-face fonts, as in the unsplit route. Presentational hints (`<img width>`,
        # `<td bgcolor>`), as the unsplit route.
        rendered = doc.render(
            font_config=font_config(), stylesheets=sheets, presentational_hints=True
        )
        navigation = take_navigation(rendered.pages)
        rendered.write_pdf(target=task.output_path)
    return len(rendered.pages), navigation, tuple(collected.messages)


def _failed(task: PartTask, error: JobError, t0: float, cpu0: float) -> PartResult:
    return PartResult(
        index=task.index,
        output_path=task.output_path,
        pages=0,
        peak_rss_mb=_peak_rss_mb(),
        cpu_s=round(_cpu_s() - cpu0, 3),
        wall_s=round(time.monotonic() - t0, 3),
        error=error.info(),
    )
