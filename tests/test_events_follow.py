"""events.follow: start at a byte offset, give up at a deadline, survive a rotation."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from spoold.spool.events import follow


def _append(log: Path, *events: str) -> None:
    with log.open("a") as fh:
        for name in events:
            fh.write(json.dumps({"event": name}) + "\n")


def test_follow_starts_at_an_offset_and_across_a_rotation(tmp_path: Path) -> None:
    log = tmp_path / "events.ndjson"
    _append(log, "before.1", "before.2")
    offset = log.stat().st_size
    _append(log, "after.1")
    tail = follow(log, poll_s=0.01, offset=offset, deadline=time.monotonic() + 60)
    assert next(tail)["event"] == "after.1", "events before the offset are skipped"
    os.rename(log, tmp_path / "events.ndjson.1")
    _append(log, "rotated.1")
    assert next(tail)["event"] == "rotated.1", "the new log is read from its start"


def test_an_offset_past_the_end_means_the_log_was_rotated(tmp_path: Path) -> None:
    log = tmp_path / "events.ndjson"
    _append(log, "new.1")
    tail = follow(log, poll_s=0.01, offset=10_000, deadline=time.monotonic() + 60)
    assert next(tail)["event"] == "new.1"


def test_follow_returns_at_its_deadline_on_a_quiet_or_missing_log(tmp_path: Path) -> None:
    quiet = tmp_path / "events.ndjson"
    _append(quiet, "old")
    assert list(follow(quiet, poll_s=0.01, deadline=time.monotonic() + 0.1)) == []
    missing = tmp_path / "none.ndjson"
    assert list(follow(missing, poll_s=0.01, deadline=time.monotonic() + 0.1)) == []


def test_without_an_offset_follow_starts_at_the_end_or_the_start(tmp_path: Path) -> None:
    log = tmp_path / "events.ndjson"
    _append(log, "old")
    assert list(follow(log, poll_s=0.01, deadline=time.monotonic() + 0.1)) == []
    from_start = follow(log, poll_s=0.01, from_start=True, deadline=time.monotonic() + 60)
    assert next(from_start)["event"] == "old"
