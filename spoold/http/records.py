"""The job record the gateway answers with, and the job list with its cursor.

A record is what `spoold show` prints (tools/lookup.py `show_at`: the job record of
docs/cli.md, a finished job's manifest, a queued or running job's attempts), plus
`cancel_requested`, each artifact's `url` and the job's `links`: everything a page or a
client needs without building a path itself.
"""

from __future__ import annotations

import base64
import fnmatch
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..spool.ids import read_requested, split_named_id
from ..spool.protocol import SpoolPaths, job_id_of, parse_running_name
from ..tools.jobview import Place, queued_entries
from ..tools.lookup import JobLocation, location, show_at
from ..worker.spec import CANCEL_FLAG
from .auth import Caller
from .errors import ApiError
from .spools import ServedSpool

TERMINAL = ("done", "failed")


def job_url(spool: str, job_id: str) -> str:
    return f"/v1/spools/{quote(spool, safe='')}/jobs/{job_id}"


def cancel_requested(paths: SpoolPaths, loc: JobLocation) -> bool:
    """A cancel marker waits for the job (by id or name), or a running job was asked to
    stop after its current target."""
    if loc.state in TERMINAL:
        return False
    names = [n for n in (loc.job_id, loc.record.name) if n]
    if any(os.path.lexists(paths.inbox / f"{n}.cancel") for n in names):
        return True
    return loc.state == Place.RUNNING and os.path.lexists(loc.path / CANCEL_FLAG)


def _decorate(data: dict[str, Any], spool: ServedSpool, loc: JobLocation) -> dict[str, Any]:
    base = job_url(spool.name, loc.job_id or "")
    data["spool"] = spool.name
    data["cancel_requested"] = cancel_requested(spool.paths, loc)
    artifacts = data.get("artifacts") if loc.state == Place.DONE else None
    if isinstance(artifacts, list):
        for art in artifacts:
            if isinstance(art, dict) and isinstance(art.get("path"), str):
                art["url"] = f"{base}/artifacts/{quote(art['path'], safe='')}"
    links = {
        "self": base,
        "events": f"/v1/spools/{quote(spool.name, safe='')}/events?job={loc.job_id}",
    }
    if loc.state in TERMINAL:
        links["manifest"] = f"{base}/manifest"
    if loc.state == Place.FAILED:
        links["error"] = f"{base}/error"
        links["retry"] = f"{base}/retry"
    data["links"] = links
    return data


def full_record(spool: ServedSpool, loc: JobLocation) -> dict[str, Any]:
    """GET /jobs/{id}: `spoold show`'s fields, cancel_requested, urls and links."""
    return _decorate(show_at(loc), spool, loc)


def list_record(spool: ServedSpool, loc: JobLocation) -> dict[str, Any]:
    """A job in a list: the job record, and a finished job's error and artifacts."""
    data = loc.record.as_json()
    if loc.manifest is not None:
        data["error"] = loc.manifest.get("error")
        data["artifacts"] = [dict(a) for a in loc.manifest.get("artifacts") or []]
    return _decorate(data, spool, loc)


# ------------------------------------------------------------------ the list


@dataclass
class Filters:
    states: tuple[str, ...]
    name: str | None
    code: str | None
    owner: str | None
    limit: int


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        key = raw.decode()
    except (ValueError, UnicodeDecodeError):
        key = ""
    if not key:
        raise ApiError(422, "cursor: not a cursor this gateway gave out")
    return key


def _candidates(spool: ServedSpool, states: tuple[str, ...]) -> Iterator[tuple[str, str, str]]:
    """(sort key, state, name below the state's folder): newest-first order is by the
    job id (its time), for an unclaimed entry without one by its mtime."""
    paths = spool.paths
    if "running" in states:
        for name in _names(paths.running):
            parsed = parse_running_name(name)
            if parsed is not None:
                yield parsed.job_id, "running", name
    if "queued" in states:
        for key, entry in queued_entries(paths, spool.view):
            leaf = key.rpartition("/")[2]
            is_dir = entry.is_dir(follow_symlinks=False)
            job_id = job_id_of(leaf) if is_dir else split_named_id(leaf)[1]
            if job_id is None and is_dir:
                job_id = read_requested(paths.inbox / key).job_id
            if job_id is None:
                try:
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                except OSError:
                    continue
                job_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(mtime)) + "-~" + key
            yield job_id, "queued", key
    for state in TERMINAL:
        if state in states:
            for name in _names(paths.root / state):
                job_id = job_id_of(name)
                if job_id is not None:
                    yield job_id, state, name


def _names(folder: Any) -> list[str]:
    try:
        return [n for n in os.listdir(folder) if not n.startswith(".")]
    except OSError:
        return []


def list_page(
    spool: ServedSpool, caller: Caller, filters: Filters, cursor: str | None
) -> dict[str, Any]:
    """`{"jobs": [...], "next": CURSOR or null}`, newest first."""
    after = decode_cursor(cursor) if cursor else None
    keys = sorted(_candidates(spool, filters.states), reverse=True)
    jobs: list[dict[str, Any]] = []
    last: str | None = None
    more = False
    for key, state, name in keys:
        if after is not None and key >= after:
            continue
        if len(jobs) >= filters.limit:
            more = True
            break
        last = key
        loc = location(spool.paths, Place(state), name)
        if loc is None or not _wanted(loc, caller, filters):
            continue
        jobs.append(list_record(spool, loc))
    return {"jobs": jobs, "next": encode_cursor(last) if more and last else None}


def _wanted(loc: JobLocation, caller: Caller, filters: Filters) -> bool:
    rec = loc.record
    if not caller.may_see(rec.submitted_by):
        return False
    if filters.owner is not None and rec.submitted_by != filters.owner:
        return False
    if filters.name is not None and not fnmatch.fnmatchcase(rec.name, filters.name):
        return False
    return filters.code is None or rec.code == filters.code
