"""Leases for many hosts: who holds claims, judged without comparing clocks.

Each daemon instance TOKEN keeps two files in .spoold/daemons/:

- TOKEN.lock: an flock held for the process's life. The kernel drops it when the
  process dies, so a daemon on the same host and boot knows at once. Locks are not
  shared between hosts (nor between two FUSE mounts of one folder), so it is trusted
  only when host id and boot id both match the observer's.
- TOKEN.json: the lease record (`host`, `boot_id`, `pid`, `token`, `incarnation`,
  `beat`). `beat` is a counter the owner increments on every renewal: a change of the
  file's bytes is the heartbeat, visible where mtimes are coarse, cached or stamped by
  a clock that differs from ours.

The record is created whole (temporary name, rename) and then renewed in place, one
fixed-size write into the same inode: on NFS a reader's open() revalidates that inode
(close-to-open consistency), whereas a file replaced by rename can stay hidden behind
the client's cached lookup of the old one until the directory cache expires. A reader
that catches a renewal half-written sees changed bytes, which is what it looks for.

An observer (PeerWatcher) remembers, per peer, the bytes it last saw and its own
monotonic time when they last changed. A peer is gone when they have not changed for
`lease_ttl_s` on that clock; the first look counts as "just seen". Wall clocks are
never compared, so a host minutes ahead or behind judges its peers like any other.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .clock import age_s
from .transient import call_with_retry

RECORD_SIZE = 512  # bytes: the record is padded to this, so a renewal never truncates


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


@dataclass(frozen=True)
class LeaseRecord:
    host: str
    boot_id: str
    pid: int
    token: str
    incarnation: int  # grows each time the owner registers again after being declared gone
    beat: int  # grows on every renewal

    def encode(self) -> bytes:
        raw = json.dumps(asdict(self), sort_keys=True).encode()
        if len(raw) >= RECORD_SIZE:
            raise ValueError(f"lease record too long ({len(raw)} bytes): shorten the host id")
        return raw + b" " * (RECORD_SIZE - 1 - len(raw)) + b"\n"

    @staticmethod
    def decode(raw: bytes) -> LeaseRecord | None:
        try:
            data = json.loads(raw)
            return LeaseRecord(
                host=str(data["host"]),
                boot_id=str(data["boot_id"]),
                pid=int(data["pid"]),
                token=str(data.get("token", "")),
                incarnation=int(data.get("incarnation", 0)),
                beat=int(data.get("beat", 0)),
            )
        except (ValueError, KeyError, TypeError):
            return None  # torn, foreign or from an older version


def lease_paths(daemons_dir: Path, token: str) -> tuple[Path, Path]:
    """(TOKEN.json, TOKEN.lock)."""
    return daemons_dir / f"{token}.json", daemons_dir / f"{token}.lock"


class Renewal(enum.Enum):
    RENEWED = "renewed"
    REREGISTERED = "reregistered"  # we had been declared gone: the lease is ours again


class OwnLease:
    """This daemon instance's lease: acquire once, renew every lease_ttl_s / 3."""

    def __init__(self, daemons_dir: Path, host_id: str, token: str) -> None:
        self.daemons_dir = daemons_dir
        self.host_id = host_id
        self.token = token
        self.info_path, self.lock_path = lease_paths(daemons_dir, token)
        self.record = LeaseRecord(host_id, boot_id(), os.getpid(), token, 0, 0)
        self.lost_reason: str | None = None  # why the last renewal had to re-register
        self._lock_fd: int | None = None
        self._info_ino: int | None = None

    def acquire(self) -> None:
        self._take_lock()
        self._register()

    def renew(self) -> Renewal:
        """Count one heartbeat; register again if the lease was removed or replaced."""
        reason = self._lost_lock()
        if reason is None and self._info_ino is None:
            self._register()  # never written (disk full at start): try again quietly
            return Renewal.RENEWED
        reason = reason or self._write_beat()
        if reason is None:
            return Renewal.RENEWED
        self.lost_reason = reason
        self._take_lock()
        self._register()
        return Renewal.REREGISTERED

    def release(self) -> None:
        for path in (self.info_path, self.lock_path):
            try:
                os.unlink(path)
            except OSError:
                pass
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _take_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock_fd = fd

    def _lost_lock(self) -> str | None:
        assert self._lock_fd is not None
        try:
            on_disk = os.stat(self.lock_path).st_ino
            if on_disk != os.fstat(self._lock_fd).st_ino:
                return "its lock file was replaced"
            os.utime(self._lock_fd)  # the lock's mtime: a second, coarser heartbeat
        except OSError as exc:
            # ESTALE: the client still had the name cached, the server has no such file
            # (GlusterFS, NFS): removed all the same.
            if exc.errno in (errno.ENOENT, errno.ESTALE):
                return "its lock file was removed"
            raise
        return None

    def _register(self) -> None:
        self.record = LeaseRecord(
            self.host_id,
            self.record.boot_id,
            self.record.pid,
            self.token,
            self.record.incarnation + 1,
            0,
        )
        tmp = self.info_path.with_name(f".{self.info_path.name}.{secrets.token_hex(4)}.tmp")
        try:
            tmp.write_bytes(self.record.encode())
            os.rename(tmp, self.info_path)
            self._info_ino = os.stat(self.info_path).st_ino
        except OSError:
            # A full disk must not stop the daemon: its lock file (flock here, mtime
            # elsewhere) says it is alive until the record can be written.
            self._info_ino = None
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def _write_beat(self) -> str | None:
        """Increment the counter in place; a reason string if the lease is not ours."""
        try:
            fd = call_with_retry(os.open, self.info_path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return "its lease file was removed"
        try:
            if os.fstat(fd).st_ino != self._info_ino:
                return "its lease file was replaced"
            if os.pread(fd, RECORD_SIZE, 0) != self.record.encode():
                return "its lease file was rewritten by someone else"
            beat = LeaseRecord(**{**asdict(self.record), "beat": self.record.beat + 1})
            os.pwrite(fd, beat.encode(), 0)
            self.record = beat
        except OSError as exc:
            if exc.errno != errno.ESTALE:
                raise
            return "its lease file was removed"  # after our open, on the server
        finally:
            os.close(fd)  # close flushes to the server (NFS close-to-open)
        return None


@dataclass
class _Seen:
    signature: tuple[bytes | None, tuple[int, int] | None]
    changed_at: float  # observer's monotonic time of the last change seen


class PeerWatcher:
    """Judges whether other daemon instances still hold their claims."""

    def __init__(
        self,
        daemons_dir: Path,
        host_id: str,
        lease_ttl_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.daemons_dir = daemons_dir
        self.host_id = host_id
        self.boot_id = boot_id()
        self.lease_ttl_s = lease_ttl_s
        self._monotonic = monotonic
        self._seen: dict[str, _Seen] = {}

    def is_gone(self, token: str) -> bool:
        """True once TOKEN's lease has not changed for lease_ttl_s (or, on this host
        and boot, at once when its lock is free)."""
        info_path, lock_path = lease_paths(self.daemons_dir, token)
        try:
            raw = _read_or_none(info_path)
            lock_sig = _stat_sig_or_none(lock_path)
        except OSError:
            return False  # cannot tell (a broken mount): never take claims on a guess
        record = LeaseRecord.decode(raw) if raw is not None else None
        held = lock_is_held(lock_path) if lock_sig is not None else False
        same_boot = record is not None and (record.host, record.boot_id) == (
            self.host_id,
            self.boot_id,
        )
        if same_boot and held is not None:
            return not held  # same host and boot: the kernel lock is the truth
        if record is None and held:
            return False  # its record could not be written (disk full), but it is alive
        now = self._monotonic()
        signature = (raw, lock_sig)
        seen = self._seen.get(token)
        if seen is None or seen.signature != signature:
            self._seen[token] = _Seen(signature, now)
            return False
        return now - seen.changed_at >= self.lease_ttl_s

    def silent_for(self, token: str) -> float | None:
        """Seconds (observer's clock) since TOKEN's lease last changed, None if unseen."""
        seen = self._seen.get(token)
        return None if seen is None else self._monotonic() - seen.changed_at

    def owner(self, token: str) -> LeaseRecord | None:
        raw = _read_or_none(lease_paths(self.daemons_dir, token)[0])
        return LeaseRecord.decode(raw) if raw is not None else None

    def tokens(self) -> set[str]:
        """Tokens with a lease or lock file in the daemons folder."""
        names = os.listdir(self.daemons_dir)
        return {n.rsplit(".", 1)[0] for n in names if n.endswith((".json", ".lock"))}

    def forget(self, token: str) -> None:
        """Remove a gone daemon's lease files (it holds no claims any more)."""
        for path in lease_paths(self.daemons_dir, token):
            try:
                os.unlink(path)
            except OSError:
                pass
        self._seen.pop(token, None)

    def retain(self, tokens: set[str]) -> None:
        """Drop what is remembered of tokens seen nowhere any more."""
        for token in set(self._seen) - tokens:
            del self._seen[token]


def heartbeat_ages(daemons_dir: Path, spool_now: float) -> dict[Path, float]:
    """Seconds since each lease record (TOKEN.json) was last renewed, for tools.

    `spool_now` must be the spool's own time (clock.spool_now): the file server stamps
    the mtimes, so comparing them with this host's clock would add its skew. A daemon
    does not use this: it judges peers by the beat counter (PeerWatcher).
    """
    ages: dict[Path, float] = {}
    for info in daemons_dir.glob("*.json"):
        try:
            ages[info] = age_s(os.stat(info).st_mtime, spool_now)
        except OSError:
            continue  # removed meanwhile (a daemon stopping)
    return ages


def _read_or_none(path: Path) -> bytes | None:
    try:
        return call_with_retry(path.read_bytes)
    except FileNotFoundError:
        return None


def _stat_sig_or_none(path: Path) -> tuple[int, int] | None:
    try:
        st = call_with_retry(os.stat, path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def lock_is_held(lock_path: Path) -> bool | None:
    """Whether a process on this host holds the flock of `lock_path`; None: cannot tell."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None  # ENOLCK and the like: no locking on this mount
    finally:
        os.close(fd)  # closing drops the lock we may have just taken
    return False


__all__ = [
    "RECORD_SIZE",
    "LeaseRecord",
    "OwnLease",
    "PeerWatcher",
    "Renewal",
    "boot_id",
    "heartbeat_ages",
    "lease_paths",
    "lock_is_held",
]
