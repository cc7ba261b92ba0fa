"""The Python API for tools: submit, wait, status, show, cancel, retry, list.

Everything here goes through the folder protocol, so a tool using it behaves exactly
like a person dropping files: stage in tmp/, rename into inbox/, read manifests.
The CLI is a thin layer over these functions.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, SpooldError
from .settings import DEFAULT_IGNORE, load_spool_settings, read_toml
from .share import retention
from .share.retention import PurgeResult
from .spool.clock import job_time, parse_iso, spool_now, wall_time
from .spool.entries import compile_ignore
from .spool.eventfiles import EventsCursor, follow
from .spool.events import JobCancelled, JobDetected, JobFailed, JobSucceeded
from .spool.ids import is_job_id
from .spool.job import read_state
from .spool.leases import heartbeat_ages
from .spool.protocol import (
    MANIFEST,
    STATE_FILE,
    SpoolPaths,
    atomic_write,
    free_disk_mb,
    init_spool,
    job_id_of,
    open_spool,
    rename_noreplace,
)
from .tools import lookup
from .tools.jobview import (
    InboxView,
    JobRecord,
    Place,
    finished_names,
    finished_record,
    queue_counts,
    queued_records,
    running_records,
    waiting_records,
)
from .tools.lookup import JobLocation
from .tools.staging import TryLater, check_room, enqueue, queued_count, stage_job_folder

__all__ = [
    "JobNotFound",
    "Submission",
    "TryLater",
    "cancel",
    "find_job",
    "init",
    "list_jobs",
    "queued_count",
    "retry",
    "show",
    "status",
    "submit",
    "wait",
]


ENDED_NAMES = (JobSucceeded.NAME, JobFailed.NAME, JobCancelled.NAME)


class JobNotFound(SpooldError):
    pass


def init(root: Path) -> SpoolPaths:
    return init_spool(root)


@dataclass
class Submission:
    spool: Path
    name: str  # the entry name in inbox/ (or ROUTE/NAME)
    ino: int
    events_cursor: EventsCursor  # the events log's end before the entry was dropped


def inbox_view(paths: SpoolPaths) -> InboxView:
    """The spool's route folders and ignored names, as the daemon sees them; from the
    raw file when the settings are invalid (listing jobs must not depend on every other
    key being right)."""
    try:
        settings = load_spool_settings(paths.root)
    except ConfigError:
        try:
            raw = read_toml(paths.settings_file).get("routes")
        except ConfigError:
            raw = None
        routes = frozenset(raw) if isinstance(raw, dict) else frozenset()
        return InboxView(routes, compile_ignore(DEFAULT_IGNORE))
    return InboxView(frozenset(settings.routes), compile_ignore(settings.ignore_patterns()))


def submit(
    spool: Path,
    document: Path,
    *,
    targets: list[str] | None = None,
    priority: int | None = None,
    resources: Path | None = None,
    reference_doc: Path | None = None,
    route: str | None = None,
    options: dict[str, Any] | None = None,
) -> Submission:
    """Stage a copy in tmp/, then rename it into inbox/ (picked up at once).

    With options, resources or a reference document the entry is a job folder named
    like the document (`report.md/` holding report.md and job.json), so the job keeps
    the name people know it by: `spoold cancel SPOOL report.md` finds it.
    """
    paths = open_spool(spool)
    settings = load_spool_settings(spool)
    view = InboxView(frozenset(settings.routes), compile_ignore(settings.ignore_patterns()))
    check_room(paths, view, settings.max_queued, settings.min_free_mb)
    if not document.is_file():
        raise SpooldError(f"{document} is not a file")
    job_options: dict[str, Any] = dict(options or {})
    if targets:
        job_options["targets"] = targets
    if priority is not None:
        job_options["priority"] = priority
    staging = paths.tmp / f".submit-{os.getpid()}-{time.monotonic_ns()}"
    staging.mkdir()
    try:
        entry = staging / document.name
        if job_options or resources or reference_doc:
            stage_job_folder(entry, document, job_options, resources, reference_doc)
        else:
            shutil.copyfile(document, entry)
        ino = os.lstat(entry).st_ino
        cursor = EventsCursor.at_end(paths.events)  # `wait` reads what follows
        room = (view, settings.max_queued, settings.min_free_mb)
        key = enqueue(paths, entry, document.name, route=route, room=room)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Submission(spool=spool, name=key, ino=ino, events_cursor=cursor)


def wait(sub: Submission, timeout: float | None = None, poll_s: float = 0.05) -> dict[str, Any]:
    """Wait until the submitted entry's job is published; return its manifest."""
    deadline = None if timeout is None else time.monotonic() + timeout
    job_id: str | None = None
    name = sub.name.rpartition("/")[2]
    log = SpoolPaths(sub.spool).events
    # Another daemon's file may show the job's end before its detection is seen.
    ended: dict[str, dict[str, Any]] = {}
    for ev in follow(log, poll_s, cursor=sub.events_cursor, deadline=deadline):
        if ev.get("event") in ENDED_NAMES:
            ended[str(ev.get("job_id"))] = ev
        if job_id is None and ev.get("event") == JobDetected.NAME and ev.get("ino") == sub.ino:
            job_id = ev["job_id"] if ev.get("name") == name else None
        if job_id is not None and job_id in ended:
            ev = ended[job_id]
            manifest: dict[str, Any] = json.loads((sub.spool / ev["path"] / MANIFEST).read_text())
            manifest["_path"] = str(sub.spool / ev["path"])
            return manifest
    raise TimeoutError(f"{sub.name} was not finished within {timeout:g} s")


