"""The job lifecycle: the only code that creates attempts and changes a job's state.

claim -> start -> finish -> publish | requeue, one path for every job: new entries,
requeued folders, queued jobs cancelled before they start (claimed, then published as
cancelled) and claims recovered from a daemon that is gone. Each change is checked
against the state machine (job.TRANSITIONS) from the job's real current state; its
effects go to the listener bus. A race lost to another daemon, a person or a tool (the
entry or folder gone, or already where it was going) is a defined outcome recorded as
an event, never an exception.

The end of an attempt (publish, requeue, recovery of a lost claim) is carried out by
the lifecycle's own `Finishing` (finishing.py), which shares its table of running jobs;
whether a failed attempt is retried is decided here (`fail`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import ErrorCode, ErrorInfo, JobError, io_error_code
from ..spool.clock import iso, iso_of, new_job_id
from ..spool.durability import syncfs_capable
from ..spool.entries import EntryKind, Incomplete
from ..spool.events import (
    ClaimLost,
    JobClaimed,
    JobDetected,
    JobDiscarded,
    JobStarted,
)
from ..spool.ids import (
    Requested,
    find_holder,
    live_folder,
    registered_folder,
    requested_of,
    reserve_job_id,
)
from ..spool.job import Attempt, AttemptOutcome, CancelMode, JobState, JobStatus, read_state
from ..spool.jobjson import read_job_json
from ..spool.protocol import INPUT_DIR, claim_entry, claim_requeued, job_dir_name
from ..worker.spec import CANCEL_FLAG, JobSpec, WorkerLimits, WorkerResult
from .crashpoints import crash_point
from .executor import Completed, Executor, Outcome, TimedOut
from .finishing import Finishing
from .holding import Holding
from .inbox.tracker import Entry
from .intake import JobPlan, plan_job
from .jobfolder import seconds_since, state_of
from .listeners import ListenerBus
from .outcomes import error_of, restart_cause
from .parts import PartsRun, discard_parts, parts_spec
from .runtime import RunningJob, SpoolRuntime
from .waiting import Conditions

log = logging.getLogger("spoold")

TAKEN = "taken by another daemon, or removed"


class Lifecycle:
    def __init__(
        self,
        host_id: str,
        token: str,
        executor: Executor,
        bus: ListenerBus,
        on_done: Callable[[str], None],
        on_requeued: Callable[[], None] = lambda: None,
        conditions: Conditions | None = None,
    ) -> None:
        self.host_id = host_id
        self.token = token
        self.executor = executor  # started by the daemon before the first claim
        self.bus = bus
        self.on_done = on_done  # called from the executor's thread: must only wake the loop
        self.running: dict[str, RunningJob] = {}  # the jobs this daemon holds, by job id
        self.finishing = Finishing(self.running, bus, on_requeued)
        self.stopping = False  # no more retries: failures are published (begin_stop)
        self.conditions = conditions or Conditions()  # job.json `after`, read from the folders
        self.holding = Holding(self.running, self.finishing, bus, self.conditions)

    def begin_stop(self) -> None:
        """The daemon is stopping: a failed attempt is published, not retried; a held
        result goes back to the inbox (its artifacts with it: the next attempt keeps them)."""
        self.stopping = True
        for job in list(self.running.values()):
            if job.held is not None:
                job.held = None
                self.requeue(job, AttemptOutcome.INTERRUPTED, delay=0.0)

    # The end of an attempt, carried out by Finishing.
    def transition(self, job: RunningJob, new: JobStatus) -> None:
        self.finishing.transition(job, new)

    def publish(
        self, job: RunningJob, status: JobStatus, err: ErrorInfo | None, result: WorkerResult | None
    ) -> None:
        self.finishing.publish(job, status, err, result)

    def requeue(self, job: RunningJob, outcome: AttemptOutcome, delay: float) -> None:
        self.finishing.requeue(job, outcome, delay)

    def fail(self, job: RunningJob, err: ErrorInfo, result: WorkerResult | None) -> None:
        """Retry a retryable failure with backoff while attempts are left; else publish."""
        limit = job.plan.max_attempts if job.plan else job.rt.settings.max_attempts
        if err.retryable and job.state.counted_attempts() + 1 < limit and not self.stopping:
            job.attempt.error = err.for_job(job.job_id)
            self.requeue(job, AttemptOutcome.RETRY, delay=self.finishing.backoff(job))
            return
        if err.code is ErrorCode.CANCELLED:
            self.publish(job, JobStatus.CANCELLED, err, result)
        else:
            self.holding.publish_or_hold(job, JobStatus.FAILED, err, result)

    # ------------------------------------------------------------------ claim

    def run(self, rt: SpoolRuntime, entry: Entry, priority: int, idle: int = 0) -> None:
        """Claim a ready entry and start it (or fail it at once when it is truncated).

        `idle`: the other workers that nothing queued waits for (a medium PDF may use them).
        """
        job = self.claim(rt, entry, priority)
        if job is None:
            return
        if entry.truncated:
            self.publish(job, JobStatus.FAILED, truncated_error(rt, entry).info(), None)
            return
        self.start(job, idle)

    def reject_queued(self, rt: SpoolRuntime, entry: Entry, priority: int, err: ErrorInfo) -> None:
        """Claim a queued entry only to publish it as failed: it can never run."""
        job = self.claim(rt, entry, priority)
        if job is not None:
            self.publish(job, JobStatus.FAILED, err, None)

    def cancel_queued(self, rt: SpoolRuntime, entry: Entry) -> None:
        """Claim a queued entry only to publish it as cancelled (it never starts)."""
        job = self.claim(rt, entry, 50)  # drops the entry: the scheduler skips it
        if job is not None:
            err = JobError(ErrorCode.CANCELLED, "cancelled on request before it started")
            self.publish(job, JobStatus.CANCELLED, err.info(), None)

    def claim(self, rt: SpoolRuntime, entry: Entry, priority: int) -> RunningJob | None:
        """One rename out of inbox/; None when another daemon (or a person) was first.

        OSError other than a lost race (ENOSPC making the folder) is raised: the entry
        stays in the inbox and the caller tries again later.
        """
        if entry.kind is EntryKind.REQUEUED:
            claimed = self._claim_requeued(rt, entry)
        else:
            claimed = self._claim_new(rt, entry, priority)
        rt.tracker.drop(entry.key)
        if isinstance(claimed, str):
            self.bus.emit(rt, ClaimLost(name=entry.name, reason=claimed))
            return None
        state, folder = claimed
        attempt = Attempt(
            number=state.next_attempt_number, host=self.host_id, pid=os.getpid(), claimed_at=iso()
        )
        state.attempts.append(attempt)
        state.next_attempt_at = None
        job = RunningJob(rt, state, folder, attempt, JobStatus.QUEUED)
        job.job_json = entry.job_json  # the intake checks it is still the claimed folder's
        if entry.kind is EntryKind.FILE:
            job.named_id = entry.job_id
        self.transition(job, JobStatus.RUNNING)  # in running/ now, whatever comes next
        self.running[state.job_id] = job
        # No state write here: the running folder's name already records the job id,
        # the attempt and the claiming daemon, which is all recovery needs. The state
        # file is written when the job goes back to the inbox.
        self.bus.emit(rt, JobClaimed(job_id=state.job_id, attempt=attempt.number, name=state.name))
        return job

    def _claim_requeued(self, rt: SpoolRuntime, entry: Entry) -> tuple[JobState, Path] | str:
        """The claimed folder and its state, or why there is none."""
        state = state_of(rt.paths.inbox / entry.key, entry.key)
        if state is None:
            return "gone, or its state and input are unreadable"
        folder = claim_requeued(rt.paths, entry.key, state.next_attempt_number, self.token)
        if folder is None:
            return TAKEN
        fresh = read_state(folder)  # the folder may have changed between the two reads
        if fresh is not None:
            fresh.attempt_floor = state.attempt_floor
            state = fresh
        return state, folder

    def _claim_new(
        self, rt: SpoolRuntime, entry: Entry, priority: int
    ) -> tuple[JobState, Path] | str:
        asked = None
        if entry.kind is EntryKind.DIR:
            # The id is decided now: from job.json as read at admission if the file is
            # still that one (an lstat), else as it is now (spool/jobjson.py).
            known = entry.job_json
            if known is None or not known.is_current(rt.paths.inbox / entry.key):
                known = entry.job_json = read_job_json(rt.paths.inbox / entry.key)
            asked = requested_of(known.data if known else None)
        elif entry.job_id is not None:  # a file named report.ID.md (spool/ids.py)
            asked = Requested(job_id=entry.job_id)
        job_id, jobdir = self._job_id(rt, entry, asked)
        folder = claim_entry(rt.paths, entry.key, entry.name, jobdir, 1, self.token)
        if folder is None:
            return TAKEN
        crash_point("after_claim_rename")
        state = JobState(
            job_id=job_id,
            name=entry.name,
            jobdir=jobdir,
            kind=entry.kind if entry.kind in (EntryKind.FILE, EntryKind.DIR) else EntryKind.SPECIAL,
            owner_uid=entry.uid,
            route=entry.route,
            priority=priority,
            arrived_at=iso_of(entry.arrived_at),
            submitted_by=asked.submitted_by if asked else None,
        )
        detected = JobDetected(job_id=job_id, name=entry.name, route=entry.route, ino=entry.sig[0])
        self.bus.emit(rt, detected)
        return state, folder

    @staticmethod
    def _job_id(rt: SpoolRuntime, entry: Entry, asked: Requested | None) -> tuple[str, str]:
        """The id job.json chose when it is unused (registered now), else a new one; a
        refused id fails the job at start (`_refused_id`)."""
        if asked is not None and asked.job_id is not None:
            jobdir = job_dir_name(entry.name, asked.job_id)
            if reserve_job_id(rt.paths, asked.job_id, jobdir) is None:
                return asked.job_id, jobdir
        job_id = new_job_id()
        return job_id, job_dir_name(entry.name, job_id)

    @staticmethod
    def _refused_id(rt: SpoolRuntime, job: RunningJob, plan: JobPlan) -> JobError | None:
        """job.json, or the file's name, chose an id the claim could not use: it belongs
        to another job."""
        asked = plan.requested_id or job.named_id
        if asked is None or asked == job.job_id:
            return None
        holder = registered_folder(rt.paths, asked)
        holder = (
            (live_folder(rt.paths, holder) or holder) if holder else find_holder(rt.paths, asked)
        )
        where = f" ({holder})" if holder else ""
        what = "job.json: key 'id'" if plan.requested_id else "the file name's id"
        return JobError(
            ErrorCode.INPUT_INVALID,
            f"{what}: {asked} is already the id of another job{where}",
            hint="Leave the id out, or give every job a new id (new_job_id()).",
        )

    # ------------------------------------------------------------------ start

    def start(self, job: RunningJob, idle: int = 0) -> None:
        rt = job.rt
        entry_path = job.folder / INPUT_DIR / job.state.name
        known, job.job_json = job.job_json, None  # once: a later attempt reads afresh
        try:
            plan = plan_job(
                entry_path,
                rt.settings.for_route(job.state.route),
                int(rt.settings.max_input_mb * 1024 * 1024),
                rt.settings.allow_fetch,
                known,
            )
        except JobError as exc:
            self.publish(job, JobStatus.FAILED, exc.info(), None)
            return
        except OSError as exc:
            err = JobError(io_error_code(exc), f"cannot read the input: {exc.strerror}")
            self.publish(job, JobStatus.FAILED, err.info(), None)
            return
        refused = self._refused_id(rt, job, plan)
        if refused is not None:
            self.publish(job, JobStatus.FAILED, refused.info(), None)
            return
        job.plan = plan
        job.spec = spec = job_spec(job, plan, self.executor.workers, idle)
        job.attempt.started_at = iso()
        job_id = job.job_id
        try:
            job.execution = self.executor.submit(spec, plan.timeout_s, lambda: self.on_done(job_id))
        except Exception:
            # A broken pool is the daemon's fault, not the job's: back to the inbox
            # uncounted; the error goes on to the loop (which gives up if it lasts).
            self.requeue(job, AttemptOutcome.INTERRUPTED, delay=0.0)
            raise
        crash_point("after_worker_start")
        targets = list(plan.targets)
        self.bus.emit(rt, JobStarted(job_id=job_id, attempt=job.attempt.number, targets=targets))

    # ------------------------------------------------------------------ finish

    def finish(self, job_id: str) -> None:
        """An execution ended: publish, retry or requeue its job."""
        job = self.running.get(job_id)
        if job is None or job.execution is None:
            return
        if isinstance(job.execution, PartsRun):
            job.execution.advance()  # a part ended: collect it, start the next
        if not job.execution.done():
            return
        outcome = job.execution.outcome()
        if self._lay_out_parts(job, outcome):
            return
        discard_parts(job.folder)
        cause = restart_cause(outcome)
        if cause is not None:
            self.bus.worker_restarted(job.rt, cause)
        timeout = job.plan.timeout_s if job.plan else 0.0
        err = error_of(outcome, job.cancel_mode, timeout, job.rt.settings.timeout_retryable)
        if err is not None and err.code is ErrorCode.CANCELLED and job.draining:
            self.requeue(job, AttemptOutcome.INTERRUPTED, delay=0.0)
            return
        result = outcome.result if isinstance(outcome, Completed) else None
        self.finishing.record_usage(job, result, timed_out=isinstance(outcome, TimedOut))
        if err is None:
            self.holding.publish_or_hold(job, JobStatus.SUCCEEDED, None, result)
        else:
            self.fail(job, err, result)

    def _lay_out_parts(self, job: RunningJob, outcome: Outcome) -> bool:
        """The worker split the PDF: the job goes on as a PartsRun (True)."""
        if not isinstance(outcome, Completed) or not outcome.result.split or job.spec is None:
            return False
        assert self.executor is not None
        timeout = job.plan.timeout_s if job.plan else 0.0
        started = job.attempt.started_at or job.attempt.claimed_at
        deadline = time.monotonic() + timeout - seconds_since(started)
        job_id = job.job_id
        run = PartsRun(
            self.executor, job.spec, outcome.result, deadline, lambda: self.on_done(job_id)
        )
        job.execution = run
        if job.cancel_mode is CancelMode.HARD or job.draining:
            run.cancel()  # stopped while it split: no part starts
        else:
            run.advance()  # a graceful cancel is seen there
        return True

    # ------------------------------------------------------------------ cancel, drain

    def cancel_running(self, job: RunningJob, mode: CancelMode) -> None:
        if job.held is not None:  # finished, held for finish_to_finish: cancelled now
            job.held = None
            err = JobError(ErrorCode.CANCELLED, "cancelled on request while it waited")
            self.publish(job, JobStatus.CANCELLED, err.info(), None)
            return
        if job.cancel_mode is CancelMode.HARD or job.execution is None:
            return
        job.cancel_mode = mode
        if mode is CancelMode.HARD:
            job.execution.cancel()
            return
        try:
            (job.folder / CANCEL_FLAG).write_text(CancelMode.GRACEFUL)
        except OSError:
            pass
        job.cancel_deadline = time.monotonic() + job.rt.settings.cancel_grace_s

    def enforce_cancel_deadlines(self, now: float) -> None:
        for job in list(self.running.values()):
            deadline = job.cancel_deadline
            if deadline is not None and now >= deadline and job.execution is not None:
                job.cancel_deadline = None
                job.cancel_mode = CancelMode.HARD
                job.execution.cancel()

    def drain(self) -> None:
        """The drain deadline passed: stop every job; they go back to the inbox."""
        for job in list(self.running.values()):
            job.draining = True
            if job.execution is not None:
                job.execution.cancel()

    def give_up_lost_claims(
        self, reason: str = "claim lost: this daemon's lease was removed"
    ) -> int:
        """Forget the jobs whose running folder is gone (recovered by another daemon)."""
        lost = [job for job in self.running.values() if not job.folder.exists()]
        for job in lost:
            self.running.pop(job.job_id, None)
            if job.execution is not None:
                job.execution.cancel()
            event = JobDiscarded(job_id=job.job_id, attempt=job.attempt.number, reason=reason)
            self.bus.emit(job.rt, event)
        return len(lost)


def truncated_error(rt: SpoolRuntime, entry: Entry) -> JobError:
    """An entry that failed its format check and stayed unchanged for its bound."""
    problem = entry.problem or Incomplete(entry.name, "does not look complete")
    return JobError(
        ErrorCode.INPUT_INVALID,
        f"{problem.describe(entry.name)}. It has not changed for "
        f"{rt.tracker.fail_after_s(entry):.0f} s, so it is taken as truncated or broken, "
        "not as still being written",
        hint=f"Copy {problem.member} again, completely (write it into tmp/, then rename "
        "it into inbox/), or replace it with a file that is not damaged.",
    )


def job_spec(job: RunningJob, plan: JobPlan, workers: int, idle: int = 0) -> JobSpec:
    """What the worker gets for this attempt (`workers`: the pool's size, `idle`: how
    many of the others are idle, for parts)."""
    rt = job.rt
    options = dict(plan.options)
    if plan.reference is not None:
        options["reference_docx"] = str(plan.reference)
    return JobSpec(
        job_id=job.job_id,
        attempt=job.attempt.number,
        folder=str(job.folder),
        job_root=str(plan.job_root),
        main=str(plan.main),
        source_type=plan.source_type,
        targets=plan.targets,
        stem=job.state.jobdir.rsplit(".", 1)[0],
        options=options,
        limits=WorkerLimits(memory_mb=rt.settings.memory_limit_mb, cpu_s=rt.settings.cpu_limit_s),
        durable=rt.settings.durable,
        sync_artifacts=not syncfs_capable(rt.paths.running),
        dedup_dir=str(rt.paths.state / "dedup"),
        done_dir=str(rt.paths.done),
        on_duplicate=str(plan.options.get("on_duplicate", "reuse")),
        idempotency_key=plan.idempotency_key,
        parts=parts_spec(workers, idle),
    )
