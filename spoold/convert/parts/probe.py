"""How many rows of a long table fill a page: measured once, so table parts end full.

A part that starts inside a table starts it at the top of a page, with its header.
Before the parts are laid out, the first PROBE_ROWS body rows of the table are laid
out the same way (same head, theme, page options, no caption): rows on its first page
(`first`) and on each following page (`per_page`). A part holding `first + k *
per_page` rows of the table then ends exactly at the foot of a page, so no half-empty
page shows up in the middle of the table. Rows of uneven height give no steady
`per_page`; the table is then cut as planned, without alignment.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import weasyprint

from ...spool.parts import PageOptions, PartTask
from ..html.weasy import font_config
from .layout import DataOnlyFetcher, stylesheets
from .plan import TableRows, body_rows
from .prepare import serialize
from .split import empty_document, table_slice

PROBE_ROWS = 150
PROBE_MARK = "data-spoold-probe"


def probe_table(root: Any, table: Any, page: PageOptions, base_url: str) -> tuple[int, int] | None:
    """(body rows on a part's first page, on each later page), or None if uneven."""
    rows = body_rows(table)
    count = min(PROBE_ROWS, len(rows))
    html, body = empty_document(root, first=False)
    probe = table_slice(table, TableRows(rows, []), (0, count), first=False)
    probe.tail = None
    for row, _ in body_rows(probe):
        row.set(PROBE_MARK, "1")
    body.append(probe)
    task = PartTask(0, "", "", page, base_url)
    text = serialize(html).decode("utf-8")
    doc = weasyprint.HTML(
        string=text, base_url=base_url or None, url_fetcher=DataOnlyFetcher(), media_type="print"
    )
    rendered = doc.render(
        font_config=font_config(), stylesheets=stylesheets(task), presentational_hints=True
    )
    per_page = [_body_rows_on(p) for p in rendered.pages]
    steady = Counter(per_page[1:-1])  # the last page holds what is left
    if len(per_page) < 4 or len(steady) != 1:
        return None
    return per_page[0], per_page[1]


def _body_rows_on(page: Any) -> int:
    return sum(
        1
        for box in page._page_box.descendants()
        if getattr(box, "element_tag", None) == "tr"
        and box.element is not None
        and box.element.get(PROBE_MARK)
        and type(box).__name__ == "TableRowBox"
    )
