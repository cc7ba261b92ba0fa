"""Run part tasks, maybe in parallel: one small interface, one local implementation.

The daemon's own executor (its pebble worker pool, see docs/conversion.md "Big
documents") implements the same `run`. The local one lays every task out in a fresh
process (forkserver with WeasyPrint preloaded, one task per process), so a part's
memory is returned to the system when it is done and each part's peak RSS is its own.
A process that dies (killed, out of memory in C code) loses only the tasks it was
running: they are run again, each alone, up to `retries` times.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from ...errors import ErrorCode
from .layout import layout_part
from .tasks import PartResult, PartTask


class PartExecutor(Protocol):
    def run(self, tasks: Sequence[PartTask]) -> list[PartResult]:
        """Lay out every task; results in the order of `tasks`, failures as data."""
        ...


def _limit_memory(memory_limit_mb: int | None) -> None:
    if memory_limit_mb:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class LocalProcessExecutor:
    """Up to `workers` part layouts at once, each in its own short-lived process."""

    def __init__(
        self,
        workers: int = 2,
        memory_limit_mb: int | None = None,
        retries: int = 1,
        layout: Callable[[PartTask], PartResult] = layout_part,
    ) -> None:
        self.workers = workers
        self.layout = layout  # a module-level function (it is pickled by name)
        self.memory_limit_mb = memory_limit_mb
        self.retries = retries
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["spoold.convert.parts.layout"])

    def warm(self) -> None:
        """Start the process server now (it imports WeasyPrint once), not at the first part."""
        with ProcessPoolExecutor(1, mp_context=self._context) as pool:
            pool.submit(os.getpid).result()

    def run(self, tasks: Sequence[PartTask]) -> list[PartResult]:
        results: dict[int, PartResult] = {}
        pending = list(enumerate(tasks))
        for attempt in range(self.retries + 1):
            if not pending:
                break
            # After a loss, run the lost tasks one at a time: the one that kills its
            # process then takes nothing else down with it.
            workers = self.workers if attempt == 0 else 1
            lost = self._round(pending, workers, results)
            pending = lost
        for position, task in pending:
            results[position] = PartResult(
                index=task.index,
                output_path=task.output_path,
                pages=0,
                error_code=ErrorCode.RESOURCE_LIMIT.value,
                error_message=(
                    f"part {task.index}: its process died {self.retries + 1} times"
                    " (killed, or out of memory)"
                ),
            )
        return [results[i] for i in range(len(tasks))]

    def _round(
        self, pending: list[tuple[int, PartTask]], workers: int, results: dict[int, PartResult]
    ) -> list[tuple[int, PartTask]]:
        lost: list[tuple[int, PartTask]] = []
        pool = ProcessPoolExecutor(
            max_workers=max(1, min(workers, len(pending))),
            mp_context=self._context,
            initializer=_limit_memory,
            initargs=(self.memory_limit_mb,),
            max_tasks_per_child=1,
        )
        with pool:
            futures: list[tuple[int, PartTask, Future[PartResult]]] = [
                (position, task, pool.submit(self.layout, task)) for position, task in pending
            ]
            for position, task, future in futures:
                try:
                    results[position] = future.result()
                except BrokenProcessPool:
                    lost.append((position, task))
        return lost
