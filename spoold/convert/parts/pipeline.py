"""The converter-level parts pipeline: split, lay out through an executor, merge.

`split_document` and `finish` are the two steps a scheduler runs around the part
tasks (the daemon runs them in a worker, through route.py, and the tasks on free
workers: spoold/daemon/parts.py);
`render_pdf_in_parts` does all of it with one executor, for `spoold convert`, tests and
the bench.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import JobError
from ...spool.parts import PageOptions, PartResult, PartsPolicy, PartTask, SplitPlan, StampPlan
from .. import html as html_conv
from ..base import ConversionContext
from ..scripts import font_warnings
from .executor import PartExecutor
from .layout import page_css
from .merge import MergeReport, merge_parts
from .plan import Plan, align_table_cuts, plan_parts, sliced_tables
from .prepare import prepare_document, serialize
from .probe import probe_table
from .split import build_parts
from .stamp import may_chunk, stamp_template

STAMP_TEMPLATE = "stamp-template.html"
MAX_PROBED_TABLES = 4  # each probe lays out about 150 rows in the splitting process


@dataclass
class SplitOutcome:
    plan: Plan
    tasks: list[PartTask] = field(default_factory=list)  # empty: lay the document out whole
    stamp: StampPlan | None = None

    def split_plan(self) -> SplitPlan | None:
        if not self.tasks or self.stamp is None:
            return None
        return SplitPlan(tuple(self.tasks), self.stamp)


@dataclass
class PartsOutcome:
    pages: int
    parts: list[PartResult]
    stamps: list[PartResult]
    merge: MergeReport


def page_options(ctx: ConversionContext) -> PageOptions:
    page = PageOptions(ctx.options.theme, ctx.options.page_size, ctx.options.margins)
    # A bad theme, page size or margins fails here (input_invalid), before any part runs.
    html_conv.check_theme(page.theme)
    page_css(page)
    return page


def split_document(
    text: str | bytes,
    ctx: ConversionContext,
    base: Path,
    workdir: Path,
    policy: PartsPolicy | None = None,
) -> SplitOutcome:
    """Plan the split and write one HTML file per part (and the stamp template)."""
    page = page_options(ctx)
    root = prepare_document(text, ctx, base)
    if root is None:
        return SplitOutcome(Plan(reason="it is laid out with its own styles"))
    for message in font_warnings(root):
        ctx.warn(message)
    plan = plan_parts(root, policy or PartsPolicy())
    if not plan.split:
        return SplitOutcome(plan)
    workdir.mkdir(parents=True, exist_ok=True)
    base_url = base.resolve().as_uri() + "/"
    fits = {}
    for table in sliced_tables(plan.parts)[:MAX_PROBED_TABLES]:
        fit = probe_table(root, table, page, base_url)
        if fit is not None:
            fits[id(table)] = fit
    align_table_cuts(plan.parts, fits)
    tasks = []
    for i, tree in enumerate(build_parts(root, plan.parts)):
        path = workdir / f"part-{i:04d}.html"
        path.write_bytes(serialize(tree))
        out = str(workdir / f"part-{i:04d}.pdf")
        tasks.append(PartTask(i, str(path), out, page, base_url))
    template = stamp_template(root)
    (workdir / STAMP_TEMPLATE).write_bytes(serialize(template))
    stamp = StampPlan(
        str(workdir / STAMP_TEMPLATE), may_chunk(template, html_conv.theme_css(page.theme))
    )
    return SplitOutcome(plan, tasks, stamp)


def check(results: list[PartResult]) -> None:
    for r in results:
        if r.error is not None:
            raise JobError(r.error.code, r.error.message, r.error.hint, r.error.retryable)


def finish(
    split: SplitPlan, results: list[PartResult], executor: PartExecutor, output: Path, workers: int
) -> PartsOutcome:
    """Lay out the stamp for the parts' page total and merge everything into `output`."""
    check(results)
    pages = sum(r.pages for r in results)
    stamps = executor.run(split.stamp.tasks(pages, split.parts[0], workers))
    check(stamps)
    report = merge_parts(results, [Path(s.output_path) for s in stamps], output)
    return PartsOutcome(report.pages, results, stamps, report)


def render_pdf_in_parts(
    text: str | bytes,
    ctx: ConversionContext,
    base: Path,
    output: Path,
    executor: PartExecutor,
    workdir: Path,
    policy: PartsPolicy | None = None,
) -> PartsOutcome | None:
    """The whole pipeline; None when the plan keeps the document whole."""
    split = split_document(text, ctx, base, workdir, policy).split_plan()
    if split is None:
        return None
    try:
        ctx.stage("layout")
        results = executor.run(split.parts)
        for r in results:
            for w in r.warnings:
                ctx.warn(w)
        ctx.stage("writing")
        return finish(split, results, executor, output, (policy or PartsPolicy()).workers)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
