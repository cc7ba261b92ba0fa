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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import retention
from .errors import SpooldError
from .job import JobState
from .protocol import (
    MANIFEST,
    STATE_FILE,
    SpoolPaths,
    atomic_write,
    free_disk_mb,
    init_spool,
    job_id_of,
    open_spool,
    parse_running_name,
    rename_noreplace,
)
from .retention import PurgeResult, job_time
from .settings import load_spool_settings
from .worker import STAGE_FILE

__all__ = [
    "JobNotFound",
    "Submission",
    "TryLater",
    "cancel",
    "find_job",
    "init",
    "list_jobs",
    "retry",
    "show",
    "status",
    "submit",
    "wait",
]


class TryLater(SpooldError):
    """The spool cannot take more now (queue full or disk short): exit 75."""


class JobNotFound(SpooldError):
    pass


def init(root: Path) -> SpoolPaths:
    return init_spool(root)


@dataclass
class Submission:
    spool: Path
    name: str  # the entry name in inbox/ (or ROUTE/NAME)
    ino: int
    events_offset: int


def _unique_name(folder: Path, name: str) -> str:
    if not os.path.lexists(folder / name):
        return name
    stem, dot, ext = name.partition(".")
    for i in range(1, 10000):
        candidate = f"{stem}-{i}{dot}{ext}"
        if not os.path.lexists(folder / candidate):
            return candidate
    raise SpooldError(f"too many entries named like {name} in {folder}")


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
    """Stage a copy in tmp/, then rename it into inbox/ (picked up at once)."""
    paths = open_spool(spool)
    settings = load_spool_settings(spool)
    queued = sum(1 for _ in os.scandir(paths.inbox))
    if queued >= settings.max_queued:
        raise TryLater(f"the inbox holds {queued} entries (max_queued is {settings.max_queued})")
    free = free_disk_mb(spool)
    if free < settings.min_free_mb:
        raise TryLater(f"free disk {free:.0f} MB is below min_free_mb {settings.min_free_mb}")
    if not document.is_file():
        raise SpooldError(f"{document} is not a file")
    job_options: dict[str, Any] = dict(options or {})
    if targets:
        job_options["targets"] = targets
    if priority is not None:
        job_options["priority"] = priority
    dest_folder = paths.inbox / route if route else paths.inbox
    if route and not dest_folder.is_dir():
        raise SpooldError(f"route {route!r} has no folder {dest_folder}")
    staging = paths.tmp / f".submit-{os.getpid()}-{time.monotonic_ns()}"
    staging.mkdir()
    try:
        if job_options or resources or reference_doc:
            name = document.stem
            entry = staging / name
            entry.mkdir()
            shutil.copyfile(document, entry / document.name)
            if job_options:
                job_options.setdefault("main", document.name)
                (entry / "job.json").write_text(json.dumps(job_options, indent=2))
            if resources is not None:
                if resources.is_dir():
                    shutil.copytree(resources, entry / "resources", symlinks=True)
                else:
                    shutil.copyfile(resources, entry / "resources.zip")
            if reference_doc is not None:
                shutil.copyfile(reference_doc, entry / "reference.docx")
        else:
            name = document.name
            entry = staging / name
            shutil.copyfile(document, entry)
        ino = os.lstat(entry).st_ino
        try:
            offset = paths.events.stat().st_size
        except FileNotFoundError:
            offset = 0
        final = _unique_name(dest_folder, name)
        rename_noreplace(entry, dest_folder / final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    key = f"{route}/{final}" if route else final
    return Submission(spool=spool, name=key, ino=ino, events_offset=offset)


def wait(sub: Submission, timeout: float | None = None, poll_s: float = 0.05) -> dict[str, Any]:
    """Wait until the submitted entry's job is published; return its manifest."""
    paths = SpoolPaths(sub.spool)
    deadline = None if timeout is None else time.monotonic() + timeout
    job_id: str | None = None
    offset = sub.events_offset
    buf = b""
    name = sub.name.rpartition("/")[2]
    while True:
        try:
            with paths.events.open("rb") as fh:
                if os.fstat(fh.fileno()).st_size < offset:
                    offset = 0  # rotated
                fh.seek(offset)
                chunk = fh.read()
                offset += len(chunk)
        except FileNotFoundError:
            chunk = b""
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if (
                job_id is None
                and ev.get("event") == "job.detected"
                and ev.get("ino") == sub.ino
                and ev.get("name") == name
            ):
                job_id = ev["job_id"]
            if (
                job_id is not None
                and ev.get("job_id") == job_id
                and ev.get("event")
                in (
                    "job.succeeded",
                    "job.failed",
                    "job.cancelled",
                )
            ):
                manifest: dict[str, Any] = json.loads(
                    (sub.spool / ev["path"] / MANIFEST).read_text()
                )
                manifest["_path"] = str(sub.spool / ev["path"])
                return manifest
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{sub.name} was not finished within {timeout:g} s")
        time.sleep(poll_s)


@dataclass
class JobLocation:
    state: str  # queued, running, done, failed
    path: Path
    job_id: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def find_job(spool: Path, ref: str) -> JobLocation:
    """Find a job by id, job folder name or original entry name (newest wins)."""
    paths = open_spool(spool)
    for state, folder in (
        ("running", paths.running),
        ("done", paths.done),
        ("failed", paths.failed),
        ("queued", paths.inbox),
    ):
        try:
            names = sorted(os.listdir(folder), reverse=True)
        except OSError:
            continue
        for name in names:
            if name.startswith("."):
                continue  # hidden: temporaries, a purge in progress
            if state == "running":
                parsed = parse_running_name(name)
                jobdir, job_id = (parsed.jobdir, parsed.job_id) if parsed else (name, None)
            else:
                jobdir, job_id = name, job_id_of(name)
            if ref in (job_id, jobdir) or (state == "queued" and ref == name):
                return JobLocation(state, folder / name, job_id)
    # By original entry name: look at state files of recent jobs.
    for state, folder in (
        ("running", paths.running),
        ("done", paths.done),
        ("failed", paths.failed),
    ):
        try:
            names = sorted(os.listdir(folder), reverse=True)
        except OSError:
            continue
        for name in names:
            if name.startswith("."):
                continue
            st = _read_state(folder / name) or _state_from_manifest(folder / name)
            if st is not None and st.name == ref:
                return JobLocation(state, folder / name, st.job_id)
    raise JobNotFound(f"no job {ref!r} in {spool}")


def _read_state(folder: Path) -> JobState | None:
    try:
        return JobState.model_validate_json((folder / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return None


def _state_from_manifest(folder: Path) -> JobState | None:
    """Rebuild the daemon's job state from a published manifest (for `retry`)."""
    try:
        m = json.loads((folder / MANIFEST).read_text())
        entry = folder / "input" / m["name"]
        st = os.lstat(entry)
        return JobState(
            job_id=m["job_id"],
            name=m["name"],
            jobdir=folder.name,
            kind="dir" if os.path.isdir(entry) else "file",
            owner_uid=st.st_uid,
            route=m.get("route"),
            priority=int(m.get("options", {}).get("priority", 50)),
            arrived_at=m["created_at"],
            attempts=m.get("attempts", []),
        )
    except (OSError, ValueError, KeyError):
        return None


def show(spool: Path, ref: str) -> dict[str, Any]:
    loc = find_job(spool, ref)
    if loc.state in ("done", "failed"):
        data: dict[str, Any] = json.loads((loc.path / MANIFEST).read_text())
        data["_path"] = str(loc.path)
        return data
    st = _read_state(loc.path)
    out: dict[str, Any] = {"status": loc.state, "job_id": loc.job_id, "_path": str(loc.path)}
    if st is not None:
        out.update(name=st.name, attempts=[a.model_dump(mode="json") for a in st.attempts])
    stage = _read_text(loc.path / STAGE_FILE)
    if stage:
        out["stage"] = stage
    return out


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def status(spool: Path) -> dict[str, Any]:
    paths = open_spool(spool)
    settings = load_spool_settings(spool)
    inbox = [
        n for n in os.listdir(paths.inbox) if not n.startswith(".") and n not in settings.routes
    ]
    for route in settings.routes:
        try:
            inbox += [
                f"{route}/{n}" for n in os.listdir(paths.inbox / route) if not n.startswith(".")
            ]
        except OSError:
            pass
    running = []
    for name in sorted(os.listdir(paths.running)):
        parsed = parse_running_name(name)
        if parsed is None:
            continue
        folder = paths.running / name
        st = _read_state(folder)
        started = None
        if st is not None and st.attempts:
            started = st.attempts[-1].started_at or st.attempts[-1].claimed_at
        running.append(
            {
                "job_id": parsed.job_id,
                "name": st.name if st else None,
                "attempt": parsed.attempt,
                "stage": _read_text(folder / STAGE_FILE) or "starting",
                "started_at": started,
            }
        )
    daemons = []
    for info in paths.daemons.glob("*.json"):
        try:
            data = json.loads(info.read_text())
            data["heartbeat_age_s"] = round(time.time() - info.stat().st_mtime, 1)
            daemons.append(data)
        except (OSError, ValueError):
            continue
    recent_failures = []
    for name in sorted(os.listdir(paths.failed), reverse=True)[:5]:
        try:
            m = json.loads((paths.failed / name / MANIFEST).read_text())
            recent_failures.append(
                {
                    "job_id": m["job_id"],
                    "name": m["name"],
                    "code": (m.get("error") or {}).get("code"),
                }
            )
        except (OSError, ValueError, KeyError):
            continue
    return {
        "spool": str(spool),
        "queued": len(inbox),
        "running": running,
        "done": sum(1 for _ in os.scandir(paths.done)),
        "failed": sum(1 for _ in os.scandir(paths.failed)),
        "free_disk_mb": round(free_disk_mb(spool)),
        "daemons": daemons,
        "recent_failures": recent_failures,
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


def retry(spool: Path, ref: str) -> str:
    """Requeue a failed or cancelled job as a new attempt; its history stays."""
    loc = find_job(spool, ref)
    if loc.state != "failed":
        raise SpooldError(f"job {ref} is {loc.state}; only failed or cancelled jobs can be retried")
    st = _state_from_manifest(loc.path) or _read_state(loc.path)
    if st is None:
        raise SpooldError(f"job {ref} has no readable manifest; it cannot be retried")
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


LIST_STATES = ("queued", "running", "done", "failed")


def list_jobs(
    spool: Path,
    states: tuple[str, ...] = ("done", "failed"),
    pattern: str | None = None,
    code: str | None = None,
    max_age_s: float | None = None,
) -> list[dict[str, Any]]:
    """Jobs in the given states, newest first within each state.

    Folder names carry the job id (and so the creation time) and the original stem, so
    state, name and age filters cost one directory listing; a manifest is read only for
    failed jobs (to show their code) or when filtering by code. A queued entry has no
    job id yet; its age is its mtime.
    """
    paths = open_spool(spool)
    out: list[dict[str, Any]] = []
    now = time.time()

    def name_ok(name: str, stem: str | None = None) -> bool:
        """The pattern against an entry name, or against a job folder's stem (the
        original name without its extension, which folder names keep)."""
        if not pattern:
            return True
        if stem is None:
            return fnmatch.fnmatch(name, pattern)
        return fnmatch.fnmatch(stem, pattern) or fnmatch.fnmatch(stem, pattern.rsplit(".", 1)[0])

    def age_ok(created: float | None) -> bool:
        return max_age_s is None or created is None or now - created <= max_age_s

    for state in states:
        if state == "queued":
            if code is None:
                out.extend(_queued(paths, name_ok, age_ok))
            continue
        folder = {"running": paths.running, "done": paths.done, "failed": paths.failed}[state]
        for name in sorted(os.listdir(folder), reverse=True):
            if name.startswith("."):
                continue  # a purge in progress (.purge-*) or someone's hidden file
            rec: dict[str, Any] = {"state": state, "folder": f"{state}/{name}"}
            if state == "running":
                parsed = parse_running_name(name)
                if parsed is None or code is not None:
                    continue
                jobdir: str = parsed.jobdir
                job_id: str | None = parsed.job_id
                rec["attempt"] = parsed.attempt
            else:
                jobdir, job_id = name, job_id_of(name)
            if not name_ok(jobdir, jobdir.rsplit(".", 1)[0] if job_id else jobdir):
                continue
            created = job_time(job_id) if job_id else None
            if not age_ok(created):
                continue
            rec["job_id"] = job_id
            rec["created_at"] = created
            if code is not None or state == "failed":
                try:
                    m = json.loads((folder / name / MANIFEST).read_text())
                except (OSError, ValueError):
                    m = {}
                rec["status"] = m.get("status")
                rec["code"] = (m.get("error") or {}).get("code")
                rec["name"] = m.get("name")
                if code is not None and rec["code"] != code:
                    continue
            out.append(rec)
    return out


def _queued(
    paths: SpoolPaths, name_ok: Callable[[str], bool], age_ok: Callable[[float | None], bool]
) -> list[dict[str, Any]]:
    """Entries waiting in inbox/ (and its route folders); markers and hidden names skipped."""
    routes = set(load_spool_settings(paths.root).routes)
    found: list[dict[str, Any]] = []
    stack: list[tuple[Path, str]] = [(paths.inbox, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith(".") or e.name.endswith(".cancel"):
                continue
            if not prefix and e.name in routes and e.is_dir(follow_symlinks=False):
                stack.append((Path(e.path), f"{e.name}/"))
                continue
            try:
                mtime = e.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            if name_ok(e.name) and age_ok(mtime):
                found.append(
                    {
                        "state": "queued",
                        "folder": f"inbox/{prefix}{e.name}",
                        "job_id": None,
                        "name": e.name,
                        "created_at": mtime,
                    }
                )
    found.sort(key=lambda r: r["created_at"], reverse=True)
    return found


def purge(spool: Path, now: float | None = None) -> PurgeResult:
    """Remove done/ and failed/ folders older than the spool's keep_done_days and
    keep_failed_days (with their out/ links). Safe while daemons run."""
    paths = open_spool(spool)
    settings = load_spool_settings(spool)
    return retention.purge(paths, settings.keep_done_days, settings.keep_failed_days, now=now)
