"""What the tracker waits on, published for tools (spoold/spool/waiting.py).

The tracker bumps `waiting_version` whenever an entry starts or stops waiting on its
format check; the board rewrites this daemon's file only then, so a pass of the loop
costs one comparison. A write that fails (a full disk) is tried again on a later pass.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ...spool.clock import iso_of, wall_time
from ...spool.waiting import WaitingEntry, remove_board, write_board
from .tracker import Entry, InboxTracker

log = logging.getLogger("spoold")


class WaitingBoard:
    def __init__(self, tracker: InboxTracker, folder: Path, token: str, host: str) -> None:
        self.tracker = tracker
        self.folder = folder
        self.token = token
        self.host = host
        self._published = 0  # the tracker's waiting_version last written

    def publish(self) -> None:
        """Rewrite the file if what the tracker waits on changed since the last write."""
        version = self.tracker.waiting_version
        if version == self._published:
            return
        now, wall = time.monotonic(), wall_time()
        entries = [self._entry(e, now, wall) for e in self.tracker.waiting()]
        entries.sort(key=lambda e: (e.until or "", e.key))
        try:
            write_board(self.folder, self.token, self.host, entries)
        except OSError as exc:
            log.debug("cannot publish waiting entries in %s: %s", self.folder, exc)
            return
        self._published = version

    def remove(self) -> None:
        remove_board(self.folder, self.token)

    def _entry(self, entry: Entry, now: float, wall: float) -> WaitingEntry:
        since = wall - max(0.0, now - entry.changed_at)
        problem = entry.problem
        return WaitingEntry(
            key=entry.key,
            ino=entry.sig[0],
            member=problem.member if problem else entry.name,
            message=problem.describe(entry.name) if problem else f"{entry.name} is incomplete",
            since=iso_of(since),
            until=iso_of(since + self.tracker.fail_after_s(entry)),
        )
