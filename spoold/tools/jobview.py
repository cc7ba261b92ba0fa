"""What a job looks like to tools: one record with the same fields in every state.

`spoold status`, `show` and `list` print these records (docs/cli.md describes them).
They are read from the folders alone, never from a daemon's memory, so they are true
for every daemon sharing the spool:

    inbox/ENTRY            queued, never claimed: the entry's name and mtime; waiting
                           on its format check when a daemon says so (.spoold/waiting/)
                           or on its job.json `after` (spool/waits.py)
    inbox/JOBDIR/          queued again (retry, recovery, drain): its state file
    running/JOBDIR.aN.TOK/ running: the folder name (job id, attempt), input/ENTRY, the
                           stage file; the state file only if it ran before; the
                           attempt's start time from the events log
    done|failed/JOBDIR/    finished: manifest.json

Reading only: nothing here changes a spool.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..spool.after import HELD_STAGE, AfterKind, AfterRef, Found, JobPhase, read_after
from ..spool.clock import iso_of, job_time
from ..spool.ids import Requested, input_requested, read_requested, split_named_id
from ..spool.job import JobState, read_state
from ..spool.protocol import (
    INPUT_DIR,
    MANIFEST,
    SpoolPaths,
    job_id_of,
    parse_running_name,
)
from ..spool.waiting import WaitingEntry, read_boards
from ..spool.waits import InboxItem, Pending, SpoolIndex, evaluate
from ..worker.spec import STAGE_FILE
from .attempts import attempt_events

FINISH = AfterKind.FINISH_TO_FINISH


class Place(StrEnum):
    """Where a job's folder is: its state as the folders say it."""

    QUEUED = "queued"  # inbox/
    RUNNING = "running"  # running/
    DONE = "done"  # done/
    FAILED = "failed"  # failed/ (failed and cancelled jobs)


STATES = tuple(p.value for p in Place)


@dataclass
class JobRecord:
    """A job as `status`, `show` and `list` show it (docs/cli.md)."""

    job_id: str | None  # None: queued, not yet claimed by a daemon
    name: str  # the entry name as dropped
    state: str  # queued, running, done, failed (the folder it is in)
    status: str  # queued, running, succeeded, failed, cancelled
    attempt: int  # the current or last attempt; 0 before the first
    stage: str | None  # running jobs: what the worker is doing now
    route: str | None
    folder: str  # relative to the spool
    created_at: str | None  # when the job was first seen (UTC ISO 8601)
    started_at: str | None  # when the current or last attempt started
    finished_at: str | None
    code: str | None  # error code of a failed or cancelled job
    # Why a job does not run yet: {"reason", "since", "until", ...}; for job.json `after`
    # also "after": the unmet references with the referenced jobs' states (docs/cli.md).
    waiting: dict[str, Any] | None = None
    submitted_by: str | None = None  # job.json's submitted_by (the gateway's token name)

    def as_json(self) -> dict[str, Any]:
        # Every field is a str, int or None: a shallow copy is asdict's result, and
        # several times cheaper for `spoold list --json` over thousands of jobs.
        return dict(self.__dict__)


def read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _id_time(job_id: str | None) -> str | None:
    created = job_time(job_id) if job_id else None
    return None if created is None else iso_of(created)


def _last_started(state: JobState | None) -> str | None:
    last = state.last_attempt() if state is not None else None
    return None if last is None else last.started_at or last.claimed_at


# ------------------------------------------------------------------ queued


@dataclass(frozen=True)
class InboxView:
    """What in inbox/ is not a job: route folders and names the daemon ignores."""

    routes: frozenset[str] = frozenset()
    ignore: re.Pattern[str] | None = None


