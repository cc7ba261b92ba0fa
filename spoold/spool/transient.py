"""Bounded retries of transient filesystem errors (ESTALE, EBUSY, EIO, EAGAIN).

Network filesystems fail calls that succeed a moment later: NFS returns ESTALE when a
file another client replaced is opened through a cached handle, EIO or EAGAIN while a
server fails over; SMB returns EBUSY for a file another client holds open. Such an
error must neither fail a job nor break the daemon's loop, but a filesystem that stays
broken must not be retried forever either: a few attempts with a short, jittered
backoff (tenacity), one log line, then `TransientFsError`, which is still an OSError
with the original errno, so existing handlers treat it as the I/O error it is.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import tenacity

log = logging.getLogger(__name__)

TRANSIENT_ERRNOS = frozenset({errno.ESTALE, errno.EBUSY, errno.EIO, errno.EAGAIN})
ATTEMPTS = 4
INITIAL_WAIT_S = 0.05
MAX_WAIT_S = 0.5

P = ParamSpec("P")
R = TypeVar("R")


class TransientFsError(OSError):
    """A transient filesystem error that did not go away within the retry budget."""


def is_transient(exc: BaseException) -> bool:
    return (
        isinstance(exc, OSError)
        and not isinstance(exc, TransientFsError)
        and exc.errno in TRANSIENT_ERRNOS
    )


def call_with_retry(
    fn: Callable[P, R],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """Call `fn`, retrying transient filesystem errors with the default policy."""
    return retrying(fn)(*args, **kwargs)


def retrying(
    fn: Callable[P, R],
    *,
    attempts: int = ATTEMPTS,
    initial_s: float = INITIAL_WAIT_S,
    max_s: float = MAX_WAIT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> Callable[P, R]:
    """`fn` wrapped so that ESTALE, EBUSY, EIO and EAGAIN are retried, `attempts` in all.

    Any other exception passes through at once. When the budget is spent the last
    error is raised again as TransientFsError naming the call and the attempts made.
    """
    what = getattr(fn, "__qualname__", repr(fn))

    def log_first_retry(state: tenacity.RetryCallState) -> None:
        if state.attempt_number == 1 and state.outcome is not None:
            log.warning(
                "%s: %s; retrying (up to %d attempts)", what, state.outcome.exception(), attempts
            )

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        retryer = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_exponential(multiplier=initial_s, max=max_s)
            + tenacity.wait_random(0, initial_s),
            before_sleep=log_first_retry,
            sleep=sleep,
            reraise=True,
        )
        try:
            return retryer(fn, *args, **kwargs)
        except OSError as exc:
            if not is_transient(exc):
                raise
            raise TransientFsError(
                exc.errno,
                f"{what}: {exc.strerror or exc} (still failing after {attempts} attempts)",
                exc.filename,
            ) from exc

    return wrapper


def transient_retry(
    *, attempts: int = ATTEMPTS, initial_s: float = INITIAL_WAIT_S, max_s: float = MAX_WAIT_S
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator form of `retrying`: `@transient_retry()` above a filesystem call."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        return retrying(fn, attempts=attempts, initial_s=initial_s, max_s=max_s)

    return decorate
