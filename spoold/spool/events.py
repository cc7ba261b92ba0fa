"""The events: what each line of the events log says (docs/protocol.md, "Events").

Each event is a typed payload below. Writing the log (one file per daemon instance,
events held through a full disk, `events.gap`) is spool/eventlog.py; its files, read
merged in order and followed, spool/eventfiles.py (`read_events` and `follow` are also
importable from here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

# Re-exported: the readers of the log's files, where tools have always imported them.
from .eventfiles import follow as follow
from .eventfiles import read_events as read_events

# ------------------------------------------------------------------ typed payloads
#
# Each event is a frozen dataclass: a field without a default must be given, so an event
# that lacks what a tool matches on (job.detected's `ino`) is a type error, not a hang.
# `job_id` and `attempt` are on every event (null for daemon-wide ones); the shapes
# events share are bases (AttemptEvent: both required; DaemonEvent: the pid), and each
# event adds only its own fields. Events of one shape stay separate classes: the class
# is the event's name, and a tool's type checker tells job.claimed from job.recovered.


@dataclass(frozen=True, kw_only=True)
class Event:
    NAME: ClassVar[str] = ""
    job_id: str | None = None
    attempt: int | None = None

    def payload(self) -> dict[str, Any]:
        """The event's own fields (without job_id and attempt), None ones left out."""
        # __dict__ holds exactly the dataclass fields, in order; dataclasses.fields()
        # cost ~3 us an event, a measurable share of a tiny job's daemon time.
        return {
            k: v for k, v in self.__dict__.items() if v is not None and k not in _ON_EVERY_EVENT
        }


_ON_EVERY_EVENT = frozenset({"job_id", "attempt"})


@dataclass(frozen=True, kw_only=True)
class AttemptEvent(Event):
    """An event of one attempt of one job: job id and attempt must be given."""

    job_id: str
    attempt: int


@dataclass(frozen=True, kw_only=True)
class DaemonEvent(Event):
    """An event of one daemon process that names its pid (job_id and attempt: null)."""

    pid: int


@dataclass(frozen=True, kw_only=True)
class JobDetected(Event):
    NAME = "job.detected"
    job_id: str
    name: str
    route: str | None
    ino: int  # the entry's inode: `spoold submit --wait` finds its job by it


@dataclass(frozen=True, kw_only=True)
class JobClaimed(AttemptEvent):
    NAME = "job.claimed"
    name: str


@dataclass(frozen=True, kw_only=True)
class JobStarted(AttemptEvent):
    NAME = "job.started"
    targets: list[str]


@dataclass(frozen=True, kw_only=True)
class JobEnded(AttemptEvent):
    """A published outcome (succeeded, failed, cancelled)."""

    name: str
    path: str
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobSucceeded(JobEnded):
    NAME = "job.succeeded"


@dataclass(frozen=True, kw_only=True)
class JobFailed(JobEnded):
    NAME = "job.failed"


@dataclass(frozen=True, kw_only=True)
class JobCancelled(JobEnded):
    NAME = "job.cancelled"


@dataclass(frozen=True, kw_only=True)
class JobRetryScheduled(AttemptEvent):
    NAME = "job.retry_scheduled"
    delay_s: float
    code: str | None


@dataclass(frozen=True, kw_only=True)
class JobRequeued(AttemptEvent):
    NAME = "job.requeued"
    reason: str


@dataclass(frozen=True, kw_only=True)
class JobRecovered(AttemptEvent):
    NAME = "job.recovered"
    name: str


@dataclass(frozen=True, kw_only=True)
class JobDuplicate(AttemptEvent):
    NAME = "job.duplicate"
    duplicate_of: str
    name: str


@dataclass(frozen=True, kw_only=True)
class JobDiscarded(AttemptEvent):
    """An attempt's result was dropped: its claim was lost (fenced) or the job is gone."""

    NAME = "job.discarded"
    reason: str


@dataclass(frozen=True, kw_only=True)
class JobWaiting(Event):
    """A job waits for other jobs (job.json `after`): in inbox/ before its claim (job_id
    null: it has none yet; `ino` tells it apart), or finished but held unpublished
    (finish_to_finish: job_id and attempt given)."""

    NAME = "job.waiting"
    name: str
    route: str | None = None
    ino: int | None = None
    after: list[dict[str, Any]]  # the unmet references: job, kind, on_failure, job_id, state


