"""What crosses between the daemon and its workers: the pipe's messages, the files both
read in a running folder, and the names of the worker's entry points.

Standard library only (plus spoold's own plain records): the daemon, `spoold status`
and the tools import this module, and none of them may load the conversion stack
(lxml, WeasyPrint) to read a few dataclasses. The daemon never imports the worker's
code either: it schedules the entry points by name (`WorkerEntry`), and only the worker
process imports what they name.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ErrorInfo
from ..spool.parts import PartResult, PartsPolicy, SplitPlan
from ..spool.records import Artifact, Fetch, PartsInfo, Usage

# Files in a running folder, outside the job's sandbox.
CANCEL_FLAG = ".spoold-cancel"  # the daemon asks the worker to stop after this target
ARTIFACT_RECORDS = ".spoold-artifacts"  # targets done by an earlier attempt (resume)
STAGE_FILE = ".spoold-stage"  # the worker's current stage, for `spoold status`


@dataclass(frozen=True)
class WorkerLimits:
    memory_mb: int = 2048
    cpu_s: float = 600
    max_output_mb: float = 1024
    # Resident memory after a job above which the worker is replaced (worker/retire.py).
    recycle_rss_mb: float = 512


@dataclass(frozen=True)
class PartsSpec:
    """PDF in parts (docs/conversion.md "Big documents"): when to split, or what to merge.

    Without `results` a worker splits a big document and hands the plan back
    (`WorkerResult.split`); with them (every part and stamp chunk laid out) it merges.
    """

    policy: PartsPolicy
    results: tuple[PartResult, ...] = ()  # the parts', in document order
    stamps: tuple[PartResult, ...] = ()  # the stamp chunks', in page order


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs for one attempt; plain data so it pickles cheaply."""

    job_id: str
    attempt: int
    folder: str  # the running folder
    job_root: str  # sandbox root: nothing above it is read
    main: str  # the main document
    source_type: str
    targets: tuple[str, ...]
    stem: str
    options: dict[str, Any] = field(default_factory=dict)  # the effective job.json options
    limits: WorkerLimits = field(default_factory=WorkerLimits)
    durable: bool = True
    # False: the daemon makes the artifacts durable with its publish (one syncfs for all
    # of a job's files, spool/durability.py), unless an artifact record could outlive a
    # crash without them (several targets, a held result): the worker fsyncs those.
    sync_artifacts: bool = True
    # Duplicates: the index folder, done/, the mode, and an explicit key if job.json had one.
    dedup_dir: str | None = None
    done_dir: str | None = None
    on_duplicate: str = "reuse"
    idempotency_key: str | None = None
    parts: PartsSpec | None = None  # None: every PDF is laid out whole


@dataclass
class WorkerResult:
    """What a worker hands back for one attempt."""

    artifacts: list[Artifact] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fetches: list[Fetch] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per target
    usage: Usage | None = None
    error: ErrorInfo | None = None
    idempotency_key: str | None = None
    input_sha256: str | None = None
    duplicate_of: str | None = None
    # The PDF target was split: lay these out, then run the job again to merge them.
    split: SplitPlan | None = None
    parts: PartsInfo | None = None  # a merged PDF: the manifest's `parts`


@dataclass(frozen=True)
class PrivateFontconfig:
    """The fontconfig folder the daemon makes for its workers' caches (worker/fonts.py):
    `fonts.conf`, `cache/`, `xdg/`. A worker writes fonts.conf again from `conf_text`
    when something removed it."""

    root: str
    conf_text: str

    FONTS_CONF = "fonts.conf"
    CACHE_DIR = "cache"
    XDG_DIR = "xdg"

    def write(self) -> None:
        """(Re)create the folder's parts; fonts.conf appears whole (rename)."""
        root = Path(self.root)
        (root / self.CACHE_DIR).mkdir(parents=True, exist_ok=True)
        (root / self.XDG_DIR).mkdir(exist_ok=True)
        staging = root / f".{self.FONTS_CONF}.{os.getpid()}"
        staging.write_text(self.conf_text)
        staging.replace(root / self.FONTS_CONF)


@dataclass(frozen=True)
class WorkerEntry:
    """A worker-side function named by module and attribute.

    The daemon hands these to its process pool instead of the functions themselves:
    importing them would load the conversion stack into the daemon. The worker process
    imports the module on the first call (then it is one dictionary lookup).
    """

    module: str
    name: str

    def __call__(self, *args: Any) -> Any:
        return getattr(importlib.import_module(self.module), self.name)(*args)


# (limits, PrivateFontconfig | None, ready folder | None) -> None
INIT_WORKER = WorkerEntry("spoold.worker.retire", "init_pool_worker")
# In the folder the pool gives its starting workers: one file per CPU, flock'ed by a
# worker while it starts, so that no more start at once than there are CPUs.
START_SLOTS = "slots"
RUN_JOB = WorkerEntry("spoold.worker.retire", "run_job_then_maybe_retire")  # JobSpec
# (tuple[JobSpec, ...], budget_s) -> list[WorkerResult | None]: light jobs in one task
RUN_BATCH = WorkerEntry("spoold.worker.retire", "run_batch_then_maybe_retire")
RUN_PART = WorkerEntry("spoold.worker.run", "run_part")  # (PartTask, WorkerLimits)
