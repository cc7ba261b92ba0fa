"""Where jobs run: the executor interface, and the pebble process pool behind it.

The lifecycle sees only `Executor.submit` and the `Execution` it returns, so tests can
run jobs in-process (tests/test_lifecycle.py) while the daemon runs them in workers.

The pool heals itself (PoolExecutor.heal, called on every pass of the loop): when one
of pebble's manager threads has died or the pool reports an internal error, the jobs
in flight end as worker deaths (retried as worker_lost), the old pool's workers are
stopped and a new pool is started. A pool that cannot be started again raises
PoolBroken, and the daemon exits 70 for systemd to start a fresh one.

Workers start in parallel and nobody waits for them: a spawned worker takes about a
second to import WeasyPrint and the converters, on 2 cores several seconds for 8. The
pool counts the workers that have run their initializer (`ready_workers`), the daemon
claims only for those, and `on_worker_ready` wakes the loop when one more is ready. At
most as many workers import at once as there are CPUs (start slots, worker/retire.py):
8 workers on 2 cores then become ready two by two, the first after about a second,
instead of all together after four.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..spool.parts import PartResult, PartTask
from ..worker.spec import (
    INIT_WORKER,
    RUN_BATCH,
    RUN_JOB,
    RUN_PART,
    START_SLOTS,
    JobSpec,
    PrivateFontconfig,
    WorkerLimits,
    WorkerResult,
)
from .batch import BATCH_BUDGET_S, BATCH_TIMEOUT_S, BatchedExecution, batch_ended, light_spec
from .fontconfig import make_private_fontconfig, remove_private_fontconfig

if TYPE_CHECKING:
    from ..settings import DaemonSettings, SpoolSettings

log = logging.getLogger("spoold")

# Test-only fault injection: "manager" kills pebble's pool manager thread at the first
# submit (a job is in flight); "manager,norebuild" also makes every rebuild fail.
POOL_FAULT_ENV = "SPOOLD_TEST_POOL_FAULT"


class PoolBroken(RuntimeError):
    """The worker pool failed and could not be started again."""


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
    """Runs jobs on `workers` workers; the one place the daemon's worker count lives."""

    @property
    def workers(self) -> int: ...

    @property
    def ready_workers(self) -> int:
        """Workers that can begin a job now (fewer than `workers` while they start)."""
        ...

    def start(self) -> None:
        """Start the workers (the daemon calls it once, before the first claim); it
        does not wait for them."""
        ...

    def submit(self, spec: JobSpec, timeout_s: float, on_done: Callable[[], None]) -> Execution:
        """Start one job; `on_done` is called (from any thread) when it has ended."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """Light jobs submitted inside go to one worker in one round trip (batch.py); an
        executor may run them one by one."""
        ...

    def submit_part(
        self, task: PartTask, limits: WorkerLimits, timeout_s: float, on_done: Callable[[], None]
    ) -> concurrent.futures.Future[PartResult]:
        """Lay out one part of a split job (daemon/parts.py) on a worker."""
        ...

    def stop(self) -> None: ...


WORKERS_READY_TIMEOUT_S = 120.0  # a spawned worker imports WeasyPrint: ~1 s, more if loaded


class WorkerStart:
    """The workers of one new pool becoming ready, counted off the loop's thread.

    Each worker's initializer leaves a file named after its pid in `folder`
    (worker/retire.py). A thread counts them every 10 ms (only while the pool starts)
    and calls `on_ready` for each new one; after WORKERS_READY_TIMEOUT_S every worker
    counts as ready, so a worker that never reports cannot keep the pool idle. The
    folder is removed when all are in. Its `slots/` holds one file per CPU: a starting
    worker holds an flock on one while it imports.
    """

    def __init__(self, workers: int, on_ready: Callable[[], None]) -> None:
        self.workers = workers
        self.ready = 0
        self.folder = Path(tempfile.mkdtemp(prefix="spoold-workers-"))
        (self.folder / START_SLOTS).mkdir()
        for slot in range(min(workers, os.cpu_count() or 1)):
            (self.folder / START_SLOTS / str(slot)).touch()
        self._on_ready = on_ready
        self._stopped = threading.Event()

    def watch(self) -> None:
        threading.Thread(target=self._count, name="spoold-worker-start", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _count(self) -> None:
        started = time.monotonic()
        deadline = started + WORKERS_READY_TIMEOUT_S
        try:
            while self.ready < self.workers and not self._stopped.wait(0.01):
                try:
                    pids = [n for n in os.listdir(self.folder) if n.isdigit()]
                    seen = min(len(pids), self.workers)
                except OSError:
                    seen = self.workers
                if time.monotonic() > deadline:
                    log.warning(
                        "%d of %d workers did not report ready in %.0f s; going on",
                        self.workers - seen,
                        self.workers,
                        WORKERS_READY_TIMEOUT_S,
                    )
                    seen = self.workers
                if seen > self.ready:
                    self.ready = seen
                    self._on_ready()
            if self.ready == self.workers:
                took = time.monotonic() - started
                log.info("%d workers ready, %.1f s after they were started", self.workers, took)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class PoolExecution:
    def __init__(
        self, future: concurrent.futures.Future[WorkerResult], on_done: Callable[[], None]
    ) -> None:
        self._future = future
        self._on_done = on_done
        self._lost: WorkerDied | None = None  # set when its pool failed under it

    def done(self) -> bool:
        return self._lost is not None or self._future.done()

    def lose(self, why: str) -> None:
        """End it as a worker death: its pool failed and is being replaced."""
        if self._lost is None and not self._future.done():
            self._lost = WorkerDied(None, why)
            self._on_done()

    def cancel(self) -> None:
        self._future.cancel()

    def outcome(self) -> Outcome:
        if self._lost is not None:
            return self._lost
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
    """A pebble ProcessPool of long-lived workers, each a spawned interpreter."""

    def __init__(
        self,
        workers: int,
        max_tasks: int,
        limits: WorkerLimits,
        on_worker_ready: Callable[[], None] = lambda: None,
    ) -> None:
        self._workers = workers
        self._max_tasks = max_tasks
        self._limits = limits
        self._on_worker_ready = on_worker_ready  # called from the counting thread
        self._in_flight: set[PoolExecution | BatchedExecution] = set()
        self._in_flight_lock = threading.Lock()  # batch.py runs jobs alone from pool threads
        self._batching: list[BatchedExecution] | None = None  # inside batch()
        self._fault = os.environ.get(POOL_FAULT_ENV, "").split(",")
        self._fontconfig: PrivateFontconfig | None = None
        self._pool: Any = None
        self._starting: WorkerStart | None = None

    @classmethod
    def for_daemon(
        cls, settings: DaemonSettings, spools: list[SpoolSettings], on_ready: Callable[[], None]
    ) -> PoolExecutor:
        """The daemon's pool. Workers serve every spool: the hard memory limit is the
        largest; each job lowers its soft limit to its own spool's (worker/run.py)."""
        limits = WorkerLimits(
            memory_mb=max(sp.memory_limit_mb for sp in spools),
            cpu_s=max(sp.cpu_limit_s for sp in spools),
            recycle_rss_mb=settings.max_worker_rss_mb,
        )
        return cls(settings.workers, settings.max_tasks_per_worker, limits, on_ready)

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def ready_workers(self) -> int:
        return self._workers if self._starting is None else self._starting.ready

    def start(self) -> None:
        self._fontconfig = _private_fontconfig()
        try:
            self._pool = self._new_pool(rebuild=False)
        except BaseException:
            self._remove_fontconfig()
            raise

    def _new_pool(self, *, rebuild: bool) -> Any:
        from pebble import ProcessPool

        if rebuild and "norebuild" in self._fault:
            raise RuntimeError(f"{POOL_FAULT_ENV}: rebuilding refused")
        # spawn: each worker is a fresh interpreter, never a fork of this threaded daemon
        # (fork after threads can deadlock on locks). Not forkserver, though it starts a
        # worker in 50 ms instead of about 1 s: measured on the 2-core VMs we run on,
        # forkserver children took 5x the page faults of spawned ones (120,000 against
        # 20,000 per 70-page layout) and 12 % more CPU per layout (docs/performance.md
        # "Worker start method"). A worker starts once per max_tasks_per_worker jobs.
        ctx = multiprocessing.get_context("spawn")
        if self._starting is not None:
            self._starting.stop()
        starting = self._starting = WorkerStart(self._workers, self._on_worker_ready)
        try:
            pool = ProcessPool(
                max_workers=self._workers,
                max_tasks=self._max_tasks,
                initializer=INIT_WORKER,
                initargs=(self._limits, self._fontconfig, str(starting.folder)),
                context=ctx,
            )
            # Reading `active` launches every worker now, all at once (a spawn returns
            # in milliseconds; the imports run in the workers). Jobs are claimed only
            # for ready workers, so no job.started comes before a worker can begin it.
            # A worker recycled later starts while jobs wait in the pool's queue.
            if not pool.active:
                raise RuntimeError("the worker pool did not start")
        except BaseException:
            starting.stop()
            raise
        finally:
            starting.watch()  # removes its folder when done (at once when stopped)
        return pool

    def submit(self, spec: JobSpec, timeout_s: float, on_done: Callable[[], None]) -> Execution:
        pending = self._batching
        if pending is not None and light_spec(spec):
            member = BatchedExecution(spec, timeout_s, on_done, leader=not pending)
            pending.append(member)
            return member
        return self.submit_alone(spec, timeout_s, on_done)

    @contextmanager
    def batch(self) -> Iterator[None]:
        pending: list[BatchedExecution] = []
        self._batching = pending
        try:
            yield
        finally:
            self._batching = None
            self._send_batch(pending)

    def _send_batch(self, members: list[BatchedExecution]) -> None:
        if len(members) <= 1:
            for member in members:
                member.run_alone(self.submit_alone)
            return
        specs = tuple(m.spec for m in members)
        timeout = min(BATCH_TIMEOUT_S, *(m.timeout_s for m in members))
        try:
            future = self._pool.schedule(RUN_BATCH, args=(specs, BATCH_BUDGET_S), timeout=timeout)
        except Exception as exc:
            for member in members:
                member.lose(f"the worker pool refused the batch: {exc}")
            raise
        with self._in_flight_lock:
            for member in members:
                member.batch = future
                self._in_flight.add(member)
        future.add_done_callback(lambda f: batch_ended(members, f, self.submit_alone))
        log.debug(
            "%d light jobs to one worker: %s", len(members), ", ".join(s.job_id for s in specs)
        )

    def submit_alone(
        self, spec: JobSpec, timeout_s: float, on_done: Callable[[], None]
    ) -> PoolExecution:
        """One job as its own task."""
        future = self._pool.schedule(RUN_JOB, args=(spec,), timeout=timeout_s)
        execution = PoolExecution(future, on_done)
        with self._in_flight_lock:
            self._in_flight.add(execution)
        future.add_done_callback(lambda _f: on_done())
        if "manager" in self._fault:
            self._fault.remove("manager")
            _kill_manager_thread(self._pool)
        return execution

    def heal(self) -> None:
        """Replace the pool if it failed; PoolBroken if it cannot be replaced."""
        with self._in_flight_lock:
            self._in_flight = {e for e in self._in_flight if not e.done()}
        if self._pool.active:  # False once a manager thread died or the pool broke
            return
        log.error(
            "the worker pool failed (Unexpected error within the Pool); starting a new "
            "one, %d job(s) in flight are retried as worker_lost",
            len(self._in_flight),
        )
        old, lost = self._pool, self._in_flight
        try:
            self._pool = self._new_pool(rebuild=True)
        except Exception as exc:
            raise PoolBroken(f"the worker pool could not be started again: {exc}") from exc
        finally:
            threading.Thread(target=_stop_pool, args=(old,), daemon=True).start()
        with self._in_flight_lock:
            self._in_flight = set()
        for execution in lost:
            execution.lose("the worker pool failed and was replaced")

    def submit_part(
        self, task: PartTask, limits: WorkerLimits, timeout_s: float, on_done: Callable[[], None]
    ) -> concurrent.futures.Future[PartResult]:
        future: concurrent.futures.Future[PartResult] = self._pool.schedule(
            RUN_PART, args=(task, limits), timeout=timeout_s
        )
        future.add_done_callback(lambda _f: on_done())
        return future

    def stop(self) -> None:
        if self._starting is not None:
            self._starting.stop()
        if self._pool is not None:
            _stop_pool(self._pool)
        self._remove_fontconfig()

    def _remove_fontconfig(self) -> None:
        if self._fontconfig is not None:
            remove_private_fontconfig(self._fontconfig)


def _private_fontconfig() -> PrivateFontconfig | None:
    """The workers' font caches, this run only: never the system's (fonts.py).

    Without a writable temporary folder the workers still load their fonts before
    their memory limit, which is what keeps them from rescanning.
    """
    try:
        return make_private_fontconfig()
    except OSError as exc:
        log.warning(
            "cannot make the workers' private fontconfig folder (%s); their font caches "
            "stay the system's",
            exc,
        )
        return None


def _stop_pool(pool: Any) -> None:
    """Stop a pool's workers; for a failed pool this also ends its remaining threads."""
    try:
        pool.stop()
        pool.join(timeout=10)
    except Exception:
        log.debug("stopping a worker pool failed", exc_info=True)


def _kill_manager_thread(pool: Any) -> None:
    """Test fault: the pool manager thread's next pass raises, and the thread ends."""
    manager = pool._pool_manager

    def broken() -> None:
        raise RuntimeError(f"{POOL_FAULT_ENV}: pool manager thread killed")

    manager.update_status = broken
