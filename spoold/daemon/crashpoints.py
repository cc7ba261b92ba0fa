"""Crash-point injection for tests: SPOOLD_CRASH_AT=point[:n] kills the daemon with
SIGKILL the n-th time (default 1st) it reaches that point.

Unset (the normal case), `crash_point` is a function that returns at once. Points are
named after what has just happened or is about to, e.g. after_claim_rename,
before_manifest_write, after_publish_rename; `POINTS` lists every one.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "after_claim_rename",
    "after_worker_start",
    "before_manifest_write",
    "after_manifest_write",
    "after_publish_rename",
    "before_group_commit",
    "before_requeue_rename",
    "after_requeue_rename",
    "before_recovery_requeue",
    "after_recovery_requeue",
    "after_heartbeat",
)


def _parse(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    name, _, count = spec.partition(":")
    if name not in POINTS:
        raise ValueError(f"SPOOLD_CRASH_AT: unknown point {name!r}; known: {', '.join(POINTS)}")
    return name, int(count or 1)


_TARGET = _parse(os.environ.get("SPOOLD_CRASH_AT"))
_hits = 0


def _crash_point(name: str) -> None:
    global _hits
    assert _TARGET is not None
    if name != _TARGET[0]:
        return
    _hits += 1
    if _hits >= _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def _noop(name: str) -> None:
    return None


crash_point = _crash_point if _TARGET is not None else _noop
