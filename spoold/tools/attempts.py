"""When running attempts started, from the events log: `job.started` and `job.detected`.

A running job's folder says its job id and attempt but not when the attempt started
(the state file that would hold it is written only when a job goes back to the inbox),
so `status`, `show` and `list` look for its events, newest first, in a bounded tail of
each writer's file (spool/eventfiles.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..spool.eventfiles import current_files
from ..spool.events import JobDetected, JobStarted

# How far back from the end of the events log a running attempt's start is looked for;
# a start further back (a very long job on a very busy spool) shows as null.
EVENTS_LOOKBACK_BYTES = 16 * 1024 * 1024
_BLOCK = 256 * 1024
# Cheap filters before a line is parsed: the event names as they appear in the JSON.
_STARTED = f'"{JobStarted.NAME}"'.encode()
_DETECTED = f'"{JobDetected.NAME}"'.encode()


@dataclass
class AttemptEvents:
    started: dict[tuple[str, int], str]  # (job id, attempt) -> job.started time
    detected: dict[str, tuple[str, str | None]]  # job id -> job.detected time, route


def attempt_events(events_path: Path, wanted: set[tuple[str, int]]) -> AttemptEvents:
    """Start times of attempts (`job.started`) and, for first attempts, their jobs'
    `job.detected` (time, route): the state file that would hold them is written only
    when a job goes back to the inbox.

    Each writer's file is read backwards from its end, the most recently written first
    (the attempts asked for are running, so their events are recent), at most
    EVENTS_LOOKBACK_BYTES in all.
    """
    seen = AttemptEvents({}, {})
    first_attempts = {job_id for job_id, n in wanted if n == 1}
    for line in _recent_lines(events_path, EVENTS_LOOKBACK_BYTES):
        if _STARTED not in line and _DETECTED not in line:
            continue
        try:
            ev = json.loads(line)
            job_id, key = str(ev["job_id"]), (str(ev["job_id"]), int(ev.get("attempt") or 0))
        except (ValueError, KeyError, TypeError):
            continue
        if ev.get("event") == JobDetected.NAME and job_id in first_attempts:
            seen.detected.setdefault(job_id, (str(ev.get("ts")), ev.get("route")))
        elif ev.get("event") == JobStarted.NAME and key in wanted:
            seen.started.setdefault(key, str(ev.get("ts")))
        if len(seen.started) == len(wanted) and first_attempts <= seen.detected.keys():
            break
    return seen


def _recent_lines(log: Path, limit: int) -> Iterator[bytes]:
    """Complete lines of the log's files, each file's last first, newest files first,
    from at most `limit` bytes in all."""
    files = []
    for path in current_files(log):
        try:
            files.append((os.stat(path).st_mtime, path))
        except OSError:
            continue
    budget = [limit]
    for _, path in sorted(files, reverse=True):
        if budget[0] <= 0:
            return
        yield from _lines_backwards(path, budget)


def _lines_backwards(path: Path, budget: list[int]) -> Iterator[bytes]:
    """Complete lines of a file, last first, from at most its last `budget[0]` bytes
    (what it reads is taken off the budget)."""
    try:
        fh = path.open("rb")
    except OSError:
        return
    with fh:
        end = fh.seek(0, os.SEEK_END)
        pos, tail = end, b""
        while pos > 0 and budget[0] > 0:
            size = min(_BLOCK, pos)
            pos -= size
            budget[0] -= size
            fh.seek(pos)
            chunk = fh.read(size) + tail
            lines = chunk.split(b"\n")
            tail = lines.pop(0)  # may be cut: completed by the next block read
            yield from reversed([ln for ln in lines if ln])
        if pos == 0 and tail:
            yield tail
