"""Jobs that wait for other jobs (job.json `after`; docs/protocol.md "Dependencies").

A dropped job folder whose job.json has `after` is not handed to the scheduler: it
waits here, in inbox/, unclaimed. Every `EVERY_S` (and soon after a job of this daemon
changed state) its conditions are read again from the folders (spool/waits.py), so
they hold across daemons, hosts and restarts; a job whose conditions hold is released
to the scheduler, where priority and fairness apply as to any job. A job whose
reference names no job for `after_missing_s`, a job in a cycle and a job whose
dependency failed (with `on_failure` "fail") are claimed only to be published as
failed. Jobs without `after` never come here: waiting costs nothing to the others.

finish_to_finish is checked when the job's result is ready: the lifecycle holds it
(`Holding.publish_or_hold`, daemon/holding.py) and looks again in the same rounds
(`Holding.check_held_results`), publishing it once the other jobs finished.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import ErrorCode, ErrorInfo, JobError
from ..spool.after import AfterRef, Found, JobPhase
from ..spool.entries import EntryKind
from ..spool.events import Event, JobReleased, JobWaiting
from ..spool.waits import Evaluation, InboxItem, SpoolIndex, evaluate
from .listeners import Listener, ListenerBus
from .runtime import SpoolRuntime
from .scheduler import Candidate

EVERY_S = 1.0  # how often waiting jobs look at the folders again
MIN_GAP_S = 0.05  # and at most this often when jobs change state quickly,
LOOP_SHARE = 0.1  # nor so often that rounds take more than this share of the loop


def tracker_items(rt: SpoolRuntime) -> Iterator[InboxItem]:
    """The inbox as this daemon's tracker knows it (kept true by its scans)."""
    for key, entry in list(rt.tracker.entries.items()):
        if entry.gone or entry.kind in (EntryKind.CANCEL, EntryKind.SPECIAL):
            continue
        yield InboxItem(key, entry.name, entry.kind is EntryKind.REQUEUED)


class Conditions:
    """The spools' indexes, looked at again at most once per round (`new_round`)."""

    def __init__(self) -> None:
        self._indexes: dict[str, SpoolIndex] = {}
        self._fresh: set[str] = set()

    def new_round(self) -> None:
        self._fresh.clear()

    def evaluate(
        self, rt: SpoolRuntime, me: Found, refs: tuple[AfterRef, ...], finishing: bool = False
    ) -> Evaluation:
        index = self._indexes.get(rt.name)
        if index is None:
            index = self._indexes[rt.name] = SpoolIndex(rt.paths, lambda: tracker_items(rt))
        if rt.name not in self._fresh:
            index.refresh()
            self._fresh.add(rt.name)
        return evaluate(index, me, refs, finishing=finishing)


def overdue_missing(
    since: dict[str, float], ev: Evaluation, now: float, limit: float
) -> list[AfterRef]:
    """The references missing for `limit` seconds without a break (`since`: when each
    was first seen missing, kept by the caller). A job in flight between two folders (a
    requeue, another daemon's claim) is so never taken for missing."""
    missing = ev.missing
    names = {ref.job for ref in missing}
    for name in [k for k in since if k not in names]:
        del since[name]
    for name in names:
        since.setdefault(name, now)
    return [ref for ref in missing if now - since[ref.job] >= limit]


@dataclass
class WaitingJob:
    cand: Candidate
    refs: tuple[AfterRef, ...]
    missing_since: dict[str, float] = field(default_factory=dict)
    announced: bool = False  # job.waiting recorded


def failure_of(ev: Evaluation, overdue: list[AfterRef], name: str) -> ErrorInfo | None:
    """The error a job's evaluation fails it with, or None while it may still wait."""
    if ev.cycle is not None:
        return JobError(
            ErrorCode.INPUT_INVALID,
            "job.json 'after': a cycle of jobs waiting for each other: " + " -> ".join(ev.cycle),
            hint="Remove one of the references of the cycle and drop the jobs again.",
        ).info()
    if ev.failed:
        ref, found = ev.failed[0]
        who = found.name if found.job_id is None else f"{found.name} ({found.job_id})"
        return JobError(
            ErrorCode.DEPENDENCY_FAILED,
            f"{name} waits for {ref.job!r} ({ref.kind}), and that job {who} {found.state}",
        ).info()
    if overdue:
        names = ", ".join(repr(ref.job) for ref in overdue)
        return JobError(
            ErrorCode.INPUT_INVALID,
            f"job.json 'after': no job {names} in this spool (by job id or dropped name)",
            hint="Name a job of the same spool by its id or the name it was dropped with.",
        ).info()
    return None