def find_job(spool: Path, ref: str) -> JobLocation:
    """Find a job by id, job folder name or the name it was dropped with (newest wins).

    A job id is looked for in a few stats first (a file registration names the folder
    of an id that chose itself, spool/ids.py); anything else by a scan of every folder's
    names."""
    paths = open_spool(spool)
    loc = lookup.locate(paths, ref) if is_job_id(ref) else None
    loc = loc or lookup.scan(paths, inbox_view(paths), ref)
    if loc is None:
        raise JobNotFound(f"no job {ref!r} in {spool}")
    return loc


def locate(
    spool: Path, job_id: str, *, jobdir: str | None = None, key: str | None = None
) -> JobLocation | None:
    """A job by id without listing done/ or failed/ (tools/lookup.py): `jobdir` is its
    folder's name (STEM.ID) when known, `key` its inbox key while unclaimed."""
    return lookup.locate(SpoolPaths(spool), job_id, jobdir=jobdir, key=key)


def show(spool: Path, ref: str) -> dict[str, Any]:
    """The job's record; for a finished job its manifest too, for a job that ran before
    its attempts so far (docs/cli.md)."""
    return lookup.show_at(find_job(spool, ref))


def status(spool: Path) -> dict[str, Any]:
    paths = open_spool(spool)
    view = inbox_view(paths)
    daemons = []
    # Ages on the spool's clock: this host's may be minutes off the file server's.
    for info, age in heartbeat_ages(paths.daemons, spool_now(paths.clock_probe)).items():
        try:
            data = json.loads(info.read_text())
        except (OSError, ValueError):
            continue
        data["heartbeat_age_s"] = round(age, 1)
        daemons.append(data)
    failed = finished_names(paths.failed)
    # Newest first by the time in the job id: only these five manifests are read.
    newest = sorted(failed, key=lambda n: job_id_of(n) or "", reverse=True)[:5]
    recent = [finished_record(paths, "failed", n) for n in newest]
    running = running_records(paths)
    return {
        "spool": str(spool),
        **queue_counts(paths, view, running),  # queued; waiting (format check, `after`)
        "running": [r.as_json() for r in running],
        "done": len(finished_names(paths.done)),
        "failed": len(failed),
        "free_disk_mb": round(free_disk_mb(spool)),
        "daemons": daemons,
        "recent_failures": [r.as_json() for r in recent if r is not None],
        "waiting_jobs": [r.as_json() for r in waiting_records(paths, limit=20)],
    }


