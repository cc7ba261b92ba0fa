"""A big PDF laid out in parts: the policy (when to split, how big a part is, where the
part files go) and the messages of the parts pipeline (what a part layout gets and gives
back), in one place for the daemon, the worker and `spoold convert`.

docs/conversion.md "Big documents" explains the route. Plain frozen dataclasses of
str/int/float/tuple only, so a task pickles in a few hundred bytes and any executor (a
local process pool, the daemon's worker pool) can submit it like any other job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import ErrorInfo

PARTS_DIR = ".spoold-parts"  # in the job's running folder, outside its sandbox
SPLIT_SOURCES = ("md", "html")  # the source types whose PDF may be laid out in parts
# Tuning and test seams: the threshold and the part size, in cost units.
SPLIT_ABOVE_ENV = "SPOOLD_PARTS_SPLIT_ABOVE"
PART_COST_ENV = "SPOOLD_PARTS_PART_COST"
IDLE_SPLIT_ABOVE_ENV = "SPOOLD_PARTS_IDLE_SPLIT_ABOVE"


@dataclass(frozen=True)
class PartsPolicy:
    """When to split, and how big a part is, in cost units (about characters: a block's
    cost is its characters plus a fixed charge per element, convert/parts/plan.py)."""

    split_above: int = 1_500_000  # about 15 s of layout CPU when laid out whole
    part_cost: int = 600_000  # at most this much per part, about 6 s
    workers: int = 2  # the part count is a multiple of this, so workers finish together
    max_parts: int = 200
    # A medium document is split too when other workers are idle as its job starts
    # (and no queued job waits for them): one part per idle worker and its own. The
    # threshold is where two parts, the stamp and the merge beat one layout on this
    # machine (docs/performance.md "Medium documents").
    idle_split_above: int = 60_000  # about 5 pages
    idle_workers: int = 0  # the other workers idle when the job started (daemon only)

    @classmethod
    def from_env(cls, workers: int, idle_workers: int = 0) -> PartsPolicy:
        """The defaults unless SPOOLD_PARTS_SPLIT_ABOVE / _PART_COST / _IDLE_SPLIT_ABOVE
        say otherwise."""
        return cls(
            split_above=int(os.environ.get(SPLIT_ABOVE_ENV) or cls.split_above),
            part_cost=int(os.environ.get(PART_COST_ENV) or cls.part_cost),
            workers=max(1, workers),
            idle_split_above=int(os.environ.get(IDLE_SPLIT_ABOVE_ENV) or cls.idle_split_above),
            idle_workers=max(0, min(idle_workers, workers - 1)),
        )

    def threshold(self) -> int:
        """The cost above which the document is split, given the idle workers."""
        if self.idle_workers <= 0:
            return self.split_above
        return min(self.split_above, self.idle_split_above)

    def part_count(self, cost: int) -> int:
        """How many parts a document of `cost` (above the threshold) is cut into."""
        if cost <= self.split_above:  # a medium document, split for the idle workers
            return min(self.workers, self.idle_workers + 1)
        count = -(-cost // self.part_cost)
        return min(self.max_parts, -(-count // self.workers) * self.workers)


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
    # A stamp chunk (html_path is then the stamp template): its first page number, its
    # page count and the document's page total (0: the stamp is the whole document).
    first_page: int = 1
    total_pages: int = 0
    page_count: int = 0
    # What the part's PDF depends on, hashed (spool/checkpoints.py): a finished part
    # with the same key is kept for a later attempt. Empty: not kept (the stamp).
    key: str = ""


STAMP_PAGES_PER_TASK = 200  # a stamp chunk's pages at most (about 0.7 s of layout)
# Below this a chunk costs more than it saves. A 14-page stamp took 0.08-0.14 s in one
# chunk and 0.05-0.08 s as two side by side (docs/performance.md "Medium documents").
STAMP_MIN_PAGES_PER_TASK = 6


def stamp_ranges(total: int, chunkable: bool, workers: int) -> list[tuple[int, int]]:
    """(first page, page count) of each stamp chunk, pages numbered from 1.

    At least one chunk per worker when the document is long enough, so the stamp is
    laid out on every worker at once; at most STAMP_PAGES_PER_TASK pages per chunk.
    """
    if not chunkable or total <= STAMP_MIN_PAGES_PER_TASK:
        return [(1, total)]
    count = max(-(-total // STAMP_PAGES_PER_TASK), min(workers, total // STAMP_MIN_PAGES_PER_TASK))
    size = -(-total // count)
    return [(first, min(size, total - first + 1)) for first in range(1, total + 1, size)]


@dataclass(frozen=True)
class StampPlan:
    """The stamp's template (written by the split) and whether it may be chunked."""

    template_path: str
    # False when the CSS prints the page total in a counter style: one chunk, unrenumbered.
    chunkable: bool = True

    def tasks(self, pages: int, like: PartTask, workers: int) -> list[PartTask]:
        """The stamp of a `pages`-page document as tasks laid out like `like`."""
        ranges = stamp_ranges(pages, self.chunkable, workers)
        total = pages if len(ranges) > 1 else 0
        folder = self.template_path.rsplit("/", 1)[0]
        return [
            PartTask(
                index=-1 - n,
                html_path=self.template_path,
                output_path=f"{folder}/stamp-{n:04d}.pdf",
                page=like.page,
                base_url=like.base_url,
                kind="stamp",
                first_page=first,
                total_pages=total,
                page_count=count,
            )
            for n, (first, count) in enumerate(ranges)
        ]


@dataclass(frozen=True)
class SplitPlan:
    """What a split hands back: the parts to lay out, then the stamp over them."""

    parts: tuple[PartTask, ...]
    stamp: StampPlan
    # Parts an earlier attempt of the job laid out with the same keys: not laid out again.
    done: tuple[PartResult, ...] = ()


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
    anchors: tuple[Anchor, ...] = ()
    links_across: tuple[int, ...] = ()  # the page of each link to another part's anchor
    warnings: tuple[str, ...] = ()
    peak_rss_mb: float = 0.0  # of the process that laid the part out
    cpu_s: float = 0.0
    wall_s: float = 0.0
    # A failure comes back as data, never as an exception: exceptions with keyword
    # arguments do not survive pickling intact.
    error: ErrorInfo | None = None
