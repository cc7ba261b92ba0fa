"""PDF by parts: split a big HTML document, lay the parts out apart, merge one PDF.

prepare.py gives the sanitised tree the unsplit route would lay out; plan.py decides
whether and where to cut it; split.py builds self-contained part documents; stamp.py
builds the documents that carry the page numbers; layout.py lays one part or stamp
out (a plain picklable function of a task, whose types are in spoold/spool/parts.py
with the policy, so any executor can run it); executor.py runs tasks, here in a local
process pool; merge.py joins everything with pikepdf (qpdf) into one document;
pipeline.py ties them together and route.py is what the worker and `spoold convert`
call. docs/conversion.md "Big documents" says what a reader may notice and how the
daemon schedules parts.
"""

from __future__ import annotations

from ...spool.parts import Anchor, Bookmark, PageOptions, PartResult, PartTask, SplitPlan, StampPlan

__all__ = [
    "Anchor",
    "Bookmark",
    "PageOptions",
    "PartResult",
    "PartTask",
    "SplitPlan",
    "StampPlan",
]
