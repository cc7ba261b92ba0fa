"""job.json `after`: the jobs a job waits for (SPEC section 3, "Dependencies").

A reference names another job of the same spool, by job id or by the name it was
dropped with, with a kind and what a failed or cancelled dependency does:

    "report.md"                                      finish_to_start, on_failure fail
    {"job": "report.md", "kind": "start_to_start", "on_failure": "run"}

This module is the model (`AfterRef`), a job folder's references (`after_of` its job.json
as read before a claim, spool/jobjson.py) and what one reference's condition says about
the jobs it resolved to (`verdict`). Finding those jobs in the folders, and cycles, is
spool/waits.py. docs/protocol.md "Dependencies" is the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .events import JobWaiting
from .jobjson import read_job_json

HELD_STAGE = "waiting"  # a running job's stage while its result is held (finish_to_finish)
MAX_AFTER = 100  # references per job: a longer list is a mistake, not a plan


class AfterKind(StrEnum):
    FINISH_TO_START = "finish_to_start"  # start once the other job succeeded
    START_TO_START = "start_to_start"  # start once the other job has started
    FINISH_TO_FINISH = "finish_to_finish"  # publish only once the other job is finished


class OnFailure(StrEnum):
    FAIL = "fail"  # this job fails with dependency_failed
    RUN = "run"  # the condition counts as met


class AfterRef(BaseModel):
    """One reference of `after`: a job id or a dropped entry's name, and its condition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: str = Field(min_length=1, max_length=255)
    kind: AfterKind = AfterKind.FINISH_TO_START
    on_failure: OnFailure = OnFailure.FAIL

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"job": value} if isinstance(value, str) else value

    def as_json(self) -> dict[str, str]:
        return {"job": self.job, "kind": self.kind.value, "on_failure": self.on_failure.value}

    def describe(self) -> str:
        return self.job if self.kind is AfterKind.FINISH_TO_START else f"{self.job} ({self.kind})"


def parse_after(value: Any) -> tuple[AfterRef, ...]:
    """`after` as job.json gives it; ValueError (pydantic's) when it is not valid."""
    if not isinstance(value, list):
        raise ValueError("after must be a list")
    if len(value) > MAX_AFTER:
        raise ValueError(f"after holds {len(value)} references; at most {MAX_AFTER}")
    return tuple(AfterRef.model_validate(v) for v in value)


def after_of(data: dict[str, Any] | None) -> tuple[AfterRef, ...]:
    """The references of a job.json (empty when it has none, or they are not valid: the
    job is then claimed at once and its intake fails it, naming the key)."""
    if not data or not data.get("after"):
        return ()
    try:
        return parse_after(data["after"])
    except (ValueError, ValidationError):
        return ()


def read_after(folder: Path) -> tuple[AfterRef, ...]:
    known = read_job_json(folder)
    return after_of(known.data if known else None)


# ------------------------------------------------------------------ conditions


class JobPhase(StrEnum):
    """Where a referenced job is, as far as a condition cares."""

    QUEUED = "queued"  # in inbox/, never started
    STARTED = "started"  # running, or back in inbox/ after an attempt started
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed or cancelled (a failed dependency either way)


class Verdict(StrEnum):
    MET = "met"
    WAIT = "wait"
    FAILED = "failed"  # the referenced job failed or was cancelled, and on_failure is fail


@dataclass(frozen=True)
class Found:
    """A job a reference resolved to."""

    folder: str  # relative to the spool: inbox/KEY, running/NAME, done/JOBDIR...
    job_id: str | None  # None: dropped, not yet claimed
    name: str
    state: str  # queued, running, succeeded, failed, cancelled (as the job record says)
    phase: JobPhase
    started: bool  # some attempt started (a failed job may never have)


def verdict(ref: AfterRef, found: Found, *, finishing: bool = False) -> Verdict:
    """Whether `ref`'s condition holds for one job it resolved to.

    Before a claim (`finishing` False) a finish_to_finish reference holds unless the
    other job failed; when the job would be published (`finishing`) it needs the other
    job finished. start_to_start holds for a failed job that had started.
    """
    phase = found.phase
    if phase is JobPhase.FAILED:
        if ref.kind is AfterKind.START_TO_START and found.started:
            return Verdict.MET
        return Verdict.MET if ref.on_failure is OnFailure.RUN else Verdict.FAILED
    if ref.kind is AfterKind.FINISH_TO_FINISH:
        if not finishing:
            return Verdict.MET
        return Verdict.MET if phase is JobPhase.SUCCEEDED else Verdict.WAIT
    if ref.kind is AfterKind.START_TO_START:
        return Verdict.WAIT if phase is JobPhase.QUEUED else Verdict.MET
    return Verdict.MET if phase is JobPhase.SUCCEEDED else Verdict.WAIT


def wait_event_problem(ev: dict[str, Any], known_job: bool, running: int | None) -> str | None:
    """What is wrong with a job.waiting or job.released line (`spoold check-events`).

    Both name the job; job.waiting lists its unmet references. A job in inbox/ has no id
    yet; a held finish_to_finish result is that of the job's running attempt (`running`:
    the attempt the log says is running, if any).
    """
    name = ev.get("event")
    if not isinstance(ev.get("name"), str) or not ev["name"]:
        return f"{name} without the job's name"
    if name == JobWaiting.NAME and not isinstance(ev.get("after"), list):
        return "job.waiting without its list of references (after)"
    if known_job and (running is None or ev.get("attempt") != running):
        return f"{name} of a job id that is not running that attempt"
    return None
