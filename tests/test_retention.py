"""Retention (SPEC section 3): old done/ and failed/ folders go, with their out/ links."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spoold.share.outputs import link_flat_output
from spoold.share.retention import job_time, purge, remove_tree
from spoold.spool.clock import iso
from spoold.spool.protocol import SpoolPaths, init_spool

DAY = 86400.0
NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def spool(tmp_path: Path) -> SpoolPaths:
    return init_spool(tmp_path / "spool")


def _job_id(ts: float, suffix: str = "0123456789") -> str:
    return f"{datetime.fromtimestamp(ts, UTC):%Y%m%dT%H%M%SZ}-{suffix}"


def _job(
    parent: Path,
    stem: str,
    created: float,
    *,
    finished: float | None = None,
    suffix: str = "0123456789",
    artifact: bytes = b"%PDF-1.7 result",
) -> Path:
    folder = parent / f"{stem}.{_job_id(created, suffix)}"
    (folder / "input").mkdir(parents=True)
    (folder / "input" / f"{stem}.md").write_text("# doc")
    (folder / f"{stem}.pdf").write_bytes(artifact)
    manifest = {"finished_at": iso(datetime.fromtimestamp(finished or created, UTC))}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_job_time_parses_the_id() -> None:
    assert job_time(_job_id(NOW)) == NOW
    assert job_time("garbage") is None
    assert job_time("20261399T120000Z-0123456789") is None  # month 13 is not a time
    assert job_time("2026\u0661101T120000Z-0123456789") is None  # ASCII digits only
    assert job_time("20261130T120000Z-0123456789") == 1796040000.0


def test_old_folders_removed_new_kept(spool: SpoolPaths) -> None:
    old_done = _job(spool.done, "old", NOW - 31 * DAY)
    new_done = _job(spool.done, "new", NOW - 29 * DAY)
    old_failed = _job(spool.failed, "bad", NOW - 91 * DAY)
    kept_failed = _job(spool.failed, "recent", NOW - 31 * DAY)  # failed are kept 90 days
    res = purge(spool, keep_done_days=30, keep_failed_days=90, now=NOW)
    assert (res.removed_done, res.removed_failed) == (1, 1)
    assert res.freed_bytes > 0
    assert res.errors == []
    assert not old_done.exists() and not old_failed.exists()
    assert new_done.exists() and kept_failed.exists()
    assert sorted(os.listdir(spool.done)) == [new_done.name], "no hidden leftover"
    assert sorted(os.listdir(spool.failed)) == [kept_failed.name]


def test_retried_job_is_aged_by_when_it_finished(spool: SpoolPaths) -> None:
    # Created 100 days ago, retried and finished yesterday: not expired.
    job = _job(spool.done, "retried", NOW - 100 * DAY, finished=NOW - DAY)
    res = purge(spool, keep_done_days=30, keep_failed_days=90, now=NOW)
    assert res.removed_done == 0 and job.exists()


def test_folder_without_job_id_uses_mtime(spool: SpoolPaths) -> None:
    hand = spool.done / "made-by-hand"
    hand.mkdir()
    (hand / "file.pdf").write_bytes(b"x")
    os.utime(hand, (NOW - 40 * DAY, NOW - 40 * DAY))
    fresh = spool.done / "fresh-by-hand"
    fresh.mkdir()
    os.utime(fresh, (NOW - DAY, NOW - DAY))
    res = purge(spool, keep_done_days=30, keep_failed_days=90, now=NOW)
    assert res.removed_done == 1
    assert not hand.exists() and fresh.exists()


def test_stray_files_and_hidden_names_are_left_alone(spool: SpoolPaths) -> None:
    note = spool.done / "README.txt"
    note.write_text("people's notes")
    hidden = spool.done / ".keep"
    hidden.mkdir()
    for p in (note, hidden):
        os.utime(p, (NOW - 400 * DAY, NOW - 400 * DAY))
    purge(spool, keep_done_days=1, keep_failed_days=1, now=NOW)
    assert note.exists() and hidden.exists()


def test_out_links_are_removed_with_their_job(spool: SpoolPaths) -> None:
    old = _job(spool.done, "report", NOW - 60 * DAY, suffix="aaaaaaaaaa", artifact=b"old")
    new = _job(spool.done, "report", NOW - DAY, suffix="bbbbbbbbbb", artifact=b"new")
    (old_link,) = link_flat_output(spool.out, [old / "report.pdf"])
    (new_link,) = link_flat_output(spool.out, [new / "report.pdf"])
    assert (old_link.name, new_link.name) == ("report.pdf", "report-1.pdf")
    (spool.out / "mine.pdf").write_bytes(b"old")  # a person's file, same bytes
    res = purge(spool, keep_done_days=30, keep_failed_days=90, now=NOW)
    assert res.removed_done == 1 and res.removed_links == 1
    assert not old_link.exists()
    assert new_link.exists() and (spool.out / "mine.pdf").exists()


def test_out_links_kept_without_cleanup(spool: SpoolPaths) -> None:
    old = _job(spool.done, "report", NOW - 60 * DAY)
    (link,) = link_flat_output(spool.out, [old / "report.pdf"])
    res = purge(spool, 30, 90, now=NOW, out_dir_cleanup=False)
    assert res.removed_done == 1 and res.removed_links == 0
    assert link.read_bytes() == b"%PDF-1.7 result"


def test_purge_leftovers_are_finished(spool: SpoolPaths) -> None:
    # A purge killed after its rename: hidden folder, out/ link still there.
    job = _job(spool.failed, "crashed", NOW - 200 * DAY)
    (link,) = link_flat_output(spool.out, [job / "crashed.pdf"])
    leftover = spool.failed / f".purge-{job.name}"
    job.rename(leftover)
    (leftover / "input" / "deep" / "er").mkdir(parents=True)
    res = purge(spool, keep_done_days=30, keep_failed_days=90, now=NOW)
    assert res.leftovers == 1
    assert (res.removed_done, res.removed_failed) == (0, 0)
    assert os.listdir(spool.failed) == []
    assert not link.exists()


def test_read_only_results_are_still_removed(spool: SpoolPaths) -> None:
    job = _job(spool.done, "locked", NOW - 60 * DAY)
    # output_mode = "0444" gives folders 0555: not even the owner can delete inside.
    for p in (job / "input" / "locked.md", job / "locked.pdf", job / "manifest.json"):
        p.chmod(0o444)
    (job / "input").chmod(0o555)
    job.chmod(0o555)
    res = purge(spool, keep_done_days=30, keep_failed_days=90, now=NOW)
    assert res.removed_done == 1 and res.errors == []
    assert not job.exists()


def test_remove_tree_handles_deep_nesting_without_recursion(tmp_path: Path) -> None:
    top = tmp_path / "deep"
    # Deeper than Python's recursion limit, still within PATH_MAX (2 bytes a level).
    leaf = top
    leaf.mkdir()
    for _ in range(1200):  # not os.makedirs: that recurses too
        leaf = leaf / "d"
        leaf.mkdir()
    (leaf / "f").write_bytes(b"12345")
    freed, errors = remove_tree(top)
    assert errors == []
    assert freed == 5
    assert not top.exists()


def test_purge_of_empty_spool_is_a_no_op(spool: SpoolPaths) -> None:
    res = purge(spool, 30, 90, now=NOW)
    assert (res.removed_done, res.removed_failed, res.freed_bytes) == (0, 0, 0)


def test_events_files_of_daemons_long_gone_are_removed(spool: SpoolPaths) -> None:
    logs = spool.state / "events"
    logs.mkdir()
    files = {
        "gone-old": logs / "h1.aaaa1111.ndjson",  # no lease, last line 91 days ago
        "gone-old-rotated": logs / "h1.aaaa1111.ndjson.1",
        "gone-recent": logs / "h1.bbbb2222.ndjson",  # no lease, 89 days ago
        "alive-quiet": logs / "h2.cccc3333.ndjson",  # a lease: kept, however old
        "legacy": spool.events,  # the shared log of an older version
    }
    ages = {"gone-recent": 89 * DAY}
    for key, path in files.items():
        path.write_text('{"event": "daemon.started"}\n')
        age = ages.get(key, 91 * DAY)
        os.utime(path, (NOW - age, NOW - age))
    (spool.daemons / "cccc3333.lock").touch()
    res = purge(spool, keep_done_days=30, keep_failed_days=90, now=NOW)
    assert res.removed_event_files == 3
    gone = {k for k, p in files.items() if not p.exists()}
    assert gone == {"gone-old", "gone-old-rotated", "legacy"}
