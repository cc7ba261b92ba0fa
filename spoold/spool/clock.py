"""Wall-clock time, and how spoold stays correct when hosts' clocks disagree.

Several hosts share one spool and their clocks differ (no NTP, a VM resumed from a
snapshot, a file server minutes off). spoold's rules, one per use of time:

- **Liveness** never uses a wall clock: a peer is gone when its lease has not changed
  for `lease_ttl_s` on the observer's own monotonic clock (spoold/spool/leases.py).
- **Job ids** (`new_job_id`) hold the creating host's wall time for sorting and
  reading, plus 40 random bits for uniqueness: a skewed clock can only make ids sort
  out of creation order, never collide. Nothing orders work by job id (claims follow
  priority, then arrival as the daemon saw it).
- **Backoff** ("not before"): the requeuing daemon records the *delay*, and each
  daemon waits it on its own monotonic clock from when it first saw the requeued
  folder, less the time the folder has already waited as measured on the spool's own
  clock (`SpoolClock`: the file server stamps both mtimes, so no host clock enters).
  Result: a retry never starts before its delay has passed on the spool's clock, and
  at most one detection interval after it.
- **Heartbeat ages** shown by `spoold status` and judged by `spoold doctor` are a lease
  file's mtime against the spool's clock (`spool_now`): both stamped by the file
  server, so a tool on a skewed host shows the same ages as one on the server.
- **Retention** compares days-old job-id or manifest times with the local wall clock:
  a skew of minutes moves a deletion by minutes (stated tolerance: skew well below
  `keep_*_days`). Ages of things that look like they are from the future count as 0,
  so a host that is behind never reads a negative age.

`SPOOLD_TEST_CLOCK_SKEW_S` shifts `wall_time()` by that many seconds. It exists for
tests only (to run daemons whose clocks are minutes ahead or behind on one machine);
never set it in production.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

SKEW_ENV = "SPOOLD_TEST_CLOCK_SKEW_S"
# How often SpoolClock asks the file server for its time again.
SPOOL_CLOCK_REFRESH_S = 60.0


def clock_skew_s() -> float:
    """The test-only skew from SPOOLD_TEST_CLOCK_SKEW_S (0 when unset)."""
    raw = os.environ.get(SKEW_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{SKEW_ENV}={raw!r} is not a number of seconds") from None


def wall_time() -> float:
    """Unix time of this host (shifted by the test-only skew): use instead of time.time()."""
    return time.time() + clock_skew_s()


def utcnow() -> datetime:
    return datetime.fromtimestamp(wall_time(), UTC)


# Every time spoold writes (manifests, state files, events): UTC with microseconds.
ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def iso(ts: datetime | None = None) -> str:
    """`ts` (default: now, through the wall-clock seam) as spoold writes times."""
    return (ts or utcnow()).strftime(ISO_FORMAT)


def iso_of(unix_s: float) -> str:
    return iso(datetime.fromtimestamp(unix_s, UTC))


def parse_iso(stamp: str) -> float:
    """Unix seconds of an ISO 8601 time (spoold's own, or any with an offset or Z);
    ValueError when it is not one."""
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def new_job_id() -> str:
    """Sortable by the creating host's time; unique by 40 random bits per second."""
    return f"{utcnow():%Y%m%dT%H%M%SZ}-{secrets.token_hex(5)}"


def age_s(then: float, now: float) -> float:
    """Seconds from `then` to `now`, never negative (a stamp from a host that is ahead)."""
    return max(0.0, now - then)


class SpoolClock:
    """The spool's own time: the mtime the file server gives a file it just wrote.

    Reading it costs one small write and one stat, so it is taken at most every
    SPOOL_CLOCK_REFRESH_S and extrapolated in between with the monotonic clock.
    """

    def __init__(
        self,
        probe: Path,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        refresh_s: float = SPOOL_CLOCK_REFRESH_S,
    ) -> None:
        self.probe = probe
        self._monotonic = monotonic
        self._refresh_s = refresh_s
        self._base: tuple[float, float] | None = None  # (spool time, monotonic) at probe

    def now(self) -> float:
        """The spool's current time, in unix seconds of the file server's clock."""
        mono = self._monotonic()
        if self._base is None or mono - self._base[1] >= self._refresh_s:
            self._base = (self._probe(), mono)
        spool_then, mono_then = self._base
        return spool_then + (mono - mono_then)

    def age_of(self, path: Path) -> float:
        """How long ago `path` was last modified, on the spool's clock (>= 0)."""
        return age_s(os.stat(path).st_mtime, self.now())

    def _probe(self) -> float:
        fd = os.open(self.probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, b"spoold clock probe\n")
        finally:
            os.close(fd)
        return os.stat(self.probe).st_mtime


def spool_now(probe: Path) -> float:
    """The spool's time, read once (for a one-shot tool such as `spoold status`).

    Falls back to this host's wall time when the probe cannot be written (a user who
    may only read the spool): ages then carry this host's skew.
    """
    try:
        return SpoolClock(probe).now()
    except OSError:
        return wall_time()


def job_time(job_id: str) -> float | None:
    """The UTC creation time (unix seconds) encoded in a job id, or None.

    Sliced by hand: strptime costs ~15 us a call, most of `spoold list`'s time on a
    spool of 10,000 finished jobs.
    """
    stamp = job_id[:16]
    digits = stamp[:8] + stamp[9:15]
    if len(stamp) != 16 or stamp[8] != "T" or stamp[15] != "Z" or not _ascii_digits(digits):
        return None
    try:
        when = datetime(
            int(digits[0:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            int(digits[12:14]),
            tzinfo=UTC,
        )
    except ValueError:  # month 13 and the like
        return None
    return when.timestamp()


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()
