"""The PDF route with parts, for a caller that lays the parts out elsewhere.

The daemon runs a big job in four steps (docs/conversion.md "Big documents"): a worker
splits the document (`split_source`), free workers lay out the parts, then the stamp's
chunks, and one more worker run merges (`merge_source`). `spoold convert` runs the
same steps with a local process pool (`convert_pdf`). `may_split` is a cheap upper
bound on the plan's cost, so a small document is never parsed twice.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ...spool.parts import PARTS_DIR, SPLIT_SOURCES, PartResult, PartsPolicy, SplitPlan
from ..base import ConversionContext
from ..markdown import markdown_to_html, read_text
from .executor import PartExecutor
from .merge import merge_parts
from .pipeline import check, render_pdf_in_parts, split_document
from .plan import ELEMENT_COST

FOREGROUND_WORKERS = 2


def source_html(source_type: str, main: Path, ctx: ConversionContext) -> str | bytes:
    """The HTML the unsplit PDF route would lay out (Markdown rendered first)."""
    if source_type == "md":
        ctx.stage("parsing")
        return markdown_to_html(read_text(main), main.stem, ctx.options.metadata, ctx.warn)
    return main.read_bytes()


def may_split(text: str | bytes, policy: PartsPolicy) -> bool:
    """False when the plan's cost cannot reach the threshold: every element has a '<'."""
    lt = text.count(b"<") if isinstance(text, bytes) else text.count("<")
    # The running title adds one element; resources/*.css is not text.
    return len(text) + ELEMENT_COST * (lt + 2) > policy.threshold()


def split_source(
    text: str | bytes, ctx: ConversionContext, base: Path, workdir: Path, policy: PartsPolicy
) -> SplitPlan | None:
    """Write the part files into a fresh `workdir`; None: lay the document out whole."""
    shutil.rmtree(workdir, ignore_errors=True)  # an earlier attempt's parts
    return split_document(text, ctx, base, workdir, policy).split_plan()


def merge_source(
    results: Sequence[PartResult],
    stamps: Sequence[PartResult],
    output: Path,
    ctx: ConversionContext,
) -> int:
    """Merge laid-out parts and stamp chunks into `output`; the document's page count."""
    check(list(results))
    check(list(stamps))
    for r in results:
        for w in r.warnings:
            ctx.warn(w)
    ctx.stage("writing")
    return merge_parts(list(results), [Path(s.output_path) for s in stamps], output).pages


def convert_pdf(
    source_type: str,
    main: Path,
    output: Path,
    ctx: ConversionContext,
    executor: PartExecutor,
    policy: PartsPolicy,
) -> int | None:
    """The whole route with `executor`; None when the document is to be laid out whole."""
    if source_type not in SPLIT_SOURCES:
        return None
    text = source_html(source_type, main, ctx)
    if not may_split(text, policy):
        return None
    workdir = output.parent / f".{output.name}{PARTS_DIR}"
    outcome = render_pdf_in_parts(text, ctx, main.parent, output, executor, workdir, policy)
    return None if outcome is None else outcome.pages


def convert_foreground(
    source_type: str, main: Path, output: Path, ctx: ConversionContext
) -> int | None:
    """`spoold convert`: a big PDF in parts on a local pool; None: convert as usual."""
    from .executor import LocalProcessExecutor

    workers = min(FOREGROUND_WORKERS, os.cpu_count() or 1)
    policy = PartsPolicy.from_env(workers)
    return convert_pdf(source_type, main, output, ctx, LocalProcessExecutor(workers), policy)
