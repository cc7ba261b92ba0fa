"""No event is lost silently: a real daemon on a small tmpfs that fills up and is freed.

While the spool's filesystem is full, every append to the events log fails (ENOSPC):
the daemon holds the events in memory and writes them, in order, once it can. Past
`events_held_max` it drops events and writes one `events.gap` record that says how
many and about which jobs; `spoold check-events` takes that as a declared loss.
Needs root (mount -t tmpfs); skipped otherwise.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spoold.spool.eventfiles import log_files
from spoold.spool.protocol import init_spool

from .conftest import FAST, DaemonProc, cli, events, published, wait_for, write_spool_toml

pytestmark = [pytest.mark.processes, pytest.mark.slow]

JOBS = 4


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of its own, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(folder: Path) -> Path:
    """A file that takes every free byte of folder's filesystem."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def start(
    disk: Path,
    tmp_path: Path,
    daemon_factory: Callable[..., DaemonProc],
    **settings: Any,
) -> tuple[Path, DaemonProc, list[Path]]:
    """A spool on the small disk, a daemon serving it, and JOBS documents staged in tmp/."""
    spool = disk / "spool"
    init_spool(spool)
    write_spool_toml(spool, {**FAST, "max_attempts": 100, **settings})
    # The daemon's own log stays off the small disk.
    daemon = daemon_factory(spool, args=("--workers", "1"), log=tmp_path / "daemon.log")
    daemon.wait_ready()
    staged = []
    for i in range(JOBS):
        path = spool / "tmp" / f".doc{i}.md"
        path.write_text(f"# Document {i}\n\nSome text.\n")
        staged.append(path)
    return spool, daemon, staged


def submit_while_full(spool: Path, staged: list[Path], daemon: DaemonProc, *says: str) -> Path:
    """Fill the disk, drop the staged jobs in, wait for the daemon's log to say each of
    `says` (its log lines go to stderr, which is not on the full disk)."""
    filler = fill(spool.parent)
    for path in staged:
        path.rename(spool / "inbox" / path.name.lstrip("."))  # a rename needs no space
    for words in says:
        wait_for(lambda w=words: w in daemon.log(), 120, f"the daemon to say {words!r}")
    return filler


def job_events(spool: Path) -> dict[str, list[str]]:
    by_name: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for e in events(spool):
        if e["event"] == "job.detected":
            by_name[e["job_id"]] = e["name"]
        if e.get("job_id") in by_name:
            out.setdefault(by_name[e["job_id"]], []).append(e["event"])
    return out


def check_events(spool: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return cli("check-events", *flags, str(spool), check=False)


def held_lines(daemon: DaemonProc) -> int:
    """Event lines the daemon logged while its events file could not be written."""
    log = daemon.log()
    start = log.index("holding events in memory")
    end = log.index("takes writes again", start)
    return sum(1 for line in log[start:end].splitlines() if " job." in line)


def assert_whole_lines(spool: Path) -> None:
    for path in log_files(spool / ".spoold" / "events.ndjson"):
        for line in path.read_bytes().splitlines():
            json.loads(line)


def finish_after_freeing(spool: Path, daemon: DaemonProc, filler: Path) -> None:
    """Free the disk; wait until every job is converted and its success logged; stop."""
    filler.unlink()
    wait_for(lambda: len(published(spool)) == JOBS, 120, "every job converted")
    wait_for(
        lambda: sum(e["event"] == "job.succeeded" for e in events(spool)) == JOBS,
        60,
        "every job.succeeded written",
    )
    assert daemon.stop() == 0


def test_events_held_through_a_full_disk_are_written_in_order_once_it_is_freed(
    small_disk: Path, tmp_path: Path, daemon_factory: Callable[..., DaemonProc]
) -> None:
    spool, daemon, staged = start(small_disk, tmp_path, daemon_factory)
    filler = submit_while_full(
        spool, staged, daemon, "holding events in memory", "job.retry_scheduled"
    )
    finish_after_freeing(spool, daemon, filler)
    names = [f"doc{i}.md" for i in range(JOBS)]
    lines = job_events(spool)
    assert sorted(lines) == names
    for name in names:
        seen = lines[name]
        # Every attempt that met the full disk is in the log, in the order it happened.
        assert seen[:3] == ["job.detected", "job.claimed", "job.started"], seen
        assert seen[-1] == "job.succeeded", seen
        assert "job.retry_scheduled" in seen, "the full disk failed an attempt"
    assert not [e for e in events(spool) if e["event"] == "events.gap"]
    assert_whole_lines(spool)
    strict = check_events(spool, "--strict")
    assert strict.returncode == 0, strict.stdout
    assert "events lost" not in strict.stdout
    print(f"\ndisk full: {held_lines(daemon)} job events logged while held, all written, in order")


def test_past_the_bound_one_events_gap_names_the_jobs_whose_events_were_lost(
    small_disk: Path, tmp_path: Path, daemon_factory: Callable[..., DaemonProc]
) -> None:
    spool, daemon, staged = start(small_disk, tmp_path, daemon_factory, events_held_max=5)
    filler = submit_while_full(spool, staged, daemon, "dropping events until it can")
    finish_after_freeing(spool, daemon, filler)
    log = events(spool)
    [gap] = [e for e in log if e["event"] == "events.gap"]
    # It stands where the lost events were: after what happened before the first of
    # them, before what happened after the last.
    at = log.index(gap)
    assert all(e["ts"] <= gap["first_ts"] for e in log[:at])
    assert all(e["ts"] >= gap["last_ts"] for e in log[at + 1 :])
    assert gap["count"] >= 1 and gap["job_ids_complete"] is True
    assert gap["error"] == "No space left on device"
    succeeded = {e["job_id"] for e in log if e["event"] == "job.succeeded"}
    assert gap["job_ids"] and set(gap["job_ids"]) <= succeeded, "it names finished jobs"
    assert gap["first_ts"] <= gap["last_ts"]
    assert_whole_lines(spool)
    # The loss is declared: a strict check passes and counts it.
    strict = check_events(spool, "--strict")
    assert strict.returncode == 0, strict.stdout
    assert f"events lost (declared by events.gap records): {gap['count']}" in strict.stdout
    print(f"\ndisk full, events_held_max 5: events.gap count {gap['count']}, jobs {gap['job_ids']}")
