"""finish_to_finish (job.json `after`; docs/protocol.md "Dependencies"): a job whose
result is ready while a job it may not finish before is unfinished keeps its result
unpublished in running/ (its stage says `waiting`; it holds no worker), and is looked at
again in the waiting rounds (daemon/waiting.py) until that job finished: then it is
published, or failed with dependency_failed. Owned by the lifecycle, like Finishing,
with which it shares the table of running jobs.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import ErrorInfo
from ..spool.after import HELD_STAGE, AfterKind, Found, JobPhase
from ..spool.events import JobReleased, JobWaiting
from ..spool.job import JobStatus
from ..worker.spec import WorkerResult
from .finishing import Finishing
from .jobfolder import write_stage
from .listeners import ListenerBus
from .runtime import HeldResult, RunningJob
from .waiting import Conditions, failure_of, overdue_missing


class Holding:
    def __init__(
        self,
        running: dict[str, RunningJob],
        finishing: Finishing,
        bus: ListenerBus,
        conditions: Conditions,
    ) -> None:
        self.running = running
        self.finishing = finishing
        self.bus = bus
        self.conditions = conditions

    def holds_results(self) -> bool:
        return any(job.held is not None for job in self.running.values())

    def check_held_results(self, now: float) -> None:
        for job in list(self.running.values()):
            if job.held is not None:
                held = job.held
                self.publish_or_hold(job, held.status, held.error, held.result, now)

    def publish_or_hold(
        self,
        job: RunningJob,
        status: JobStatus,
        err: ErrorInfo | None,
        result: WorkerResult | None,
        now: float | None = None,
    ) -> None:
        """Publish, unless a finish_to_finish job is unfinished: then hold the result."""
        after = job.plan.after if job.plan else ()
        refs = tuple(r for r in after if r.kind is AfterKind.FINISH_TO_FINISH)
        if not refs:
            self.finishing.publish(job, status, err, result)
            return
        held = job.held or HeldResult(status, err, result, refs)
        me = Found(
            f"running/{job.folder.name}",
            job.job_id,
            job.state.name,
            "running",
            JobPhase.STARTED,
            True,
        )
        if now is None:  # not in a round of check_held_results: read the folders now
            self.conditions.new_round()
            now = time.monotonic()
        ev = self.conditions.evaluate(job.rt, me, refs, finishing=True)
        # A job that stays missing was removed (retention, a person): nothing to wait for.
        gone = overdue_missing(held.missing_since, ev, now, job.rt.settings.after_missing_s)
        failure = failure_of(ev, [], job.state.name)
        pending = [p for p in ev.pending if p.found is not None or p.ref not in gone]
        if failure is None and pending:
            if job.held is None:
                self._hold(job, held, [p.as_json() for p in pending])
            return
        if job.held is not None:
            self._release(job, "conditions met" if failure is None else f"failed: {failure.code}")
        if failure is not None:
            self.finishing.publish(job, JobStatus.FAILED, failure, None)
        else:
            self.finishing.publish(job, status, err, result)

    def _hold(self, job: RunningJob, held: HeldResult, waiting: list[dict[str, Any]]) -> None:
        """Keep a finish_to_finish job's result unpublished in running/, and say so."""
        job.held = held
        write_stage(job.folder, HELD_STAGE)
        event = JobWaiting(
            job_id=job.job_id, attempt=job.attempt.number, name=job.state.name, after=waiting
        )
        self.bus.emit(job.rt, event)

    def _release(self, job: RunningJob, reason: str) -> None:
        job.held = None
        event = JobReleased(
            job_id=job.job_id, attempt=job.attempt.number, name=job.state.name, reason=reason
        )
        self.bus.emit(job.rt, event)