@dataclass(frozen=True, kw_only=True)
class JobReleased(Event):
    """A waiting job's conditions hold (or failed: it is then published as failed)."""

    NAME = "job.released"
    name: str
    route: str | None = None
    ino: int | None = None
    reason: str


@dataclass(frozen=True, kw_only=True)
class ClaimLost(Event):
    """Another daemon, a person or a tool took or removed the entry first."""

    NAME = "claim.lost"
    name: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class CancelIgnored(Event):
    NAME = "cancel.ignored"
    reason: str
    name: str


@dataclass(frozen=True, kw_only=True)
class CancelRefused(Event):
    NAME = "cancel.refused"
    reason: str
    marker_uid: int
    name: str | None = None


@dataclass(frozen=True, kw_only=True)
class HookFailed(AttemptEvent):
    NAME = "hook.failed"
    command: str
    exit_code: int | None
    timed_out: bool
    error: str
    output: str


@dataclass(frozen=True, kw_only=True)
class DaemonStarted(DaemonEvent):
    NAME = "daemon.started"
    workers: int
    detect: str
    version: str


@dataclass(frozen=True, kw_only=True)
class DaemonStopping(DaemonEvent):
    NAME = "daemon.stopping"
    running: int


@dataclass(frozen=True, kw_only=True)
class DaemonPaused(Event):
    NAME = "daemon.paused"
    reason: str


@dataclass(frozen=True, kw_only=True)
class DaemonReloaded(Event):
    NAME = "daemon.reloaded"
    routes: list[str]


@dataclass(frozen=True, kw_only=True)
class DaemonReloadRefused(Event):
    NAME = "daemon.reload_refused"
    reason: str


@dataclass(frozen=True, kw_only=True)
class DaemonLeaseLost(DaemonEvent):
    """This daemon's lease files were removed (another daemon took it for gone)."""

    NAME = "daemon.lease_lost"
    claims_lost: int


@dataclass(frozen=True, kw_only=True)
class DaemonFailed(DaemonEvent):
    """The same internal error repeated: the daemon exits 70 for systemd to restart it."""

    NAME = "daemon.failed"
    error: str


@dataclass(frozen=True, kw_only=True)
class EventsGap(Event):
    """Events a daemon could not write (a full disk, an I/O error) and dropped once it
    held `events_held_max` of them in memory (spool/eventlog.py). It stands where they
    would be: its `ts` and `spool_ts` are the first lost event's."""

    NAME = "events.gap"
    count: int  # events lost
    job_ids: list[str]  # the jobs they were about, in order
    job_ids_complete: bool  # false: more jobs than job_ids names (it is capped)
    first_ts: str  # the first and the last lost event's ts
    last_ts: str
    error: str  # why the log could not be written


EVENT_TYPES: tuple[type[Event], ...] = (
    JobDetected,
    JobClaimed,
    JobStarted,
    JobSucceeded,
    JobFailed,
    JobCancelled,
    JobRetryScheduled,
    JobRecovered,
    JobDuplicate,
    JobRequeued,
    JobDiscarded,
    JobWaiting,
    JobReleased,
    ClaimLost,
    CancelIgnored,
    CancelRefused,
    HookFailed,
    DaemonStarted,
    DaemonStopping,
    DaemonPaused,
    DaemonReloaded,
    DaemonReloadRefused,
    DaemonLeaseLost,
    DaemonFailed,
    EventsGap,
)
EVENT_NAMES = frozenset(t.NAME for t in EVENT_TYPES)

# Logged at debug level: every job has them, and the terminal log then holds one line
# per finished job. The events log records them all the same.
QUIET_EVENTS = frozenset({JobDetected.NAME, JobClaimed.NAME, JobStarted.NAME})


def __getattr__(name: str) -> Any:
    # `from spoold.spool.events import EventLog` still works: the writer moved to
    # eventlog.py, which imports this module (so it cannot be imported above).
    if name == "EventLog":
        from .eventlog import EventLog

        return EventLog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
