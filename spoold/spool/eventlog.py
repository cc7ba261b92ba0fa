"""Writing the events log: one file per daemon instance, and no event lost silently.

A daemon appends one JSON line per event to its own file (spool/eventfiles.py:
`.spoold/events/HOST.TOKEN.ndjson`), with one write(2) each, and rotates it to `.1` at
`events_max_mb`. Being the file's only writer, it needs neither O_APPEND atomicity
between hosts nor a lock to rotate.

When an append fails (ENOSPC, EDQUOT, EIO, ESTALE...), the line and every later one are
held in memory, in order, and written before anything else once the file takes writes
again: on the next event, or on the daemon's next housekeeping pass (`flush`). A short
write (the disk filled up mid-line) is finished, not repeated. At most `held_max`
events are held; past that, events are counted instead (how many, which jobs, from when
to when) and one `events.gap` record takes their place in the log, so a reader knows
exactly what is missing. Each line carries `spool_ts`, the time on the spool's clock,
taken when the event happened, by which readers merge the writers' files.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .clock import iso_of, wall_time
from .eventfiles import rotated_file, writer_file, writer_name
from .events import QUIET_EVENTS, Event, EventsGap

log = logging.getLogger("spoold.spool.events")

HELD_MAX = 10_000  # events held in memory while the log cannot be written (a default)
GAP_JOB_IDS_MAX = 1_000  # job ids named by one events.gap record

# json.dumps with options builds a new encoder per call; one shared encoder is cheaper.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class _IsoTimes:
    """clock.iso_of for the events' two times, cheaper: the text up to the second is
    kept (strftime costs microseconds, a busy daemon writes several events a job)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, unix_s: float) -> str:
        second = int(unix_s)
        if second != self._second:
            self._second, self._prefix = second, iso_of(second)[:19]
        return f"{self._prefix}.{int((unix_s - second) * 1_000_000):06d}Z"


@dataclass
class _Lost:
    """Events dropped past the bound, for their events.gap record."""

    first: dict[str, Any]  # the first one (its times place the record in the log)
    last_ts: str
    error: str
    count: int = 0
    job_ids: dict[str, None] = field(default_factory=dict)  # in order, no repeats
    complete: bool = True

    def add(self, record: dict[str, Any]) -> None:
        self.count += 1
        self.last_ts = str(record["ts"])
        job_id = record.get("job_id")
        if job_id and job_id not in self.job_ids:
            if len(self.job_ids) < GAP_JOB_IDS_MAX:
                self.job_ids[str(job_id)] = None
            else:
                self.complete = False


