"""Finding one job in a spool: by a scan of every folder (id, folder or entry name), or,
for a job id, by a few stats (`locate`), and what `spoold show` prints for it.

`locate` never lists done/ or failed/: given the job folder's name (STEM.ID, known from
the events log, a file registration in .spoold/ids/, or the entry name) it stats
done/STEM.ID, failed/STEM.ID and inbox/STEM.ID, and lists running/ (as many entries as
jobs run); given the inbox key of a job folder that chose its id, it reads its job.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spool.ids import (
    is_job_id,
    live_folder,
    read_requested,
    registered_folder,
    split_named_id,
)
from ..spool.job import JobState, read_state
from ..spool.protocol import MANIFEST, SpoolPaths, job_dir_name, job_id_of, parse_running_name
from .jobview import (
    InboxView,
    JobRecord,
    Place,
    finished_names,
    queued_entries,
    queued_record,
    record_of_manifest,
    running_records,
)


@dataclass
class JobLocation:
    state: Place
    path: Path
    job_id: str | None
    record: JobRecord
    manifest: dict[str, Any] | None = None  # a finished job's, as read for its record


def folders(paths: SpoolPaths, view: InboxView) -> Iterator[tuple[Place, str, str, str | None]]:
    """(state, name below the state's folder, job folder name, job id) of every job,
    from directory listings alone."""
    for name in finished_names(paths.running):
        parsed = parse_running_name(name)
        if parsed is not None:
            yield Place.RUNNING, name, parsed.jobdir, parsed.job_id
    for key, entry in queued_entries(paths, view):
        leaf = key.rpartition("/")[2]
        named, chosen = (
            (leaf, None) if entry.is_dir(follow_symlinks=False) else split_named_id(leaf)
        )
        if chosen is not None:  # report.ID.md: as the job folder it becomes
            yield Place.QUEUED, key, job_dir_name(named, chosen), chosen
        else:
            yield Place.QUEUED, key, leaf, job_id_of(leaf)
    for state in (Place.DONE, Place.FAILED):
        for name in finished_names(paths.root / state):
            yield state, name, name, job_id_of(name)


def location(paths: SpoolPaths, state: Place, name: str) -> JobLocation | None:
    """The job at `state`/`name` (name: below the state's folder; the key below inbox/)."""
    if state is Place.RUNNING:
        found = running_records(paths, [name])
        rec = found[0] if found else None
        return None if rec is None else JobLocation(state, paths.running / name, rec.job_id, rec)
    if state is Place.QUEUED:
        rec = queued_record(paths, name)
        return None if rec is None else JobLocation(state, paths.inbox / name, rec.job_id, rec)
    folder = f"{paths.root}/{state}/{name}"  # strings: a look-up costs a few stats only
    try:
        with open(f"{folder}/{MANIFEST}", "rb") as fh:
            manifest = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    rec = record_of_manifest(manifest, state, name)
    if rec is None:
        return None
    return JobLocation(state, Path(folder), rec.job_id, rec, manifest)


def scan(paths: SpoolPaths, view: InboxView, ref: str) -> JobLocation | None:
    """A job by id, job folder name or the name it was dropped with (newest wins),
    looking at every folder of the spool."""
    matches: list[tuple[str, JobLocation]] = []
    chosen = is_job_id(ref)
    for state, name, jobdir, job_id in folders(paths, view):
        by_id_or_folder = ref in (job_id, jobdir, name)
        # A job folder is named job_dir_name(entry name, job id): compare names first,
        # read the record only for folders a job named `ref` could have.
        maybe_named = job_id is not None and job_dir_name(ref, job_id) == jobdir
        # A queued job folder may carry its id in job.json (spool/ids.py).
        maybe_chosen = chosen and job_id is None and state is Place.QUEUED
        if not (by_id_or_folder or maybe_named or maybe_chosen):
            continue
        loc = location(paths, state, name)
        if loc is None:
            continue
        rec = loc.record
        if ref == rec.job_id:
            return loc
        if by_id_or_folder or rec.name == ref:
            matches.append((rec.created_at or "", loc))
    if not matches:
        return None
    return max(matches, key=lambda m: m[0])[1]


def locate(
    paths: SpoolPaths, job_id: str, *, jobdir: str | None = None, key: str | None = None
) -> JobLocation | None:
    """A job by id in a few stats: its inbox key while it waits there unclaimed (`key`),
    else where its folder `jobdir` (or the one registered for the id) is now."""
    if key is not None and read_requested(paths.inbox / key).job_id == job_id:
        loc = location(paths, Place.QUEUED, key)
        if loc is not None:
            return loc
    if key is not None and jobdir is None:
        jobdir = job_dir_name(split_named_id(key.rpartition("/")[2])[0], job_id)  # claimed since
    loc = _at(paths, job_id, jobdir) if jobdir else None
    if loc is None:  # no hint, or a stale one: the id's registration, if it chose itself
        registered = registered_folder(paths, job_id)
        if registered and registered != jobdir:
            loc = _at(paths, job_id, registered)
    return loc


def _at(paths: SpoolPaths, job_id: str, jobdir: str) -> JobLocation | None:
    if job_id_of(jobdir) != job_id:
        return None
    where = live_folder(paths, jobdir)
    if where is None:
        return None
    place, _, name = where.partition("/")
    loc = location(paths, Place(place if place != "inbox" else "queued"), name)
    return loc if loc is not None and loc.job_id == job_id else None


def show_at(loc: JobLocation) -> dict[str, Any]:
    """What `spoold show` prints: the record; for a finished job its manifest too, for a
    job that ran before its attempts so far (docs/cli.md)."""
    data: dict[str, Any] = {}
    if loc.state in (Place.DONE, Place.FAILED):
        if loc.manifest is not None:
            data = dict(loc.manifest)
        else:
            try:
                data = json.loads((loc.path / MANIFEST).read_text())
            except (OSError, ValueError):
                data = {}
    elif loc.state == Place.QUEUED and loc.record.attempt == 0:
        data["attempts"] = []  # never claimed: no state file to read
    else:
        st = read_state(loc.path)
        data["attempts"] = [a.model_dump(mode="json") for a in st.attempts] if st else []
    data.update(loc.record.as_json())
    return data


def state_from_manifest(folder: Path) -> JobState | None:
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
            submitted_by=m.get("submitted_by"),
        )
    except (OSError, ValueError, KeyError):
        return None
