"""A pool worker's start (`init_pool_worker`: start slots, the ready file), and retiring
a worker that ran out of memory or holds too much of it, before it takes another job.

A conversion stopped by the address-space limit (RLIMIT_AS: MemoryError) can leave the
worker's C libraries half-initialised; the next job on that worker then died with
SIGSEGV. So a worker whose job hit a resource limit exits once its result is sent,
before fetching another task. So does a worker left holding more than
`WorkerLimits.recycle_rss_mb` resident after a job (a big layout's heap that glibc does
not give back, or a slow leak): memory stays flat without replacing workers every few
hundred tiny jobs, each replacement about 1 s of CPU. It exits with status 0, as a
worker does after max_tasks, so pebble replaces it quietly and no job is charged for it.

This runs inside the workers (pebble's initializer and task function). The exit is
hooked into pebble's own task fetch (`pebble.pool.process.fetch_task`, patched in the
worker process only): the one point between sending a result and taking the next task.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ErrorCode
from .spec import START_SLOTS, JobSpec, PrivateFontconfig, WorkerLimits, WorkerResult

_retire = False  # set in a worker whose last job hit a resource limit
_recycle_rss_mb = float("inf")  # WorkerLimits.recycle_rss_mb, set by init_pool_worker
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def init_pool_worker(
    limits: WorkerLimits, fontconfig: PrivateFontconfig | None = None, ready_dir: str | None = None
) -> None:
    """pebble initializer: the worker's fonts and limits, then the retire hook.

    The imports (about 1 s of CPU) run while the worker holds one of the pool's start
    slots (`start_slot`). Last, a file named after the worker's pid in `ready_dir`: the
    pool counts them, and the daemon gives a worker jobs once its file is there.
    """
    global _recycle_rss_mb
    with start_slot(ready_dir):
        # Imported here, in the slot: the converters' modules are most of a start.
        from .run import init_worker

        init_worker(limits, fontconfig)
    _recycle_rss_mb = limits.recycle_rss_mb
    import pebble.pool.process as pebble_process

    fetch_task = pebble_process.fetch_task

    def fetch_task_unless_retiring(channel: Any) -> Any:
        if _retire:
            sys.exit(0)  # exit status 0: pebble starts a fresh worker, charges no task
        return fetch_task(channel)

    pebble_process.fetch_task = fetch_task_unless_retiring  # type: ignore[assignment]
    if ready_dir is not None:
        try:
            (Path(ready_dir) / str(os.getpid())).touch()
        except OSError:
            pass  # the pool stopped waiting (its folder is gone): nothing to tell


START_SLOT_WAIT_S = 60.0  # then start anyway: a stuck slot must not stop the pool


@contextmanager
def start_slot(ready_dir: str | None) -> Iterator[None]:
    """Hold one of the pool's start slots (an flock on a file in READY_DIR/slots/) while
    the worker starts: at most as many workers import at once as there are slots (CPUs),
    so the first ones are ready soonest. The kernel frees a dead worker's slot."""
    folder = Path(ready_dir or ".") / START_SLOTS
    try:
        slots = sorted(os.listdir(folder)) if ready_dir is not None else []
    except OSError:
        slots = []  # the pool stopped waiting (its folder is gone)
    held: int | None = None
    deadline = time.monotonic() + START_SLOT_WAIT_S
    while slots and held is None and time.monotonic() < deadline:
        for name in slots:
            held = _lock_slot(folder / name)
            if held is not None:
                break
        else:
            time.sleep(0.02)  # a starting worker's polls, not the job path
    try:
        yield
    finally:
        if held is not None:
            os.close(held)  # releases the flock


def _lock_slot(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def run_job_then_maybe_retire(spec: JobSpec) -> WorkerResult:
    """run_job; a job stopped by a resource limit retires its worker afterwards."""
    global _retire
    from .run import run_job  # loaded by init_pool_worker already: a dict look-up

    try:
        result = run_job(spec)
    except MemoryError:
        _retire = True
        raise
    hit_limit = result.error is not None and result.error.code is ErrorCode.RESOURCE_LIMIT
    if hit_limit or resident_mb() > _recycle_rss_mb:
        _retire = True
    return result


def run_batch_then_maybe_retire(
    specs: tuple[JobSpec, ...], budget_s: float
) -> list[WorkerResult | None]:
    """Several light jobs in one round trip (daemon/batch.py), one after another.

    No job begins once `budget_s` has passed since the first began, or once a job has
    set the worker to retire: those come back as None, not started, and the daemon
    gives each its own task. An exception (MemoryError) fails the whole batch, and the
    daemon runs every job of it again alone, so that it lands on the job that raised.
    """
    deadline = time.monotonic() + budget_s
    results: list[WorkerResult | None] = []
    for spec in specs:
        if results and (_retire or time.monotonic() > deadline):
            results.append(None)
            continue
        results.append(run_job_then_maybe_retire(spec))
    return results


def resident_mb() -> float:
    """This process's resident memory now (ru_maxrss is the peak, which never falls)."""
    try:
        with open("/proc/self/statm", "rb") as statm:  # one small read: cheap per job
            return int(statm.read().split()[1]) * _PAGE_MB
    except (OSError, ValueError, IndexError):
        return 0.0  # no /proc: the max_tasks backstop still recycles
