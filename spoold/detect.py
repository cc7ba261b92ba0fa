"""Detection: which inbox entries exist and which are complete enough to claim.

Observers (inotify through watchdog, or plain polling) only give hints; `InboxTracker`
keeps the truth from directory scans: a periodic full scan, a rescan after an inotify
queue overflow, and cheap re-checks of the few entries still being written.

An entry is complete when it was renamed into inbox/ (from tmp/ or from a temporary
name inside inbox/), or when its (size, mtime, inode) has not changed for the settle
window and its cheap format check passes. A slow writer is never given up on; an entry
that stays unchanged for `incomplete_after_s` and still fails its check is reported as
truncated so a person sees it.
"""

from __future__ import annotations

import fnmatch
import itertools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .protocol import INPUT_DIR, STATE_FILE, job_id_of

log = logging.getLogger(__name__)

# statfs magic numbers of filesystems whose remote writes inotify cannot see.
_REMOTE_FS = {
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "fuse",
    "ceph",
    "9p",
    "afs",
    "glusterfs",
    "lustre",
    "gpfs",
    "beegfs",
    "davfs",
    "sshfs",
    "vboxsf",
    "virtiofs",
}


def filesystem_type(path: Path) -> str:
    """The type of the mount holding `path`, from /proc/self/mountinfo."""
    real = os.path.realpath(path)
    best, fstype = "", "unknown"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                mount_point = left.split()[4].replace("\\040", " ")
                inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best):
                    best, fstype = mount_point, right.split()[0]
    except OSError:
        pass
    return fstype


def needs_polling(path: Path) -> bool:
    fstype = filesystem_type(path)
    return fstype.split(".")[0] in _REMOTE_FS or fstype.startswith("fuse")


# ------------------------------------------------------------------ format checks


def looks_complete(path: Path, kind: str) -> bool:
    """Cheap check that a file is not cut short: a PDF ends with %%EOF, a ZIP has its
    central directory. Other files (and folders without such members) pass."""
    try:
        if kind == "dir":
            for member in _walk_files(path, limit=2000):
                if member.suffix.lower() in (".pdf", ".zip", ".docx") and not _file_complete(
                    member
                ):
                    return False
            return True
        return _file_complete(path)
    except OSError:
        return False


