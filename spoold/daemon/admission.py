"""From ready inbox entries to claims: priorities, the scheduler, free workers, disk."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ..spool.clock import parse_iso
from ..spool.entries import JOB_FILE, EntryKind
from ..spool.events import DaemonPaused
from ..spool.ids import is_job_id
from ..spool.job import JobState
from ..spool.protocol import STATE_FILE, free_disk_mb
from .cancel import CancelMarkers
from .inbox.tracker import Entry
from .jobfolder import state_of
from .lifecycle import Lifecycle
from .parts import lend_workers
from .runtime import SpoolRuntime
from .scheduler import Candidate, Scheduler

log = logging.getLogger("spoold")


class Admission:
    def __init__(self, lifecycle: Lifecycle, markers: CancelMarkers) -> None:
        self.lifecycle = lifecycle
        self.markers = markers
        self.scheduler = Scheduler()

    def free_workers(self) -> int:
        busy = sum(job.workers_held() for job in self.lifecycle.running.values())
        return self.lifecycle.executor.workers - busy

    def accept(self, rt: SpoolRuntime, entries: list[Entry], wall: float) -> None:
        """Entries that became ready: cancel markers aside, the rest to the scheduler."""
        priorities: dict[str | None, int] = {}  # for_route builds a model: once per route
        for entry in entries:
            if entry.kind is EntryKind.CANCEL:
                rt.markers[entry.key] = entry
                continue
            job_file: dict[str, object] = {}
            if entry.kind is EntryKind.DIR:
                job_file = _job_file(rt.paths.inbox / entry.key)
                chosen = job_file.get("id")
                entry.job_id = chosen if isinstance(chosen, str) and is_job_id(chosen) else None
            if rt.waiting_markers and self.markers.match_waiting(rt, entry):
                continue
            priority = priorities.get(entry.route)
            if priority is None:
                priority = priorities[entry.route] = rt.settings.for_route(entry.route).priority
            not_before = 0.0
            if entry.kind is EntryKind.REQUEUED:
                state = state_of(rt.paths.inbox / entry.key, entry.key)
                if state is not None:
                    priority = state.priority
                    not_before = retry_not_before(rt, rt.paths.inbox / entry.key, state, wall)
            elif isinstance(asked := job_file.get("priority"), int) and 0 <= asked <= 100:
                priority = asked
            self.scheduler.push(Candidate(rt.name, entry, priority, not_before), wall)

    def claim_ready(self, spools: list[SpoolRuntime], wall: float) -> None:
        """Claim as many jobs as there are idle workers now (no hoarding)."""
        free = self.free_workers()
        if free <= 0:
            return
        for rt in spools:
            self._check_disk(rt)
        # Disk short: a paused spool's jobs stay queued (and in the inbox) untouched.
        paused = {rt.name for rt in spools if rt.paused}
        by_name = {rt.name: rt for rt in spools}
        for _ in range(free):
            cand = self.scheduler.pop(wall, paused)
            if cand is None:
                # No job is ready for the idle workers: split jobs may borrow them.
                lend_workers(self.lifecycle.running.values(), self.free_workers())
                return
            spool = by_name.get(cand.spool)
            if spool is None:
                continue
            try:
                self.lifecycle.run(spool, cand.entry, cand.priority)
            except OSError as exc:
                # Not a lost race (those end in claim.lost): a full disk making the folder.
                log.warning("claim of %s failed: %s", cand.entry.key, exc)
                cand.not_before = wall + 1.0
                self.scheduler.push(cand, wall)
                return

    def _check_disk(self, rt: SpoolRuntime) -> None:
        now = time.monotonic()
        if now < rt.next_disk_check:
            return
        rt.next_disk_check = now + 1.0
        try:
            free = free_disk_mb(rt.root)
        except OSError:
            return
        if free < rt.settings.min_free_mb:
            if rt.paused is None:
                rt.paused = (
                    f"free disk {free:.0f} MB is below min_free_mb {rt.settings.min_free_mb}"
                )
                self.lifecycle.bus.emit(rt, DaemonPaused(reason=rt.paused))
        elif rt.paused is not None:
            rt.paused = None


def _job_file(folder: Path) -> dict[str, object]:
    """A job folder's job.json as far as admission needs it (priority, chosen id);
    empty when absent or unreadable (intake fails the job naming the problem)."""
    try:
        path = folder / JOB_FILE
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20:
            data = json.loads(path.read_bytes())
            return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        pass
    return {}


def retry_not_before(rt: SpoolRuntime, folder: Path, state: JobState, wall: float) -> float:
    """This host's wall time before which a requeued job must not be claimed again.

    The requeuing host's clock may be minutes off ours, so its `next_attempt_at` is not
    compared with our clock: its delay (next_attempt_at less the attempt's finish, both
    its own clock) is waited from when the folder was requeued, as the spool's own
    clock measures it (the file server stamps the state file's mtime and our probe's).
    """
    if state.next_attempt_at is None:
        return 0.0
    last = state.last_attempt()
    finished = last.finished_at if last is not None else None
    try:
        delay = state.next_attempt_at - parse_iso(finished or "")
    except ValueError:
        # No finish time (written by hand or by an older version): cap the wait.
        delay = state.next_attempt_at - wall
    delay = min(max(0.0, delay), rt.settings.backoff_max_s)
    try:
        waited = rt.spool_clock.age_of(folder / STATE_FILE)
    except OSError:
        waited = 0.0  # cannot tell: wait the whole delay
    return wall + max(0.0, delay - waited)
