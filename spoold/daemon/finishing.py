"""The end of an attempt: publish, retry with backoff, requeue, or recover a lost claim.

The lifecycle owns a `Finishing` (built with the lifecycle's table of running jobs and
its bus): together they are the only writers of job state. Whether a failed attempt is
retried is the lifecycle's decision (`Lifecycle.fail`); this module carries it out.
Rename races end in defined outcomes:

- publish: the running folder is gone (claim lost, fenced) or the job is already in
  done/ or failed/ (already published): `job.discarded` with the reason;
- requeue: the folder is gone (claim lost) or inbox/ already holds it (already
  requeued by another daemon): `job.discarded`;
- recovery: the folder is gone or already requeued: nothing to do.
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from ..errors import ErrorInfo
from ..spool.checkpoints import discard_kept
from ..spool.clock import iso, wall_time
from ..spool.dedup import record_result
from ..spool.events import (
    JobCancelled,
    JobDiscarded,
    JobDuplicate,
    JobEnded,
    JobFailed,
    JobRequeued,
    JobRetryScheduled,
    JobSucceeded,
)
from ..spool.job import AttemptOutcome, JobStatus, check_transition
from ..spool.manifest import Manifest
from ..spool.protocol import INPUT_DIR, requeue, unlink_quiet
from ..spool.records import Usage
from ..worker.spec import CANCEL_FLAG, STAGE_FILE, WorkerResult
from .crashpoints import crash_point
from .jobfolder import ATTEMPT_HINT, save_state, seconds_since
from .listeners import ListenerBus, Published
from .outcomes import backoff_s
from .publisher import (
    GroupCommit,
    PendingPublish,
    PublishRace,
    PublishSpec,
    build_manifest,
    input_info,
    modes_before_rename,
    rename_outcome,
    write_files,
    write_outcome,
)
from .runtime import RunningJob, SpoolRuntime

log = logging.getLogger("spoold")

ENDED_EVENTS: dict[JobStatus, type[JobEnded]] = {
    JobStatus.SUCCEEDED: JobSucceeded,
    JobStatus.FAILED: JobFailed,
    JobStatus.CANCELLED: JobCancelled,
}


class Publishing(NamedTuple):
    """A job being published, between the write of its files and its report."""

    job: RunningJob
    status: JobStatus
    result: WorkerResult | None
    err: ErrorInfo | None
    manifest: Manifest
    spec: PublishSpec


class Finishing:
    def __init__(
        self,
        running: dict[str, RunningJob],
        bus: ListenerBus,
        on_requeued: Callable[[], None],
    ) -> None:
        self.running = running  # the lifecycle's table: a finished job leaves it here
        self.bus = bus
        self.on_requeued = on_requeued  # a job went back to inbox/: the loop rescans it
        self.group: GroupCommit | None = None  # inside group_commit()

    @contextmanager
    def group_commit(self) -> Iterator[None]:
        """The jobs published inside share their folders' fsyncs; they are reported
        (events, hooks) when it ends, once those are durable."""
        if self.group is not None:
            yield
            return
        self.group = group = GroupCommit()
        try:
            yield
        finally:
            self.group = None
            group.commit()

    def transition(self, job: RunningJob, new: JobStatus) -> None:
        """Move the job in the state machine; an invalid move is a bug, refused."""
        check_transition(job.job_id, job.status, new)
        job.status = new

    def record_usage(self, job: RunningJob, result: WorkerResult | None, timed_out: bool) -> None:
        usage = result.usage if result is not None else None
        if usage is not None:
            job.attempt.usage = usage
        elif timed_out and job.attempt.started_at:
            # The worker was killed: only the wall time is known here.
            job.attempt.usage = Usage(wall_s=round(seconds_since(job.attempt.started_at), 6))

    def backoff(self, job: RunningJob) -> float:
        s = job.rt.settings
        failures = max(1, job.state.counted_attempts() + 1)
        return backoff_s(failures, s.backoff_initial_s, s.backoff_max_s)

    # ------------------------------------------------------------------ requeue

    def requeue(self, job: RunningJob, outcome: AttemptOutcome, delay: float) -> None:
        rt = job.rt
        self.transition(job, JobStatus.QUEUED)
        self.running.pop(job.job_id, None)
        job.attempt.outcome = outcome
        job.attempt.finished_at = iso()
        job.state.next_attempt_at = wall_time() + delay if delay > 0 else None
        if job.cancel_mode is not None:
            unlink_quiet(job.folder / CANCEL_FLAG)
        unlink_quiet(job.folder / STAGE_FILE)  # a killed worker may have left it
        self.save_requeue_state(job)
        crash_point("before_requeue_rename")
        reason: str | None = None
        try:
            dest = requeue(rt.paths, job.folder, job.state.jobdir)
            if dest is None:
                reason = "claim lost"
        except FileNotFoundError:
            reason = "claim lost"
        except FileExistsError:
            reason = "already requeued by another daemon"
        except OSError as exc:
            # The folder stays in running/ under this daemon's name; recovery requeues
            # it in a later round (recovery.py `_forgotten`).
            log.warning("could not requeue %s: %s; trying again later", job.job_id, exc)
            return
        crash_point("after_requeue_rename")
        number = job.attempt.number
        if reason is not None:
            self.bus.emit(rt, JobDiscarded(job_id=job.job_id, attempt=number, reason=reason))
            return
        if outcome is AttemptOutcome.RETRY:
            code = job.attempt.error.code if job.attempt.error else None
            event = JobRetryScheduled(
                job_id=job.job_id, attempt=number, delay_s=round(delay, 3), code=code
            )
            self.bus.emit(rt, event)
        else:
            self.bus.emit(rt, JobRequeued(job_id=job.job_id, attempt=number, reason=outcome.value))
        self.on_requeued()

    def save_requeue_state(self, job: RunningJob) -> None:
        try:
            save_state(job.folder, job.state, durable=job.rt.settings.durable)
        except FileNotFoundError:
            pass  # the folder is gone: the rename says so
        except OSError as exc:
            # Disk full: requeue anyway; the stale state only lacks this attempt's end.
            # An empty file needs no data block, so this hint usually still fits, and the
            # next claim numbers its attempt above it.
            log.warning("could not record the state of %s: %s", job.job_id, exc.strerror)
            try:
                (job.folder / f"{ATTEMPT_HINT}{job.attempt.number}").touch()
            except OSError:
                pass

    # ------------------------------------------------------------------ publish

    def publish(
        self,
        job: RunningJob,
        status: JobStatus,
        err: ErrorInfo | None,
        result: WorkerResult | None,
    ) -> None:
        rt = job.rt
        check_transition(job.job_id, job.status, status)  # applied once it is published
        self.running.pop(job.job_id, None)
        job.attempt.finished_at = iso()
        job.attempt.outcome = AttemptOutcome(status.value)
        if err is not None:
            job.attempt.error = err.for_job(job.job_id)
        manifest = build_manifest(
            job.state,
            rt.name,
            status,
            job.attempt.error,
            job.plan.options if job.plan else {},
            input_info(_main_document(job), result.input_sha256 if result else None),
            result,
            job.attempt.finished_at,
        )
        spec = _publish_spec(job, status, self.group)
        discard_kept(job.folder)  # a big PDF's parts kept for a later attempt (none comes)
        publishing = Publishing(job, status, result, err, manifest, spec)
        group = self.group
        if group is not None and spec.durable:
            # Written now, made durable with the pass's other jobs, then renamed.
            try:
                files = write_files(spec, manifest)
            except FileNotFoundError:
                self._renamed(publishing, PublishRace.CLAIM_LOST)
                return
            except OSError as exc:
                self._not_published(job, exc)
                return
            rename = functools.partial(self._rename, publishing)
            lost = functools.partial(self._renamed, publishing, PublishRace.CLAIM_LOST)
            failed = functools.partial(self._not_published, job)
            group.pending.append(PendingPublish(files, spec.folder, rename, lost, failed))
            return
        try:
            dest = write_outcome(spec, manifest)
        except OSError as exc:
            self._not_published(job, exc)
            return
        self._renamed(publishing, dest)

    def _not_published(self, job: RunningJob, exc: OSError) -> None:
        # Disk full or I/O error while publishing: the input is safe in running/; try
        # again after a backoff. ESTALE is no error of this host: another client moved
        # or removed the folder (a peer recovered the claim), and the requeue tells which.
        level = logging.WARNING if exc.errno == errno.ESTALE else logging.ERROR
        log.log(level, "could not publish %s: %s", job.job_id, exc.strerror or exc)
        self.requeue(job, AttemptOutcome.RETRY, delay=self.backoff(job))

    def _rename(self, p: Publishing) -> None:
        try:
            dest = rename_outcome(p.spec)
        except OSError as exc:
            self._not_published(p.job, exc)
            return
        self._renamed(p, dest)

    def _renamed(self, p: Publishing, dest: Path | PublishRace) -> None:
        """After the publish rename (or the race that prevented it): the job's report,
        at once or once its group's folders are durable."""
        job, status, result, err, manifest, spec = p
        number = job.attempt.number
        if isinstance(dest, PublishRace):
            self.bus.emit(
                job.rt, JobDiscarded(job_id=job.job_id, attempt=number, reason=dest.value)
            )
            return
        job.status = status
        report = functools.partial(
            self._report, job, status, result, err, dest, manifest, modes_before_rename(spec)
        )
        if spec.group is not None:
            spec.group.reports.append(report)  # once the group's fsyncs are done
        else:
            report()

    def _report(
        self,
        job: RunningJob,
        status: JobStatus,
        result: WorkerResult | None,
        err: ErrorInfo | None,
        dest: Path,
        manifest: Manifest,
        modes_applied: bool,
    ) -> None:
        self._record_result(job.rt, job, status, result, dest)
        self._announce(job, err, dest, manifest, modes_applied)

    def _announce(
        self,
        job: RunningJob,
        err: ErrorInfo | None,
        dest: Path,
        manifest: Manifest,
        modes_applied: bool,
    ) -> None:
        """The published job's event (the log first), then the after-publish listeners."""
        rt, number = job.rt, job.attempt.number
        event = ENDED_EVENTS[job.status](
            job_id=job.job_id,
            attempt=number,
            name=job.state.name,
            code=err.code if err else None,
            message=err.message if err else None,
            path=str(dest.relative_to(rt.root)),
        )
        self.bus.emit(rt, event)
        published = Published(
            rt,
            job.job_id,
            number,
            job.state.route,
            job.status,
            job.attempt.error,
            dest,
            manifest,
            _wall_s(job),
            modes_applied=modes_applied,
        )
        self.bus.published(published)

    def _record_result(
        self,
        rt: SpoolRuntime,
        job: RunningJob,
        status: JobStatus,
        result: WorkerResult | None,
        dest: Path,
    ) -> None:
        """A duplicate's event, or the key a later duplicate will find this job by."""
        if result is None:
            return
        if result.duplicate_of:
            event = JobDuplicate(
                job_id=job.job_id,
                attempt=job.attempt.number,
                duplicate_of=result.duplicate_of,
                name=job.state.name,
            )
            self.bus.emit(rt, event)
        elif status is JobStatus.SUCCEEDED and result.idempotency_key:
            try:
                record_result(
                    rt.paths.state / "dedup", result.idempotency_key, dest, job.state.jobdir
                )
            except OSError as exc:
                log.warning("could not record the key of %s: %s", job.job_id, exc)


def _main_document(job: RunningJob) -> Path:
    return job.plan.main if job.plan else job.folder / INPUT_DIR / job.state.name


def _wall_s(job: RunningJob) -> float:
    # A job that never reached a worker (intake failure, killed worker) has no usage:
    # its duration is from claim (or start) to now, not 0.
    usage = job.attempt.usage
    return (
        usage.wall_s if usage else seconds_since(job.attempt.started_at or job.attempt.claimed_at)
    )


def _publish_spec(job: RunningJob, status: JobStatus, group: GroupCommit | None) -> PublishSpec:
    rt = job.rt
    return PublishSpec(
        job.folder,
        job.state,
        rt.paths.done if status is JobStatus.SUCCEEDED else rt.paths.failed,
        rt.settings.durable,
        job.cancel_mode is not None,
        rt.settings.output_mode,
        rt.settings.output_group,
        group,
    )
