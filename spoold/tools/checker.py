"""Replay the events log and check every job's path through the state machine.

`check_events(events)` takes the events in log order (several daemons, on one host or
many, write the log, each its own file, merged in time order by spool/eventfiles.py, so
one job's events may come from different hosts) and checks, per job:

- every event has `ts`, `event`, `job_id`, `attempt` and `host`; a job event (`job.*`)
  names its job, and its attempt is a number >= 1 (null only for `job.detected`);
- a job's first event is `job.detected`;
- `job.claimed` is only possible while the job's folder is free (queued, or failed or
  cancelled and re-queued by `spoold retry`, which logs nothing), never after
  `job.succeeded`, and its attempt is greater than every attempt seen for the job;
- `job.started` (and `job.duplicate`) only for a claimed attempt whose holder has not
  ended it, from the claiming host;
- `job.succeeded` / `job.failed` / `job.cancelled` only for the attempt that holds the
  job (the last claim): at most one terminal event per published result, never for an
  attempt that was requeued, recovered or discarded, never twice;
- `job.retry_scheduled` / `job.requeued` (by the holder) and `job.recovered` (by
  another daemon) put a running attempt back in the queue, once;
- `job.discarded` ends an attempt whose claim was lost (fencing): it needs a
  `job.recovered` of that attempt, before or after it.

What the protocol allows, and the checker therefore accepts:

- Each line is appended *after* the rename it reports. So another daemon can claim a
  job between the requeue (or recovery) rename of attempt N and its line: a claim of
  N+1 may come before the `job.retry_scheduled` / `job.requeued` / `job.recovered` of
  N. Likewise `spoold retry` can requeue a failed job before the `job.failed` line is
  appended. The claim is accepted when the release of N follows later in the log.
- A daemon frozen past its lease may log `job.started` for an attempt that was already
  recovered by another daemon: that is harmless (its result will be discarded) and is
  only a warning.
- A job whose claim daemon died was failed by the recovering daemon when it ran out of
  attempts: then the terminal event comes from another host with the lost attempt.

Gaps. A line can be missing from a log: a daemon killed between a rename and its line
(the named crash points after_claim_rename, after_requeue_rename,
after_publish_rename, after_recovery_requeue), a full disk (an append that fails is
held in memory and written later; past its bound, dropped and counted by one
`events.gap` record), or a log rotated more than once. When an event can only be
explained by a missing line (a job whose first event is `job.recovered` because its
claiming daemon died right after the claim rename; a release whose claim was not logged;
a claim whose predecessor's release never appears), the checker records a *gap*. With
`strict=False` (the default, for real logs) gaps are warnings; with `strict=True` (a
crash-free run) they are problems, except the gaps of jobs an `events.gap` record
names: a daemon said it lost those lines, and how many. A missing line never
excuses a safety violation: two terminal events for one result, a terminal event of a
fenced-off attempt, a claim after success, an attempt number that does not grow.

A job still running or queued at the end of the log is not a problem (the log is a
snapshot); the report counts them in `open_jobs`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..spool import events as evt
from ..spool.after import wait_event_problem
from ..spool.eventfiles import log_files, read_events
from ..spool.events import EVENT_NAMES
from ..spool.job import TRANSITIONS, JobStatus
from .findings import CheckReport, Gaps

TERMINAL_EVENTS: dict[str, JobStatus] = {
    evt.JobSucceeded.NAME: JobStatus.SUCCEEDED,
    evt.JobFailed.NAME: JobStatus.FAILED,
    evt.JobCancelled.NAME: JobStatus.CANCELLED,
}
HOLDER_REQUEUE_EVENTS = frozenset({evt.JobRetryScheduled.NAME, evt.JobRequeued.NAME})
_STEPS = (evt.JobDetected, evt.JobClaimed, evt.JobStarted, evt.JobDuplicate, evt.JobDiscarded)
LIFECYCLE_EVENTS = frozenset(
    {*(e.NAME for e in _STEPS), evt.JobRecovered.NAME, *HOLDER_REQUEUE_EVENTS, *TERMINAL_EVENTS}
)
REQUIRED_KEYS = ("ts", "event", "job_id", "attempt", "host")


@dataclass
class _Attempt:
    number: int
    host: str | None  # of the claim; None when the claim was not logged
    claimed_at: int | None  # event index of the claim; None when inferred from a gap
    ended: str | None = None  # how its holder ended it (event name)
    ended_at: int | None = None
    recovered_at: int | None = None  # released by another daemon (job.recovered)

    @property
    def released(self) -> bool:
        """Whether its folder left running/ (requeue, recovery or publish)."""
        return self.recovered_at is not None or (
            self.ended is not None and self.ended != evt.JobDiscarded.NAME
        )


@dataclass
class _Job:
    job_id: str
    first_at: int
    status: JobStatus = JobStatus.QUEUED
    current: int = 0  # attempt of the last claim
    max_attempt: int = 0
    attempts: dict[int, _Attempt] = field(default_factory=dict)
    # attempt -> index of the event that needs its release to be logged later
    owed: dict[int, int] = field(default_factory=dict)
    new_at: int | None = None  # index of a first event that was not job.detected


class _Checker:
    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.jobs: dict[str, _Job] = {}
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.terminal: dict[str, int] = {}
        self.count = 0
        self.gaps = Gaps(strict)

    # ------------------------------------------------------------------ reporting

    def problem(self, idx: int, job_id: str | None, what: str) -> None:
        who = f"job {job_id}" if job_id else "log"
        self.problems.append(f"{who}, event #{idx}: {what}")

    def gap(self, idx: int, job_id: str, what: str) -> None:
        self.gaps.add(idx, job_id, what)  # judged at the end (gaps.py)

    def warn(self, idx: int, job_id: str, what: str) -> None:
        self.warnings.append(f"job {job_id}, event #{idx}: {what}")

    # ------------------------------------------------------------------ replay

    def feed(self, idx: int, ev: Any) -> None:
        self.count += 1
        if not isinstance(ev, dict):
            self.problem(idx, None, f"not a JSON object: {ev!r:.80}")
            return
        missing = [k for k in REQUIRED_KEYS if k not in ev]
        job_id = ev.get("job_id") if isinstance(ev.get("job_id"), str) else None
        if missing:
            self.problem(idx, job_id, f"{ev.get('event')!r} lacks {', '.join(missing)}")
        name = ev.get("event")
        if not isinstance(name, str) or name not in EVENT_NAMES:
            self.problem(idx, job_id, f"unknown event name {name!r}")
            return
        if not isinstance(ev.get("ts"), str) or not ev.get("ts"):
            self.problem(idx, job_id, f"{name}: ts is not a timestamp string")
        if not isinstance(ev.get("host"), str) or not ev.get("host"):
            self.problem(idx, job_id, f"{name}: host is missing or empty")
        if name not in LIFECYCLE_EVENTS:
            self.side_event(idx, name, job_id, ev)  # no state change
            return
        if not job_id:
            self.problem(idx, None, f"{name} without a job_id")
            return
        attempt = ev.get("attempt")
        if name == evt.JobDetected.NAME:
            if attempt is not None:
                self.problem(idx, job_id, f"job.detected with attempt {attempt!r} (expected null)")
            self.detected(idx, job_id)
            return
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            self.problem(idx, job_id, f"{name} with attempt {attempt!r} (expected a number >= 1)")
            return
        host = ev.get("host") if isinstance(ev.get("host"), str) else None
        job = self.jobs.get(job_id)
        if job is None:
            job = self.jobs[job_id] = _Job(job_id, idx, new_at=idx)
            how = (
                "its claiming daemon died right after the claim rename"
                if name == evt.JobRecovered.NAME
                else "its job.detected line is missing"
            )
            self.gap(idx, job_id, f"first event is {name} ({how})")
        if name == evt.JobClaimed.NAME:
            self.claimed(idx, job, attempt, host)
        elif name in (evt.JobStarted.NAME, evt.JobDuplicate.NAME):
            self.started(idx, job, name, attempt, host)
        elif name in HOLDER_REQUEUE_EVENTS or name == evt.JobRecovered.NAME:
            self.released_to_queue(idx, job, name, attempt)
        elif name == evt.JobDiscarded.NAME:
            self.discarded(idx, job, attempt)
        else:
            self.finished(idx, job, name, attempt)

    def side_event(self, idx: int, name: str, job_id: str | None, ev: dict[str, Any]) -> None:
        """Events that change no job's state: a gap's declaration, a job's wait for
        others (job.json `after`); cancel.*, hook.failed, daemon.* need no check."""
        if name == evt.EventsGap.NAME:
            wrong = self.gaps.declare(idx, ev)
            if wrong is not None:
                self.problem(idx, None, wrong)
        elif name in (evt.JobWaiting.NAME, evt.JobReleased.NAME):
            job = self.jobs.get(job_id) if job_id else None
            held = job.current if job is not None and job.status is JobStatus.RUNNING else None
            if (what := wait_event_problem(ev, job is not None, held)) is not None:
                self.problem(idx, job_id, what)

    def detected(self, idx: int, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            self.problem(idx, job_id, f"job.detected again (first event was #{job.first_at})")
            return
        self.jobs[job_id] = _Job(job_id, idx)

    def _transition(self, idx: int, job: _Job, new: JobStatus, why: str) -> bool:
        if new not in TRANSITIONS[job.status]:
            self.problem(idx, job.job_id, f"{why}: {job.status} -> {new} is not a valid transition")
            return False
        job.status = new
        return True

    def _claim(self, idx: int, job: _Job, number: int, host: str | None, logged: bool) -> bool:
        """A claim of attempt `number` (logged, or inferred from a later event)."""
        what = evt.JobClaimed.NAME if logged else f"the unlogged claim of attempt {number}"
        if number <= job.max_attempt:
            self.problem(
                idx,
                job.job_id,
                f"{what} of attempt {number}: not greater than earlier attempt "
                f"{job.max_attempt} (attempt numbers must only grow)",
            )
            return False
        if job.status is JobStatus.SUCCEEDED:
            self.problem(idx, job.job_id, f"{what} after job.succeeded (a success is final)")
            return False
        if job.status is JobStatus.RUNNING:
            # The previous attempt still holds the job as far as the log knows: its release
            # line may come later (appended after the rename) or be lost (crash).
            job.owed.setdefault(job.current, idx)
            job.status = JobStatus.QUEUED
        elif job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            # `spoold retry` (no event): failed|cancelled -> queued.
            self._transition(idx, job, JobStatus.QUEUED, "retry")
        if not self._transition(idx, job, JobStatus.RUNNING, what):
            return False
        job.current = job.max_attempt = number
        job.attempts[number] = _Attempt(number, host, idx if logged else None)
        return True

    def _attempt(self, idx: int, job: _Job, name: str, number: int) -> _Attempt | None:
        """The attempt an event names; a claim is inferred (a gap) when it is new."""
        att = job.attempts.get(number)
        if att is not None:
            return att
        if number > job.max_attempt and job.status is not JobStatus.SUCCEEDED:
            if job.new_at != idx:  # else already reported as the job's first event
                self.gap(
                    idx, job.job_id, f"{name} of attempt {number}, whose job.claimed is missing"
                )
            if self._claim(idx, job, number, None, logged=False):
                return job.attempts[number]
            return None
        self.problem(idx, job.job_id, f"{name} of attempt {number}, which was never claimed")
        return None

    def _ended(self, idx: int, job: _Job, name: str, att: _Attempt) -> bool:
        if att.ended is not None:
            self.problem(
                idx,
                job.job_id,
                f"{name} of attempt {att.number}, which already ended with "
                f"{att.ended} at #{att.ended_at}",
            )
            return True
        return False

    def _discharge(self, job: _Job, number: int) -> None:
        job.owed.pop(number, None)

    def claimed(self, idx: int, job: _Job, number: int, host: str | None) -> None:
        self._claim(idx, job, number, host, logged=True)

    def started(self, idx: int, job: _Job, name: str, number: int, host: str | None) -> None:
        att = self._attempt(idx, job, name, number)
        if att is None or self._ended(idx, job, name, att):
            return
        if att.host is not None and host is not None and host != att.host:
            self.problem(
                idx, job.job_id, f"{name} of attempt {number} from {host}, claimed by {att.host}"
            )
        if att.released or number != job.current:
            self.warn(
                idx,
                job.job_id,
                f"{name} of attempt {number} after its claim was lost (a frozen daemon; "
                "its result must be discarded)",
            )

    def released_to_queue(self, idx: int, job: _Job, name: str, number: int) -> None:
        att = self._attempt(idx, job, name, number)
        if att is None:
            return
        if att.recovered_at is not None:
            self.problem(
                idx,
                job.job_id,
                f"{name} of attempt {number}, which was already recovered at #{att.recovered_at}",
            )
            return
        if name == evt.JobRecovered.NAME:
            if att.ended is not None and att.ended != evt.JobDiscarded.NAME:
                self._ended(idx, job, name, att)
                return
            att.recovered_at = idx
        else:
            if self._ended(idx, job, name, att):
                return
            att.ended, att.ended_at = name, idx
        self._discharge(job, number)
        if number == job.current and job.status is JobStatus.RUNNING:
            self._transition(idx, job, JobStatus.QUEUED, name)

    def discarded(self, idx: int, job: _Job, number: int) -> None:
        att = self._attempt(idx, job, evt.JobDiscarded.NAME, number)
        if att is None or self._ended(idx, job, evt.JobDiscarded.NAME, att):
            return
        att.ended, att.ended_at = evt.JobDiscarded.NAME, idx
        if att.recovered_at is None:
            # Its folder was taken by a recovery whose line must follow.
            job.owed.setdefault(number, idx)

    def finished(self, idx: int, job: _Job, name: str, number: int) -> None:
        outcome = TERMINAL_EVENTS[name]
        att = self._attempt(idx, job, name, number)
        if att is None or self._ended(idx, job, name, att):
            return
        if att.recovered_at is not None:
            self.problem(
                idx,
                job.job_id,
                f"{name} of attempt {number}, which was recovered at #{att.recovered_at} "
                "(a fenced-off attempt published)",
            )
            return
        if number != job.current:
            if number in job.owed and outcome is not JobStatus.SUCCEEDED:
                # Published, then re-queued by `spoold retry` and claimed again before
                # this line was appended.
                att.ended, att.ended_at = name, idx
                self._discharge(job, number)
                self._count(outcome)
                return
            self.problem(
                idx,
                job.job_id,
                f"{name} of attempt {number}, but attempt {job.current} holds the job "
                "(a fenced-off attempt published)",
            )
            return
        if job.status is not JobStatus.RUNNING:
            self.problem(idx, job.job_id, f"{name} while the job is {job.status}")
            return
        if self._transition(idx, job, outcome, name):
            att.ended, att.ended_at = name, idx
            self._count(outcome)

    def _count(self, outcome: JobStatus) -> None:
        self.terminal[outcome.value] = self.terminal.get(outcome.value, 0) + 1

    def report(self) -> CheckReport:
        for job in self.jobs.values():
            for number, idx in sorted(job.owed.items()):
                att = job.attempts[number]
                if att.ended == evt.JobDiscarded.NAME:
                    what = f"attempt {number} was discarded but its job.recovered never came"
                else:
                    what = (
                        f"attempt {number} was superseded by a claim but its release "
                        "(job.retry_scheduled, job.requeued, job.recovered or a terminal "
                        "event) never came"
                    )
                self.gap(idx, job.job_id, what)
        problems, warnings = self.gaps.judge()
        self.problems += problems
        self.warnings += warnings
        open_jobs = sum(
            1
            for j in self.jobs.values()
            if j.status in (JobStatus.QUEUED, JobStatus.RUNNING) or j.owed
        )
        return CheckReport(
            ok=not self.problems,
            problems=self.problems,
            jobs=len(self.jobs),
            terminal=dict(self.terminal),
            warnings=self.warnings,
            events=self.count,
            open_jobs=open_jobs,
            lost_events=self.gaps.lost,
        )


def check_events(events: Iterable[dict[str, Any]], *, strict: bool = False) -> CheckReport:
    """Replay `events` (in append order) and check each job's lifecycle.

    `strict=True` also refuses gaps (lines a crash or a full disk may drop).
    """
    checker = _Checker(strict)
    for idx, ev in enumerate(events):
        checker.feed(idx, ev)
    return checker.report()


def events_path(target: Path) -> Path:
    """The events log of a spool (its `.spoold/events.ndjson`, which names every
    writer's file beside it: spool/eventfiles.py), or a log file itself."""
    if target.is_dir():
        return target / ".spoold" / "events.ndjson"
    return target


def load_events(target: Path) -> Iterator[dict[str, Any]]:
    path = events_path(target)
    if not log_files(path):
        raise FileNotFoundError(f"no events log at {path}")
    return read_events(path)


def check_path(target: Path, *, strict: bool = False) -> CheckReport:
    return check_events(load_events(target), strict=strict)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    strict = "--strict" in args
    rest = [a for a in args if a != "--strict"]
    if len(rest) != 1 or rest[0].startswith("-"):
        usage = "usage: python -m spoold.tools.checker [--strict] SPOOL_OR_EVENTS_FILE"
        print(usage, file=sys.stderr)
        return 64
    try:
        report = check_path(Path(rest[0]), strict=strict)
    except (OSError, ValueError) as exc:
        print(f"spoold.tools.checker: {exc}", file=sys.stderr)
        return 66
    print(report.format())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
