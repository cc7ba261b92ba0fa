"""The events log: .spoold/events.ndjson, one JSON object per line, one write(2) each.

O_APPEND makes each line land whole even with several daemons writing the same file.
The file is rotated by size to events.ndjson.1 under an flock, so two daemons never
rotate at once. `follow()` tails it across rotations for `spoold events --follow`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from .clock import iso

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
)
EVENT_NAMES = frozenset(t.NAME for t in EVENT_TYPES)

# Logged at debug level: every job has them, and the terminal log then holds one line
# per finished job. events.ndjson records them all the same.
QUIET_EVENTS = frozenset({JobDetected.NAME, JobClaimed.NAME, JobStarted.NAME})

log = logging.getLogger("spoold.spool.events")

# json.dumps with options builds a new encoder per call; one shared encoder is cheaper.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class EventLog:
    def __init__(self, path: Path, host: str, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.path = path
        self.host = host
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._ino: int | None = None
        self._writes = 0

    def _open(self) -> int:
        if self._fd is not None:
            # Another daemon may have rotated the file: look every 256 writes, not on
            # every write (a line or two may land in events.ndjson.1 meanwhile).
            if self._writes % 256:
                return self._fd
            try:
                if os.stat(self.path).st_ino == self._ino:
                    return self._fd
            except FileNotFoundError:
                pass
            os.close(self._fd)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self._fd = os.open(self.path, flags, 0o644)
        self._ino = os.fstat(self._fd).st_ino
        return self._fd

    def emit(self, event: Event) -> dict[str, Any]:
        """Append one event; a failed append is logged, never raised (a full disk)."""
        record: dict[str, Any] = {
            "ts": iso(),
            "event": event.NAME,
            "job_id": event.job_id,
            "attempt": event.attempt,
            "host": self.host,
        }
        record.update(event.payload())
        line = _encode(record) + "\n"
        level = logging.DEBUG if event.NAME in QUIET_EVENTS else logging.INFO
        try:
            fd = self._open()
            os.write(fd, line.encode())
            self._writes += 1
            if self._writes % 256 == 0:
                self._maybe_rotate(fd)
        except OSError as exc:
            # A full disk must not stop the daemon; the log line still goes to stderr.
            log.warning("could not append to %s: %s", self.path, exc.strerror)
            level = logging.INFO
        if log.isEnabledFor(level):
            log.log(level, "%s", _human(record), extra={"spoold_event": record})
        return record

    def _maybe_rotate(self, fd: int) -> None:
        if os.fstat(fd).st_size < self.max_bytes:
            return
        lock = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # Another daemon may have rotated while we waited.
            if os.stat(self.path).st_ino == self._ino and os.fstat(fd).st_size >= self.max_bytes:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        finally:
            os.close(lock)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _human(record: dict[str, Any]) -> str:
    parts = [record["event"]]
    if record.get("job_id"):
        parts.append(str(record["job_id"]))
    if record.get("attempt"):
        parts.append(f"attempt {record['attempt']}")
    for key in ("name", "code", "message", "reason", "path"):
        if record.get(key):
            parts.append(f"{key}={record[key]}")
    return " ".join(parts)


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every event in order, the rotated file first; a torn last line is skipped."""
    for p in (path.with_name(path.name + ".1"), path):
        try:
            fh = p.open("r", encoding="utf-8")
        except FileNotFoundError:
            continue
        with fh:
            for line in fh:
                if line.endswith("\n"):
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue


def follow(
    path: Path,
    poll_s: float = 0.2,
    from_start: bool = False,
    offset: int | None = None,
    deadline: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Tail the log, reopening it after a rotation.

    Starts at the end of the log, at its start (`from_start`), or at byte `offset` (a
    size seen earlier; the start if the log has since been rotated). With a `deadline`
    (time.monotonic()) it returns once that has passed, so a caller that waits for an
    event needs no thread; while idle it looks again every `poll_s`.
    """
    fh = None
    ino = None
    buf = b""
    while deadline is None or time.monotonic() < deadline:
        if fh is None:
            fh = _open_at(path, 0 if from_start else offset)
            if fh is None:
                _idle(poll_s, deadline)
                continue
            ino = os.fstat(fh.fileno()).st_ino
            from_start = True  # after a rotation, read the new file from its start
            offset = None
        chunk = fh.read()
        if chunk:
            *lines, buf = (buf + chunk).split(b"\n")
            for line in lines:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue
            continue
        try:
            if os.stat(path).st_ino != ino:
                fh.close()
                fh, buf = None, b""
                continue
        except FileNotFoundError:
            pass
        _idle(poll_s, deadline)
    if fh is not None:
        fh.close()


def _open_at(path: Path, offset: int | None) -> BinaryIO | None:
    """The log opened at `offset` (None: its end); None while it does not exist."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return None
    size = os.fstat(fh.fileno()).st_size
    fh.seek(size if offset is None else (offset if offset <= size else 0))
    return fh


def _idle(poll_s: float, deadline: float | None) -> None:
    left = poll_s if deadline is None else min(poll_s, deadline - time.monotonic())
    if left > 0:
        time.sleep(left)