def queued_entries(paths: SpoolPaths, view: InboxView) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(key below inbox/, entry) of every job waiting in inbox/ and its route folders.

    Route folders, cancel markers, hidden names (temporaries) and ignored names
    (editor backups, desktop.ini...) are not jobs."""
    folders: list[tuple[Path, str]] = [(paths.inbox, "")]
    while folders:
        folder, prefix = folders.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            continue
        for e in entries:
            if e.name.startswith(".") or e.name.endswith(".cancel"):
                continue
            if view.ignore is not None and view.ignore.match(e.name):
                continue
            if not prefix and e.name in view.routes and e.is_dir(follow_symlinks=False):
                folders.append((Path(e.path), f"{e.name}/"))
                continue
            yield f"{prefix}{e.name}", e


def queued_record(
    paths: SpoolPaths,
    key: str,
    index: SpoolIndex | None = None,
    waits: dict[str, WaitingEntry] | None = None,
) -> JobRecord | None:
    path = paths.inbox / key
    name = key.rpartition("/")[2]
    is_dir = os.path.isdir(path)
    job_id = job_id_of(name) if is_dir else None
    state = read_state(path) if job_id else None
    if job_id is not None and state is None and not os.path.isdir(path / INPUT_DIR):
        job_id = None  # a person's folder that happens to look like a job folder
    asked = Requested()
    if is_dir and job_id is None:
        asked = read_requested(path)
    elif not is_dir:  # report.ID.md: the job report.md, its id chosen (spool/ids.py)
        name, chosen = split_named_id(name)
        asked = Requested(job_id=chosen)
    try:
        st = os.lstat(path)
    except OSError:
        return None
    mtime = st.st_mtime
    if state is not None:
        last = state.last_attempt()
        return JobRecord(
            job_id=state.job_id,
            name=state.name,
            state=Place.QUEUED,
            status="queued",
            attempt=last.number if last else 0,
            stage=None,
            route=state.route,
            folder=f"inbox/{key}",
            created_at=state.arrived_at,
            started_at=_last_started(state),
            finished_at=None,
            code=last.error.code if last is not None and last.error else None,
            submitted_by=state.submitted_by,
        )
    entry_name = _input_name(path) if job_id else name
    record = unclaimed_record(
        key,
        entry_name or name,
        job_id or asked.job_id,  # a chosen id (job.json `id`) before the claim
        _id_time(job_id) or iso_of(mtime),
        asked.submitted_by,
    )
    found = (waiting_entries(paths) if waits is None else waits).get(key)
    if found is not None and found.ino == st.st_ino:
        record.waiting = found.waiting()  # its format check fails (a daemon says)
        return record
    refs = read_after(path) if job_id is None and os.path.isdir(path) else ()
    if refs:
        me = Found(record.folder, record.job_id, record.name, "queued", JobPhase.QUEUED, False)
        record.waiting = waiting_for(index or spool_index(paths), me, refs, path, False)
    return record


def unclaimed_record(
    key: str, name: str, job_id: str | None, created_at: str, submitted_by: str | None
) -> JobRecord:
    """The record of an entry in inbox/ (key below it) that no daemon has claimed yet."""
    route = key.rpartition("/")[0]
    return JobRecord(
        job_id=job_id,
        name=name,
        state=Place.QUEUED,
        status="queued",
        attempt=0,
        stage=None,
        route=route or None,
        folder=f"inbox/{key}",
        created_at=created_at,
        started_at=None,
        finished_at=None,
        code=None,
        submitted_by=submitted_by,
    )


def waiting_entries(paths: SpoolPaths) -> dict[str, WaitingEntry]:
    """Inbox entries the daemons wait on (a format check fails), by key below inbox/."""
    return read_boards(paths.waiting, paths.daemons)


def waiting_records(paths: SpoolPaths, limit: int) -> list[JobRecord]:
    """Up to `limit` records of entries waiting on their format check, the first to be
    failed first (`status`'s waiting_jobs)."""
    waits = waiting_entries(paths)
    if not waits:
        return []
    keys = sorted(waits, key=lambda k: (waits[k].until or "~", k))[:limit]
    records = [queued_record(paths, key, None, waits) for key in keys]
    return [r for r in records if r is not None and r.waiting is not None]


def spool_index(paths: SpoolPaths, view: InboxView | None = None) -> SpoolIndex:
    """The spool's jobs by id and name, for `after` (read from a listing of inbox/)."""
    index = SpoolIndex(paths, lambda: _inbox_items(paths, view or InboxView()))
    index.refresh()
    return index


def queued_records(paths: SpoolPaths, view: InboxView) -> list[JobRecord]:
    index, waits = spool_index(paths, view), waiting_entries(paths)
    found = (queued_record(paths, key, index, waits) for key, _ in queued_entries(paths, view))
    return [r for r in found if r is not None]


def queue_counts(paths: SpoolPaths, view: InboxView, running: list[JobRecord]) -> dict[str, int]:
    """`status`'s "queued" (jobs in inbox/ that may be claimed now) and "waiting" (those
    failing their format check, those whose job.json `after` does not hold yet, and
    results held in running/): a listing and the daemons' waiting files, a job.json read
    only for folders that have one."""
    index: SpoolIndex | None = None
    waits = waiting_entries(paths)
    queued = waiting = 0
    for key, entry in queued_entries(paths, view):
        queued += 1
        found = waits.get(key)
        # lstat, not the listing's inode: some FUSE mounts number listings apart.
        if found is not None and found.ino == _inode(entry.path):
            waiting += 1
            continue
        if not entry.is_dir(follow_symlinks=False) or job_id_of(entry.name) is not None:
            continue
        refs = read_after(Path(entry.path))
        if refs:
            index = index or spool_index(paths, view)
            me = Found(f"inbox/{key}", None, entry.name, "queued", JobPhase.QUEUED, False)
            waiting += not evaluate(index, me, refs).met
    held = sum(1 for r in running if r.waiting is not None)
    return {"queued": queued - waiting, "waiting": waiting + held}


def _inode(path: str) -> int | None:
    try:
        return os.lstat(path).st_ino
    except OSError:
        return None


def _inbox_items(paths: SpoolPaths, view: InboxView) -> Iterator[InboxItem]:
    for key, entry in queued_entries(paths, view):
        leaf = key.rpartition("/")[2]
        if not entry.is_dir(follow_symlinks=False):
            yield InboxItem(key, split_named_id(leaf)[0], False)
            continue
        requeued = job_id_of(leaf) is not None
        yield InboxItem(key, leaf, requeued and os.path.isdir(os.path.join(entry.path, INPUT_DIR)))


def waiting_for(
    index: SpoolIndex, me: Found, refs: tuple[AfterRef, ...], since: Path, finishing: bool
) -> dict[str, Any] | None:
    """The record's `waiting` for job.json `after`: None once its conditions hold."""
    ev = evaluate(index, me, refs, finishing=finishing)
    if ev.met:
        return None
    unmet = [p.as_json() for p in ev.pending]
    unmet += [Pending(ref, found).as_json() for ref, found in ev.failed]
    try:
        changed = os.lstat(since).st_ctime
    except OSError:
        changed = None
    return {
        "reason": "after",
        "since": iso_of(changed) if changed is not None else None,
        "until": None,
        "after": unmet,
    }


def _input_name(folder: Path) -> str | None:
    """The dropped entry's name: the one visible name in the job folder's input/."""
    try:
        names = [n for n in os.listdir(folder / INPUT_DIR) if not n.startswith(".")]
    except OSError:
        return None
    return names[0] if len(names) == 1 else None


# ------------------------------------------------------------------ running


def running_records(paths: SpoolPaths, names: list[str] | None = None) -> list[JobRecord]:
    """Records of jobs in running/ (all of them, or the folders named)."""
    if names is None:
        try:
            names = sorted(os.listdir(paths.running))
        except OSError:
            return []
    partial: list[JobRecord] = []
    for name in names:
        parsed = parse_running_name(name)
        if parsed is None:
            continue
        folder = paths.running / name
        state = read_state(folder)
        entry = (state.name if state else _input_name(folder)) or parsed.jobdir
        by = state.submitted_by if state else input_requested(folder, entry).submitted_by
        partial.append(
            JobRecord(
                job_id=parsed.job_id,
                name=entry,
                state=Place.RUNNING,
                status="running",
                attempt=parsed.attempt,
                stage=read_text(folder / STAGE_FILE) or "starting",
                route=state.route if state else None,
                folder=f"running/{name}",
                created_at=state.arrived_at if state else _id_time(parsed.job_id),
                started_at=None,
                finished_at=None,
                code=None,
                submitted_by=by,
            )
        )
    for rec in partial:
        if rec.stage == HELD_STAGE:
            _held_waiting(paths, rec)
    wanted = {(r.job_id or "", r.attempt) for r in partial}
    seen = attempt_events(paths.events, wanted) if wanted else None
    for rec in partial:
        key = (rec.job_id or "", rec.attempt)
        if seen is None:
            continue
        rec.started_at = seen.started.get(key)
        if key[0] in seen.detected:
            detected_at, route = seen.detected[key[0]]
            rec.route = rec.route or route
            if rec.attempt == 1:  # no state file yet: the claim's event is the best time
                rec.created_at = detected_at
    return partial


def _held_waiting(paths: SpoolPaths, rec: JobRecord) -> None:
    """A running job whose result is held until other jobs finish (finish_to_finish)."""
    folder = paths.root / rec.folder
    refs = tuple(r for r in read_after(folder / INPUT_DIR / rec.name) if r.kind is FINISH)
    if refs:
        me = Found(rec.folder, rec.job_id, rec.name, "running", JobPhase.STARTED, True)
        rec.waiting = waiting_for(spool_index(paths), me, refs, folder / STAGE_FILE, True)


# ------------------------------------------------------------------ finished


def finished_record(paths: SpoolPaths, state: str, jobdir: str) -> JobRecord | None:
    # Plain strings, not Path objects: `spoold list` calls this once per finished job.
    try:
        with open(f"{paths.root}/{state}/{jobdir}/{MANIFEST}", "rb") as fh:
            m: dict[str, Any] = json.loads(fh.read())
    except (OSError, ValueError):
        return None  # still being written by hand, or not a job folder
    return record_of_manifest(m, state, jobdir)


def record_of_manifest(m: Any, state: str, jobdir: str) -> JobRecord | None:
    """The record of a finished job from its manifest, already read."""
    if not isinstance(m, dict):
        return None
    attempts = m.get("attempts") or [{}]
    last = attempts[-1] if isinstance(attempts[-1], dict) else {}
    return JobRecord(
        job_id=m.get("job_id") or job_id_of(jobdir),
        name=str(m.get("name") or jobdir),
        state=state,
        status=str(m.get("status") or ("succeeded" if state == "done" else "failed")),
        attempt=int(last.get("number") or 0),
        stage=None,
        route=m.get("route"),
        folder=f"{state}/{jobdir}",
        created_at=m.get("created_at") or _id_time(job_id_of(jobdir)),
        started_at=last.get("started_at") or last.get("claimed_at"),
        finished_at=m.get("finished_at"),
        code=(m.get("error") or {}).get("code"),
        submitted_by=m.get("submitted_by"),
    )


def finished_names(folder: Path) -> list[str]:
    try:
        return [n for n in os.listdir(folder) if not n.startswith(".")]
    except OSError:
        return []
