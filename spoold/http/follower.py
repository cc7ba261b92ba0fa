"""The events log of one spool, tailed once by the gateway.

Every new line goes to the job index (where each job's folder is) and wakes whatever
waits on the spool: `?wait` answers and Server-Sent Events streams. The log is a file
per daemon, read merged by spool/eventfiles.py's `Tail`. inotify on `.spoold/` and
`.spoold/events/` says when a file grew: its descriptor is read by the server's event
loop itself, so a job's end wakes its `?wait` with no thread in between (a thread's
wake-up, the GIL and a hand-over to the loop cost milliseconds on a busy host). Where
inotify cannot see remote writes (NFS, SMB, FUSE: spool/fstype.py) a thread looks at
the files every `poll_s`; with inotify the loop looks every `poll_s` as a safety net.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import select
import struct
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
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)
_READ_SIZE = 65536
# With nobody waiting on the spool, new lines are read at most this long after they
# were written, many at a time (the index finds a job without them: JobIndex.find).
GATHER_S = 0.05


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

    def drain(self) -> bool:
        """Read the events that are ready; True when every one was a write to a file
        (no file created or renamed, no overflow). One read: the descriptor is watched
        level-triggered, so anything left wakes the loop again."""
        try:
            buf = os.read(self.fd, _READ_SIZE)
        except BlockingIOError:
            return True
        at, writes_only = 0, True
        while at + _EVENT.size <= len(buf):
            _, mask, _, length = _EVENT.unpack_from(buf, at)
            writes_only = writes_only and mask == IN_MODIFY
            at += _EVENT.size + length
        return writes_only

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
        nobody_waits: Callable[[], bool] = lambda: False,
    ) -> None:
        self.path = events
        self.on_events = on_events
        self.nobody_waits = nobody_waits
        self.inotify = None if needs_polling(events.parent) else _inotify(events.parent)
        self.poll_s = poll_s if self.inotify is not None else min(poll_s, 0.05)
        self._lock = threading.Lock()  # one reader at a time: the thread or catch_up()
        self._tail = Tail(events)  # from the log's end now
        self._stop = threading.Event()
        self._events_dir = events.parent / EVENTS_DIR
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._gathering: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Follow on `loop` (inotify), or in a thread of its own (polling, or no loop)."""
        if self.inotify is not None and loop is not None:
            self._loop = loop
            self.inotify.watch(self._events_dir)  # if it exists yet: else once it appears
            loop.add_reader(self.inotify.fd, self._on_inotify)
            self._timer = loop.call_later(self.poll_s, self._tick)
            return
        self._thread = threading.Thread(target=self._run, name="spoold-http-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._loop is not None and self.inotify is not None:
            self._loop.remove_reader(self.inotify.fd)
        if self._timer is not None:
            self._timer.cancel()
        if self._gathering is not None:
            self._gathering.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.inotify is not None:
            self.inotify.close()
            self.inotify = None
        self._tail.close()

    def _on_inotify(self) -> None:
        """On the loop: the log's folders changed. When they only grew (a daemon wrote
        a line: nearly always), the files already open are read on, with no listing;
        and when nobody waits on the spool, GATHER_S later, with the lines that follow
        (a tiny job writes four: a read each cost a tenth of a POST's CPU)."""
        assert self.inotify is not None and self._loop is not None
        if not self.inotify.drain():
            self._cancel_gathering()
            self._safely(self.catch_up)
        elif not self.nobody_waits():
            self._cancel_gathering()
            self._safely(self.catch_up_known)
        elif self._gathering is None:
            self._gathering = self._loop.call_later(GATHER_S, self._gathered)

    def _gathered(self) -> None:
        self._gathering = None
        self._safely(self.catch_up_known)

    def _cancel_gathering(self) -> None:
        if self._gathering is not None:
            self._gathering.cancel()
            self._gathering = None

    def flush(self) -> None:
        """On the loop, before someone starts waiting: read what is being gathered now."""
        if self._gathering is not None:
            self._cancel_gathering()
            self._safely(self.catch_up_known)

    def _tick(self) -> None:
        """On the loop, every poll_s: what inotify may have missed."""
        if self._stop.is_set():
            return
        self._safely(self.catch_up)
        assert self._loop is not None
        self._timer = self._loop.call_later(self.poll_s, self._tick)

    def _safely(self, read: Callable[[], None]) -> None:
        try:
            if self.inotify is not None:
                # The per-daemon files' folder appears with the first daemon of this version.
                self.inotify.watch(self._events_dir)
            read()
        except Exception:  # never let following stop: the next pass tries again
            log.exception("reading %s failed", self.path)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._safely(self.catch_up)
            self._idle()

    def _idle(self) -> None:
        if self.inotify is None:
            self._stop.wait(self.poll_s)
            return
        ready, _, _ = select.select([self.inotify.fd], [], [], self.poll_s)
        if ready:
            self.inotify.drain()

    def catch_up(self, known_only: bool = False) -> None:
        """Read whatever the log's files gained since the last look (also after a
        rotation, and from a daemon that started since); `known_only`: only the files
        already open (Tail.poll)."""
        with self._lock:
            lines = self._tail.poll(known_only=known_only)
        if lines:
            self.on_events(lines)

    def catch_up_known(self) -> None:
        self.catch_up(known_only=True)
