"""Light jobs several to a worker: one round trip for a few tiny conversions.

A tiny Markdown to HTML job costs its worker well under a millisecond, and handing it
over (the pool's pipe, its threads, the daemon's loop) costs about as much again, during
which the worker waits. So when more light jobs wait than there are free workers, a
free worker is given several of them (`Admission.claim_ready`) and the pool sends them
as one task (`PoolExecutor.batch`, worker/retire.py `run_batch_then_maybe_retire`).

A batch is what one free worker starts now: at most BATCH_MAX jobs, light ones only
(`light_entry`: a plain file of a few KB whose route makes HTML alone), and a worker
begins none of them after BATCH_BUDGET_S, so a batch holds its jobs for milliseconds,
not long enough to keep them from another daemon's idle workers (SPEC 3, back-pressure).

Each job of a batch stays its own Execution to the lifecycle (`BatchedExecution`):
- it ends with the batch when its worker ran it;
- a job its worker did not begin (the budget ran out, the worker retires), and every
  job of a batch that failed as a whole (its worker died, the batch timed out, a
  MemoryError), runs again alone with its own timeout: the failure then lands on the
  job that caused it, and only an attempt alone counts;
- a cancel kills the batch's worker at once, as it kills a lone job's; the other jobs
  of the batch run again alone.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import stat
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..spool.entries import JOB_FILE, EntryKind
from ..spool.formats import LIGHT_SOURCES, SUFFIX_TYPES
from ..worker.spec import JobSpec, WorkerResult

if TYPE_CHECKING:
    from .executor import Outcome, PoolExecution
    from .inbox.tracker import Entry

log = logging.getLogger("spoold")

BATCH_MAX = 16  # jobs in one task (8 gave 1,200 tiny jobs/s on tmpfs, 16 gave 1,360, 32 no more)
BATCH_BUDGET_S = 0.25  # a worker begins no job of a batch after this
BATCH_TIMEOUT_S = 30.0  # a batch's own timeout at most (each job's timeout_s applies alone)
LIGHT_MAX_BYTES = 16 * 1024  # a light job's input: a tiny note, milliseconds to convert
LIGHT_TARGETS = ("html",)

# PoolExecutor.submit_alone: one job as its own task
Submit = Callable[[JobSpec, float, Callable[[], None]], "PoolExecution"]


def light_entry(entry: Entry, targets: Sequence[str], inbox: Path) -> bool:
    """Whether a queued entry is light, before it is claimed (`targets`: its route's).

    A plain file of a few KB, Markdown or HTML, whose route makes HTML alone; or a job
    folder as the gateway writes it, holding job.json and the small main document it
    names, and asking for HTML alone. A retry or a truncated entry is never light.
    """
    if entry.truncated:
        return False
    if entry.kind is EntryKind.FILE:
        return (
            len(entry.sig) > 1
            and entry.sig[1] <= LIGHT_MAX_BYTES
            and tuple(targets) == LIGHT_TARGETS
            and _light_source(entry.name)
        )
    if entry.kind is EntryKind.DIR and entry.job_json is not None and entry.job_json.data:
        return _light_folder(inbox / entry.key, entry.job_json.data, targets)
    return False


def _light_folder(folder: Path, data: dict[str, Any], targets: Sequence[str]) -> bool:
    main, asked = data.get("main"), data.get("targets", list(targets))
    if not isinstance(main, str) or not isinstance(asked, list):
        return False
    if tuple(asked) != LIGHT_TARGETS or not _light_source(main):
        return False
    try:
        if set(os.listdir(folder)) != {main, JOB_FILE}:
            return False  # resources, an archive, a main in a subfolder: not tiny
        st = os.lstat(folder / main)
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size <= LIGHT_MAX_BYTES


def _light_source(name: str) -> bool:
    return SUFFIX_TYPES.get(os.path.splitext(name)[1].lower()) in LIGHT_SOURCES


def light_spec(spec: JobSpec) -> bool:
    """The check after the plan (front matter or options may have asked for more)."""
    return spec.targets == LIGHT_TARGETS and spec.source_type in LIGHT_SOURCES


def batch_size(ready: int, free: int) -> int:
    """Jobs for each free worker: all of them share what waits, BATCH_MAX at most; one
    each while no more wait than there are free workers (no batching a trickle)."""
    if free <= 0 or ready <= free:
        return 1
    return min(BATCH_MAX, -(-ready // free))


class BatchedExecution:
    """One job of a batch, as the lifecycle sees it (the Execution protocol).

    Ended by the batch's task (`ended`), or run again alone (`alone`); the batch's
    first job counts as holding its worker (`workers_held`), the others as holding none.
    Written from the pool's callback thread, read from the loop's: `done` is true only
    once the outcome is set for good.
    """

    def __init__(
        self, spec: JobSpec, timeout_s: float, on_done: Callable[[], None], leader: bool
    ) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self.on_done = on_done
        self.leader = leader
        self.cancelled = False
        self.batch: concurrent.futures.Future[list[WorkerResult | None]] | None = None
        self._ended: Outcome | None = None
        self._alone: PoolExecution | None = None
        self._lock = threading.Lock()

    def done(self) -> bool:
        if self._ended is not None:
            return True
        alone = self._alone
        return alone is not None and alone.done()

    def workers_held(self) -> int:
        if self.done():
            return 0
        if self._alone is not None:
            return 1
        return 1 if self.leader else 0

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            alone, batch = self._alone, self.batch
        if alone is not None:
            alone.cancel()
        elif batch is not None:
            batch.cancel()  # kills its worker if it runs; the others run again alone

    def outcome(self) -> Outcome:
        if self._ended is not None:
            return self._ended
        assert self._alone is not None, "outcome() before done()"
        return self._alone.outcome()

    def lose(self, why: str) -> None:
        """End it as a worker death: its pool failed and is being replaced."""
        from .executor import WorkerDied

        self.end(WorkerDied(None, why))

    def end(self, outcome: Outcome) -> None:
        with self._lock:
            if self._ended is not None or self._alone is not None:
                return
            self._ended = outcome
        self.on_done()

    def run_alone(self, submit: Submit) -> None:
        from .executor import Cancelled

        with self._lock:
            if self._ended is not None:
                return
        if self.cancelled:
            self.end(Cancelled())
            return
        try:
            alone = submit(self.spec, self.timeout_s, self.on_done)
        except Exception as exc:  # the pool stopped or broke meanwhile
            self.lose(f"could not be run again alone: {exc}")
            return
        with self._lock:
            self._alone = alone
            cancelled = self.cancelled
        if cancelled:
            alone.cancel()  # asked while it was being submitted
        if alone.done():
            self.on_done()  # it may have ended before `_alone` was set: wake again


def batch_ended(
    members: list[BatchedExecution],
    future: concurrent.futures.Future[list[WorkerResult | None]],
    submit: Submit,
) -> None:
    """The batch's task ended (pool callback thread): end each job or run it alone."""
    from .executor import Cancelled, Completed

    why = ""
    try:
        results: list[WorkerResult | None] = future.result()
    except BaseException as exc:  # cancelled, timed out, its worker died: see the docstring
        results, why = [], _why(exc)
    again = [
        m.spec.job_id for i, m in enumerate(members) if i >= len(results) or results[i] is None
    ]
    if again:
        log.info(
            "a batch of %d light jobs %s; %s run again alone",
            len(members),
            why or "ended before its worker began them all",
            ", ".join(again),
        )
    for i, member in enumerate(members):
        result = results[i] if i < len(results) else None
        if result is not None:
            member.end(Completed(result))
        elif member.cancelled:
            member.end(Cancelled())
        else:
            member.run_alone(submit)


def _why(exc: BaseException) -> str:
    if isinstance(exc, concurrent.futures.CancelledError):
        return "was cancelled"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"failed ({type(exc).__name__}: {exc})"
