"""InboxTracker and Scheduler on their own: settle re-checks by heap, ignore patterns,
paused spools. Times are passed in, so nothing here sleeps."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import pytest

from spoold.daemon.inbox.tracker import Entry, InboxTracker
from spoold.daemon.scheduler import Candidate, LaneQueue, Scheduler
from spoold.settings import DEFAULT_IGNORE
from spoold.spool.entries import compile_ignore, is_ignored


def tracker(
    inbox: Path,
    settle_s: float = 1.0,
    incomplete_after_s: float = 10.0,
    unchanged_fail_s: float = 10.0,
) -> InboxTracker:
    return InboxTracker(inbox, (), DEFAULT_IGNORE, settle_s, incomplete_after_s, unchanged_fail_s)


def keys(entries: list[Entry]) -> list[str]:
    return sorted(e.key for e in entries)


def test_in_place_file_waits_for_the_settle_window(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("x")
    t = tracker(tmp_path, settle_s=1.0)
    assert t.scan(100.0) == []
    assert t.check_pending(100.9) == []
    (tmp_path / "a.md").write_text("xy")  # still being written: the window starts again
    assert t.check_pending(101.0) == []
    assert t.check_pending(101.9) == []
    assert keys(t.check_pending(102.0)) == ["a.md"]
    assert t.check_pending(110.0) == [], "a ready entry is handed over once"


def test_no_settle_window_means_ready_in_the_same_scan(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("x")
    assert keys(tracker(tmp_path, settle_s=0.0).scan(5.0)) == ["a.md"]


def test_renamed_in_entry_is_ready_at_once(tmp_path: Path) -> None:
    t = tracker(tmp_path, settle_s=600.0)
    (tmp_path / "m.md").write_text("x")
    t.hint_moved("m.md")
    assert keys(t.check_pending(1.0)) == ["m.md"]
    # Seen by a scan first, then the rename hint arrives: ready then too.
    (tmp_path / "n.md").write_text("x")
    assert t.scan(2.0) == []
    t.hint_moved("n.md")
    assert keys(t.check_pending(2.1)) == ["n.md"]


def test_a_hinted_rename_is_ready_in_a_scan_that_comes_first(tmp_path: Path) -> None:
    """The loop's periodic scan may run before the pass that takes inotify's hints: a
    renamed-in entry is still complete at once, not left to settle."""
    t = tracker(tmp_path, settle_s=600.0)
    (tmp_path / "folder.md").mkdir()
    (tmp_path / "folder.md" / "folder.md").write_text("# x\n")
    (tmp_path / "file.md").write_text("x")
    t.hint_moved("folder.md")
    t.hint_moved("file.md")
    assert keys(t.scan(1.0)) == ["file.md", "folder.md"]


def test_a_renamed_in_folder_is_not_walked_a_settling_one_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import spoold.daemon.inbox.tracker as tracker_module

    walked: list[str] = []
    real = tracker_module.signature

    def counting(path: Path, st: os.stat_result) -> tuple[int, ...]:
        walked.append(path.name)
        return real(path, st)

    monkeypatch.setattr(tracker_module, "signature", counting)
    t = tracker(tmp_path, settle_s=1.0)
    for name in ("moved.md", "copied.md"):
        (tmp_path / name).mkdir()
        (tmp_path / name / name).write_text("# x\n")
    t.hint_moved("moved.md")
    assert keys(t.check_pending(1.0)) == ["moved.md"]
    assert walked == []
    assert t.scan(1.0) == [] and walked == ["copied.md"]
    (tmp_path / "copied.md" / "more.md").write_text("still being copied")
    assert t.check_pending(1.5) == [], "a member added: the window starts again"
    assert keys(t.check_pending(2.6)) == ["copied.md"]


def test_a_transient_error_looking_at_an_entry_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ESTALE and the like on a network mount: the entry is looked at again, not lost
    and not an error of the loop."""
    real = os.lstat
    failures = {str(tmp_path / "m.md"): [errno.ESTALE, errno.EIO]}

    def flaky(path: str | os.PathLike[str], *args: object, **kw: object) -> os.stat_result:
        codes = failures.get(os.fspath(path))
        if codes:
            code = codes.pop(0)
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real(path, *args, **kw)  # type: ignore[arg-type]

    t = tracker(tmp_path, settle_s=600.0)
    (tmp_path / "m.md").write_text("x")
    t.hint_moved("m.md")
    monkeypatch.setattr(os, "lstat", flaky)
    assert keys(t.check_pending(1.0)) == ["m.md"]
    assert failures[str(tmp_path / "m.md")] == []


