"""The events log of one spool, tailed once by the gateway (a thread per spool).

Every new line goes to the job index (where each job's folder is) and wakes whatever
waits on the spool: `?wait` answers and Server-Sent Events streams. The log is a file
per daemon, read merged by spool/eventfiles.py's `Tail`. inotify on `.spoold/` and
`.spoold/events/` says when a file grew; where inotify cannot see remote writes (NFS,
SMB, FUSE: spool/fstype.py), or as a safety net, the files are looked at every `poll_s`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..spool.eventfiles import EVENTS_DIR, Tail
from ..spool.fstype import needs_polling

log = logging.getLogger("spoold.http")

IN_MODIFY, IN_CREATE, IN_MOVED_TO = 0x2, 0x100, 0x80
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
_MASK = IN_MODIFY | IN_CREATE | IN_MOVED_TO


class _Inotify:
    """An inotify descriptor watching folders for writes and renames."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = int(self.libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        if self.fd < 0:
            raise OSError("inotify_init1 failed")
        self.watched: set[Path] = set()

    def watch(self, folder: Path) -> bool:
        if folder in self.watched:
            return True
        if self.libc.inotify_add_watch(self.fd, os.fsencode(folder), _MASK) < 0:
            return False
        self.watched.add(folder)
        return True

    def close(self) -> None:
        os.close(self.fd)


def _inotify(folder: Path) -> _Inotify | None:
    """Watching `folder` (.spoold/), or None where inotify cannot be had."""
    try:
        ino = _Inotify()
    except (OSError, AttributeError):
        return None
    if not ino.watch(folder):
        ino.close()
        return None
    return ino


class Follower:
    """Reads the events log from where it was when the gateway started, line by line."""

    def __init__(
        self,
        events: Path,
        on_events: Callable[[list[dict[str, Any]]], None],
        poll_s: float = 0.5,
    ) -> None:
        self.path = events
        self.on_events = on_events
        self.inotify = None if needs_polling(events.parent) else _inotify(events.parent)
        self.poll_s = poll_s if self.inotify is not None else min(poll_s, 0.05)
        self._lock = threading.Lock()  # one reader at a time: the thread or catch_up()
        self._tail = Tail(events)  # from the log's end now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spoold-http-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.inotify is not None:
            self.inotify.close()
            self.inotify = None
        self._tail.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.catch_up()
            except Exception:  # never let the thread die: the next pass tries again
                log.exception("reading %s failed", self.path)
            self._idle()

    def _idle(self) -> None:
        if self.inotify is None:
            self._stop.wait(self.poll_s)
            return
        # The per-daemon files' folder appears with the first daemon of this version.
        self.inotify.watch(self.path.parent / EVENTS_DIR)
        ready, _, _ = select.select([self.inotify.fd], [], [], self.poll_s)
        if ready:
            try:
                while os.read(self.inotify.fd, 65536):
                    pass
            except BlockingIOError:
                pass

    def catch_up(self) -> None:
        """Read whatever the log's files gained since the last look (also after a
        rotation, and from a daemon that started since)."""
        with self._lock:
            lines = self._tail.poll()
        if lines:
            self.on_events(lines)
