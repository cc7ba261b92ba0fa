"""Where jobs run: the executor interface, and the pebble process pool behind it.

The lifecycle sees only `Executor.submit` and the `Execution` it returns, so tests can
run jobs in-process (tests/test_lifecycle.py) while the daemon runs them in workers.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..worker import JobSpec, WorkerLimits, WorkerResult, init_worker, run_job, run_part

if TYPE_CHECKING:
    from ..convert.parts.tasks import PartResult, PartTask


@dataclass(frozen=True)
class Completed:
    result: WorkerResult


@dataclass(frozen=True)
class Cancelled:
    """Stopped on request (hard cancel, drain deadline)."""


@dataclass(frozen=True)
class TimedOut:
    """The job's timeout_s passed; its worker was killed."""


@dataclass(frozen=True)
class WorkerDied:
    exitcode: int | None
    error: str


Outcome = Completed | Cancelled | TimedOut | WorkerDied


class Execution(Protocol):
    def done(self) -> bool: ...

    def cancel(self) -> None: ...

    def outcome(self) -> Outcome:
        """How it ended; only called once done() is true."""
        ...


class Executor(Protocol):
    def submit(self, spec: JobSpec, timeout_s: float, on_done: Callable[[], None]) -> Execution:
        """Start one job; `on_done` is called (from any thread) when it has ended."""
        ...

    def submit_part(
        self, task: PartTask, limits: WorkerLimits, timeout_s: float, on_done: Callable[[], None]
    ) -> concurrent.futures.Future[PartResult]:
        """Lay out one part of a split job (daemon/parts.py) on a worker."""
        ...

    def stop(self) -> None: ...


class PoolExecution:
    def __init__(self, future: concurrent.futures.Future[WorkerResult]) -> None:
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def cancel(self) -> None:
        self._future.cancel()

    def outcome(self) -> Outcome:
        try:
            result = self._future.result()
        except concurrent.futures.CancelledError:
            return Cancelled()
        except TimeoutError:
            return TimedOut()
        except Exception as exc:  # pebble's ProcessExpired and pickling errors
            return WorkerDied(getattr(exc, "exitcode", None), type(exc).__name__)
        return Completed(result)


class PoolExecutor:
    """A pebble ProcessPool of long-lived workers, forked from a forkserver."""

    def __init__(self, workers: int, max_tasks: int, limits: WorkerLimits) -> None:
        from pebble import ProcessPool

        from ..convert import CONVERTER_MODULES

        # forkserver: workers fork from a clean process that preloaded the converters,
        # not from this threaded daemon (fork after threads can deadlock on locks).
        ctx = multiprocessing.get_context("forkserver")
        # The parts layout too: WeasyPrint is imported once, not by each worker.
        ctx.set_forkserver_preload(
            ["spoold.worker", *CONVERTER_MODULES, "spoold.convert.parts.layout"]
        )
        self._pool = ProcessPool(
            max_workers=workers,
            max_tasks=max_tasks,
            initializer=init_worker,
            initargs=(limits,),
            context=ctx,
        )
        # Reading `active` starts the forkserver and the workers now, before READY=1;
        # otherwise the first schedule() would, and the first job's job.started would
        # be logged ~250 ms before its worker could begin.
        if not self._pool.active:
            raise RuntimeError("the worker pool did not start")

    def submit(self, spec: JobSpec, timeout_s: float, on_done: Callable[[], None]) -> Execution:
        future = self._pool.schedule(run_job, args=(spec,), timeout=timeout_s)
        future.add_done_callback(lambda _f: on_done())
        return PoolExecution(future)

    def submit_part(
        self, task: PartTask, limits: WorkerLimits, timeout_s: float, on_done: Callable[[], None]
    ) -> concurrent.futures.Future[PartResult]:
        future: concurrent.futures.Future[PartResult] = self._pool.schedule(
            run_part, args=(task, limits), timeout=timeout_s
        )
        future.add_done_callback(lambda _f: on_done())
        return future

    def stop(self) -> None:
        self._pool.stop()  # type: ignore[no-untyped-call]  # pebble leaves stop() unannotated
        self._pool.join(timeout=10)
