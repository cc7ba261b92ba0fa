"""How threads and signal handlers wake the main loop.

Items go on a deque (append is atomic, no lock) and a byte goes down a non-blocking
pipe that the loop select()s on. A queue.Queue would deadlock here: a signal handler
runs in the main thread and may interrupt it while it holds the queue's lock inside get().
"""

from __future__ import annotations

import os
import select
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class WakeupKind(StrEnum):
    DONE = "done"  # an execution ended (executor thread): job_id
    STOP = "stop"  # SIGTERM or SIGINT
    RELOAD = "reload"  # SIGHUP
    CALL = "call"  # run `call` on the loop thread (a finished hook's result)
    OVERFLOW = "overflow"  # the inotify queue overflowed: rescan every inbox
    DRAIN_DEADLINE = "drain_deadline"  # drain_s passed since the stop began
    FS = "fs"  # an inotify hint: look at the inboxes
    WORKER_READY = "worker_ready"  # a starting worker can take jobs (executor thread)


@dataclass(frozen=True)
class Wakeup:
    kind: WakeupKind
    job_id: str = ""
    call: Callable[[], None] | None = None


class Wakeups:
    def __init__(self) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._items: deque[Wakeup] = deque()

    def put(self, item: Wakeup) -> None:
        self._items.append(item)
        try:
            os.write(self._w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of pokes already: the loop will wake anyway

    def wait(self, timeout: float) -> None:
        if self._items:
            return
        try:
            select.select([self._r], [], [], timeout)
        except InterruptedError:
            pass
        try:
            while os.read(self._r, 4096):
                pass
        except BlockingIOError:
            pass

    def pop_all(self) -> list[Wakeup]:
        out = []
        while self._items:
            out.append(self._items.popleft())
        return out
