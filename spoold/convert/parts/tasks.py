"""The typed messages of the parts pipeline: what a part layout gets and gives back.

Plain frozen dataclasses of str/int/float/tuple only, so a task pickles in a few hundred
bytes and any executor (a local process pool, the daemon's worker pool) can submit it
like any other job.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PageOptions:
    """The job's PDF page options, as the unsplit conversion applies them."""

    theme: str = "default"
    page_size: str = "A4"
    margins: str = "theme"


@dataclass(frozen=True)
class PartTask:
    """Lay out one part: a self-contained HTML file (sanitised and inlined already)."""

    index: int  # 0-based position of the part in the document (-1: the stamp)
    html_path: str
    output_path: str  # where the part's PDF goes
    page: PageOptions = field(default_factory=PageOptions)
    # The job folder's URL, as the unsplit layout gets it: relative links resolve alike.
    base_url: str = ""
    # "content": margin boxes suppressed; "stamp": only the margin boxes (page numbers).
    kind: str = "content"
    # Stamps laid out in chunks: the chunk's first page number and the document's
    # page total (0: the stamp is the whole document, nothing to renumber).
    first_page: int = 1
    total_pages: int = 0


@dataclass(frozen=True)
class Bookmark:
    """One outline entry as WeasyPrint records it, in PDF coordinates of its page."""

    level: int  # CSS bookmark-level (h1 = 1 ...)
    label: str
    page: int  # 0-based page index inside the part (global once merged)
    x: float
    y: float
    closed: bool = False


@dataclass(frozen=True)
class Link:
    """A link area WeasyPrint found, in PDF coordinates; written by the merge."""

    page: int
    kind: str  # "internal" (target: an anchor name) or "external" (target: a URI)
    target: str
    rect: tuple[float, float, float, float]


@dataclass(frozen=True)
class Anchor:
    """A named destination (an id, or <a name>) in PDF coordinates of its page."""

    name: str
    page: int
    x: float
    y: float


@dataclass(frozen=True)
class PartResult:
    """What the merge needs from one laid-out part, and what it cost."""

    index: int
    output_path: str
    pages: int
    bookmarks: tuple[Bookmark, ...] = ()
    links: tuple[Link, ...] = ()
    anchors: tuple[Anchor, ...] = ()
    warnings: tuple[str, ...] = ()
    peak_rss_mb: float = 0.0  # of the process that laid the part out
    cpu_s: float = 0.0
    wall_s: float = 0.0
    # A failure comes back as data (spoold.errors code and message), never as an
    # exception: exceptions with keyword arguments do not survive pickling intact.
    error_code: str | None = None
    error_message: str | None = None
