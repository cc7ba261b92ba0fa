"""Detection: which inbox entries exist and which are complete enough to claim.

Observers (inotify through watchdog, or plain polling) only give hints; `InboxTracker`
keeps the truth from directory scans: a periodic full scan, a rescan after an inotify
queue overflow, and cheap re-checks of the few entries still being written.

An entry is complete when it was renamed into inbox/ (from tmp/ or from a temporary
name inside inbox/), or when its (size, mtime, inode) has not changed for the settle
window and its cheap format check passes. A settled entry that fails the check waits
(`waiting()`: which member, what is wrong, since when) and is reported as truncated, so
a person sees it, once it has stayed unchanged for a bound (docs/protocol.md, "When an
entry is complete"):

- `incomplete_after_s` (1 h) when this daemon saw it change: a writer that paused;
- `unchanged_fail_s` (2 min) when it never changed since this daemon first saw it: it
  was there at start-up, or arrived on a polled mount, where no rename is seen.

A writer still writing (size or mtime moving) is never given up on.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ...spool.clock import wall_time
from ...spool.entries import (
    CHECKED_SUFFIXES,
    EntryKind,
    Incomplete,
    classify,
    compile_ignore,
    incomplete_member,
)
from ...spool.ids import split_named_id
from ...spool.jobjson import JobJson
from ...spool.transient import call_with_retry, is_transient

log = logging.getLogger(__name__)


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


def _lstat(path: str) -> os.stat_result:
    """os.lstat, with bounded retries of transient errors: tenacity's bookkeeping (some
    30 µs, ten lstats) only once a first call has failed (spool/transient.py)."""
    try:
        return os.lstat(path)
    except OSError as exc:
        if not is_transient(exc):
            raise
    return call_with_retry(os.lstat, path)


# ------------------------------------------------------------------ entries


@dataclass
class Entry:
    """One inbox entry as the tracker sees it."""

    key: str  # path relative to inbox/: "report.md" or "docx/report.md"
    route: str | None
    name: str
    kind: EntryKind
    uid: int
    sig: tuple[int, ...]
    changed_at: float  # monotonic time of the last change seen
    arrived_at: float  # wall time first seen
    seq: int
    moved_in: bool = False
    ready: bool = False  # handed to the scheduler
    truncated: bool = False
    gone: bool = False  # vanished (claimed elsewhere, deleted): the scheduler skips it
    check_at: float = 0.0  # monotonic time of the next settle re-check (while not ready)
    incomplete_sig: tuple[int, ...] | None = None  # sig that last failed the format check
    problem: Incomplete | None = None  # why that sig failed it
    seen_changing: bool = False  # its sig changed while this daemon watched
    # The id the entry chose: a job folder's job.json `id` (read when ready), a file's
    # from its name (report.ID.md, spool/ids.py `split_named_id`).
    job_id: str | None = None
    job_json: JobJson | None = None  # a job folder's job.json, read once when ready


_seq = itertools.count()


class InboxTracker:
    """The entries of one spool's inbox (and its route folders).

    Entries not yet handed to the scheduler sit in a heap by the time they are next
    looked at: a few times per settle window while they settle, so the cost of waiting
    grows with the entries that are due, not with all that are pending. Entries that are
    complete at once (renamed in, requeued folders, specials) are promoted on the next
    look. Ready entries are never stat'ed again.
    """

    def __init__(
        self,
        inbox: Path,
        routes: Iterable[str],
        ignore: Iterable[str],
        settle_s: float,
        incomplete_after_s: float,
        unchanged_fail_s: float = 120.0,
    ) -> None:
        self.inbox = inbox
        self._inbox = os.fspath(inbox)
        self.entries: dict[str, Entry] = {}
        self._pending: set[str] = set()  # every entry not yet handed to the scheduler
        self._due: list[tuple[float, int, str]] = []  # (check_at, seq, key); stale ones skipped
        self._marker_keys: set[str] = set()  # entries that are cancel markers
        self._now: list[Entry] = []  # complete at once: promoted on the next look
        self._lock = threading.Lock()
        self._moved_hints: set[str] = set()
        self._waiting: set[str] = set()  # settled entries that fail the format check
        self.waiting_version = 0  # grows whenever _waiting or one of its entries changes
        self.configure(routes, ignore, settle_s, incomplete_after_s, unchanged_fail_s)

    def configure(
        self,
        routes: Iterable[str],
        ignore: Iterable[str],
        settle_s: float,
        incomplete_after_s: float,
        unchanged_fail_s: float = 120.0,
    ) -> None:
        changed = getattr(self, "settle_s", settle_s) != settle_s
        self.routes = set(routes)
        self.ignore = tuple(ignore)
        self._ignore_re = compile_ignore(self.ignore)
        self.settle_s = settle_s
        self.incomplete_after_s = incomplete_after_s
        self.unchanged_fail_s = unchanged_fail_s
        changed = changed or bool(self._waiting)  # their bounds may have moved
        self.waiting_version += 1
        if changed:
            # A new settle window: look at every waiting entry again soon.
            now = time.monotonic()
            for key in self._pending:
                entry = self.entries.get(key)
                if entry is not None:
                    self._check_later(entry, now)

    def _ignored(self, name: str) -> bool:
        return self._ignore_re is not None and self._ignore_re.match(name) is not None

    @property
    def _recheck_s(self) -> float:
        # How often a settling entry is stat'ed: 4 times per window (the window is then
        # 1-1.25 settle_s after the last change), at most 50 times a second.
        return max(self.settle_s / 4, 0.02)

    # -- hints from observers (any thread)

    def hint_moved(self, key: str) -> None:
        with self._lock:
            self._moved_hints.add(key)

    # -- scanning (daemon thread)

    def _key_parts(self, key: str) -> tuple[str | None, str]:
        route, _, name = key.rpartition("/")
        return (route or None), name

    def _check_later(self, entry: Entry, at: float) -> None:
        entry.check_at = at
        heapq.heappush(self._due, (at, entry.seq, entry.key))

    def _observe(
        self, key: str, now: float, moved: bool, st: os.stat_result | None = None
    ) -> Entry | None:
        if st is None:
            try:
                st = _lstat(os.path.join(self._inbox, key))
            except FileNotFoundError:
                self._forget(key)
                return None
        mode = st.st_mode
        sig: tuple[int, ...]
        if stat.S_ISREG(mode):
            kind = EntryKind.CANCEL if key.endswith(".cancel") else EntryKind.FILE
            sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        elif stat.S_ISDIR(mode):
            path = os.path.join(self._inbox, key)
            kind = classify(path, st)
            sig = (st.st_ino,)
            # A folder renamed in is complete at once: its members are walked (a listing
            # and an lstat each) only for a folder that must settle.
            if kind is EntryKind.DIR and not moved:
                try:
                    sig = signature(Path(path), st)
                except OSError:
                    pass
        else:
            kind, sig = EntryKind.SPECIAL, (st.st_ino,)
        entry = self.entries.get(key)
        if entry is None or entry.sig[0] != sig[0]:
            if entry is not None:
                entry.gone = True  # replaced by another entry of the same name
                self._stop_waiting(entry)
            entry = self.entries[key] = self._new_entry(key, kind, st.st_uid, sig, now)
            if kind is EntryKind.CANCEL:
                self._marker_keys.add(key)
            else:
                self._marker_keys.discard(key)
            self._pending.add(key)
            # Cancel markers need no settle window: one present at start-up must count
            # before a job renamed in just after it, and a half-written "hard" reads as
            # the gentler graceful.
            if moved or kind not in (EntryKind.FILE, EntryKind.DIR):
                entry.moved_in = moved
                self._now.append(entry)
            else:
                # With no settle window the entry is looked at in this very pass.
                self._check_later(entry, now + self._recheck_s if self.settle_s > 0 else now)
            return entry
        if entry.sig != sig and not (moved and kind is EntryKind.DIR):
            entry.sig = sig
            entry.changed_at = now
            entry.moved_in = False  # written to after the rename: settle like any other
            entry.seen_changing = True
            self._stop_waiting(entry)  # being written again: settled afresh
        if moved and not entry.ready:
            entry.moved_in = True
            self._now.append(entry)
        return entry

    def _new_entry(
        self, key: str, kind: EntryKind, uid: int, sig: tuple[int, ...], now: float
    ) -> Entry:
        route, name = self._key_parts(key)
        chosen = None
        if kind is EntryKind.FILE:  # report.ID.md: the job report.md, id ID (spool/ids.py)
            name, chosen = split_named_id(name)
        entry = Entry(key, route, name, kind, uid, sig, now, wall_time(), next(_seq))
        entry.job_id = chosen
        return entry

    def _forget(self, key: str) -> None:
        self._marker_keys.discard(key)
        entry = self.entries.pop(key, None)
        if entry is not None:
            entry.gone = True
            self._stop_waiting(entry)
        self._pending.discard(key)

    def scan(self, now: float) -> list[Entry]:
        """Full scan: the truth. Returns entries that became ready."""
        # Renames already hinted first: such an entry is complete at once, not walked
        # and left to settle because the scan came before the pass that takes hints.
        self._take_hints(now)
        seen: set[str] = set()
        dirs: list[tuple[str, str]] = [(self._inbox, "")]
        dirs += [(os.path.join(self._inbox, r), r + "/") for r in sorted(self.routes)]
        entries = self.entries
        new: list[tuple[int, str, os.stat_result]] = []
        for folder, prefix in dirs:
            try:
                it = call_with_retry(os.scandir, folder)
            except FileNotFoundError:
                continue
            with it:
                for de in it:
                    key = prefix + de.name
                    if key not in entries:
                        if (not prefix and de.name in self.routes) or self._ignored(de.name):
                            continue
                        try:
                            st = de.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        except OSError as exc:
                            if not is_transient(exc):
                                raise
                            continue  # ESTALE and the like: seen again by the next scan
                        new.append((st.st_ctime_ns, key, st))
                    seen.add(key)
                    # Known entries are not stat'ed here: a scan costs a listing, not a
                    # stat per queued job; settling ones are re-checked when they are due.
        # New entries in arrival order (a backlog at start-up, a missed hint), not in
        # directory order: ctime is when the entry was renamed or written in.
        new.sort(key=lambda item: (item[0], item[1]))
        for _, key, st in new:
            self._observe(key, now, moved=False, st=st)
        for key in [k for k in entries if k not in seen]:
            self._forget(key)
        return self._promote(now)

    def check_pending(self, now: float) -> list[Entry]:
        """Look at the entries that are due, plus inotify move hints."""
        self._take_hints(now)
        return self._promote(now)

    def _take_hints(self, now: float) -> None:
        if self._moved_hints:
            with self._lock:
                moved, self._moved_hints = self._moved_hints, set()
            for key in moved:
                route, name = self._key_parts(key)
                if (route is not None and route not in self.routes) or self._ignored(name):
                    continue
                self._observe(key, now, moved=True)

    def _promote(self, now: float) -> list[Entry]:
        # Only entries that are due are looked at: cost grows with what is arriving,
        # not with the length of the queue or the number of entries still settling.
        ready: list[Entry] = []
        if self._now:
            fresh, self._now = self._now, []
            for entry in fresh:
                if not entry.ready and not entry.gone:
                    self._make_ready(entry, ready)
        due = self._due
        while due and due[0][0] <= now:
            at, seq, key = heapq.heappop(due)
            found = self.entries.get(key)
            if found is None or found.seq != seq or found.check_at != at or found.ready:
                continue  # stale: replaced, rescheduled, promoted or gone
            self._settle(found, at, now, ready)
        if len(due) > 64 and len(due) > 4 * len(self._pending):
            self._compact()
        return ready

    def _settle(self, entry: Entry, at: float, now: float, ready: list[Entry]) -> None:
        """An entry's re-check is due: stat it again, then promote it or look later."""
        if at > entry.changed_at:  # else: observed in this very pass, no second stat
            before = entry.sig
            if self._observe(entry.key, now, moved=False) is not entry or entry.moved_in:
                return  # gone, replaced, or renamed in again (promoted from _now)
            if entry.sig != before:
                self._check_later(entry, now + self._recheck_s)
                return
        if now - entry.changed_at < self.settle_s:
            self._check_later(entry, min(now + self._recheck_s, entry.changed_at + self.settle_s))
        elif entry.sig != entry.incomplete_sig and self._complete(entry):
            self._make_ready(entry, ready)
        elif now - entry.changed_at >= self.fail_after_s(entry):
            entry.truncated = True
            self._make_ready(entry, ready)
        else:
            # Settled but cut short: only a change can complete it, so until then a
            # re-check is a stat, not a read; truncated once unchanged for the bound.
            if entry.incomplete_sig != entry.sig:
                entry.incomplete_sig = entry.sig
                self._waiting.add(entry.key)
                self.waiting_version += 1
            limit = entry.changed_at + self.fail_after_s(entry)
            self._check_later(entry, min(now + max(self._recheck_s, 0.25), limit))

    def fail_after_s(self, entry: Entry) -> float:
        """How long an entry that fails its format check may stay unchanged (above)."""
        return self.incomplete_after_s if entry.seen_changing else self.unchanged_fail_s

    def waiting(self) -> list[Entry]:
        """Settled entries that fail their format check (`problem` says why), until
        they change, are claimed, go or are failed."""
        return [self.entries[k] for k in self._waiting if k in self.entries]

    def _stop_waiting(self, entry: Entry) -> None:
        if entry.key in self._waiting and self.entries.get(entry.key) in (entry, None):
            self._waiting.discard(entry.key)
            self.waiting_version += 1

    def _compact(self) -> None:
        """Drop the stale heap items that rescheduling leaves behind."""
        live = []
        for item in self._due:
            entry = self.entries.get(item[2])
            if (
                entry is not None
                and entry.seq == item[1]
                and entry.check_at == item[0]
                and not entry.ready
            ):
                live.append(item)
        heapq.heapify(live)
        self._due = live

    def _complete(self, entry: Entry) -> bool:
        if entry.kind is not EntryKind.DIR and not entry.name.lower().endswith(CHECKED_SUFFIXES):
            return True
        entry.problem = incomplete_member(self.inbox / entry.key, entry.kind)
        return entry.problem is None

    def _make_ready(self, entry: Entry, ready: list[Entry]) -> None:
        entry.ready = True
        self._pending.discard(entry.key)
        self._stop_waiting(entry)
        ready.append(entry)

    def drop(self, key: str) -> None:
        """The daemon claimed or removed this entry."""
        self._forget(key)

    def next_check(self) -> float | None:
        """Monotonic time at which an entry is due to be looked at (None: none waits)."""
        if self._now or self._moved_hints:
            return 0.0
        return self._due[0][0] if self._due else None

    def queued_count(self) -> int:
        """Jobs waiting in the inbox; cancel markers are requests, not jobs."""
        return len(self.entries) - len(self._marker_keys)

    def oldest_arrival(self) -> float | None:
        """Wall time the longest-waiting entry was first seen (None: nothing waits).

        A full pass (a replaced entry keeps its old place in the dict): for the metrics'
        housekeeping pass every few seconds, not for the loop.
        """
        return min(
            (
                e.arrived_at
                for e in self.entries.values()
                if e.kind is not EntryKind.CANCEL and not e.gone
            ),
            default=None,
        )