def test_waiting_entries_are_not_stated_before_they_are_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(200):
        (tmp_path / f"f{i}.md").write_text("x")
    t = tracker(tmp_path, settle_s=60.0)
    assert t.scan(0.0) == []
    calls = 0
    real_lstat = os.lstat

    def counting_lstat(path: object) -> os.stat_result:
        nonlocal calls
        calls += 1
        return real_lstat(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", counting_lstat)
    for step in range(100):
        assert t.check_pending(step * 0.1) == []
    assert calls == 0, "a pass before any entry is due costs nothing per entry"
    assert t.next_check() == pytest.approx(15.0)
    assert len(t.check_pending(60.0)) == 200


def test_truncated_pdf_is_reported_and_a_completed_one_is_ready(tmp_path: Path) -> None:
    (tmp_path / "cut.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n")
    (tmp_path / "slow.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n")
    t = tracker(tmp_path, settle_s=1.0, incomplete_after_s=10.0)
    assert t.scan(0.0) == []
    assert t.check_pending(2.0) == [], "settled but not complete: not claimed"
    with open(tmp_path / "slow.pdf", "ab") as fh:
        fh.write(b"endobj\n%%EOF\n")
    assert t.check_pending(3.0) == []  # the change is seen; settle again
    assert keys(t.check_pending(4.5)) == ["slow.pdf"]
    assert t.check_pending(9.0) == []
    ready = t.check_pending(10.5)
    assert keys(ready) == ["cut.pdf"] and ready[0].truncated


def test_an_entry_seen_being_written_gets_incomplete_after_s_one_never_seen_changing_less(
    tmp_path: Path,
) -> None:
    """The two bounds of docs/protocol.md, "When an entry is complete"."""
    (tmp_path / "there.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n")  # there at start-up
    (tmp_path / "paused.pdf").write_bytes(b"%PDF-1.7\n")
    job = tmp_path / "job"
    job.mkdir()
    (job / "doc.md").write_text("# x")
    (job / "reference.docx").write_bytes(b"PK\x03\x04 cut short")
    t = tracker(tmp_path, settle_s=1.0, incomplete_after_s=100.0, unchanged_fail_s=10.0)
    assert t.scan(0.0) == []
    with open(tmp_path / "paused.pdf", "ab") as fh:
        fh.write(b"1 0 obj\n")  # the writer goes on, then pauses
    version = t.waiting_version
    assert t.check_pending(2.0) == []
    waiting = {e.key: e.problem for e in t.waiting()}
    assert set(waiting) == {"there.pdf", "job"}, "paused.pdf changed: it settles again"
    assert t.waiting_version > version
    assert waiting["job"] is not None and waiting["job"].member == "reference.docx"
    assert waiting["job"].describe("job").startswith("job/reference.docx is not a complete DOCX")
    assert {e.key for e in t.check_pending(3.5)} == set() and len(t.waiting()) == 3
    ready = t.check_pending(10.5)
    assert keys(ready) == ["job", "there.pdf"] and all(e.truncated for e in ready)
    assert [e.key for e in t.waiting()] == ["paused.pdf"]
    assert t.fail_after_s(t.entries["paused.pdf"]) == 100.0
    assert t.check_pending(99.0) == []
    [late] = t.check_pending(102.5)
    assert late.key == "paused.pdf" and late.truncated and t.waiting() == []


def test_an_entry_that_changes_stops_waiting(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.7\n")
    t = tracker(tmp_path, settle_s=1.0)
    t.scan(0.0)
    assert t.check_pending(1.5) == [] and [e.key for e in t.waiting()] == ["a.pdf"]
    with open(tmp_path / "a.pdf", "ab") as fh:
        fh.write(b"%%EOF\n")
    assert t.check_pending(2.0) == [] and t.waiting() == []
    assert keys(t.check_pending(3.5)) == ["a.pdf"]


def test_vanished_and_replaced_entries(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("x")
    t = tracker(tmp_path, settle_s=0.0)
    [first] = t.scan(0.0)
    (tmp_path / "new").write_text("other file")
    os.rename(tmp_path / "new", tmp_path / "a.md")  # same name, another inode
    t.hint_moved("a.md")
    [second] = t.check_pending(1.0)
    assert first.gone and not second.gone and second is not first
    (tmp_path / "a.md").unlink()
    assert t.scan(2.0) == [] and second.gone and t.queued_count() == 0


def test_ignore_patterns_as_one_regex(tmp_path: Path) -> None:
    patterns = (*DEFAULT_IGNORE, "*.skip", "draft-[0-9]*")
    rx = compile_ignore(patterns)
    assert rx is not None and compile_ignore(()) is None
    names = [
        "a.md",
        "a.md.part",
        ".hidden",
        "~$doc.docx",
        ".~lock.a.odt#",
        "Thumbs.db",
        "x.skip",
        "x.SKIP",
        "draft-1.md",
        "draft-x.md",
        "b.tmp",
        "c.crdownload",
    ]
    for name in names:
        assert (rx.match(name) is not None) == is_ignored(name, patterns), name
    for name in names:
        (tmp_path / name).write_text("x")
    t = InboxTracker(tmp_path, (), patterns, 0.0, 10.0)
    assert keys(t.scan(0.0)) == sorted(n for n in names if not is_ignored(n, patterns))


def test_scheduler_leaves_paused_spools_alone(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("x")
    (tmp_path / "b.md").write_text("x")
    [a, b] = sorted(tracker(tmp_path, settle_s=0.0).scan(0.0), key=lambda e: e.key)
    s = Scheduler()
    s.push(Candidate("s1", a, 50), 0.0)
    s.push(Candidate("s2", b, 50), 0.0)
    assert s.has_ready() and s.has_ready({"s1"}) and not s.has_ready({"s1", "s2"})
    assert s.pop(0.0, {"s1", "s2"}) is None
    cand = s.pop(0.0, {"s1"})
    assert cand is not None and cand.spool == "s2"
    assert s.ready_count() == 1, "the paused spool's job is still queued"
    cand = s.pop(0.0)
    assert cand is not None and cand.spool == "s1"


def test_scheduler_order_priority_then_arrival_then_lanes(tmp_path: Path) -> None:
    for i in range(6):
        (tmp_path / f"e{i}.md").write_text("x")
    entries = sorted(tracker(tmp_path, settle_s=0.0).scan(0.0), key=lambda e: e.seq)
    s = Scheduler()
    prios = [50, 0, 100, 50, 100, 50]
    for entry, prio in zip(entries, prios, strict=True):
        s.push(Candidate("s", entry, prio), 0.0)
    order = []
    while (cand := s.pop(0.0)) is not None:
        order.append((cand.priority, cand.entry.seq))
    assert order == sorted(order, key=lambda p: (-p[0], p[1]))
    # Two owners' lanes of equal priority take turns.
    a, b = entries[0], entries[1]
    b.uid = a.uid + 1
    s.push(Candidate("s", a, 50), 0.0)
    s.push(Candidate("s", entries[2], 50), 0.0)
    s.push(Candidate("s", b, 50), 0.0)
    first, second = s.pop(0.0), s.pop(0.0)
    assert first is not None and second is not None and first.lane != second.lane


def test_lane_queue_pops_in_order_whatever_the_push_order() -> None:
    rng = random.Random(7)
    q = LaneQueue()
    pushed: list[int] = []
    for step in range(2000):
        # Mostly ascending (the inbox's arrival order), sometimes not; pops interleaved.
        key = step if rng.random() < 0.8 else rng.randrange(-500, 2000) * 2 + 10**6
        if key in pushed:
            continue
        q.push((key, None))  # type: ignore[arg-type]
        pushed.append(key)
        if rng.random() < 0.3:
            pushed.sort()
            assert q.pop()[0] == pushed.pop(0)
    pushed.sort()
    assert [q.pop()[0] for _ in range(len(q))] == pushed


def test_cancel_markers_are_ready_at_once_and_not_counted_as_queued(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("x")
    (tmp_path / "a.md.cancel").write_text("hard\n")
    t = tracker(tmp_path, settle_s=600.0)
    # Found by a scan (no rename seen), the marker still needs no settle window.
    assert keys(t.scan(1.0) + t.check_pending(1.0)) == ["a.md.cancel"]
    assert t.queued_count() == 1
    t.drop("a.md.cancel")
    (tmp_path / "a.md.cancel").unlink()
    assert t.queued_count() == 1
    t.drop("a.md")
    assert t.queued_count() == 0
