"""The filesystem protocol: spool layout, atomic writes, claim, publish, requeue, leases.

This module is the whole contract between daemons (and tools) sharing one spool, and it
knows nothing about documents. Every state change of a job is one rename(2) of its
folder, so a crash at any point leaves each job in exactly one place:

    inbox/ENTRY                      dropped by a person or a tool
    running/JOBDIR.aN.TOKEN/         claimed by daemon instance TOKEN for attempt N
        input/ENTRY                  the dropped entry, untouched
        .spoold-state.json           job state (attempts, owner, next attempt time)
    inbox/JOBDIR/                    requeued (retry, recovery, drain): same folder
    done/JOBDIR/ or failed/JOBDIR/   published, manifest.json written first

JOBDIR is STEM.JOBID. The attempt number and the claiming daemon are part of the running
folder's name, so publishing (a rename of exactly that name) can only succeed for the
attempt that still holds the job: that is the fencing token.

Liveness (who still holds its claims) is spoold/spool/leases.py's: a lease file per daemon
instance in .spoold/daemons/, judged on the observer's monotonic clock.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import secrets
import socket
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import SpoolError
from .durability import fsync_dir, make_durable
from .fstype import libc
from .transient import call_with_retry, is_transient

SUBDIRS = ("inbox", "tmp", "running", "done", "failed", "out", ".spoold")
STATE_DIR = ".spoold"
STATE_FILE = ".spoold-state.json"
MANIFEST = "manifest.json"
INPUT_DIR = "input"
NAME_MAX = 255

_RUNNING_RE = re.compile(
    r"^(?P<jobdir>.*\.(?P<job_id>\d{8}T\d{6}Z-[0-9a-f]{10}))\.a(?P<attempt>\d+)\.(?P<token>[0-9a-f]{8})$"
)
_JOBDIR_RE = re.compile(r"^(?P<stem>.*)\.(?P<job_id>\d{8}T\d{6}Z-[0-9a-f]{10})$")


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class SpoolPaths:
    """The folders and files of one spool. Each path is made once (cached_property): the
    daemon and the gateway ask for them thousands of times a second with tiny jobs."""

    root: Path

    @cached_property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @cached_property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @cached_property
    def running(self) -> Path:
        return self.root / "running"

    @cached_property
    def done(self) -> Path:
        return self.root / "done"

    @cached_property
    def failed(self) -> Path:
        return self.root / "failed"

    @cached_property
    def out(self) -> Path:
        return self.root / "out"

    @cached_property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @cached_property
    def daemons(self) -> Path:
        return self.state / "daemons"

    @cached_property
    def waiting(self) -> Path:
        """What each daemon waits on in the inbox (spool/waiting.py)."""
        return self.state / "waiting"

    @cached_property
    def clock_probe(self) -> Path:
        """Rewritten to read the file server's time (clock.SpoolClock)."""
        return self.state / "clock-probe"

    @cached_property
    def events(self) -> Path:
        """The events log, by its first name: each daemon's file is beside it in
        events/ (spool/eventfiles.py); older versions wrote this one file."""
        return self.state / "events.ndjson"

    @cached_property
    def settings_file(self) -> Path:
        return self.root / "spool.toml"


def init_spool(root: Path) -> SpoolPaths:
    """Create the spool folders (idempotent) and check they share one filesystem."""
    root.mkdir(parents=True, exist_ok=True)
    paths = SpoolPaths(root)
    for name in SUBDIRS:
        (root / name).mkdir(exist_ok=True)
    for name in ("daemons", "dedup"):
        (paths.state / name).mkdir(exist_ok=True)
    check_same_filesystem(paths)
    return paths


def open_spool(root: Path) -> SpoolPaths:
    """A spool that must already exist, with its layout complete."""
    paths = SpoolPaths(root)
    missing = [name for name in SUBDIRS if not (root / name).is_dir()]
    if not root.is_dir() or missing:
        raise SpoolError(
            f"{root} is not a spool (missing: {', '.join(missing) or root.name}); "
            f"create it with `spoold init {root}`"
        )
    for name in ("daemons", "dedup"):
        (paths.state / name).mkdir(exist_ok=True)
    check_same_filesystem(paths)
    return paths


