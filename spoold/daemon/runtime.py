"""What the daemon holds in memory: one record per spool it serves, one per job it holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ErrorInfo
from ..settings import SpoolSettings
from ..spool.after import AfterRef
from ..spool.clock import SpoolClock
from ..spool.eventlog import EventLog
from ..spool.job import Attempt, CancelMode, JobState, JobStatus
from ..spool.jobjson import JobJson
from ..spool.leases import OwnLease, PeerWatcher
from ..spool.protocol import SpoolPaths
from ..worker.spec import JobSpec, WorkerResult
from .executor import Execution
from .inbox.board import WaitingBoard
from .inbox.tracker import Entry, InboxTracker
from .intake import JobPlan


@dataclass
class SpoolRuntime:
    """One spool served by this daemon."""

    root: Path
    paths: SpoolPaths
    settings: SpoolSettings
    events: EventLog
    lease: OwnLease  # this daemon's lease on the spool
    peers: PeerWatcher  # the other daemons' leases, judged on our monotonic clock
    tracker: InboxTracker
    spool_clock: SpoolClock  # the file server's time, for backoff waits across hosts
    board: WaitingBoard  # the entries the tracker waits on, published for tools
    markers: dict[str, Entry] = field(default_factory=dict)
    waiting_markers: dict[str, str] = field(default_factory=dict)  # key -> target
    paused: str | None = None
    next_disk_check: float = 0.0
    # Claims of this daemon that no job of it holds, seen by the last recovery round
    # (daemon/recovery.py `_forgotten`): requeued when a second round sees them too.
    forgotten: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.root.name


@dataclass
class HeldResult:
    """A finished attempt kept unpublished until the jobs it may not finish before have
    finished (job.json `after`, finish_to_finish; daemon/waiting.py)."""

    status: JobStatus
    error: ErrorInfo | None
    result: WorkerResult | None
    refs: tuple[AfterRef, ...]
    missing_since: dict[str, float] = field(default_factory=dict)


@dataclass
class RunningJob:
    """A job this daemon holds (claimed, in running/). Written only by the lifecycle."""

    rt: SpoolRuntime
    state: JobState
    folder: Path
    attempt: Attempt
    status: JobStatus  # where the job is in the state machine (queued until it runs)
    job_json: JobJson | None = None  # job.json as read before the claim, until planned
    named_id: str | None = None  # the id an inbox file's name chose (report.ID.md)
    plan: JobPlan | None = None
    spec: JobSpec | None = None
    execution: Execution | None = None
    cancel_mode: CancelMode | None = None
    cancel_deadline: float | None = None
    draining: bool = False
    held: HeldResult | None = None  # finished, waiting to be published (finish_to_finish)

    @property
    def job_id(self) -> str:
        return self.state.job_id

    def holds_worker(self) -> bool:
        # A job whose execution is done holds no worker, even before it is published.
        return self.execution is None or not self.execution.done()

    def workers_held(self) -> int:
        # A split job may hold several (daemon/parts.py), or none between its runs.
        held = getattr(self.execution, "workers_held", None)
        if held is not None:
            return int(held())
        return 1 if self.holds_worker() else 0
