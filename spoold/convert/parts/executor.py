"""Run part tasks, maybe in parallel: one small interface, one local implementation.

The daemon does not use it: it lays parts out on its own workers (spoold/daemon/parts.py,
docs/conversion.md "Big documents"). This one is for `spoold convert`, the tests and the
bench: a pebble process pool like the daemon's workers, in which every
task runs in a fresh process (forkserver with WeasyPrint preloaded, one task per
process), so a part's memory goes back to the system when it is done and each part's
peak RSS is its own. Per part:

- a process that dies (killed, or out of memory in C code) loses only its own task,
  which is run again, alone, up to `retries` times;
- `part_timeout_s` stops a part that runs too long (its process is killed);
- `cancel` (an Event) stops everything: queued parts never start, running ones are
  killed, and their results say `cancelled`.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

from pebble import ProcessExpired, ProcessPool

from ...errors import ErrorCode, JobError
from ...spool.parts import PartResult, PartTask
from ..html.weasy import tune_gc_for_layout
from .layout import layout_part

CANCEL_POLL_S = 0.05  # how often a waiting run looks at the cancel event


class PartExecutor(Protocol):
    def run(self, tasks: Sequence[PartTask]) -> list[PartResult]:
        """Lay out every task; results in the order of `tasks`, failures as data."""
        ...


def _init_part_process(memory_limit_mb: int | None) -> None:
    tune_gc_for_layout()
    if memory_limit_mb:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _failed(task: PartTask, code: ErrorCode, message: str) -> PartResult:
    return PartResult(task.index, task.output_path, pages=0, error=JobError(code, message).info())


class LocalProcessExecutor:
    """Up to `workers` part layouts at once, each in its own short-lived process."""

    def __init__(
        self,
        workers: int = 2,
        memory_limit_mb: int | None = None,
        retries: int = 1,
        part_timeout_s: float | None = None,
        cancel: threading.Event | None = None,
        layout: Callable[[PartTask], PartResult] = layout_part,
    ) -> None:
        self.workers = workers
        self.memory_limit_mb = memory_limit_mb
        self.retries = retries
        self.part_timeout_s = part_timeout_s
        self.cancel = cancel or threading.Event()
        self.layout = layout  # a module-level function (it is pickled by name)
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["spoold.convert.parts.layout"])

    def warm(self) -> None:
        """Start the process server now (it imports WeasyPrint once), not at the first part."""
        pool: Any = ProcessPool(max_workers=1, context=self._context)  # pebble is untyped
        try:
            pool.schedule(os.getpid).result()
        finally:
            pool.close()
            pool.join()

    def run(self, tasks: Sequence[PartTask]) -> list[PartResult]:
        results: dict[int, PartResult] = {}
        losses = [0] * len(tasks)
        pool: Any = ProcessPool(
            max_workers=max(1, min(self.workers, len(tasks))),
            max_tasks=1,
            initializer=_init_part_process,
            initargs=(self.memory_limit_mb,),
            context=self._context,
        )
        pending: dict[Future[PartResult], int] = {}
        try:
            for i, task in enumerate(tasks):
                pending[self._schedule(pool, task)] = i
            while pending and not self.cancel.is_set():
                done, _ = wait(pending, timeout=CANCEL_POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    i = pending.pop(future)
                    outcome = self._outcome(future, tasks[i], losses, i)
                    if outcome is None:  # lost: run it again, alone
                        pending[self._schedule(pool, tasks[i])] = i
                    else:
                        results[i] = outcome
        finally:
            for future, i in pending.items():
                future.cancel()
                results[i] = _failed(tasks[i], ErrorCode.CANCELLED, "cancelled on request")
            pool.stop() if pending else pool.close()
            pool.join()
        return [results[i] for i in range(len(tasks))]

    def _schedule(self, pool: Any, task: PartTask) -> Future[PartResult]:
        future: Future[PartResult] = pool.schedule(
            self.layout, args=[task], timeout=self.part_timeout_s
        )
        return future

    def _outcome(
        self, future: Future[PartResult], task: PartTask, losses: list[int], i: int
    ) -> PartResult | None:
        try:
            return future.result()
        except FutureTimeout:
            return _failed(
                task, ErrorCode.TIMEOUT, f"part {task.index} ran over {self.part_timeout_s:g} s"
            )
        except CancelledError:
            return _failed(task, ErrorCode.CANCELLED, "cancelled on request")
        except MemoryError:
            limit = f" (its {self.memory_limit_mb} MB limit)" if self.memory_limit_mb else ""
            return _failed(
                task, ErrorCode.RESOURCE_LIMIT, f"part {task.index} ran out of memory{limit}"
            )
        except ProcessExpired as exc:
            losses[i] += 1
            if losses[i] <= self.retries:
                return None
            how = (
                f"signal {signal.Signals(-exc.exitcode).name}"
                if exc.exitcode and exc.exitcode < 0
                else f"exit code {exc.exitcode}"
            )
            message = f"part {task.index}: its process died {losses[i]} times ({how})"
            if not self.memory_limit_mb:
                return _failed(task, ErrorCode.WORKER_LOST, message)
            # Under a memory limit, a process that dies in C code has usually hit it.
            message += f", most likely at its {self.memory_limit_mb} MB memory limit"
            return _failed(task, ErrorCode.RESOURCE_LIMIT, message)
        except Exception as exc:  # the layout function failed outside its own guard
            message = f"part {task.index} failed: {type(exc).__name__}: {exc}"[:500]
            return _failed(task, ErrorCode.CONVERSION_FAILED, message)
