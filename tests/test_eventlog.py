"""The events log's writer on its own (spool/eventlog.py): appends that fail are held
and written in order later, a line cut short is finished, and past the bound one
events.gap record stands for what was dropped. Failures are injected into os.write."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from spoold.spool.eventfiles import read_events
from spoold.spool.eventlog import EventLog
from spoold.spool.events import DaemonPaused, JobClaimed, JobDetected

real_write = os.write


class Disk:
    """os.write as a disk that fills up: `full` makes appends fail or stop short."""

    def __init__(self) -> None:
        self.full = False
        self.room = 0  # bytes a write may still put down while full (then ENOSPC)

    def write(self, fd: int, data: bytes) -> int:
        if not self.full:
            return real_write(fd, data)
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real_write(fd, bytes(data)[: self.room])
        self.room -= n
        return n


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    d = Disk()
    monkeypatch.setattr(os, "write", d.write)
    return d


def detected(i: int) -> JobDetected:
    return JobDetected(job_id=f"job{i}", name=f"doc{i}.md", route=None, ino=i)


def emit_jobs(log: EventLog, numbers: range) -> None:
    for i in numbers:
        log.emit(detected(i))
        log.emit(JobClaimed(job_id=f"job{i}", attempt=1, name=f"doc{i}.md"))


def test_held_events_are_written_in_order_and_a_cut_line_is_finished(
    tmp_path: Path, disk: Disk, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.ndjson"
    log = EventLog(path, "h1", writer="h1.tok")
    emit_jobs(log, range(2))
    disk.full, disk.room = True, 40  # the next line is cut after 40 bytes, then ENOSPC
    with caplog.at_level(logging.WARNING, "spoold.spool.events"):
        emit_jobs(log, range(2, 6))
    assert log.held == 8
    assert "holding events in memory" in caplog.text
    assert [e["job_id"] for e in read_events(path)] == ["job0"] * 2 + ["job1"] * 2
    disk.full = False
    log.flush()
    assert log.held == 0
    log.emit(DaemonPaused(reason="disk"))
    got = list(read_events(path))
    assert [(e["event"], e["job_id"]) for e in got[:-1]] == [
        (name, f"job{i}") for i in range(6) for name in ("job.detected", "job.claimed")
    ]
    assert got[-1]["event"] == "daemon.paused"
    raw = (tmp_path / "events" / "h1.tok.ndjson").read_bytes()
    assert raw.count(b"\n") == 13 and raw.endswith(b"\n"), "each line whole, once"


def test_past_the_bound_one_gap_record_counts_the_dropped_events(
    tmp_path: Path, disk: Disk
) -> None:
    path = tmp_path / "events.ndjson"
    log = EventLog(path, "h1", writer="h1.tok", held_max=3)
    emit_jobs(log, range(1))
    disk.full = True
    emit_jobs(log, range(1, 5))  # 8 events: 3 held, 5 dropped
    disk.full = False
    emit_jobs(log, range(5, 6))
    got = list(read_events(path))
    names = [(e["event"], e["job_id"]) for e in got]
    assert names == [
        ("job.detected", "job0"),
        ("job.claimed", "job0"),
        ("job.detected", "job1"),
        ("job.claimed", "job1"),
        ("job.detected", "job2"),
        ("events.gap", None),
        ("job.detected", "job5"),
        ("job.claimed", "job5"),
    ]
    gap = got[5]
    assert gap["count"] == 5
    assert gap["job_ids"] == ["job2", "job3", "job4"] and gap["job_ids_complete"] is True
    assert gap["error"] == "No space left on device"
    assert gap["ts"] == gap["first_ts"] <= gap["last_ts"] <= got[6]["ts"]


def test_stopping_while_the_log_cannot_be_written_says_how_many_are_lost(
    tmp_path: Path, disk: Disk, caplog: pytest.LogCaptureFixture
) -> None:
    log = EventLog(tmp_path / "events.ndjson", "h1", writer="h1.tok")
    disk.full = True
    emit_jobs(log, range(2))
    with caplog.at_level(logging.ERROR, "spoold.spool.events"):
        log.close()
    assert "4 event(s) could not be written" in caplog.text


def test_each_line_has_the_spools_time_for_merging(tmp_path: Path) -> None:
    ahead: Callable[[], float] = lambda: 2_000_000_000.0  # noqa: E731 - the spool's clock
    log = EventLog(tmp_path / "events.ndjson", "h1", writer="h1.tok", spool_time=ahead)
    record = log.emit(detected(1))
    assert record["spool_ts"].startswith("2033-05-18T03:33:20")
    assert record["ts"] != record["spool_ts"]
