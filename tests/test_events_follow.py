"""The events log's files (spool/eventfiles.py): one per writer, read merged in order,
followed from a cursor across rotations and new writers, at a deadline."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from spoold.spool.eventfiles import EventsCursor, Tail, follow, log_files, read_events
from spoold.spool.eventlog import EventLog
from spoold.spool.events import JobDetected


def _append(path: Path, *events: tuple[str, str]) -> None:
    """Lines as a writer appends them: (event name, spool_ts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        for name, spool_ts in events:
            fh.write(json.dumps({"event": name, "ts": spool_ts, "spool_ts": spool_ts}) + "\n")


def _names(events: object) -> list[str]:
    return [e["event"] for e in events]  # type: ignore[attr-defined]


def test_writers_files_are_merged_by_the_spools_clock_each_in_its_own_order(
    tmp_path: Path,
) -> None:
    log = tmp_path / "events.ndjson"
    _append(log, ("legacy.1", "2026-01-01T00:00:01Z"))  # an older version's shared log
    _append(tmp_path / "events" / "a.x.ndjson", ("a.1", "2026-01-01T00:00:02Z"))
    _append(tmp_path / "events" / "b.y.ndjson", ("b.1", "2026-01-01T00:00:00Z"))
    _append(tmp_path / "events" / "a.x.ndjson", ("a.2", "2026-01-01T00:00:03Z"))
    _append(tmp_path / "events" / "b.y.ndjson.1", ("b.0", "2025-12-31T00:00:00Z"))
    assert _names(read_events(log)) == ["b.0", "b.1", "legacy.1", "a.1", "a.2"]
    assert [p.name for p in log_files(log)] == [
        "events.ndjson",
        "a.x.ndjson",
        "b.y.ndjson.1",
        "b.y.ndjson",
    ]


def test_a_cursor_from_read_events_goes_on_where_reading_ended(tmp_path: Path) -> None:
    log = tmp_path / "events.ndjson"
    a = tmp_path / "events" / "a.x.ndjson"
    _append(a, ("before.1", "2026-01-01T00:00:01Z"))
    (a.parent / "half.ndjson").write_text('{"event": "half"')  # a line still being written
    cursor = EventsCursor()
    assert _names(read_events(log, cursor)) == ["before.1"]
    _append(a, ("after.1", "2026-01-01T00:00:02Z"))
    with (a.parent / "half.ndjson").open("a") as fh:
        fh.write(', "spool_ts": "2026-01-01T00:00:03Z"}\n')
    os.rename(a, a.with_name(a.name + ".1"))  # the writer rotates
    _append(a, ("rotated.1", "2026-01-01T00:00:04Z"))
    _append(tmp_path / "events" / "c.z.ndjson", ("new-writer.1", "2026-01-01T00:00:05Z"))
    tail = follow(log, poll_s=0.01, cursor=cursor, deadline=time.monotonic() + 60)
    got = [next(tail)["event"] for _ in range(4)]
    assert got == ["after.1", "half", "rotated.1", "new-writer.1"]


def test_a_tail_from_now_skips_what_was_there_and_reads_new_files_whole(
    tmp_path: Path,
) -> None:
    log = tmp_path / "events.ndjson"
    _append(tmp_path / "events" / "a.x.ndjson", ("old", "2026-01-01T00:00:01Z"))
    tail = Tail(log)
    assert tail.poll() == []
    _append(tmp_path / "events" / "a.x.ndjson", ("new.a", "2026-01-01T00:00:03Z"))
    _append(tmp_path / "events" / "b.y.ndjson", ("new.b", "2026-01-01T00:00:02Z"))
    assert _names(tail.poll()) == ["new.b", "new.a"]
    again = Tail(log, tail.cursor())
    _append(tmp_path / "events" / "b.y.ndjson", ("later", "2026-01-01T00:00:04Z"))
    assert _names(again.poll()) == ["later"]
    assert _names(Tail(log, from_start=True).poll()) == ["old", "new.b", "new.a", "later"]


def test_follow_returns_at_its_deadline_on_a_quiet_or_missing_log(tmp_path: Path) -> None:
    quiet = tmp_path / "events.ndjson"
    _append(tmp_path / "events" / "a.x.ndjson", ("old", "2026-01-01T00:00:01Z"))
    assert list(follow(quiet, poll_s=0.01, deadline=time.monotonic() + 0.1)) == []
    missing = tmp_path / "nowhere" / "events.ndjson"
    assert list(follow(missing, poll_s=0.01, deadline=time.monotonic() + 0.1)) == []


def test_each_event_log_instance_writes_its_own_file(tmp_path: Path) -> None:
    log = tmp_path / "events.ndjson"
    one, two = EventLog(log, "host-1"), EventLog(log, "host-1", writer="host-1.tok2")
    for i in range(3):
        one.emit(JobDetected(job_id=f"a{i}", name="a.md", route=None, ino=i))
        two.emit(JobDetected(job_id=f"b{i}", name="b.md", route=None, ino=i))
    one.close()
    two.close()
    files = sorted(p.name for p in (tmp_path / "events").iterdir())
    assert len(files) == 2 and "host-1.tok2.ndjson" in files
    merged = list(read_events(log))
    assert sorted(e["job_id"] for e in merged) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert [e["spool_ts"] for e in merged] == sorted(e["spool_ts"] for e in merged)


def test_a_tail_from_now_reads_a_line_being_written_whole(tmp_path: Path) -> None:
    log = tmp_path / "events.ndjson"
    writer = tmp_path / "events" / "a.x.ndjson"
    _append(writer, ("old", "2026-01-01T00:00:01Z"))
    with writer.open("a") as fh:
        fh.write('{"event": "cut", "spool_ts": "2026-01-01T00:00:02Z"')  # half written
    tail = Tail(log)
    assert tail.poll() == []
    with writer.open("a") as fh:
        fh.write("}\n")
    assert _names(tail.poll()) == ["cut"]


def test_a_tail_finds_a_new_writer_even_when_the_folder_mtime_hides_it(tmp_path: Path) -> None:
    # A tail lists the events folder again only when its mtime changed: a filesystem
    # with a coarse clock can add a file within one tick, so it lists every RELIST_S too.
    from .conftest import wait_for

    log = tmp_path / "events.ndjson"
    folder = tmp_path / "events"
    _append(folder / "a.x.ndjson", ("a.1", "2026-01-01T00:00:01Z"))
    tail = Tail(log)
    assert tail.poll() == []
    _append(folder / "a.x.ndjson", ("a.2", "2026-01-01T00:00:02Z"))
    assert _names(tail.poll()) == ["a.2"]  # a known file: read from the cached listing
    before = os.stat(folder)
    _append(folder / "b.y.ndjson", ("b.1", "2026-01-01T00:00:03Z"))
    os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))  # as if in the same tick
    found = wait_for(tail.poll, timeout=10, what="the new writer's line")
    assert _names(found) == ["b.1"]
