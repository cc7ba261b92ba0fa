"""Observers: what tells an inbox tracker to look sooner (inotify hints), or nothing
(polling, on mounts whose remote writes inotify cannot see)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tracker import InboxTracker


class Observer:
    """Base class: something that tells a tracker to look sooner."""

    mode = "poll"

    def start(self) -> None:  # pragma: no cover - trivial
        pass

    def stop(self) -> None:  # pragma: no cover - trivial
        pass

    def watch(self, folder: Path, tracker: InboxTracker, prefix: str) -> None:
        """Watch one more folder (a route added by a reload)."""


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
        self._add: Callable[[Path, InboxTracker, str], None] | None = None

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
        self._fd = fd

        def add(folder: Path, tracker: InboxTracker, prefix: str) -> None:
            folder.mkdir(exist_ok=True)
            cid = len(self._registered) + 1
            wd = fd.add_callback(
                os.fsencode(folder), Mask(mask), Callback(tracker, prefix), CallbackId(cid)
            )
            self._registered.append((wd, cid))

        self._add = add
        for folder, (tracker, prefix) in self.watches.items():
            add(folder, tracker, prefix)

    def watch(self, folder: Path, tracker: InboxTracker, prefix: str) -> None:
        if folder in self.watches:
            return
        self.watches[folder] = (tracker, prefix)
        if self._add is not None:
            self._add(folder, tracker, prefix)

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