def check_same_filesystem(paths: SpoolPaths) -> None:
    """rename(2) is atomic only within one filesystem: refuse a split spool."""
    root_dev = os.stat(paths.root).st_dev
    split = [n for n in SUBDIRS if os.stat(paths.root / n).st_dev != root_dev]
    if split:
        raise SpoolError(
            f"spool {paths.root} is split across filesystems ({', '.join(split)} "
            "on another mount); every folder of a spool must be on one filesystem"
        )


# --------------------------------------------------------------------------- atomic I/O

# link(2) errors that mean "this filesystem has no hard links" (or not across these folders).
NO_HARD_LINKS = frozenset({errno.EPERM, errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS})


def atomic_write(path: Path, data: bytes, *, durable: bool = True, mode: int = 0o644) -> None:
    """Write `data` to `path` so readers see the old or the new file, never a part.

    Temporary name in the same folder, write, fsync, rename, fsync of the folder. A
    transient error (ESTALE, EIO... on a network mount) redoes it all, bounded.
    """
    try:
        _atomic_write_once(path, data, durable, mode)
    except OSError as exc:
        if not is_transient(exc):
            raise
        call_with_retry(_atomic_write_once, path, data, durable, mode)


def _atomic_write_once(path: Path, data: bytes, durable: bool, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quiet(tmp)
        raise
    os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        _unlink_quiet(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any, *, durable: bool = True) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True).encode() + b"\n", durable=durable)


def unlink_quiet(path: Path) -> None:
    """Remove a file if it is there; a file already gone (or not removable) is fine."""
    try:
        os.unlink(path)
    except OSError:
        pass


_unlink_quiet = unlink_quiet  # the name the lease code below uses


def rename(src: Path, dst: Path) -> None:
    """os.rename, with bounded retries of transient errors (spoold/spool/transient.py)."""
    try:
        os.rename(src, dst)
    except OSError as exc:
        if not is_transient(exc):
            raise
        # The rare case only: tenacity's bookkeeping costs more than a rename on tmpfs.
        call_with_retry(os.rename, src, dst)


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def rename_noreplace(src: Path, dst: Path) -> None:
    """rename(2) that fails with FileExistsError instead of replacing `dst`, with
    bounded retries of transient errors (see `rename`)."""
    try:
        _rename_noreplace(src, dst)
    except OSError as exc:
        if not is_transient(exc):
            raise
        call_with_retry(_rename_noreplace, src, dst)


def _rename_noreplace(src: Path, dst: Path) -> None:
    """rename(2) that fails with FileExistsError instead of replacing `dst`.

    Uses renameat2(RENAME_NOREPLACE); where the filesystem lacks it (some NFS and FUSE
    mounts say EINVAL) it falls back to a check then rename, which is only racy against
    another process creating `dst` in the same instant.
    """
    fn = getattr(libc(), "renameat2", None)
    if fn is not None:
        res = fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
        if res == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), str(src), None, str(dst))
    # Source first, as the kernel does: a fenced-off holder whose folder is gone must
    # see FileNotFoundError (claim lost), not FileExistsError, when dst exists.
    if not os.path.lexists(src):
        raise FileNotFoundError(errno.ENOENT, "source is gone", str(src))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "destination exists", str(dst))
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:
            raise
        # A folder appeared at dst in the instant between the check and the rename.
        raise FileExistsError(errno.EEXIST, "destination exists", str(dst)) from exc


# --------------------------------------------------------------------------- names


def new_token() -> str:
    """A daemon instance's identity, part of the names of the folders it claims."""
    return secrets.token_hex(4)


