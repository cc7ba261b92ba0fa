"""The spools a gateway serves, each addressed by its folder's name (`/v1/spools/NAME`).

Each holds its paths, its settings (read again when spool.toml changes, as the daemon
does on SIGHUP), its job index and the follower of its events log, and the waiters
that follower wakes (`?wait` answers, event streams), on the server's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import Any

from ..api import inbox_view
from ..errors import ConfigError
from ..ops.metrics import FolderCount
from ..settings import SpoolSettings, load_spool_settings
from ..spool.entries import compile_ignore
from ..spool.protocol import SpoolPaths, open_spool
from ..tools.jobview import InboxView
from ..tools.lookup import JobLocation
from .follower import Follower
from .index import JobIndex
from .signing import Signer

log = logging.getLogger("spoold.http")


class ServedSpool:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = root.name
        self.paths: SpoolPaths = open_spool(root)
        self._settings_sig: tuple[int, int] | None = None
        self._settings = load_spool_settings(root)
        self._settings_sig = self._sig()
        self._view: InboxView | None = None
        self.index = JobIndex(self.paths, inbox_view(self.paths))
        self.signer = Signer(self.paths)
        self.follower = Follower(
            self.paths.events, self._on_events, nobody_waits=lambda: not self._waiters
        )
        self.counts = {s: FolderCount(self.paths.root / s) for s in ("done", "failed")}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._waiters: set[asyncio.Event] = set()
        self._lock = threading.Lock()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._loop_thread = threading.get_ident()  # start() runs on the loop
        self.index.load()
        self.follower.start(loop)

    def stop(self) -> None:
        self.follower.stop()

    # ------------------------------------------------------------------ settings

    def _sig(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.paths.settings_file)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    @property
    def settings(self) -> SpoolSettings:
        """spool.toml as it is now; a broken edit keeps the last good settings."""
        sig = self._sig()
        if sig != self._settings_sig:
            try:
                self._settings = load_spool_settings(self.root)
                self._view = None
                self.index.view = self.view
            except ConfigError as exc:
                log.warning("%s: keeping the last good settings: %s", self.name, exc)
            self._settings_sig = sig
        return self._settings

    @property
    def view(self) -> InboxView:
        """Route folders and ignored names of the inbox, as the settings say."""
        if self._view is None:
            s = self._settings
            self._view = InboxView(frozenset(s.routes), compile_ignore(s.ignore_patterns()))
        return self._view

    # ------------------------------------------------------------------ waking

    def _on_events(self, events: list[dict[str, Any]]) -> None:
        """From the follower (on the loop, or a thread): learn, then wake the waiters."""
        self.index.learn(events)
        loop = self.loop
        if loop is None or not self._waiters:
            return
        if threading.get_ident() == self._loop_thread:
            self._wake_all()
        else:
            loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for event in list(self._waiters):
            event.set()

    def waiter(self) -> asyncio.Event:
        """An event set at the next growth of the log (call `done_waiting` after)."""
        self.follower.flush()  # lines gathered while nobody waited: read them first
        event = asyncio.Event()
        self._waiters.add(event)
        return event

    def done_waiting(self, event: asyncio.Event) -> None:
        self._waiters.discard(event)

    def has_job(self, job_id: str) -> bool:
        return self.find(job_id) is not None

    def find(self, job_id: str) -> JobLocation | None:
        return self.index.find(job_id, self.follower.catch_up)