class WaitingRoom(Listener):
    """The inbox jobs this daemon saw waiting, by (spool, key). On the bus: any job
    event (this daemon's) makes it look again soon."""

    def __init__(self, conditions: Conditions) -> None:
        self.conditions = conditions
        self.jobs: dict[tuple[str, str], WaitingJob] = {}
        self.next_check = 0.0  # monotonic
        self._last_round = 0.0
        self._gap = MIN_GAP_S  # grows with the cost of a round (a long inbox)

    def hold(self, cand: Candidate, refs: tuple[AfterRef, ...]) -> None:
        self.jobs[(cand.spool, cand.entry.key)] = WaitingJob(cand, refs)
        self.after_event(None, None)

    def after_event(self, rt: SpoolRuntime | None, event: Event | None) -> None:
        """Look again soon: a job changed state, or a waiting job arrived."""
        self.next_check = min(self.next_check, self._last_round + self._gap)

    def due(self, now: float, held: bool) -> bool:
        return (bool(self.jobs) or held) and now >= self.next_check

    def next_due(self, held: bool) -> float | None:
        return self.next_check if self.jobs or held else None

    def round_done(self, now: float) -> None:
        """A round that began at `now` ended: the next in EVERY_S, or sooner on a job
        event, but never more than LOOP_SHARE of the daemon's time."""
        spent = time.monotonic() - now
        self._gap = max(MIN_GAP_S, spent / LOOP_SHARE)
        self._last_round = now
        self.next_check = now + max(EVERY_S, self._gap)

    def check(
        self, rt: SpoolRuntime, bus: ListenerBus, now: float
    ) -> tuple[list[Candidate], list[Rejected]]:
        """Evaluate this spool's waiting jobs: those released, those to fail."""
        released: list[Candidate] = []
        rejected: list[Rejected] = []
        # Every waiting job of a cycle found this round fails with it at once (a daemon
        # looking later finds the cycle through the members failed before they started).
        cycles: dict[str, Evaluation] = {}
        for key, job in list(self.jobs.items()):
            if key[0] != rt.name:
                continue
            entry = job.cand.entry
            if entry.gone:
                del self.jobs[key]  # claimed elsewhere, cancelled, removed
                continue
            me = Found(f"inbox/{entry.key}", None, entry.name, "queued", JobPhase.QUEUED, False)
            ev = cycles.get(me.folder) or self.conditions.evaluate(rt, me, job.refs)
            for i, folder in enumerate(ev.cycle_jobs):
                names = ev.cycle or []
                cycles[folder] = Evaluation(cycle=[*names[i:-1], *names[: i + 1]])
            overdue = overdue_missing(job.missing_since, ev, now, rt.settings.after_missing_s)
            err = failure_of(ev, overdue, entry.name)
            if err is not None:
                del self.jobs[key]
                rejected.append(Rejected(job.cand, err))
                self._released(rt, bus, job, f"failed: {err.code}")
            elif ev.met:
                del self.jobs[key]
                released.append(job.cand)
                self._released(rt, bus, job, "conditions met")
            elif not job.announced:
                job.announced = True
                pending = [p.as_json() for p in ev.pending]
                waiting = JobWaiting(
                    name=entry.name, route=entry.route, ino=entry.sig[0], after=pending
                )
                bus.emit(rt, waiting)
        return released, rejected

    def _released(self, rt: SpoolRuntime, bus: ListenerBus, job: WaitingJob, reason: str) -> None:
        if job.announced:
            entry = job.cand.entry
            event = JobReleased(name=entry.name, route=entry.route, ino=entry.sig[0], reason=reason)
            bus.emit(rt, event)


@dataclass
class Rejected:
    cand: Candidate
    error: ErrorInfo