def safe_stem(entry_name: str) -> str:
    """A file-name-safe stem of any entry name: no slashes, controls or leading dots."""
    stem = entry_name
    for suffix in (".zip",):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    dot = stem.rfind(".")
    if dot > 0:
        stem = stem[:dot]
    stem = "".join("_" if (ord(c) < 32 or c in "/\\\x7f") else c for c in stem)
    stem = stem.lstrip(".").strip() or "job"
    return stem


def truncate_utf8(text: str, max_bytes: int) -> str:
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", "ignore")


# Room kept for ".aNNNNN.TOKEN" on running folders and for "STEM.EXT" artifact names.
_RESERVED = len(".a99999.") + 8


def job_dir_name(entry_name: str, job_id: str) -> str:
    """STEM.JOBID, short enough that every derived name fits in NAME_MAX bytes."""
    budget = NAME_MAX - _RESERVED - len(job_id) - 1
    return f"{truncate_utf8(safe_stem(entry_name), budget)}.{job_id}"


def running_name(jobdir: str, attempt: int, token: str) -> str:
    return f"{jobdir}.a{attempt}.{token}"


@dataclass(frozen=True)
class RunningName:
    jobdir: str
    job_id: str
    attempt: int
    token: str


def parse_running_name(name: str) -> RunningName | None:
    m = _RUNNING_RE.match(name)
    if m is None:
        return None
    return RunningName(m["jobdir"], m["job_id"], int(m["attempt"]), m["token"])


def job_id_of(jobdir: str) -> str | None:
    m = _JOBDIR_RE.match(jobdir)
    return m["job_id"] if m else None


# --------------------------------------------------------------------------- claim


def claim_entry(
    paths: SpoolPaths, key: str, name: str, jobdir: str, attempt: int, token: str
) -> Path | None:
    """Claim a dropped entry: one rename of inbox/KEY into a new running folder.

    KEY is the entry's path below inbox/ (ROUTE/NAME for routed entries).

    Returns the running folder, or None when another daemon won the race (or the entry
    went away). The folder is prepared first; a crash before the rename leaves an empty
    folder that recovery removes.
    """
    folder = paths.running / running_name(jobdir, attempt, token)
    os.mkdir(folder)
    os.mkdir(folder / INPUT_DIR)
    try:
        rename(paths.inbox / key, folder / INPUT_DIR / name)
    except FileNotFoundError:
        os.rmdir(folder / INPUT_DIR)
        os.rmdir(folder)
        return None
    return folder


def claim_requeued(paths: SpoolPaths, jobdir: str, attempt: int, token: str) -> Path | None:
    """Claim a requeued job folder (inbox/JOBDIR) for its next attempt."""
    folder = paths.running / running_name(jobdir, attempt, token)
    try:
        rename_noreplace(paths.inbox / jobdir, folder)
    except (FileNotFoundError, FileExistsError):
        return None
    return folder


def requeue(paths: SpoolPaths, folder: Path, jobdir: str) -> Path | None:
    """Put a running job back into inbox/ (retry, recovery, drain). None if it was lost."""
    dest = paths.inbox / jobdir
    try:
        rename_noreplace(folder, dest)
    except FileNotFoundError:
        return None
    return dest


def publish(
    folder: Path,
    dest_dir: Path,
    jobdir: str,
    *,
    durable: bool = True,
    to_sync: set[Path] | None = None,
) -> Path | None:
    """Move a finished job folder (manifest already written) into done/ or failed/.

    Returns None when `folder` is no longer there: the attempt lost its claim, and its
    result must be dropped (fencing). With `to_sync` (group commit) the two parent
    folders are added to it instead of synced now: the caller syncs them before it
    reports the job.
    """
    dest = dest_dir / jobdir
    try:
        rename_noreplace(folder, dest)
    except FileNotFoundError:
        return None
    if durable and to_sync is not None:
        to_sync.update((dest_dir, folder.parent))
    elif durable:
        make_durable(folders=[dest_dir, folder.parent])
    return dest


# --------------------------------------------------------------------------- liveness


def default_host_id() -> str:
    return socket.gethostname()


def free_disk_mb(path: Path) -> float:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / (1024 * 1024)
