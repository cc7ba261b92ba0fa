"""From ready inbox entries to claims: priorities, the scheduler, free workers, disk."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ..spool.after import AfterRef, after_of
from ..spool.clock import parse_iso
from ..spool.entries import EntryKind
from ..spool.events import DaemonPaused
from ..spool.ids import requested_of
from ..spool.job import JobState
from ..spool.jobjson import read_job_json
from ..spool.protocol import STATE_FILE, free_disk_mb
from .batch import batch_size, light_entry
from .cancel import CancelMarkers
from .cores import SAMPLER
from .inbox.tracker import Entry
from .jobfolder import state_of
from .lifecycle import Lifecycle
from .parts import idle_workers, lend_workers
from .runtime import SpoolRuntime
from .scheduler import Candidate, Scheduler
from .waiting import WaitingRoom

log = logging.getLogger("spoold")


class Admission:
    def __init__(
        self, lifecycle: Lifecycle, markers: CancelMarkers, waiting: WaitingRoom | None = None
    ) -> None:
        self.lifecycle = lifecycle
        self.markers = markers
        self.scheduler = Scheduler()
        self.waiting = waiting or WaitingRoom(lifecycle.conditions)
        if lifecycle.executor.workers > 1:
            SAMPLER.start()  # idle cores, measured before the first medium document

    def busy_workers(self) -> int:
        return sum(job.workers_held() for job in self.lifecycle.running.values())

    def free_workers(self) -> int:
        """Workers that could begin a job now: ready ones (while the pool starts, not
        all are) that hold none."""
        executor = self.lifecycle.executor
        return min(executor.ready_workers, executor.workers) - self.busy_workers()

    def accept(self, rt: SpoolRuntime, entries: list[Entry], wall: float) -> None:
        """Entries that became ready: cancel markers aside, the rest to the scheduler."""
        priorities: dict[str | None, int] = {}  # for_route builds a model: once per route
        for entry in entries:
            if entry.kind is EntryKind.CANCEL:
                rt.markers[entry.key] = entry
                continue
            # The one read of job.json (spool/jobjson.py): its chosen id, its priority,
            # whether it waits for others; the claim and the intake use it too.
            data = None
            if entry.kind is EntryKind.DIR:
                entry.job_json = read_job_json(rt.paths.inbox / entry.key)
                data = entry.job_json.data if entry.job_json else None
                entry.job_id = requested_of(data).job_id
            if rt.waiting_markers and self.markers.match_waiting(rt, entry):
                continue
            priority = priorities.get(entry.route)
            if priority is None:
                priority = priorities[entry.route] = rt.settings.for_route(entry.route).priority
            not_before = 0.0
            after: tuple[AfterRef, ...] = ()
            if entry.kind is EntryKind.REQUEUED:
                state = state_of(rt.paths.inbox / entry.key, entry.key)
                if state is not None:
                    priority = state.priority
                    not_before = retry_not_before(rt, rt.paths.inbox / entry.key, state, wall)
            elif entry.kind is EntryKind.DIR:
                priority = _job_file_priority(data, priority)
                after = after_of(data)
            cand = Candidate(rt.name, entry, priority, not_before)
            if after:
                self.waiting.hold(cand, after)
            else:
                self.scheduler.push(cand, wall)

    def check_waiting(self, spools: list[SpoolRuntime], wall: float) -> None:
        """Waiting jobs whose conditions now hold go to the scheduler; those that can
        never run are published as failed; held results whose jobs finished, published."""
        if self.lifecycle.stopping:
            return  # no claims while stopping (held results went back to the inbox)
        now = time.monotonic()
        held = self.lifecycle.holding.holds_results()
        if not self.waiting.due(now, held):
            return
        self.lifecycle.conditions.new_round()
        for rt in spools:
            released, rejected = self.waiting.check(rt, self.lifecycle.bus, now)
            for cand in released:
                self.scheduler.push(cand, wall)
            for r in rejected:
                self.lifecycle.reject_queued(rt, r.cand.entry, r.cand.priority, r.error)
        if held:
            self.lifecycle.holding.check_held_results(now)
        self.waiting.round_done(now)

    def next_waiting_check(self) -> float | None:
        return self.waiting.next_due(self.lifecycle.holding.holds_results())

    def claim_ready(self, spools: list[SpoolRuntime], wall: float) -> None:
        """Claim as many jobs as there are idle workers now (no hoarding)."""
        for rt in spools:
            self._check_disk(rt)  # at most once a second: paused or not, whoever is busy
        free = self.free_workers()
        if free <= 0:
            return
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
            if self._light(spool, cand):
                size = batch_size(self.scheduler.ready_count() + 1, self.free_workers())
                if size > 1:
                    if not self._start_batch(cand, size, by_name, paused, wall):
                        return
                    continue
            if not self._start(spool, cand, paused, wall):
                return

    def _start(self, spool: SpoolRuntime, cand: Candidate, paused: set[str], wall: float) -> bool:
        """Claim and start one job; False when its folder could not be made (disk)."""
        idle = idle_workers(self.free_workers(), self.scheduler.has_ready(paused))
        try:
            self.lifecycle.run(spool, cand.entry, cand.priority, idle)
        except OSError as exc:
            # Not a lost race (those end in claim.lost): a full disk making the folder.
            log.warning("claim of %s failed: %s", cand.entry.key, exc)
            cand.not_before = wall + 1.0
            self.scheduler.push(cand, wall)
            return False
        return True

    def _start_batch(
        self,
        first: Candidate,
        size: int,
        by_name: dict[str, SpoolRuntime],
        paused: set[str],
        wall: float,
    ) -> bool:
        """Claim up to `size` light jobs, `first` and the next ones in order, and start
        them on one free worker in one round trip (batch.py)."""
        with self.lifecycle.executor.batch():
            cand, started = first, 0
            while True:
                if not self._start(by_name[cand.spool], cand, paused, wall):
                    return False
                started += 1
                after = self.scheduler.peek(wall, paused)
                if (
                    started >= size
                    or after is None
                    or not self._light(by_name.get(after.spool), after)
                ):
                    return True
                cand = self.scheduler.pop(wall, paused) or after  # the one peeked

    def _light(self, spool: SpoolRuntime | None, cand: Candidate) -> bool:
        if spool is None:
            return False
        targets = spool.settings.for_route(cand.entry.route).targets
        return light_entry(cand.entry, targets, spool.paths.inbox)

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


def _job_file_priority(data: dict[str, Any] | None, default: int) -> int:
    value = data.get("priority") if data else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100:
        return value
    return default


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
