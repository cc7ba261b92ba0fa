"""The events log of one spool, tailed once by the gateway (a thread per spool).

Every new line goes to the job index (where each job's folder is) and wakes whatever
waits on the spool: `?wait` answers and Server-Sent Events streams. inotify on
`.spoold/` says when the log grew; where inotify cannot see remote writes (NFS, SMB,
FUSE: spool/fstype.py), or as a safety net, the log is looked at every `poll_s`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..spool.fstype import needs_polling

log = logging.getLogger("spoold.http")

IN_MODIFY, IN_CREATE, IN_MOVED_TO = 0x2, 0x100, 0x80
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000


def _inotify_fd(folder: Path) -> int | None:
    """An inotify descriptor watching `folder` for writes and renames, or None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fd = int(libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0:
            return None
        mask = IN_MODIFY | IN_CREATE | IN_MOVED_TO
        if libc.inotify_add_watch(fd, os.fsencode(folder), mask) < 0:
            os.close(fd)
            return None
        return fd
    except (OSError, AttributeError):
        return None


class Follower:
    """Reads events.ndjson from where it was when the gateway started, line by line."""

    def __init__(
        self,
        events: Path,
        on_events: Callable[[list[dict[str, Any]]], None],
        poll_s: float = 0.5,
    ) -> None:
        self.path = events
        self.on_events = on_events
        self.inotify = None if needs_polling(events.parent) else _inotify_fd(events.parent)
        self.poll_s = poll_s if self.inotify is not None else min(poll_s, 0.05)
        self._lock = threading.Lock()  # one reader at a time: the thread or catch_up()
        self._ino: int | None = None
        self._offset = 0
        self._buf = b""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            st = os.stat(events)
            self._ino, self._offset = st.st_ino, st.st_size
        except FileNotFoundError:
            pass

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spoold-http-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.inotify is not None:
            os.close(self.inotify)
            self.inotify = None

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
        ready, _, _ = select.select([self.inotify], [], [], self.poll_s)
        if ready:
            try:
                while os.read(self.inotify, 65536):
                    pass
            except BlockingIOError:
                pass

    def catch_up(self) -> None:
        """Read whatever the log gained since the last look (also after a rotation)."""
        with self._lock:
            lines = self._read_new()
        if lines:
            self.on_events(lines)

    def _read_new(self) -> list[dict[str, Any]]:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return []
        with fh:
            ino = os.fstat(fh.fileno()).st_ino
            out: list[dict[str, Any]] = []
            if ino != self._ino:
                out = self._rest_of_rotated()
                self._ino, self._offset, self._buf = ino, 0, b""
            fh.seek(self._offset)
            chunk = fh.read()
        self._offset += len(chunk)
        return out + self._parse(chunk)

    def _rest_of_rotated(self) -> list[dict[str, Any]]:
        """The lines the old file got after our last read, before it was rotated."""
        rotated = self.path.with_name(self.path.name + ".1")
        try:
            with open(rotated, "rb") as fh:
                if os.fstat(fh.fileno()).st_ino != self._ino:
                    return []
                fh.seek(self._offset)
                return self._parse(fh.read())
        except FileNotFoundError:
            return []

    def _parse(self, chunk: bytes) -> list[dict[str, Any]]:
        if not chunk:
            return []
        *lines, self._buf = (self._buf + chunk).split(b"\n")
        out = []
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict):
                out.append(ev)
        return out
