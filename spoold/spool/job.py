"""The job model and its state machine, in one place.

    queued --claim--> running --> succeeded | failed | cancelled
      ^                  |
      +----requeue-------+          (retry after backoff, recovery, drain)

    failed | cancelled --retry--> queued       (`spoold retry`, a new attempt)
    queued --cancel--> cancelled; queued --reject--> failed (bad input found early)

`JobState` is what the daemon keeps inside the job folder (.spoold-state.json) while the
job lives: it moves with the folder in the same rename, so it can never disagree with
the folder's place. It holds the owner's uid, which the manifest does not show.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ErrorInfo
from .protocol import STATE_FILE
from .records import Usage
from .transient import call_with_retry

log = logging.getLogger(__name__)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED}),
}


class InvalidTransition(Exception):
    pass


def check_transition(job_id: str, old: JobStatus, new: JobStatus) -> None:
    """Refuse (and log as a bug) any transition the state machine does not allow."""
    if new not in TRANSITIONS[old]:
        log.error("bug: refused transition of job %s from %s to %s", job_id, old, new)
        raise InvalidTransition(f"job {job_id}: {old} -> {new} is not a valid transition")


class AttemptOutcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRY = "retry"  # failed with a retryable error; requeued with backoff
    LOST = "lost"  # the daemon holding it died; recovered by another
    INTERRUPTED = "interrupted"  # drained on stop; does not count against max_attempts


class CancelMode(StrEnum):
    """What a cancel marker (inbox/NAME.cancel) asks for: its content, graceful by default."""

    GRACEFUL = "graceful"  # finish the current target, then stop; killed after cancel_grace_s
    HARD = "hard"  # kill now

    @classmethod
    def of_marker(cls, text: str) -> CancelMode:
        return cls.HARD if text.strip().lower().startswith("hard") else cls.GRACEFUL


# Outcomes that count against max_attempts.
COUNTED = frozenset({AttemptOutcome.FAILED, AttemptOutcome.RETRY, AttemptOutcome.LOST})


class Attempt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: int = Field(ge=1)
    host: str
    pid: int
    claimed_at: str
    started_at: str | None = None
    finished_at: str | None = None
    outcome: AttemptOutcome = AttemptOutcome.RUNNING
    error: ErrorInfo | None = None
    usage: Usage | None = None


class JobState(BaseModel):
    """Daemon-private state that travels inside the job folder."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    name: str  # the original entry name
    jobdir: str
    kind: str  # "file" or "dir"
    owner_uid: int
    route: str | None = None
    priority: int = 50
    arrived_at: str
    submitted_by: str | None = None  # job.json's submitted_by (the gateway's token name)
    attempts: list[Attempt] = Field(default_factory=list)
    next_attempt_at: float | None = None  # unix time; set when requeued with backoff
    counted_since: int = 0  # `spoold retry` starts counting attempts again after this one
    # The highest attempt number known from elsewhere (an attempt hint file left when the
    # state could not be saved on a full disk), so numbers never repeat.
    attempt_floor: int = 0

    @property
    def next_attempt_number(self) -> int:
        return max(max((a.number for a in self.attempts), default=0), self.attempt_floor) + 1

    def counted_attempts(self) -> int:
        """Attempts that count against max_attempts since the last manual retry."""
        return sum(
            1 for a in self.attempts if a.outcome in COUNTED and a.number > self.counted_since
        )

    def last_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def read_state(folder: Path) -> JobState | None:
    """The state file of a job folder (None when absent or unreadable)."""
    try:
        # Retried: a transient ESTALE must not pass for "no state" (its attempts count).
        return JobState.model_validate_json(call_with_retry((folder / STATE_FILE).read_bytes))
    except (OSError, ValueError):
        return None
