"""Setting up what the loop runs on: spools, detection, and reloading their settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..settings import DEFAULT_IGNORE, SpoolSettings, load_spool_settings
from ..spool.clock import SpoolClock
from ..spool.eventfiles import writer_name
from ..spool.eventlog import EventLog
from ..spool.events import DaemonReloaded, DaemonReloadRefused
from ..spool.fstype import needs_polling
from ..spool.leases import OwnLease, PeerWatcher
from ..spool.protocol import open_spool
from .inbox.board import WaitingBoard
from .inbox.observers import InotifyObserver, Observer, PollingObserver
from .inbox.tracker import InboxTracker
from .listeners import ListenerBus
from .runtime import SpoolRuntime

log = logging.getLogger("spoold")


def open_runtime(root: Path, defaults: dict[str, Any], host_id: str, token: str) -> SpoolRuntime:
    paths = open_spool(root)
    settings = load_spool_settings(root, defaults)
    for route in settings.routes:
        (paths.inbox / route).mkdir(exist_ok=True)
    tracker = InboxTracker(
        paths.inbox,
        settings.routes,
        (*settings.ignore, *DEFAULT_IGNORE),
        settings.settle_ms / 1000,
        settings.incomplete_after_s,
        settings.unchanged_fail_s,
    )
    spool_clock = SpoolClock(paths.clock_probe)
    events = EventLog(
        paths.events,
        host_id,
        int(settings.events_max_mb * 2**20),
        writer=writer_name(host_id, token),  # the file of this instance alone
        held_max=settings.events_held_max,
        spool_time=spool_clock.now,
    )
    return SpoolRuntime(
        root=root,
        paths=paths,
        settings=settings,
        events=events,
        lease=OwnLease(paths.daemons, host_id, token),
        peers=PeerWatcher(paths.daemons, host_id, settings.lease_ttl_s),
        tracker=tracker,
        spool_clock=spool_clock,
        board=WaitingBoard(tracker, paths.waiting, token, host_id),
    )


def detect_mode(spools: list[SpoolRuntime], forced: str | None) -> str:
    modes = set()
    for rt in spools:
        mode = forced or rt.settings.detect
        if mode == "auto":
            mode = "poll" if needs_polling(rt.root) else "inotify"
        modes.add(mode)
    return "poll" if "poll" in modes else "inotify"


def make_observer(
    mode: str,
    spools: list[SpoolRuntime],
    wake: Callable[[], None],
    on_overflow: Callable[[], None],
) -> Observer:
    if mode != "inotify":
        return PollingObserver()
    watches: dict[Path, tuple[InboxTracker, str]] = {}
    for rt in spools:
        watches[rt.paths.inbox] = (rt.tracker, "")
        for route in rt.settings.routes:
            watches[rt.paths.inbox / route] = (rt.tracker, route + "/")
    return InotifyObserver(watches, wake=wake, on_overflow=on_overflow)


def reload_spool(
    rt: SpoolRuntime, defaults: dict[str, Any], observer: Observer, bus: ListenerBus
) -> bool:
    """Load spool.toml again; an invalid one is refused and the old settings kept."""
    try:
        new = load_spool_settings(rt.root, defaults)
    except Exception as exc:
        log.error("reload of %s refused, keeping the old settings: %s", rt.root, exc)
        bus.emit(rt, DaemonReloadRefused(reason=str(exc)[:500]))
        return False
    apply_settings(rt, new, observer)
    bus.emit(rt, DaemonReloaded(routes=sorted(new.routes)))
    return True


def apply_settings(rt: SpoolRuntime, new: SpoolSettings, observer: Observer) -> None:
    rt.settings = new
    rt.peers.lease_ttl_s = new.lease_ttl_s
    rt.events.max_bytes = int(new.events_max_mb * 2**20)
    rt.events.held_max = new.events_held_max
    for route in new.routes:
        # A route added by the reload is created and watched at once.
        folder = rt.paths.inbox / route
        try:
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            log.error("cannot create route folder %s: %s", folder, exc.strerror)
            continue
        observer.watch(folder, rt.tracker, route + "/")
    rt.tracker.configure(
        new.routes,
        (*new.ignore, *DEFAULT_IGNORE),
        new.settle_ms / 1000,
        new.incomplete_after_s,
        new.unchanged_fail_s,
    )
