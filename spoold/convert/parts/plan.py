"""Whether to split a document for PDF, and where: cheap estimates from its structure.

Layout cost (time and memory in WeasyPrint) grows with the number of boxes and the
amount of text, so a block's cost is its characters plus a fixed charge per element.
Calibrated on a real 377-page changelog cut in five parts (WeasyPrint 70, A4, default
theme): layout CPU was 1.0 s per 100,000 units in every part, within 7 %, with an
element worth 100 characters. 600,000 units are about 70 pages of changelog or 800
rows of a six-column table: about 6 s and 150-250 MB resident. Cuts fall
between top-level blocks, preferably before the highest-level heading near the target
size, never right after a heading; a container too big for one part (a <section>, a
wrapping <div>) is entered and its children cut instead; a table too big is cut
between rows (never inside a rowspan).

A document whose CSS makes the layout of one page depend on another (named strings,
cross-reference page numbers, page counters it sets itself, left/right pages, named
pages, its own counters) is not split: parts could not reproduce it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ...spool.parts import PartsPolicy
from .. import html as html_conv

ELEMENT_COST = 100  # characters' worth of layout work per element
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Containers entered when they are too big for one part; their start tag is repeated.
SHELLS = {"section", "article", "main", "div"}
MAX_SHELL_DEPTH = 8
PLAIN_BOUNDARY = 7  # score of a cut before a non-heading block (lower is better)
# A part may be this much smaller or larger than the target to end before a better
# heading. Wider windows found nicer cuts but left one worker finishing alone.
WINDOW = 0.15
# A medium document split for idle workers has one part per worker: the longest part
# is the job's latency, so a heading within this much of the target wins first.
MEDIUM_WINDOW = 0.05

# CSS that ties one page's layout to others; a document using any is laid out whole.
_BLOCKERS = (
    ("named strings (string-set)", re.compile(r"string-set\s*:", re.I)),
    (
        "cross-references (target-counter/target-text)",
        re.compile(r"target-(counters?|text)\s*\(", re.I),
    ),
    ("left/right/blank/nth pages", re.compile(r"@page[^{]*:(left|right|blank|nth)", re.I)),
    ("first-page rules of its own", re.compile(r"@page[^{]*:first", re.I)),
    ("named pages", re.compile(r"(?<![@\w-])page\s*:\s*[a-z]", re.I)),
    ("CSS counters", re.compile(r"counter-(reset|increment|set)\s*:", re.I)),
    ("running elements of its own", re.compile(r"running\(\s*(?!runningtitle\s*\))", re.I)),
    (
        "left/right page breaks",
        re.compile(r"break-(before|after)\s*:\s*(left|right|recto|verso)", re.I),
    ),
)


@dataclass(eq=False)
class TableRows:
    """A table's body rows and where a cut may fall: found once per table, not per cut
    (a 30,000-row table was walked again for every one of its 38 parts)."""

    rows: list[tuple[Any, Any | None]]  # (row, its tbody or None), in order
    safe: list[bool]  # for each row, whether a cut may fall before it


@dataclass
class Unit:
    """A run of consecutive siblings (or a slice of one table's body rows) in one part."""

    shells: tuple[Any, ...]  # the containers it sits in, outermost first
    elements: list[Any]
    cost: int
    heading: int = 0  # level of the heading that opens it: a good place to cut before
    rows: tuple[int, int] | None = None  # body rows [start, end) when a table slice
    table: TableRows | None = None  # the sliced table's rows (shared by its slices)


@dataclass
class Plan:
    """The parts (lists of units), or why the document is laid out whole."""

    parts: list[list[Unit]] = field(default_factory=list)
    cost: int = 0
    reason: str = ""  # set when not split

    @property
    def split(self) -> bool:
        return len(self.parts) > 1


def tag_of(el: Any) -> str:
    return el.tag.lower() if isinstance(el.tag, str) else ""


def element_cost(el: Any) -> int:
    cost = 0
    for node in el.iter():
        if isinstance(node.tag, str):
            cost += ELEMENT_COST + len(node.text or "") + len(node.tail or "")
    return cost


def body_rows(table: Any) -> list[tuple[Any, Any | None]]:
    """(row, its tbody or None) for every body row of a table, in order."""
    rows: list[tuple[Any, Any | None]] = []
    for child in table:
        tag = tag_of(child)
        if tag == "tbody":
            rows.extend((tr, child) for tr in child if tag_of(tr) == "tr")
        elif tag == "tr":
            rows.append((child, None))
    return rows


def css_blockers(root: Any, theme_texts: set[str]) -> list[str]:
    """Page-dependent CSS features the document's own styles use."""
    texts = [s.text or "" for s in root.iter("style") if (s.text or "") not in theme_texts]
    texts.extend(el.get("style") or "" for el in root.iter() if el.get("style"))
    css = "\n".join(texts)
    return [what for what, pattern in _BLOCKERS if pattern.search(css)]


def plan_parts(root: Any, policy: PartsPolicy) -> Plan:
    body = root.find("body")
    if body is None:
        return Plan(reason="no body")
    themes = {html_conv.theme_css(name) for name in html_conv.THEMES}
    units = list(_units(body, (), policy))
    plan = Plan(cost=sum(u.cost for u in units))
    if plan.cost <= policy.threshold():
        plan.reason = f"estimated cost {plan.cost} is under {policy.threshold()}"
        return plan
    blockers = css_blockers(root, themes)
    if blockers:
        plan.reason = "its CSS uses " + ", ".join(blockers)
        return plan
    count = policy.part_count(plan.cost)
    tight = MEDIUM_WINDOW if plan.cost <= policy.split_above else None
    plan.parts = group_units(units, plan.cost // max(count, 2), policy.max_parts, tight)
    if not plan.split:
        plan.reason = "no place to cut"
    return plan


def _units(parent: Any, shells: tuple[Any, ...], policy: PartsPolicy) -> Iterator[Unit]:
    for el in parent:
        if not isinstance(el.tag, str):
            continue  # comments are gone after sanitising; PIs too
        tag = tag_of(el)
        cost = element_cost(el)
        if cost > policy.part_cost and tag == "table":
            yield from _table_units(el, shells, policy)
        elif (
            cost > policy.part_cost
            and tag in SHELLS
            and len(shells) < MAX_SHELL_DEPTH
            and not (el.text or "").strip()
            and len(el) > 1
        ):
            yield from _units(el, (*shells, el), policy)
        else:
            yield Unit(shells, [el], cost, heading=_opening_heading(el))


def _opening_heading(el: Any) -> int:
    tag = tag_of(el)
    if tag in HEADINGS:
        return HEADINGS[tag]
    if tag in ("section", "article", "header") and len(el) and tag_of(el[0]) in HEADINGS:
        return HEADINGS[tag_of(el[0])]
    return 0


def safe_cuts(rows: list[tuple[Any, Any | None]]) -> list[bool]:
    """For each body row, whether a cut may fall before it (no rowspan reaches over)."""
    safe = []
    span_end = 0
    for i, (row, _) in enumerate(rows):
        safe.append(i >= span_end)
        for cell in row:
            span = cell.get("rowspan") if isinstance(cell.tag, str) else None
            if span and span.isdigit():
                span_end = max(span_end, i + int(span))
    return safe


def _table_units(table: Any, shells: tuple[Any, ...], policy: PartsPolicy) -> Iterator[Unit]:
    # Slices well under a part, so parts can be balanced; the parts join adjacent ones.
    slice_cost = policy.part_cost // 4
    rows = body_rows(table)
    if len(rows) < 2:
        yield Unit(shells, [table], element_cost(table))
        return
    index = TableRows(rows, safe_cuts(rows))
    start, cost = 0, 0
    for i, (row, _) in enumerate(rows):
        if cost >= slice_cost and index.safe[i]:
            yield Unit(shells, [table], cost, rows=(start, i), table=index)
            start, cost = i, 0
        cost += element_cost(row)
    yield Unit(shells, [table], cost, rows=(start, len(rows)), table=index)


def sliced_tables(parts: list[list[Unit]]) -> list[Any]:
    """Tables that run from one part into the next, in document order."""
    seen: dict[int, Any] = {}
    for before, after in itertools.pairwise(parts):
        last, first = before[-1], after[0]
        if (
            last.rows is not None
            and first.rows is not None
            and last.elements[0] is first.elements[0]
        ):
            seen.setdefault(id(last.elements[0]), last.elements[0])
    return list(seen.values())


def align_table_cuts(parts: list[list[Unit]], fits: dict[int, tuple[int, int]]) -> int:
    """Move cuts inside tables so that a part holding only table rows ends a page.

    `fits` maps id(table) to (rows on a part's first page, rows per later page). Only
    parts that start inside the table and end inside it are aligned: the part where
    the table begins has other content above it. Returns how many cuts moved.
    """
    moved = 0
    for before, after in itertools.pairwise(parts):
        a, b = before[-1], after[0]
        table = a.elements[0]
        if len(before) != 1 or a.rows is None or b.rows is None or b.elements[0] is not table:
            continue
        fit = fits.get(id(table))
        if fit is None or a.rows[0] == 0:
            continue
        first, per_page = fit
        rows = a.rows[1] - a.rows[0]
        pages = max(0, round((rows - first) / per_page))
        cut = a.rows[0] + first + pages * per_page
        safe = a.table.safe if a.table is not None else safe_cuts(body_rows(table))
        if cut != a.rows[1] and a.rows[0] < cut < b.rows[1] and safe[cut]:
            a.rows, b.rows = (a.rows[0], cut), (cut, b.rows[1])
            moved += 1
    return moved


def join_table_slices(units: list[Unit]) -> list[Unit]:
    """Adjacent slices of one table in one part become one slice."""
    out: list[Unit] = []
    for unit in units:
        last = out[-1] if out else None
        if (
            last is not None
            and last.rows is not None
            and unit.rows is not None
            and last.elements[0] is unit.elements[0]
            and last.rows[1] == unit.rows[0]
        ):
            rows = (last.rows[0], unit.rows[1])
            out[-1] = Unit(last.shells, last.elements, last.cost + unit.cost, 0, rows, last.table)
        else:
            out.append(unit)
    return out


def group_units(
    units: list[Unit], target: int, max_parts: int, tight: float | None = None
) -> list[list[Unit]]:
    """Cut the unit sequence into parts of about `target` cost each; with `tight`, a
    heading within that fraction of the target is taken before a better one further."""
    cum = [0]
    for u in units:
        cum.append(cum[-1] + u.cost)
    parts: list[list[Unit]] = []
    start = 0
    while start < len(units):
        if cum[-1] - cum[start] <= target * (1 + WINDOW) or len(parts) + 1 >= max_parts:
            parts.append(units[start:])
            break
        cut = _best_cut(units, cum, start, target, tight) if tight else len(units)
        if cut >= len(units) or not units[cut].heading:
            cut = _best_cut(units, cum, start, target, WINDOW)
        parts.append(units[start:cut])
        start = cut
    return [join_table_slices(part) for part in parts]


def _best_cut(units: list[Unit], cum: list[int], start: int, target: int, window: float) -> int:
    """Index of the unit to start the next part with."""
    best: tuple[int, float, int] | None = None
    for j in range(start + 1, len(units)):
        size = cum[j] - cum[start]
        if size > target * (1 + window):
            break
        if units[j - 1].heading:
            continue  # never leave a heading alone at the foot of a part
        if size >= target * (1 - window):
            score = units[j].heading or PLAIN_BOUNDARY
            key = (score, abs(size - target), j)
            best = key if best is None or key < best else best
    if best is not None:
        return best[2]
    # A block bigger than the window: cut right after it.
    for j in range(start + 1, len(units)):
        if cum[j] - cum[start] >= target * (1 - window) and not units[j - 1].heading:
            return j
    return len(units)