class EventLog:
    def __init__(
        self,
        path: Path,
        host: str,
        max_bytes: int = 64 * 1024 * 1024,
        *,
        writer: str | None = None,
        held_max: int = HELD_MAX,
        spool_time: Callable[[], float] | None = None,
    ) -> None:
        """`path` is the spool's log (`.spoold/events.ndjson`); this instance writes
        `writer`'s file beside it (default: one of its own). `spool_time` is the
        spool's clock (clock.SpoolClock.now; default: this host's)."""
        self.host = host
        self.path = writer_file(path, writer or writer_name(host, _instance_token()))
        self.max_bytes = max_bytes
        self.held_max = held_max
        self._spool_time = spool_time
        self._spool_offset = 0.0  # spool time minus wall time, as last measured
        self._ts, self._spool_ts = _IsoTimes(), _IsoTimes()
        self._fd: int | None = None
        self._ino: int | None = None
        self._writes = 0
        self._held: deque[bytes] = deque()  # lines not written yet, oldest first
        self._head_done = 0  # bytes of the first held line already in the file
        self._lost: _Lost | None = None
        self._failing: str | None = None  # why appends fail, while they do
        self._lock = threading.Lock()  # hooks' and the loop's threads both emit

    def emit(self, event: Event) -> dict[str, Any]:
        """Append one event; a failed append is held and written later, never raised."""
        wall = wall_time()
        record: dict[str, Any] = {
            "ts": self._ts(wall),
            "spool_ts": self._spool_ts(wall + self._offset_now(wall)),
            "event": event.NAME,
            "job_id": event.job_id,
            "attempt": event.attempt,
            "host": self.host,
        }
        record.update(event.payload())
        line = (_encode(record) + "\n").encode()
        with self._lock:
            if self._held or self._lost is not None:
                self._drain()
            if self._lost is None and len(self._held) < self.held_max:
                self._held.append(line)
            else:
                self._lose(record)
            self._drain()
        level = logging.DEBUG if event.NAME in QUIET_EVENTS else logging.INFO
        if log.isEnabledFor(level):
            log.log(level, "%s", _human(record), extra={"spoold_event": record})
        return record

    def flush(self) -> None:
        """Write what is held, if the log takes writes again (the daemon's timer)."""
        if self._held or self._lost is not None:
            with self._lock:
                self._drain()

    @property
    def held(self) -> int:
        """Events waiting in memory to be written."""
        return len(self._held)

    def close(self) -> None:
        with self._lock:
            self._drain()
            if self._held or self._lost is not None:
                lost = len(self._held) + (self._lost.count if self._lost else 0)
                log.error(
                    "%d event(s) could not be written to %s (%s) and are lost",
                    lost,
                    self.path,
                    self._failing,
                )
            self._close_fd()

    # -- writing

    def _drain(self) -> None:
        """Write held lines in order, then the gap record if events were dropped."""
        while True:
            if self._held:
                if not self._write_head():
                    return
                continue
            if self._lost is None:
                return
            self._held.append(self._gap_line(self._lost))
            log.error(
                "the events log lost %d event(s) while it could not be written; "
                "an events.gap record says which jobs",
                self._lost.count,
            )
            self._lost = None

    def _write_head(self) -> bool:
        line = self._held[0]
        try:
            fd = self._open()
            written = os.write(fd, line[self._head_done :])
        except OSError as exc:
            self._fail(exc)
            return False
        self._head_done += written
        if self._head_done < len(line):
            return True  # a short write: the rest next (or the error that cut it)
        self._held.popleft()
        self._head_done = 0
        self._writes += 1
        if self._failing is not None:
            log.warning("the events log %s takes writes again", self.path)
            self._failing = None
        if self._writes % 256 == 0:
            self._maybe_rotate(fd)
        return True

    def _fail(self, exc: OSError) -> None:
        if self._failing is None:
            log.warning(
                "could not append to %s: %s; holding events in memory (up to %d) until it can",
                self.path,
                exc.strerror or exc,
                self.held_max,
            )
        self._failing = exc.strerror or str(exc)
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            self._close_fd()  # EIO, ESTALE...: a fresh descriptor next time

    def _lose(self, record: dict[str, Any]) -> None:
        if self._lost is None:
            log.error(
                "the events log cannot be written (%s) and %d events are held: "
                "dropping events until it can; an events.gap record will count them",
                self._failing,
                len(self._held),
            )
            self._lost = _Lost(record, str(record["ts"]), self._failing or "unknown")
        self._lost.add(record)

    def _gap_line(self, lost: _Lost) -> bytes:
        gap = EventsGap(
            count=lost.count,
            job_ids=list(lost.job_ids),
            job_ids_complete=lost.complete,
            first_ts=str(lost.first["ts"]),
            last_ts=lost.last_ts,
            error=lost.error,
        )
        # Placed where the lost events were: at the first one's times.
        record = {
            "ts": lost.first["ts"],
            "spool_ts": lost.first["spool_ts"],
            "event": gap.NAME,
            "job_id": None,
            "attempt": None,
            "host": self.host,
            **gap.payload(),
        }
        log.log(logging.ERROR, "%s", _human(record), extra={"spoold_event": record})
        return (_encode(record) + "\n").encode()

    def _open(self) -> int:
        if self._fd is not None:
            # The file may have been removed (a person tidying up): look every 256 writes.
            if self._writes % 256:
                return self._fd
            try:
                if os.stat(self.path).st_ino == self._ino:
                    return self._fd
            except FileNotFoundError:
                pass
            self._close_fd()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o644)
        ino = os.fstat(fd).st_ino
        if ino != self._ino:
            self._head_done = 0  # a line cut short stays in the old file: write it whole
        self._fd, self._ino = fd, ino
        return fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _maybe_rotate(self, fd: int) -> None:
        try:
            if os.fstat(fd).st_size >= self.max_bytes:
                os.replace(self.path, rotated_file(self.path))
                self._close_fd()
        except OSError as exc:
            log.warning("could not rotate %s: %s", self.path, exc.strerror or exc)

    def _offset_now(self, wall: float) -> float:
        """The spool's clock less ours; the last measure when it cannot be taken now."""
        if self._spool_time is not None:
            try:
                self._spool_offset = self._spool_time() - wall
            except OSError:
                pass  # a full disk fails the clock's probe too
        return self._spool_offset


def _instance_token() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def _human(record: dict[str, Any]) -> str:
    parts = [record["event"]]
    if record.get("job_id"):
        parts.append(str(record["job_id"]))
    if record.get("attempt"):
        parts.append(f"attempt {record['attempt']}")
    for key in ("name", "code", "message", "reason", "path", "count"):
        if record.get(key):
            parts.append(f"{key}={record[key]}")
    return " ".join(parts)