def _file_complete(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix not in (".pdf", ".zip", ".docx"):
        return True
    with open(path, "rb", opener=_nofollow_opener) as fh:
        size = os.fstat(fh.fileno()).st_size
        tail_len = min(size, 65536 + 22)
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
    if suffix == ".pdf":
        return b"%%EOF" in tail[-1024:]
    return b"PK\x05\x06" in tail  # end of central directory record


def _nofollow_opener(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)


def _walk_files(root: Path, limit: int) -> Iterable[Path]:
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            count += 1
            if count > limit:
                return
            yield Path(dirpath) / name


def signature(path: Path, st: os.stat_result) -> tuple[int, ...]:
    """What must stay unchanged through the settle window."""
    if stat.S_ISDIR(st.st_mode):
        total = count = 0
        newest = st.st_mtime_ns
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            for name in filenames + dirnames:
                try:
                    s = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                count += 1
                total += s.st_size
                newest = max(newest, s.st_mtime_ns)
            if count > 10000:
                break
        return (st.st_ino, count, total, newest)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


# ------------------------------------------------------------------ entries


@dataclass
class Entry:
    """One inbox entry as the tracker sees it."""

    key: str  # path relative to inbox/: "report.md" or "docx/report.md"
    route: str | None
    name: str
    kind: str  # file, dir, requeued, cancel, special
    uid: int
    sig: tuple[int, ...]
    changed_at: float  # monotonic time of the last change seen
    arrived_at: float  # wall time first seen
    seq: int
    moved_in: bool = False
    ready: bool = False  # handed to the scheduler
    truncated: bool = False
    gone: bool = False  # vanished (claimed elsewhere, deleted): the scheduler skips it


def is_ignored(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def is_requeued_folder(path: Path) -> bool:
    """A job folder spoold put back (retry, recovery, drain), not a person's job folder.

    Its state file says so; when a full disk kept that from being written, its name
    (STEM.JOBID) and its input/ folder still do.
    """
    if os.path.lexists(path / STATE_FILE):
        return True
    return job_id_of(path.name) is not None and os.path.isdir(path / INPUT_DIR)


def classify(path: Path, st: os.stat_result) -> str:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return "cancel" if path.name.endswith(".cancel") else "file"
    if stat.S_ISDIR(mode):
        return "requeued" if is_requeued_folder(path) else "dir"
    return "special"  # symlink, FIFO, socket, device: never opened, never followed


_seq = itertools.count()


class InboxTracker:
    """The entries of one spool's inbox (and its route folders)."""

    def __init__(
        self,
        inbox: Path,
        routes: Iterable[str],
        ignore: Iterable[str],
        settle_s: float,
        incomplete_after_s: float,
    ) -> None:
        self.inbox = inbox
        self.routes = set(routes)
        self.ignore = tuple(ignore)
        self.settle_s = settle_s
        self.incomplete_after_s = incomplete_after_s
        self.entries: dict[str, Entry] = {}
        self._pending: set[str] = set()  # entries still being written: re-checked often
        self._unready: set[str] = set()  # every entry not yet handed to the scheduler
        self._lock = threading.Lock()
        self._moved_hints: set[str] = set()

    def configure(
        self,
        routes: Iterable[str],
        ignore: Iterable[str],
        settle_s: float,
        incomplete_after_s: float,
    ) -> None:
        self.routes = set(routes)
        self.ignore = tuple(ignore)
        self.settle_s = settle_s
        self.incomplete_after_s = incomplete_after_s

    # -- hints from observers (any thread)

    def hint_moved(self, key: str) -> None:
        with self._lock:
            self._moved_hints.add(key)

    # -- scanning (daemon thread)

    def _key_parts(self, key: str) -> tuple[str | None, str]:
        route, _, name = key.rpartition("/")
        return (route or None), name

    def _observe(self, key: str, now: float, moved: bool) -> Entry | None:
        route, name = self._key_parts(key)
        path = self.inbox / key
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self._forget(key)
            return None
        kind = classify(path, st)
        try:
            sig = signature(path, st) if kind in ("file", "dir", "cancel") else (st.st_ino,)
        except OSError:
            sig = (st.st_ino,)
        entry = self.entries.get(key)
        if entry is None or entry.sig[0] != sig[0]:
            entry = Entry(key, route, name, kind, st.st_uid, sig, now, time.time(), next(_seq))
            self.entries[key] = entry
            self._unready.add(key)
            if kind in ("file", "dir", "cancel"):
                self._pending.add(key)
        elif entry.sig != sig:
            entry.sig = sig
            entry.changed_at = now
            entry.moved_in = False  # written to after the rename: settle like any other
        if moved:
            entry.moved_in = True
        return entry

    def _forget(self, key: str) -> None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            entry.gone = True
        self._pending.discard(key)
        self._unready.discard(key)

    def scan(self, now: float) -> list[Entry]:
        """Full scan: the truth. Returns entries that became ready."""
        seen: set[str] = set()
        dirs: list[tuple[Path, str]] = [(self.inbox, "")]
        dirs += [(self.inbox / r, r + "/") for r in sorted(self.routes)]
        for folder, prefix in dirs:
            try:
                it = os.scandir(folder)
            except FileNotFoundError:
                continue
            with it:
                for de in it:
                    key = prefix + de.name
                    known = self.entries.get(key)
                    if known is None:
                        if (not prefix and de.name in self.routes) or is_ignored(
                            de.name, self.ignore
                        ):
                            continue
                        self._observe(key, now, moved=False)
                    elif key in self._pending:
                        self._observe(key, now, moved=False)
                    seen.add(key)
                    # Ready entries are not stat'ed again: a scan costs a listing, not
                    # a stat per queued job.
        for key in [k for k in self.entries if k not in seen]:
            self._forget(key)
        return self._promote(now)

    def check_pending(self, now: float) -> list[Entry]:
        """Re-check only the entries still being written, plus inotify move hints."""
        with self._lock:
            moved, self._moved_hints = self._moved_hints, set()
        for key in moved:
            route, name = self._key_parts(key)
            if (route is not None and route not in self.routes) or is_ignored(name, self.ignore):
                continue
            self._observe(key, now, moved=True)
        for key in list(self._pending):
            self._observe(key, now, moved=False)
        return self._promote(now)

    def _promote(self, now: float) -> list[Entry]:
        # Only entries not yet ready are looked at: cost grows with what is arriving,
        # not with the length of the queue.
        ready: list[Entry] = []
        for key in list(self._unready):
            entry = self.entries[key]
            if entry.kind in ("requeued", "special") or entry.moved_in:
                entry.ready = True
            elif now - entry.changed_at >= self.settle_s:
                if looks_complete(self.inbox / key, entry.kind):
                    entry.ready = True
                elif now - entry.changed_at >= self.incomplete_after_s:
                    entry.ready = entry.truncated = True
            if entry.ready:
                self._pending.discard(key)
                self._unready.discard(key)
                ready.append(entry)
        return ready

    def drop(self, key: str) -> None:
        """The daemon claimed or removed this entry."""
        self._forget(key)

    def has_pending(self) -> bool:
        return bool(self._pending) or bool(self._moved_hints)

    def queued_count(self) -> int:
        return len(self.entries)


# ------------------------------------------------------------------ observers


class Observer:
    """Base class: something that tells a tracker to look sooner."""

    mode = "poll"

    def start(self) -> None:  # pragma: no cover - trivial
        pass

    def stop(self) -> None:  # pragma: no cover - trivial
        pass


class PollingObserver(Observer):
    """No hints at all: the daemon's periodic scans at poll_interval_ms are everything."""

    mode = "poll"


class InotifyObserver(Observer):
    """inotify on inbox/ and each route folder, through watchdog's inotify wrapper.

    watchdog's high-level observer holds every rename event for half a second to pair
    it with its source; a hot folder wants the rename at once, so this registers a
    callback on watchdog's InotifyFD and reads the raw events. Not recursive: job
    folders being filled are re-checked by the tracker until they settle.
    """

    mode = "inotify"

    def __init__(
        self,
        watches: dict[Path, tuple[InboxTracker, str]],
        wake: Callable[[], None],
        on_overflow: Callable[[], None],
    ) -> None:
        self.watches = watches
        self.wake = wake
        self.on_overflow = on_overflow
        self._fd: Any = None
        self._registered: list[tuple[Any, Any]] = []

    def start(self) -> None:
        from watchdog.observers.inotify_c import CallbackId, InotifyFD, Mask
        from watchdog.observers.inotify_c import InotifyConstants as C

        mask = C.IN_MOVED_TO | C.IN_CREATE | C.IN_CLOSE_WRITE | C.IN_DONT_FOLLOW | C.IN_ONLYDIR
        outer = self

        class Callback:
            def __init__(self, tracker: InboxTracker, prefix: str) -> None:
                self.tracker, self.prefix = tracker, prefix

            def on_event(self, event: Any) -> None:
                if event.is_moved_to and event.name:
                    self.tracker.hint_moved(self.prefix + os.fsdecode(event.name))
                outer.wake()

            def on_watch_deleted(self, wd: Any) -> None:
                outer.on_overflow()  # a watched folder vanished: rescan says what is left

            def on_queue_overflow(self) -> None:
                outer.on_overflow()

        fd = InotifyFD()
        fd.start()
        for i, (folder, (tracker, prefix)) in enumerate(self.watches.items()):
            folder.mkdir(exist_ok=True)
            wd = fd.add_callback(
                os.fsencode(folder), Mask(mask), Callback(tracker, prefix), CallbackId(i + 1)
            )
            self._registered.append((wd, i + 1))
        self._fd = fd

    def stop(self) -> None:
        fd = self._fd
        if fd is not None:
            try:
                fd.remove_callbacks(self._registered)
            except OSError:
                pass
            fd.stop()
            fd.join(timeout=5)
            self._fd = None
