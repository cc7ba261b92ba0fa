"""Retiring a worker that ran out of memory, before it takes another job.

A conversion stopped by the address-space limit (RLIMIT_AS: MemoryError) can leave the
worker's C libraries half-initialised; the next job on that worker then died with
SIGSEGV. So a worker whose job hit a resource limit exits once its result is sent,
before fetching another task. It exits with status 0, as a worker does after
max_tasks, so pebble replaces it quietly and no job is charged for it.

This runs inside the workers (pebble's initializer and task function). The exit is
hooked into pebble's own task fetch (`pebble.pool.process.fetch_task`, patched in the
worker process only): the one point between sending a result and taking the next task.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..errors import ErrorCode
from .run import init_worker, run_job
from .spec import JobSpec, PrivateFontconfig, WorkerLimits, WorkerResult

_retire = False  # set in a worker whose last job hit a resource limit


def init_pool_worker(
    limits: WorkerLimits, fontconfig: PrivateFontconfig | None = None, ready_dir: str | None = None
) -> None:
    """pebble initializer: the worker's fonts and limits, then the retire hook.

    Last, a file named after the worker's pid in `ready_dir`: the pool waits for one per
    worker before the daemon says it is ready (a spawned worker takes about 1 s).
    """
    init_worker(limits, fontconfig)
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


def run_job_then_maybe_retire(spec: JobSpec) -> WorkerResult:
    """run_job; a job stopped by a resource limit retires its worker afterwards."""
    global _retire
    try:
        result = run_job(spec)
    except MemoryError:
        _retire = True
        raise
    if result.error is not None and result.error.code is ErrorCode.RESOURCE_LIMIT:
        _retire = True
    return result
