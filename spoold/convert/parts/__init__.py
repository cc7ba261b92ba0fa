"""PDF by parts: split a big HTML document, lay the parts out apart, merge one PDF.

prepare.py gives the sanitised tree the unsplit route would lay out; plan.py decides
whether and where to cut it; split.py builds self-contained part documents (and the
page-number "stamp" document); layout.py lays one of them out (a plain picklable
function, so any executor can run it); executor.py runs part tasks, here in a local
process pool; merge.py joins the parts with pypdf into one document; pipeline.py ties
them together. docs/conversion.md "Big documents" says what a reader may notice.
"""

from __future__ import annotations

from .tasks import Bookmark, PageOptions, PartResult, PartTask

__all__ = ["Bookmark", "PageOptions", "PartResult", "PartTask"]