def cancel(spool: Path, ref: str, hard: bool = False) -> Path:
    """Write REF.cancel into inbox/ (staged in tmp/ so it is complete when seen)."""
    paths = open_spool(spool)
    if "/" in ref or ref.startswith("."):
        raise SpooldError(f"{ref!r} is not a job id or entry name")
    tmp = paths.tmp / f".{ref}.cancel.{os.getpid()}"
    atomic_write(tmp, b"hard\n" if hard else b"graceful\n")
    dest = paths.inbox / f"{ref}.cancel"
    os.replace(tmp, dest)
    return dest


def retry(spool: Path, ref: str | JobLocation) -> str:
    """Requeue a failed or cancelled job as a new attempt; its history stays."""
    loc = find_job(spool, ref) if isinstance(ref, str) else ref
    name = ref if isinstance(ref, str) else loc.job_id
    if loc.state is not Place.FAILED:
        raise SpooldError(
            f"job {name} is {loc.state}; only failed or cancelled jobs can be retried"
        )
    st = lookup.state_from_manifest(loc.path) or read_state(loc.path)
    if st is None:
        raise SpooldError(f"job {name} has no readable manifest; it cannot be retried")
    st.counted_since = max((a.number for a in st.attempts), default=0)
    st.next_attempt_at = None
    paths = SpoolPaths(spool)
    atomic_write(loc.path / STATE_FILE, json.dumps(st.to_json()).encode())
    for leftover in ("ERROR.txt", MANIFEST):
        try:
            os.unlink(loc.path / leftover)
        except FileNotFoundError:
            pass
    rename_noreplace(loc.path, paths.inbox / st.jobdir)
    return st.job_id


LIST_STATES = tuple(p.value for p in Place)


def list_jobs(
    spool: Path,
    states: tuple[str, ...] = ("done", "failed"),
    pattern: str | None = None,
    code: str | None = None,
    max_age_s: float | None = None,
) -> list[dict[str, Any]]:
    """Job records in the given states, newest first (by created_at).

    Filters: `pattern` is a glob on the name the job was dropped with, `code` an error
    code, `max_age_s` the age since the job was first seen. A finished job's folder name
    carries its job id, and so its time: old folders are skipped without reading them.
    """
    paths = open_spool(spool)
    now = wall_time()
    records: list[JobRecord] = []
    if "running" in states:
        records += running_records(paths)
    if "queued" in states:
        view = inbox_view(paths)
        records += queued_records(paths, view)
    for state in ("done", "failed"):
        if state not in states:
            continue
        for name in finished_names(paths.root / state):
            # The job id is made at claim, a moment after the job was first seen.
            if max_age_s is not None and _older_than(name, now, max_age_s + 60):
                continue
            rec = finished_record(paths, state, name)
            if rec is not None:
                records.append(rec)

    def wanted(rec: JobRecord) -> bool:
        if pattern is not None and not fnmatch.fnmatchcase(rec.name, pattern):
            return False
        if code is not None and rec.code != code:
            return False
        if max_age_s is not None and rec.created_at is not None:
            return now - _unix(rec.created_at) <= max_age_s
        return True

    records = [r for r in records if wanted(r)]
    records.sort(key=lambda r: (r.created_at or "", r.job_id or ""), reverse=True)
    return [r.as_json() for r in records]


def _older_than(jobdir: str, now: float, age_s: float) -> bool:
    """Whether a job folder's name says it was made more than `age_s` ago."""
    created = job_time(job_id_of(jobdir) or "")
    return created is not None and now - created > age_s


def _unix(stamp: str) -> float:
    try:
        return parse_iso(stamp)
    except ValueError:
        return 0.0


def purge(spool: Path, now: float | None = None) -> PurgeResult:
    """Remove done/ and failed/ folders older than the spool's keep_done_days and
    keep_failed_days (with their out/ links). Safe while daemons run."""
    paths = open_spool(spool)
    settings = load_spool_settings(spool)
    return retention.purge(paths, settings.keep_done_days, settings.keep_failed_days, now=now)
