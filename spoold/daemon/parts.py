"""A job whose PDF is laid out in parts: the parts on free workers, then the merge.

A worker splits a big document and hands back a plan (`WorkerResult.split`); the
lifecycle then replaces the job's execution with a `PartsRun`, which is an `Execution`
to everything else (done, cancel, outcome), so cancel, drain, timeouts and publishing
work as for any job. Scheduling (docs/architecture.md "Big jobs"): a split job always
keeps one worker (the one it was claimed on), so it cannot be starved; it borrows more
only when they are idle and no queued job is ready for them (`lend_workers`), so small
jobs are never kept waiting longer than one part. A part whose worker dies is laid out
again, alone, once; any other part failure ends the attempt with that part's error.
When every part is laid out, the page total is known and the stamp (page numbers,
running header) is laid out the same way, in chunks, one per worker at least. Then the
job runs once more in a worker with the results: that run merges and writes the PDF
(and any other target).

Only the loop thread calls into a PartsRun; executor callbacks only wake the loop.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..spool.checkpoints import keep_part
from ..spool.parts import PARTS_DIR, PartResult, PartsPolicy, PartTask, StampPlan
from ..spool.records import PartsInfo, Usage
from ..worker.spec import CANCEL_FLAG, JobSpec, PartsSpec, WorkerResult
from .cores import busy_cores
from .executor import Cancelled, Completed, Execution, Executor, Outcome, TimedOut, WorkerDied

if TYPE_CHECKING:
    from .runtime import RunningJob

PART_RETRIES = 1  # a part whose worker died is laid out again this many times
IGNORE_LOAD_ENV = "SPOOLD_PARTS_IGNORE_LOAD"  # tests: idle workers count without idle cores


def parts_spec(workers: int, idle: int = 0) -> PartsSpec:
    """When this daemon splits PDFs: the policy's defaults unless the environment says;
    `idle`: the other workers idle as the job starts (a medium document is split too)."""
    return PartsSpec(PartsPolicy.from_env(workers, idle))


def idle_workers(free: int, queued: bool) -> int:
    """Workers a medium document may borrow when it starts: the other free ones, when
    no queued job is ready for them and the machine has idle cores for them besides the
    job's own (docs/performance.md "Medium documents"): on a machine busy with other
    work the parts wait for cores and the split only adds its own work."""
    if queued or free <= 1:
        return 0
    if os.environ.get(IGNORE_LOAD_ENV):
        return free - 1
    spare = (os.cpu_count() or 1) - 1 - busy_cores()
    # Half a core used by others on average still leaves one for a part.
    return max(0, min(free - 1, int(spare + 0.5)))


def discard_parts(folder: Path) -> None:
    """The parts' work files go when the attempt ends, whatever the outcome; the parts
    laid out stay for the next attempt (spool/checkpoints.py) until the job is published."""
    shutil.rmtree(folder / PARTS_DIR, ignore_errors=True)


class PartsRun:
    """The parts and merge of one split attempt, as one Execution."""

    def __init__(
        self,
        executor: Executor,
        spec: JobSpec,
        split: WorkerResult,
        deadline: float,
        on_done: Callable[[], None],
    ) -> None:
        self.executor = executor
        self.spec = spec
        self.split = split  # the splitting run: its warnings, fetches and usage count too
        assert split.split is not None
        self.tasks: list[PartTask] = list(split.split.parts)  # then the stamp chunks
        self.content = len(self.tasks)  # how many of the tasks are the document's parts
        self.stamp: StampPlan | None = split.split.stamp  # None once its chunks are queued
        self.deadline = deadline  # monotonic: the job's timeout_s bounds all of it
        self.on_done = on_done
        self.started = time.monotonic()
        # Parts an earlier attempt laid out (spool/checkpoints.py) are not laid out again.
        self.results: dict[int, PartResult] = {r.index: r for r in split.split.done}
        self.reused = len(self.results)
        self.queued: deque[int] = deque(i for i in range(self.content) if i not in self.results)
        self.running: dict[int, Future[PartResult]] = {}
        self.losses = [0] * len(self.tasks)
        self.merge: Execution | None = None
        self.ended: Outcome | None = None

    # -------------------------------------------------------------- Execution

    def done(self) -> bool:
        return self.ended is not None or (self.merge is not None and self.merge.done())

    def cancel(self) -> None:
        if self.ended is None:
            self.ended = Cancelled()
        self._stop()
        self.on_done()  # the loop publishes it (a merge's own callback may come later)

    def outcome(self) -> Outcome:
        if self.ended is not None:
            return self.ended
        assert self.merge is not None
        merged = self.merge.outcome()
        if not isinstance(merged, Completed):
            return merged
        return Completed(self._summed(merged.result))

    def workers_held(self) -> int:
        if self.ended is not None:
            return 0
        merging = self.merge is not None and not self.merge.done()
        return len(self.running) + (1 if merging else 0)

    # -------------------------------------------------------------- progress

    def wants_workers(self) -> bool:
        return self.ended is None and bool(self.queued) and not self._cancel_asked()

    def advance(self) -> None:
        """Collect ended parts; keep the job's own worker busy; merge when all are in."""
        if self.done():
            return
        for i, future in list(self.running.items()):
            if future.done() and self.ended is None:
                del self.running[i]
                self._collect(i, future)
        if self.ended is None and self._cancel_asked():
            self.queued.clear()  # graceful: running parts finish, nothing new starts
            if not self.running and self.merge is None:
                self.ended = Cancelled()
        if self.ended is not None:
            self._stop()
            return
        if not self.queued and not self.running and self.stamp is not None:
            self._queue_stamp()
        if self.queued and not self.running:
            self.start(1)
        elif not self.queued and not self.running and self.merge is None:
            self._start_merge()

    def _queue_stamp(self) -> None:
        """Every part is in: the page total is known, the stamp's chunks can go."""
        assert self.stamp is not None and self.spec.parts is not None
        pages = sum(self.results[i].pages for i in range(self.content))
        chunks = self.stamp.tasks(pages, self.tasks[0], self.spec.parts.policy.workers)
        self.stamp = None
        self.queued.extend(range(len(self.tasks), len(self.tasks) + len(chunks)))
        self.tasks.extend(chunks)
        self.losses.extend([0] * len(chunks))

    def start(self, workers: int) -> int:
        """Start up to `workers` queued parts; how many started."""
        started = 0
        while self.queued and started < workers and self.ended is None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self.ended = TimedOut()
                self._stop()
                self.on_done()
                break
            i = self.queued.popleft()
            try:
                future = self.executor.submit_part(
                    self.tasks[i], self.spec.limits, remaining, self.on_done
                )
            except Exception as exc:  # a broken pool: the attempt ends, retried as lost
                self._broken(exc)
                break
            self.running[i] = future
            started += 1
        return started

    def _broken(self, exc: Exception) -> None:
        self.ended = WorkerDied(None, f"the pool refused a part: {type(exc).__name__}")
        self._stop()
        self.on_done()

    def _collect(self, i: int, future: Future[PartResult]) -> None:
        try:
            result = future.result()
        except CancelledError:
            self.ended = Cancelled()
            return
        except TimeoutError:  # the job's timeout ran out under this part
            self.ended = TimedOut()
            return
        except Exception as exc:  # pebble's ProcessExpired: the worker died under the part
            exitcode = getattr(exc, "exitcode", None)
            if exitcode is not None and self.losses[i] < PART_RETRIES:
                self.losses[i] += 1
                self.queued.appendleft(i)  # again, alone; the rest goes on
                return
            self.ended = WorkerDied(exitcode, type(exc).__name__)
            return
        if result.error is not None:
            self.ended = Completed(WorkerResult(error=result.error))
        else:
            # Kept for a later attempt of this job (recovery, requeue, retry).
            self.results[i] = keep_part(Path(self.spec.folder), self.tasks[i], result)

    def _start_merge(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.ended = TimedOut()
            self.on_done()
            return
        results = tuple(self.results[i] for i in range(self.content))
        stamps = tuple(self.results[i] for i in range(self.content, len(self.tasks)))
        assert self.spec.parts is not None
        parts = replace(self.spec.parts, results=results, stamps=stamps)
        try:
            self.merge = self.executor.submit(
                replace(self.spec, parts=parts), remaining, self.on_done
            )
        except Exception as exc:
            self._broken(exc)

    def _stop(self) -> None:
        self.queued.clear()
        for future in self.running.values():
            future.cancel()  # pebble stops the worker running it
        self.running.clear()
        if self.merge is not None and not self.merge.done():
            self.merge.cancel()

    def _cancel_asked(self) -> bool:
        return (Path(self.spec.folder) / CANCEL_FLAG).exists()

    def _summed(self, merged: WorkerResult) -> WorkerResult:
        """The merge run's result with the split run's records and usage over all runs."""
        parts = [self.results[i] for i in range(self.content)]
        laid_out = [self.results[i] for i in range(len(self.tasks))]  # parts and stamp
        runs = [u for u in (self.split.usage, merged.usage) if u is not None]
        merged.usage = Usage(
            cpu_s=round(sum(u.cpu_s or 0.0 for u in runs) + sum(p.cpu_s for p in laid_out), 6),
            peak_rss_mb=max(
                [u.peak_rss_mb or 0.0 for u in runs] + [p.peak_rss_mb for p in laid_out]
            ),
            wall_s=round(sum(u.wall_s for u in runs[:1]) + time.monotonic() - self.started, 6),
        )
        # The PDF's time: its share of the split run, the parts, the merge run.
        split_wall = self.split.usage.wall_s if self.split.usage else 0.0
        split_pdf = max(0.0, split_wall - sum(self.split.timings.values()))
        merged.timings = {
            **self.split.timings,
            **merged.timings,
            "pdf": round(split_pdf + time.monotonic() - self.started, 6),
        }
        merged.warnings = _unique([*self.split.warnings, *merged.warnings])
        merged.fetches = [*self.split.fetches, *merged.fetches]
        merged.parts = PartsInfo(
            count=len(parts),
            pages=[p.pages for p in parts],
            cpu_s=[p.cpu_s for p in parts],
            relaid=sum(self.losses),
            reused=self.reused,
        )
        return merged


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def lend_workers(jobs: Iterable[RunningJob], free: int) -> None:
    """Idle workers no queued job is ready for go to split jobs, by priority then age."""
    runs = [job for job in jobs if isinstance(job.execution, PartsRun)]
    runs.sort(key=lambda job: (-job.state.priority, job.state.arrived_at))
    for job in runs:
        if free <= 0:
            return
        run: Any = job.execution
        if run.wants_workers():
            free -= run.start(free)
