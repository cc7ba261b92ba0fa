"""Job ids chosen before the claim: their form, job.json's `id` and `submitted_by`, and
the registry that keeps a chosen id unique (.spoold/ids/).

A daemon gives a job its id when it claims it. A tool that must name the job at once
(the HTTP gateway answers 202 with it) writes an `id` into the job folder's job.json
instead, or, for a lone document, puts it in the file's name: `STEM.ID.EXT` is the job
`STEM.EXT` with id ID (one file to create and rename instead of a folder and two
files). The id is made by `new_job_id()`, the same form as a daemon's. The claiming
daemon uses it when it is well formed and unused; otherwise the job gets an id of its
own and fails at start with `input_invalid`, naming the key or the file name
(docs/protocol.md, "Job ids").

Unused means: no job folder of the spool has it. The ids a daemon makes carry 40 random
bits and are unique by construction; a chosen id is registered at its claim as
`.spoold/ids/ID`, so that two claims of one id cannot both succeed: a hard link to the
folder's one empty anchor file, which link(2) refuses to make twice. A link is a name
with no inode of its own: on an ext4 without a journal a new inode costs up to 0.2 ms
after recent deletions, a fifth of a tiny HTTP job's cost to the daemon. Where the
filesystem has no hard links the registration is a small file holding the job folder's
name (STEM.ID), created with O_EXCL, as it was before links; both kinds are read.

A link names no folder, so the rare paths that need the holder (an id used twice, a
registration left by a folder deleted by hand, a race of two claims) look for it by
name in done/, failed/, inbox/ and running/ (`find_holder`). A registration whose
folder is gone is taken over.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .jobjson import read_job_json
from .protocol import (
    INPUT_DIR,
    NO_HARD_LINKS,
    STATE_DIR,
    SpoolPaths,
    atomic_write,
    job_id_of,
    parse_running_name,
)

JOB_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{10}$")
# Token names and `submitted_by`: plain words, safe in a file name, a header, a log line.
SUBMITTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
IDS_DIR = "ids"
ANCHOR = ".anchor"  # the empty file every registration is a hard link to


# An inbox file that names its id: STEM.ID.EXT (EXT a plain suffix, as SUFFIX_TYPES has).
_NAMED_RE = re.compile(r"^(?P<stem>.+)\.(?P<id>\d{8}T\d{6}Z-[0-9a-f]{10})(?P<ext>\.[A-Za-z0-9]+)$")


def is_job_id(text: str) -> bool:
    return JOB_ID_RE.match(text) is not None


def split_named_id(name: str) -> tuple[str, str | None]:
    """(the job's name, the id it chose) of an inbox *file* named `name`: `report.ID.md`
    is the job `report.md` with that id; any other name chose none."""
    m = _NAMED_RE.match(name)
    if m is None:
        return name, None
    return m["stem"] + m["ext"], m["id"]


def name_with_id(name: str, job_id: str) -> str:
    """The inbox file name of the document `name` choosing `job_id` (`split_named_id`)."""
    stem, dot, ext = name.rpartition(".")
    if not (dot and stem and ext):
        raise ValueError(f"{name!r} has no suffix to keep after the id")
    return f"{stem}.{job_id}.{ext}"


@dataclass(frozen=True)
class Requested:
    """What a job folder's job.json asks for before its claim (None: not asked or bad)."""

    job_id: str | None = None
    submitted_by: str | None = None


def read_requested(folder: Path) -> Requested:
    """job.json's `id` and `submitted_by` of a job folder, if present and well formed;
    for an inbox file, the id its name chose (`split_named_id`).

    Read with lstat first and a size cap (spool/jobjson.py); anything unreadable is "not
    asked" here: the daemon's intake reads job.json again and fails the job naming the
    problem.
    """
    named = split_named_id(folder.name)[1]
    if named is not None and not os.path.isdir(folder):
        return Requested(job_id=named)
    known = read_job_json(folder)
    return requested_of(known.data if known else None)


def requested_of(data: dict[str, Any] | None) -> Requested:
    """What a job.json, already read, asks for (`read_requested`)."""
    if not data:
        return Requested()
    job_id, by = data.get("id"), data.get("submitted_by")
    return Requested(
        job_id=job_id if isinstance(job_id, str) and is_job_id(job_id) else None,
        submitted_by=by if isinstance(by, str) and SUBMITTER_RE.match(by) else None,
    )


def registry_path(paths: SpoolPaths, job_id: str) -> Path:
    return paths.state / IDS_DIR / job_id


def live_folder(paths: SpoolPaths, jobdir: str) -> str | None:
    """Where a job folder named `jobdir` is now (relative to the spool), or None."""
    root = str(paths.root)  # strings, not Paths: the gateway calls this per look-up
    for place in ("done", "failed", "inbox"):
        if os.path.lexists(f"{root}/{place}/{jobdir}"):
            return f"{place}/{jobdir}"
    prefix = jobdir + ".a"
    try:
        names = os.listdir(paths.running)
    except OSError:
        return None
    for name in names:
        if name.startswith(prefix):
            return f"running/{name}"
    return None


def reserve_job_id(paths: SpoolPaths, job_id: str, jobdir: str) -> str | None:
    """Register `job_id` for the job folder `jobdir` before it is claimed.

    Returns None when the id is now this job's, or the folder (relative to the spool)
    of the job that already holds it. OSError (a full disk) is raised: the claim waits.
    """
    ids_dir = os.path.join(paths.root, STATE_DIR, IDS_DIR)  # registry_path, as strs
    reg = os.path.join(ids_dir, job_id)
    try:
        _register(ids_dir, reg, jobdir)
        return None  # a new registration: no job had this id
    except FileExistsError:
        pass
    try:
        with open(reg, encoding="utf-8") as fh:
            holder = fh.read().strip()  # "" for a link: it names no folder
    except (OSError, ValueError):
        holder = ""
    if holder and holder != jobdir:
        where = live_folder(paths, holder)
        if where is not None:
            return where
        atomic_write(Path(reg), jobdir.encode() + b"\n", durable=False)  # a stale one
    # Registered for this very folder name before: a claim that lost its race or crashed
    # (ours), or a copy of a job dropped again (its folder lives: not ours).
    where = live_folder(paths, jobdir)
    if where is not None or holder:
        return where
    return find_holder(paths, job_id)  # a link: another name's folder, or none (stale)


def find_holder(paths: SpoolPaths, job_id: str) -> str | None:
    """The folder (relative to the spool) of a claimed job with this id, found by name:
    done/, failed/ and inbox/ (a requeued job) hold STEM.ID, running/ STEM.ID.aN.TOKEN.
    One listing each, so only for the rare paths (module docstring)."""
    for place in ("done", "failed", "inbox", "running"):
        try:
            names = os.listdir(os.path.join(paths.root, place))
        except OSError:
            continue
        for name in names:
            if place == "running":
                parsed = parse_running_name(name)
                found = parsed is not None and parsed.job_id == job_id
            else:
                found = name.endswith(job_id) and job_id_of(name) == job_id
            if found:
                return f"{place}/{name}"
    return None


def _register(ids_dir: str, reg: str, jobdir: str) -> None:
    """The registration: a hard link to the anchor, or, where the filesystem refuses
    links, a file holding `jobdir`. FileExistsError: the id is registered already."""
    anchor = os.path.join(ids_dir, ANCHOR)
    for _ in range(3):
        try:
            os.link(anchor, reg)
            return
        except FileExistsError:
            raise
        except FileNotFoundError:  # the spool's first chosen id: no anchor (or folder) yet
            _make_anchor(ids_dir, anchor)
        except OSError as exc:
            if exc.errno == errno.EMLINK:  # as many links as one file may have: a new one
                _retire_anchor(anchor)
            elif exc.errno in NO_HARD_LINKS:
                break
            else:
                raise
    _create(reg, jobdir)


def _make_anchor(ids_dir: str, anchor: str) -> None:
    os.makedirs(ids_dir, exist_ok=True)
    try:
        os.close(os.open(anchor, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
    except FileExistsError:
        pass  # another daemon made it first


def _retire_anchor(anchor: str) -> None:
    """Move a full anchor aside (its links stay valid); the next link makes a new one."""
    try:
        os.rename(anchor, f"{anchor}.{secrets.token_hex(4)}")
    except FileNotFoundError:
        pass  # another daemon retired it first


def _create(reg: str, jobdir: str) -> None:
    """Create the registration, O_EXCL (FileExistsError: it is there): open, write, close,
    and the folder only when it is missing (the first chosen id of a spool)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        fd = os.open(reg, flags, 0o644)
    except FileNotFoundError:
        Path(reg).parent.mkdir(exist_ok=True)
        fd = os.open(reg, flags, 0o644)
    try:
        view = memoryview(jobdir.encode() + b"\n")
        while view:  # a short write (the disk filled) goes on, and raises ENOSPC
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def registered_folder(paths: SpoolPaths, job_id: str) -> str | None:
    """The job folder name (STEM.ID) a file registration holds for a chosen id; None
    for none, and for a link, which names no folder (`find_holder` looks)."""
    try:
        return registry_path(paths, job_id).read_text().strip() or None
    except OSError:
        return None


def forget_job_id(paths: SpoolPaths, job_id: str) -> None:
    """Drop a registration (its job folder was purged)."""
    try:
        os.unlink(registry_path(paths, job_id))
    except OSError:
        pass


def input_requested(running_folder: Path, name: str) -> Requested:
    """job.json's id and submitted_by of a claimed job folder (running/X/input/NAME/)."""
    return read_requested(running_folder / INPUT_DIR / name)
