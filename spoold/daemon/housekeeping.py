"""Every ~2 s: STATUS= for systemd, queue depths and disk for the metrics, and the
retention purge on its own thread (deleting thousands of folders must not stall claims).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from ..ops.metrics import FolderCount, Metrics, MetricsPortError
from ..share.retention import purge
from ..spool.clock import wall_time
from ..spool.protocol import free_disk_mb
from .runtime import SpoolRuntime

log = logging.getLogger("spoold")

PURGE_FIRST_DELAY_S = 60.0  # start-up stays quick
PURGE_INTERVAL_S = 3600.0


class Housekeeping:
    def __init__(self, spools: list[SpoolRuntime], metrics: Metrics | None) -> None:
        self.spools = spools
        self.metrics = metrics
        # Queue depths of running/, done/ and failed/ (see FolderCount for the cost).
        self.folder_counts: dict[Path, FolderCount] = {
            folder: FolderCount(folder)
            for rt in spools
            for folder in (rt.paths.running, rt.paths.done, rt.paths.failed)
        }
        self.next_purge = time.monotonic() + PURGE_FIRST_DELAY_S
        self._purge_thread: threading.Thread | None = None

    def update_metrics(self, busy: int, workers: int, scanned_at: float | None) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        try:
            metrics.set_workers(busy, workers)
            for rt in self.spools:
                # queued: the tracker's ready entries (no listing). running/done/failed:
                # the folders themselves, as every daemon on the spool sees them.
                metrics.set_queue_depth(rt.name, "queued", rt.tracker.queued_count())
                oldest = rt.tracker.oldest_arrival()
                age = 0.0 if oldest is None else wall_time() - oldest
                metrics.set_oldest_queued_age(rt.name, age)
                for state, folder in (
                    ("running", rt.paths.running),
                    ("done", rt.paths.done),
                    ("failed", rt.paths.failed),
                ):
                    metrics.set_queue_depth(rt.name, state, self.folder_counts[folder].count())
                if scanned_at is not None:
                    metrics.scan_completed(rt.name, scanned_at)
                try:
                    metrics.set_disk_free(rt.name, int(free_disk_mb(rt.root) * 2**20))
                except OSError:
                    log.debug("statvfs of %s failed", rt.root, exc_info=True)
        except Exception:
            log.debug("metrics update failed", exc_info=True)
        # Each spool's file gets the whole set (docs/operations.md: link one per daemon).
        for rt in self.spools:
            try:
                metrics.write_textfile(rt.paths.state / "metrics.prom")
            except Exception:
                log.debug("writing %s/metrics.prom failed", rt.paths.state, exc_info=True)

    def maybe_purge(self, now: float) -> None:
        if now < self.next_purge:
            return
        if self._purge_thread is not None and self._purge_thread.is_alive():
            return
        self.next_purge = now + PURGE_INTERVAL_S
        work = [
            (rt.paths, rt.settings.keep_done_days, rt.settings.keep_failed_days)
            for rt in self.spools
        ]

        def purge_all() -> None:
            for paths, keep_done, keep_failed in work:
                try:
                    purge(paths, keep_done, keep_failed)
                except Exception:  # retention must never take the daemon down
                    log.exception("purge of %s failed", paths.root)

        self._purge_thread = threading.Thread(target=purge_all, name="spoold-purge", daemon=True)
        self._purge_thread.start()


def status_line(spools: list[SpoolRuntime], busy: int, workers: int, stopping: bool) -> str:
    """STATUS= for systemctl status: '1/4 busy, 17 queued' (+ paused, draining)."""
    queued = sum(rt.tracker.queued_count() for rt in spools)
    line = f"{busy}/{workers} busy, {queued} queued"
    paused = [rt.name for rt in spools if rt.paused]
    if paused:
        line += f", claims paused (low disk): {', '.join(paused)}"
    if stopping:
        line = f"draining: {line}"
    return line


def start_metrics(spools: list[SpoolRuntime], port: int | None) -> Metrics:
    """The metrics, served on 127.0.0.1:PORT when asked (MetricsPortError if busy).

    Called first, so a busy port stops the start with nothing to undo (no lease taken,
    no worker started, no claim recovered).
    """
    metrics = Metrics(rt.name for rt in spools)
    if port:
        try:
            metrics.serve(port)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise MetricsPortError(
                f"cannot serve metrics on 127.0.0.1:{port}: {reason} "
                "(choose another --metrics-port / metrics_port)"
            ) from exc
    return metrics
