"""Leases judged on the observer's monotonic clock, with real lease files."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from spoold.spool.leases import (
    RECORD_SIZE,
    LeaseRecord,
    OwnLease,
    PeerWatcher,
    Renewal,
    lease_paths,
)

TTL = 30.0


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def daemons(tmp_path: Path) -> Path:
    folder = tmp_path / "daemons"
    folder.mkdir()
    return folder


def watcher(daemons: Path, clock: FakeMonotonic, host: str = "observer") -> PeerWatcher:
    return PeerWatcher(daemons, host, TTL, monotonic=clock)


def test_record_names_host_boot_and_pid_and_each_renewal_counts_in_place(daemons: Path) -> None:
    lease = OwnLease(daemons, "host-a", "0a0b0c0d")
    lease.acquire()
    info, _ = lease_paths(daemons, "0a0b0c0d")
    first = LeaseRecord.decode(info.read_bytes())
    assert first is not None
    assert (first.host, first.pid, first.token, first.beat) == (
        "host-a",
        os.getpid(),
        "0a0b0c0d",
        0,
    )
    inode = info.stat().st_ino
    assert lease.renew() is Renewal.RENEWED
    assert lease.renew() is Renewal.RENEWED
    again = LeaseRecord.decode(info.read_bytes())
    assert again is not None and again.beat == 2
    assert info.stat().st_ino == inode  # renewed in place: NFS readers revalidate one inode
    assert info.stat().st_size == RECORD_SIZE


def test_peer_is_gone_only_after_its_counter_stood_still_for_a_lease(daemons: Path) -> None:
    peer = OwnLease(daemons, "host-a", "0000000a")
    peer.acquire()
    clock = FakeMonotonic()
    w = watcher(daemons, clock)
    assert not w.is_gone("0000000a")  # first look: just seen
    clock.now += TTL - 1
    assert not w.is_gone("0000000a")
    clock.now += 1
    assert w.is_gone("0000000a")
    peer.renew()  # it was only slow: one renewal and it is alive again
    assert not w.is_gone("0000000a")
    clock.now += TTL - 0.5
    assert not w.is_gone("0000000a")


def test_wall_clock_times_of_the_lease_are_never_compared(daemons: Path) -> None:
    """A peer whose clock is far behind (old mtimes) or ahead (future mtimes) is alive
    while its counter moves, and the first look never finds anyone gone."""
    peer = OwnLease(daemons, "host-a", "0000000b")
    peer.acquire()
    info, lock = lease_paths(daemons, "0000000b")
    clock = FakeMonotonic()
    w = watcher(daemons, clock)
    for mtime in (0.0, 4_000_000_000.0, 1.0):
        for path in (info, lock):
            os.utime(path, (mtime, mtime))
        assert not w.is_gone("0000000b")
        clock.now += TTL / 2
        peer.renew()
        os.utime(info, (mtime, mtime))
    assert not w.is_gone("0000000b")


def test_missing_lease_files_wait_one_lease_from_the_first_look(daemons: Path) -> None:
    clock = FakeMonotonic()
    w = watcher(daemons, clock)
    assert not w.is_gone("0000000c")
    clock.now += TTL
    assert w.is_gone("0000000c")


def test_half_written_record_counts_as_a_heartbeat(daemons: Path) -> None:
    peer = OwnLease(daemons, "host-a", "0000000d")
    peer.acquire()
    info, _ = lease_paths(daemons, "0000000d")
    clock = FakeMonotonic()
    w = watcher(daemons, clock)
    w.is_gone("0000000d")
    clock.now += TTL - 1
    info.write_bytes(b'{"host": "ho')  # a reader caught a renewal mid-write
    assert not w.is_gone("0000000d")
    clock.now += TTL - 1
    assert not w.is_gone("0000000d")


def test_owner_declared_gone_registers_again_and_peers_see_it_alive(daemons: Path) -> None:
    lease = OwnLease(daemons, "host-a", "0000000e")
    lease.acquire()
    clock = FakeMonotonic()
    w = watcher(daemons, clock)
    w.is_gone("0000000e")
    clock.now += TTL
    assert w.is_gone("0000000e")
    w.forget("0000000e")  # a peer removed its lease files
    assert lease.renew() is Renewal.REREGISTERED
    assert lease.lost_reason == "its lock file was removed"
    assert lease.record.incarnation == 2
    assert lease.renew() is Renewal.RENEWED  # once: no loop of re-registrations
    assert not w.is_gone("0000000e")


def test_a_lock_file_removed_behind_a_cached_name_is_a_removal_not_an_error(
    daemons: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GlusterFS: a peer removed the lock file, this client still has its name cached
    (stat works), and the server answers ESTALE for the open file."""
    lease = OwnLease(daemons, "host-a", "00000010")
    lease.acquire()
    real_utime = os.utime

    def stale(path: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(path, int):
            raise OSError(errno.ESTALE, "Stale file handle")
        real_utime(path, *args, **kwargs)

    monkeypatch.setattr(os, "utime", stale)
    assert lease.renew() is Renewal.REREGISTERED
    assert lease.lost_reason == "its lock file was removed"
    monkeypatch.setattr(os, "utime", real_utime)
    assert lease.renew() is Renewal.RENEWED


def test_replaced_lease_file_is_noticed_by_its_owner(daemons: Path) -> None:
    lease = OwnLease(daemons, "host-a", "0000000f")
    lease.acquire()
    info, _ = lease_paths(daemons, "0000000f")
    tmp = info.with_name("other")
    tmp.write_bytes(info.read_bytes())
    os.rename(tmp, info)
    assert lease.renew() is Renewal.REREGISTERED
    assert lease.lost_reason == "its lease file was replaced"
    assert LeaseRecord.decode(info.read_bytes()) == lease.record


HOLDER = """
import sys
import time
from pathlib import Path
from typing import Any
from spoold.spool.leases import OwnLease
OwnLease(Path(sys.argv[1]), sys.argv[2], sys.argv[3]).acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_same_host_and_boot_trusts_the_kernel_lock_at_once(daemons: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(daemons), "observer", "00000010"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"held\n"
        clock = FakeMonotonic()
        w = watcher(daemons, clock)
        assert not w.is_gone("00000010")
        clock.now += 10 * TTL
        assert not w.is_gone("00000010")  # its lock is held: alive, whatever the lease says
    finally:
        proc.kill()
        proc.wait()
    assert w.is_gone("00000010")  # died: no lease to wait for


def test_same_boot_but_another_host_id_waits_for_the_lease(daemons: Path) -> None:
    """Two FUSE mounts of one folder on one machine do not share flocks: distinct host
    ids make the observer use the lease, never a lock it cannot see."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(daemons), "emulated-b", "00000011"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"held\n"
    finally:
        proc.kill()
        proc.wait()
    clock = FakeMonotonic()
    w = watcher(daemons, clock, host="emulated-a")
    assert not w.is_gone("00000011")
    clock.now += TTL
    assert w.is_gone("00000011")


def test_tokens_lists_leases_and_retain_drops_forgotten_ones(daemons: Path) -> None:
    for token in ("00000012", "00000013"):
        OwnLease(daemons, "host-a", token).acquire()
    clock = FakeMonotonic()
    w = watcher(daemons, clock)
    assert w.tokens() == {"00000012", "00000013"}
    w.is_gone("00000012")
    w.retain({"00000013"})
    assert w.silent_for("00000012") is None


def old_rule_is_gone(daemons: Path, token: str, ttl: float) -> bool:
    """How daemons before the counter judged a peer on another host: by the wall-clock
    age of the newest of its two lease files' mtimes."""
    ages = [time.time() - p.stat().st_mtime for p in lease_paths(daemons, token) if p.exists()]
    return not ages or min(ages) > ttl


def test_rolling_upgrade_old_and_new_daemons_see_each_other_alive(tmp_path: Path) -> None:
    """During an upgrade one host at a time, old daemons (mtime heartbeats, judged by
    wall-clock age) and new ones (counter) must not take each other's claims."""
    daemons = tmp_path / "daemons"
    daemons.mkdir()
    old_info, old_lock = lease_paths(daemons, "000000a0")
    old_info.write_text('{"host": "old-host", "boot_id": "x", "pid": 1, "started_at": "t"}')
    old_lock.touch()
    new = OwnLease(daemons, "new-host", "000000a1")
    new.acquire()
    clock = FakeMonotonic()
    w = PeerWatcher(daemons, "new-host", TTL, monotonic=clock)
    assert not w.is_gone("000000a0")
    for path in (old_info, old_lock):
        os.utime(path, (1, 1))  # so the old daemon's next heartbeat is a visible change
    clock.now += TTL - 1
    for path in (old_info, old_lock):
        os.utime(path)  # the old daemon's heartbeat: a touch
    assert not w.is_gone("000000a0")
    clock.now += TTL - 1
    assert not w.is_gone("000000a0")
    # The old rule: a lease whose files were modified within the TTL is alive.
    new.renew()
    assert not old_rule_is_gone(daemons, "000000a1", TTL)
