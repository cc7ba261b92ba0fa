"""A big PDF in the worker: split it into parts (handed back to the daemon), or merge the
parts the daemon had laid out (docs/conversion.md "Big documents")."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from ..convert import ConversionContext
from ..spool.checkpoints import kept_parts, part_key
from ..spool.parts import PARTS_DIR, SplitPlan
from .spec import JobSpec


class PartsNeeded(Exception):
    """The PDF target was split; the job goes on with its part tasks (not an error)."""

    def __init__(self, plan: SplitPlan) -> None:
        super().__init__(f"{len(plan.parts)} parts")
        self.plan = plan


def pdf_in_parts(spec: JobSpec, folder: Path, output: Path, ctx: ConversionContext) -> int | None:
    """Merge the laid-out parts into `output` (pages), or split (raises PartsNeeded).

    None: the document is laid out whole, as usual.
    """
    from ..convert.parts import route

    parts = spec.parts
    assert parts is not None
    workdir = folder / PARTS_DIR
    if parts.results:
        try:
            return route.merge_source(parts.results, parts.stamps, output, ctx)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    text = route.source_html(spec.source_type, Path(spec.main), ctx)
    if not route.may_split(text, parts.policy):
        return None
    plan = route.split_source(text, ctx, Path(spec.main).parent, workdir, parts.policy)
    if plan is not None:
        raise PartsNeeded(resumed(plan, folder))
    return None


def resumed(plan: SplitPlan, folder: Path) -> SplitPlan:
    """The plan with each part's key, and the parts an earlier attempt kept (SPEC 3
    "Resume"): those are not laid out again."""
    import weasyprint

    from .. import __version__

    versions = f"spoold {__version__}, weasyprint {weasyprint.__version__}"
    tasks = tuple(replace(t, key=part_key(t, folder, versions)) for t in plan.parts)
    return replace(plan, parts=tasks, done=kept_parts(folder, tasks))
