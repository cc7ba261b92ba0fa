"""Putting a job into a spool from outside a daemon: room in the queue, a staged entry,
a name that is free, one rename into inbox/ (docs/protocol.md, "Submitting").

`spoold submit` (api.submit) stages a copy of a file; the HTTP gateway streams an upload
into its own staging folder. Both end here: `enqueue` checks the queue and the disk and
renames the finished entry into inbox/ under a free name, so a job is either wholly in
the inbox or not there at all.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import SpooldError
from ..spool.entries import JOB_FILE
from ..spool.protocol import SpoolPaths, free_disk_mb, rename_noreplace
from .jobview import InboxView, queued_entries


class TryLater(SpooldError):
    """The spool cannot take more now (queue full or disk short): exit 75, HTTP 429/507."""

    def __init__(self, message: str, *, disk: bool = False) -> None:
        super().__init__(message)
        self.disk = disk  # the disk is short (not the queue full)


def queued_count(paths: SpoolPaths, view: InboxView) -> int:
    """Jobs waiting in inbox/ and its route folders (not the route folders themselves,
    cancel markers, hidden temporaries or ignored names)."""
    return sum(1 for _ in queued_entries(paths, view))


def entries_bound(paths: SpoolPaths, view: InboxView) -> int:
    """At least the number of queued jobs, from bare listings (no entry looked at): the
    names in inbox/ and in each route folder."""
    total = 0
    for folder in (paths.inbox, *(paths.inbox / r for r in view.routes)):
        try:
            total += len(os.listdir(folder))
        except OSError:
            continue
    return total


# The queue as this process last counted it, per spool: (jobs, monotonic time).
_COUNTED: dict[Path, tuple[int, float]] = {}
HINT_S = 1.0


def check_room(
    paths: SpoolPaths,
    view: InboxView,
    max_queued: int,
    min_free_mb: float,
    *,
    hint: bool = False,
) -> None:
    """TryLater when the queue is full or the disk short.

    Jobs are counted one by one (cancel markers, temporaries and ignored names left
    out) only when the bare listings come near `max_queued`: submitting stays cheap
    with thousands of jobs waiting. With `hint` (the gateway's check before it reads
    a body), a count this process made within HINT_S, plus its renames since, stands
    in for the listing while it is under `max_queued`: a queue filled meanwhile by
    others is then found by the exact check just before the rename (`enqueue`)."""
    last = _COUNTED.get(paths.root) if hint else None
    if last is not None and last[0] < max_queued and time.monotonic() - last[1] < HINT_S:
        queued = last[0]
    else:
        queued = entries_bound(paths, view)
        if queued >= max_queued:
            queued = queued_count(paths, view)
        _COUNTED[paths.root] = (queued, time.monotonic())
    if queued >= max_queued:
        raise TryLater(f"the inbox holds {queued} entries (max_queued is {max_queued})")
    free = free_disk_mb(paths.root)
    if free < min_free_mb:
        raise TryLater(f"free disk {free:.0f} MB is below min_free_mb {min_free_mb}", disk=True)


def unique_name(folder: Path, name: str) -> str:
    if not os.path.lexists(folder / name):
        return name
    stem, dot, ext = name.partition(".")
    for i in range(1, 10000):
        candidate = f"{stem}-{i}{dot}{ext}"
        if not os.path.lexists(folder / candidate):
            return candidate
    raise SpooldError(f"too many entries named like {name} in {folder}")


# One enqueue at a time per process: the queue count and the rename then agree, so a
# full queue is never overshot by this process (other processes: by their in-flight).
_ENQUEUE_LOCK = threading.Lock()


def enqueue(
    paths: SpoolPaths,
    staged: Path,
    name: str,
    *,
    route: str | None = None,
    room: tuple[InboxView, int, float] | None = None,
) -> str:
    """Rename the staged entry into inbox/ (or inbox/ROUTE/) under `name` or, when that
    is taken, a free variant (`report-1.md`); return its key below inbox/.

    `room` (view, max_queued, min_free_mb) checks the queue first (TryLater).
    """
    dest_folder = paths.inbox / route if route else paths.inbox
    if route and not dest_folder.is_dir():
        raise SpooldError(f"route {route!r} has no folder {dest_folder}")
    with _ENQUEUE_LOCK:
        if room is not None:
            check_room(paths, *room)
        for _ in range(100):
            final = unique_name(dest_folder, name)
            try:
                rename_noreplace(staged, dest_folder / final)
            except FileExistsError:
                continue  # another tool took the name in the same instant
            counted = _COUNTED.get(paths.root)
            if counted is not None:  # one more queued since the count
                _COUNTED[paths.root] = (counted[0] + 1, counted[1])
            return f"{route}/{final}" if route else final
    raise SpooldError(f"no free name like {name} in {dest_folder}")


def stage_job_folder(
    entry: Path,
    document: Path,
    job_options: dict[str, Any],
    resources: Path | None,
    reference_doc: Path | None,
) -> None:
    """A job folder named like the document: the document, job.json, resources."""
    entry.mkdir()
    shutil.copyfile(document, entry / document.name)
    if job_options:
        job_options.setdefault("main", document.name)
        (entry / JOB_FILE).write_text(json.dumps(job_options, indent=2))
    if resources is not None:
        if resources.is_dir():
            shutil.copytree(resources, entry / "resources", symlinks=True)
        else:
            shutil.copyfile(resources, entry / "resources.zip")
    if reference_doc is not None:
        shutil.copyfile(reference_doc, entry / "reference.docx")
