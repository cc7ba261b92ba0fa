"""The daemon: the main loop and its timers.

One thread owns every decision; observers, the executor, hooks and signal handlers only
put wake-ups on a queue. Per pass: collect finished work, look at the inbox (cheap
pending checks, full scans on a timer), handle cancel markers, renew the lease, recover
lost claims on a timer, then claim only as many jobs as there are idle workers. What a
job goes through is the lifecycle's (lifecycle.py); this module only decides when.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__
from ..ops.metrics import Metrics, MetricsPortError
from ..ops.sdnotify import Notifier
from ..settings import DaemonSettings
from ..share.hooks import HookRunner
from ..spool.clock import wall_time
from ..spool.events import DaemonFailed, DaemonStarted, DaemonStopping
from ..spool.formats import load_plugins
from ..spool.protocol import new_token
from .admission import Admission
from .cancel import CancelMarkers
from .crashpoints import crash_point
from .executor import Executor, PoolBroken, PoolExecutor
from .guard import ErrorGuard
from .housekeeping import Housekeeping, start_metrics, status_line
from .inbox.observers import Observer, PollingObserver
from .lease import LeaseWatch
from .lifecycle import Lifecycle
from .listeners import HooksListener, ListenerBus, MetricsListener, OutputsListener
from .recovery import recover
from .runtime import SpoolRuntime
from .setup import detect_mode, make_observer, open_runtime, reload_spool
from .waiting import Conditions, WaitingRoom
from .wakeups import Wakeup, WakeupKind, Wakeups

log = logging.getLogger("spoold")

EX_SOFTWARE = 70  # sysexits.h: the same internal error kept repeating
HANDLED_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


class Daemon:
    def __init__(
        self,
        spool_roots: list[Path],
        settings: DaemonSettings,
        spool_defaults: dict[str, Any] | None = None,
        executor: Executor | None = None,
    ) -> None:
        # Signals first: a SIGHUP or SIGTERM during the slow start-up is queued, not fatal.
        self.wakeups = Wakeups()
        self.stop_signalled = False  # SIGTERM seen; begin_stop runs when it is drained
        self._install_signals()
        self.settings = settings
        self.spool_defaults = spool_defaults or {}
        self.host_id = settings.host_id or os.uname().nodename
        self.token = new_token()
        self.spools: list[SpoolRuntime] = [
            open_runtime(root, self.spool_defaults, self.host_id, self.token)
            for root in spool_roots
        ]
        # Started in run(), once running/ is recovered: workers take a while to start.
        self.executor = executor or PoolExecutor.for_daemon(
            settings, [rt.settings for rt in self.spools], self._worker_ready
        )
        # Jobs that wait for others (job.json `after`): any job event looks again soon.
        conditions = Conditions()
        waiting = WaitingRoom(conditions)
        self.bus = ListenerBus([OutputsListener(), waiting])
        self.hooks = HookRunner()
        self.bus.add(HooksListener(self.hooks, self.bus, self._call_later))
        self.lifecycle = Lifecycle(
            self.host_id,
            self.token,
            self.executor,
            self.bus,
            self._job_done,
            self._rescan,
            conditions,
        )
        self.markers = CancelMarkers(self.lifecycle)
        self.admission = Admission(self.lifecycle, self.markers, waiting)
        self.lease = LeaseWatch(self.spools, self.lifecycle)
        self.guard = ErrorGuard(limit=20)
        self.error_pause_s = 0.5  # after a failed pass: no busy loop on a lasting error
        self.stopping = False
        self.reload_requested = False
        self.on_wakeup = self._wakeup_table()
        self.rescan_requested = True
        self.observer: Observer = PollingObserver()
        self.detect_mode = "poll"
        self.notifier: Notifier | None = None
        self.metrics: Metrics | None = None
        self.housekeeping = Housekeeping(self.spools, None)
        self._fs_wake_pending = False

    def _wakeup_table(self) -> dict[WakeupKind, Callable[[Wakeup], None]]:
        """What each wake-up does, on the loop thread (wakeups.py says who sends which)."""
        return {
            WakeupKind.DONE: lambda item: self.lifecycle.finish(item.job_id),
            WakeupKind.STOP: lambda item: self._stop_requested(),
            WakeupKind.RELOAD: lambda item: self._reload_requested(),
            WakeupKind.CALL: lambda item: item.call() if item.call is not None else None,
            WakeupKind.DRAIN_DEADLINE: lambda item: self.lifecycle.drain(),
            WakeupKind.OVERFLOW: lambda item: self._overflowed(),
            WakeupKind.FS: lambda item: None,  # the pass that takes it looks at the inboxes
            WakeupKind.WORKER_READY: lambda item: None,  # the pass claims for the worker
        }

    # ------------------------------------------------------------------ set-up
    def _install_signals(self) -> None:
        def on_stop(signum: int, frame: object) -> None:
            self.stop_signalled = True  # a plain store: safe in a signal handler
            self.wakeups.put(Wakeup(WakeupKind.STOP))

        def on_hup(signum: int, frame: object) -> None:
            self.wakeups.put(Wakeup(WakeupKind.RELOAD))

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        # A launcher may block these until the handlers exist (so that a signal in the
        # first milliseconds waits instead of killing): deliver what is pending now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)

    def _job_done(self, job_id: str) -> None:
        self.wakeups.put(Wakeup(WakeupKind.DONE, job_id))

    def _call_later(self, call: Callable[[], None]) -> None:
        self.wakeups.put(Wakeup(WakeupKind.CALL, call=call))

    def _rescan(self) -> None:
        # A job went back to inbox/: look at it on the next pass.
        self.rescan_requested = True

    def _fs_wake(self) -> None:
        # Called from watchdog's thread for every event: one queued wake-up is enough
        # until the loop has run again.
        if not self._fs_wake_pending:
            self._fs_wake_pending = True
            self.wakeups.put(Wakeup(WakeupKind.FS))

    def _notify(self, **fields: str) -> None:
        if self.notifier is not None:
            try:
                self.notifier.notify(**fields)
            except Exception:  # sd_notify must never take the daemon down
                log.debug("sd_notify failed", exc_info=True)

    def _start_metrics(self) -> None:
        try:
            self.metrics = start_metrics(self.spools, self.settings.metrics_port)
        except MetricsPortError as exc:
            self._notify(STATUS=str(exc))
            raise
        self.housekeeping.metrics = self.metrics
        self.bus.add(MetricsListener(self.metrics), first=True)  # before out/ and hooks

    def _worker_ready(self) -> None:  # from the pool's counting thread
        self.wakeups.put(Wakeup(WakeupKind.WORKER_READY))

    # ------------------------------------------------------------------ run

    def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT and a drain; the exit code (0, or 70).

        Raises MetricsPortError (before touching any spool) when --metrics-port cannot
        be bound; `spoold run` turns it into one line and exit code 69.
        """
        # The notifier keeps its own copy of the variables, which leave the environment
        # (as sd_notify(3)'s unset_environment does): workers and hooks inherit it, and
        # must neither report for the daemon nor believe they are watched.
        self.notifier = Notifier(dict(os.environ))
        for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            os.environ.pop(var, None)
        self._start_metrics()
        load_plugins()
        for rt in self.spools:
            rt.paths.daemons.mkdir(exist_ok=True)
            rt.lease.acquire()
        self._notify(STATUS="starting: recovering running/")
        for rt in self.spools:
            recover(rt, self.lifecycle, self.host_id, self.token)
        self.detect_mode = detect_mode(self.spools, self.settings.detect)
        self.observer = make_observer(
            self.detect_mode,
            self.spools,
            self._fs_wake,
            lambda: self.wakeups.put(Wakeup(WakeupKind.OVERFLOW)),
        )
        self.observer.start()
        # Last: the workers' start (seconds of CPU) does not hold up the daemon's own,
        # and it is not waited for (executor.py).
        self.executor.start()
        for rt in self.spools:
            started = DaemonStarted(
                pid=os.getpid(),
                workers=self.executor.workers,
                detect=self.detect_mode,
                version=__version__,
            )
            self.bus.emit(rt, started)
        # Only now: running/ is recovered, so whatever systemd starts after spoold sees
        # every job either queued or finished.
        self._notify(READY="1", STATUS=self.status_line())
        try:
            return self._loop()
        finally:
            self._shutdown()

    def _loop(self) -> int:
        now = time.monotonic()
        self.next_scan = self.next_heartbeat = self.next_housekeeping = now
        self.next_recovery = now + self._recovery_interval()
        # _iterate moves next_scan on only after a full scan of every inbox went
        # through; _housekeeping compares it with this mark to report completed scans.
        self._scan_mark = self.next_scan
        self.watchdog_s: float | None = None
        if self.notifier is not None:
            try:
                self.watchdog_s = self.notifier.watchdog_interval()
            except Exception:
                self.watchdog_s = None
        self.next_watchdog = now
        while True:
            try:
                if self._iterate():
                    return 0
                self.guard.ok()
            except PoolBroken as exc:
                log.critical("%s; exiting with status %d", exc, EX_SOFTWARE)
                self._emit_failed(exc)
                return EX_SOFTWARE
            except Exception as exc:
                # A bug in handling one job must not stop the daemon: the job stays where
                # it is (recovery picks it up). The same error over and over is no
                # longer one job's: exit 70 and let systemd start a fresh daemon.
                if self.guard.failed(exc):
                    self._give_up(exc)
                    return EX_SOFTWARE
                self.wakeups.wait(self.error_pause_s)

    def _iterate(self) -> bool:
        """One pass of the main loop; True when the daemon should exit."""
        now = time.monotonic()
        wall = wall_time()
        self._fs_wake_pending = False
        if isinstance(self.executor, PoolExecutor):
            self.executor.heal()  # a failed pool is replaced before anything is claimed
        if not self.stopping and not self.stop_signalled:
            # A finished execution frees its worker before its job is published: give
            # the worker its next job first, so it does not wait for the publish.
            # (Before the wake-ups are taken: if this raises, they are still queued.)
            self.admission.claim_ready(self.spools, wall)
        # Jobs finished since the last pass: published as one group, then reported.
        with self.lifecycle.finishing.group_commit():
            for item in self.wakeups.pop_all():
                self._handle_wakeup(item)
        if self.stopping and not self.lifecycle.running:
            return True
        if self.reload_requested:
            self.reload()
        self._look_at_inboxes(now, wall)
        self.admission.check_waiting(self.spools, wall)
        if now >= self.next_heartbeat:
            self.lease.check_and_renew()
            crash_point("after_heartbeat")
            self.next_heartbeat = now + min(rt.settings.lease_ttl_s for rt in self.spools) / 3
        if now >= self.next_recovery:
            for rt in self.spools:
                recover(rt, self.lifecycle, self.host_id, self.token)
            self.next_recovery = now + self._recovery_interval()
        if now >= self.next_housekeeping:
            self._housekeeping()
            if not self.stopping:
                self.housekeeping.maybe_purge(now)
            self.next_housekeeping = now + 2.0
        self.markers.handle(self.spools, wall)
        self.lifecycle.enforce_cancel_deadlines(now)
        if not self.stopping:
            self.admission.claim_ready(self.spools, wall)
        if self.watchdog_s is not None and now >= self.next_watchdog:
            # Sent only from here: a loop that stops making progress stops the pings.
            self._notify(WATCHDOG="1")
            self.next_watchdog = now + self.watchdog_s
        # Wake-ups are handled at the top of the next pass, after the claims.
        self.wakeups.wait(self._timeout(now))
        return False

    def _look_at_inboxes(self, now: float, wall: float) -> None:
        if self.rescan_requested or now >= self.next_scan:
            self.rescan_requested = False
            for rt in self.spools:
                self.admission.accept(rt, rt.tracker.scan(now), wall)
            self.next_scan = now + self._scan_interval()
        else:
            for rt in self.spools:
                self.admission.accept(rt, rt.tracker.check_pending(now), wall)
        for rt in self.spools:
            rt.board.publish()  # a comparison, unless an entry started or stopped waiting

    def _timeout(self, now: float) -> float:
        """Seconds the loop may sleep before a timer, a settling entry or a retry is due."""
        timers = (self.next_scan, self.next_heartbeat, self.next_recovery, self.next_housekeeping)
        timeout = min(timers) - now
        due = [t for rt in self.spools if (t := rt.tracker.next_check()) is not None]
        if due:
            timeout = min(timeout, min(due) - now)
        waiting_at = self.admission.next_waiting_check()
        if waiting_at is not None:
            timeout = min(timeout, waiting_at - now)
        retry_at = self.admission.scheduler.next_due()
        if retry_at is not None:
            timeout = min(timeout, retry_at - wall_time())
        if self.watchdog_s is not None:
            timeout = min(timeout, self.next_watchdog - now)
        if self.rescan_requested:
            timeout = 0
        if not self.stopping and self.admission.free_workers():
            paused = {rt.name for rt in self.spools if rt.paused}
            if self.admission.scheduler.has_ready(paused):
                timeout = 0
            for rt in self.spools:
                if rt.paused:
                    timeout = min(timeout, rt.next_disk_check - now)
        return max(0.0, timeout)

    def _handle_wakeup(self, item: Wakeup) -> None:
        self.on_wakeup[item.kind](item)

    def _stop_requested(self) -> None:
        if not self.stopping:
            self.begin_stop()

    def _reload_requested(self) -> None:
        self.reload_requested = True

    def _overflowed(self) -> None:
        log.warning("inotify queue overflowed: rescanning every inbox")
        self.rescan_requested = True

    def _scan_interval(self) -> float:
        if self.detect_mode == "poll":
            return min(rt.settings.poll_interval_ms for rt in self.spools) / 1000
        return min(rt.settings.scan_interval_s for rt in self.spools)

    def _recovery_interval(self) -> float:
        return max(0.5, min(rt.settings.lease_ttl_s for rt in self.spools) / 2)

    # ------------------------------------------------------------------ stop / reload

    def begin_stop(self) -> None:
        self.stopping = True
        self.lifecycle.begin_stop()
        for rt in self.spools:
            event = DaemonStopping(pid=os.getpid(), running=len(self.lifecycle.running))
            self.bus.emit(rt, event)
        # status_line() says "draining" from now on, so housekeeping keeps it.
        self._notify(STOPPING="1", STATUS=self.status_line())
        drain = min(rt.settings.drain_s for rt in self.spools)
        timer = threading.Timer(drain, lambda: self.wakeups.put(Wakeup(WakeupKind.DRAIN_DEADLINE)))
        timer.daemon = True
        timer.start()

    def reload(self) -> None:
        self.reload_requested = False
        if self.stopping:
            # READY=1 after STOPPING=1 would tell systemd the daemon is back.
            log.info("reload ignored: the daemon is stopping")
            return
        # The notifier adds MONOTONIC_USEC=, which systemd needs with RELOADING=1.
        self._notify(RELOADING="1")
        results = [
            reload_spool(rt, self.spool_defaults, self.observer, self.bus) for rt in self.spools
        ]
        if all(results):
            log.info("settings reloaded")
        elif any(results):
            log.info("settings reloaded, except where refused above")
        self.rescan_requested = True  # a new route's entries are claimed at once
        self._notify(READY="1", STATUS=self.status_line())

    def _housekeeping(self) -> None:
        """Every ~2 s: STATUS= for systemd, events held through a full disk, then the
        metrics and their textfiles."""
        self._notify(STATUS=self.status_line())
        for rt in self.spools:
            rt.events.flush()  # nothing to do unless appends failed
        scanned_at: float | None = None
        if self.next_scan != self._scan_mark:
            # A full scan completed since the last pass: _iterate set next_scan to the
            # scan's start plus the interval. Reported once, as the scan's start time.
            self._scan_mark = self.next_scan
            started = self.next_scan - self._scan_interval()
            scanned_at = wall_time() - max(0.0, time.monotonic() - started)
        self.housekeeping.update_metrics(self._busy(), self.executor.workers, scanned_at)

    def _busy(self) -> int:
        # A job whose worker finished but which is not published yet no longer holds a
        # worker (so never more than workers/workers).
        return min(self.executor.workers, self.admission.busy_workers())

    def status_line(self) -> str:
        return status_line(self.spools, self._busy(), self.executor.workers, self.stopping)

    def _give_up(self, exc: Exception) -> None:
        log.critical("the same internal error kept repeating; exiting with status %d", EX_SOFTWARE)
        self._emit_failed(exc)

    def _emit_failed(self, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        for rt in self.spools:
            self.bus.emit(rt, DaemonFailed(pid=os.getpid(), error=error))

    def _shutdown(self) -> None:
        # Hooks of jobs published before the stop get a moment; then they are killed.
        self.hooks.shutdown(wait_s=5.0)
        self.observer.stop()
        self.executor.stop()
        for rt in self.spools:
            rt.board.remove()
            rt.lease.release()
            rt.events.close()
        if self.metrics is not None:
            try:
                self.metrics.close()  # the --metrics-port server thread
            except Exception:
                log.debug("closing the metrics server failed", exc_info=True)
        if self.notifier is not None:
            self.notifier.close()
