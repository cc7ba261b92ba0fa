"""How an execution's end becomes a job error: pure functions the lifecycle uses."""

from __future__ import annotations

import random
import signal

from ..errors import ErrorCode, ErrorInfo, JobError
from ..spool.job import CancelMode
from .executor import Cancelled, Completed, Outcome, TimedOut, WorkerDied


def error_of(
    outcome: Outcome, cancel_mode: CancelMode | None, timeout_s: float, timeout_retryable: bool
) -> ErrorInfo | None:
    """The error an execution ended with (None: it succeeded)."""
    if isinstance(outcome, Completed):
        return outcome.result.error
    if isinstance(outcome, Cancelled):
        mode = cancel_mode or CancelMode.HARD
        return JobError(ErrorCode.CANCELLED, f"cancelled on request ({mode})").info()
    if isinstance(outcome, TimedOut):
        return JobError(
            ErrorCode.TIMEOUT,
            f"the conversion took longer than {timeout_s:g} s and was stopped",
            retryable=timeout_retryable,
        ).info()
    return worker_death(outcome).info()


def restart_cause(outcome: Outcome) -> str | None:
    """Why the pool must replace the worker that ran this execution (None: it lives on)."""
    if isinstance(outcome, TimedOut):
        return "timeout"
    if isinstance(outcome, WorkerDied):
        return "died"
    if isinstance(outcome, Cancelled):
        return "cancelled"  # pebble stops a running task by terminating its process
    return None


def worker_death(died: WorkerDied) -> JobError:
    code = died.exitcode
    if code in (-signal.SIGXCPU, -signal.SIGXFSZ):
        what = "CPU time" if code == -signal.SIGXCPU else "output file size"
        return JobError(ErrorCode.RESOURCE_LIMIT, f"the conversion exceeded its {what} limit")
    return JobError(
        ErrorCode.WORKER_LOST,
        f"the worker process died ({died.error}: exit code {code})",
    )


def backoff_s(failures: int, initial_s: float, max_s: float, jitter_s: float = 1.0) -> float:
    """Exponential backoff with jitter before retry number `failures` (1, 2, ...)."""
    exp = initial_s * 2.0 ** max(0, failures - 1)
    return min(max_s, exp + random.uniform(0, jitter_s))
