"""The engine core with real daemon processes and real files (issue: engine core)."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from spoold.spool.manifest import schema_json

from .conftest import (
    ROOT,
    assert_all_manifests_valid,
    events,
    published,
    stage_file,
    wait_for,
)


def test_schema_file_is_current() -> None:
    on_disk = (ROOT / "docs" / "manifest.schema.json").read_text()
    assert on_disk == schema_json(), "run `make schema` to regenerate docs/manifest.schema.json"


def test_single_file_and_job_folder_are_published(make_spool, daemon_factory) -> None:
    spool = make_spool()
    d = daemon_factory(spool)
    stage_file(spool, "note.md", "# Note\n\nHello *world*.\n")
    job = spool / "tmp" / "report"
    job.mkdir()
    (job / "report.md").write_text("# Report\n\nBody text.\n")
    (job / "job.json").write_text(json.dumps({"targets": ["html"], "priority": 70}))
    os.rename(job, spool / "inbox" / "report")

    done = wait_for(lambda: len(published(spool)) == 2 and published(spool), what="2 published")
    assert_all_manifests_valid(spool)
    by_name = {json.loads((p / "manifest.json").read_text())["name"]: p for p in done}
    note = by_name["note.md"]
    m = json.loads((note / "manifest.json").read_text())
    assert m["status"] == "succeeded"
    assert m["input"]["size"] == len("# Note\n\nHello *world*.\n")
    art = m["artifacts"][0]
    html = (note / art["path"]).read_text()
    assert "<em>world</em>" in html
    assert (note / "input" / "note.md").exists(), "the original input is kept"
    report = json.loads((by_name["report"] / "manifest.json").read_text())
    assert report["options"]["priority"] == 70
    assert (by_name["report"] / "input" / "report" / "job.json").exists()
    names = [e["event"] for e in events(spool)]
    for ev in ("daemon.started", "job.detected", "job.claimed", "job.started", "job.succeeded"):
        assert ev in names
    assert os.listdir(spool / "running") == []
    assert d.stop() == 0


@pytest.mark.parametrize("detect", ["inotify", "poll"])
def test_slow_writer_is_never_claimed_early(make_spool, daemon_factory, detect: str) -> None:
    spool = make_spool(settle_ms=400)
    daemon_factory(spool, args=("--workers", "2", "--detect", detect))
    chunks = [f"line {i} of a slowly copied file\n" for i in range(6)]
    path = spool / "inbox" / "slow.md"
    with open(path, "w") as fh:
        for chunk in chunks:
            fh.write(chunk)
            fh.flush()
            # A pause longer than the poll interval (50 ms) but inside the settle window.
            deadline = time.monotonic() + 0.25
            while time.monotonic() < deadline:
                assert path.exists(), "claimed while still being written"
                time.sleep(0.02)
    done = wait_for(lambda: published(spool), what="slow file published")
    m = json.loads((done[0] / "manifest.json").read_text())
    assert m["input"]["size"] == len("".join(chunks)), "claimed before it was complete"
    html = (done[0] / m["artifacts"][0]["path"]).read_text()
    assert "line 5 of a slowly copied file" in html


def test_staged_rename_skips_the_settle_window(make_spool, daemon_factory) -> None:
    # A settle window of ten minutes: only the "renamed in" rule can publish in time.
    spool = make_spool(settle_ms=600_000)
    daemon_factory(spool, args=("--workers", "1", "--detect", "inotify"))
    wait_for(lambda: any(e["event"] == "daemon.started" for e in events(spool)), what="start")
    stage_file(spool, "staged.md", "# Staged\n")
    wait_for(lambda: published(spool), timeout=60, what="staged file published")
    # An in-place write (not a rename) must still wait for the window.
    (spool / "inbox" / "inplace.md").write_text("# In place\n")
    stage_file(spool, "barrier.md", "# Barrier\n")
    wait_for(lambda: len(published(spool)) == 2, what="barrier published")
    assert (spool / "inbox" / "inplace.md").exists()


def test_ignore_patterns(make_spool, daemon_factory) -> None:
    spool = make_spool(ignore=["*.skip"])
    daemon_factory(spool)
    ignored = [
        "a.md.part",
        ".hidden.md",
        "~$doc.md",
        "x.md.crdownload",
        "y.tmp",
        "Thumbs.db",
        "z.skip",
        ".~lock.doc.md#",
    ]
    for name in ignored:
        (spool / "inbox" / name).write_text("# ignored\n")
    stage_file(spool, "barrier.md", "# Barrier\n")
    wait_for(lambda: published(spool), what="barrier")
    # One more full scan after the barrier, so the ignored files had every chance.
    stage_file(spool, "barrier2.md", "# Barrier 2\n")
    wait_for(lambda: len(published(spool)) == 2, what="second barrier")
    assert sorted(os.listdir(spool / "inbox")) == sorted(ignored)
    assert os.listdir(spool / "failed") == []


def test_symlink_and_fifo_are_rejected_without_being_opened(
    make_spool, daemon_factory, tmp_path
) -> None:
    spool = make_spool()
    secret = tmp_path / "secret.md"
    secret.write_text("# TOP SECRET canary 9f1c\n")
    os.symlink(secret, spool / "inbox" / "link.md")
    os.mkfifo(spool / "inbox" / "pipe.md")
    daemon_factory(spool)
    stage_file(spool, "barrier.md", "# Barrier\n")
    wait_for(lambda: len(published(spool, "failed")) == 2 and published(spool), what="rejections")
    assert_all_manifests_valid(spool)
    for p in published(spool, "failed"):
        m = json.loads((p / "manifest.json").read_text())
        assert m["error"]["code"] == "input_invalid"
        assert "never opens" in m["error"]["message"]
        assert "9f1c" not in (p / "manifest.json").read_text()
        assert (p / "ERROR.txt").exists()
    assert secret.read_text().startswith("# TOP SECRET"), "the link target is untouched"


def test_job_json_errors_name_the_key(make_spool, daemon_factory) -> None:
    spool = make_spool()
    cases = {
        "unknown": ({"tragets": ["pdf"]}, "tragets"),
        "badvalue": ({"priority": 500}, "priority"),
        "badtarget": ({"targets": ["odt"]}, "targets"),
    }
    for name, (job, _) in cases.items():
        folder = spool / "tmp" / name
        folder.mkdir()
        (folder / "doc.md").write_text("# Doc\n")
        (folder / "job.json").write_text(json.dumps(job))
        os.rename(folder, spool / "inbox" / name)
    two = spool / "tmp" / "two"
    two.mkdir()
    (two / "a.md").write_text("# A\n")
    (two / "b.html").write_text("<h1>B</h1>")
    os.rename(two, spool / "inbox" / "two")
    stage_file(spool, "sheet.xlsx", b"PK\x03\x04 not really")
    daemon_factory(spool)
    wait_for(lambda: len(published(spool, "failed")) == 5, what="5 failures")
    assert_all_manifests_valid(spool)
    results = {}
    for p in published(spool, "failed"):
        m = json.loads((p / "manifest.json").read_text())
        results[m["name"]] = m["error"]
    for name, (_, key) in cases.items():
        assert results[name]["code"] == "input_invalid"
        assert key in results[name]["message"]
    assert results["two"]["code"] == "input_invalid"
    assert "candidate main documents" in results["two"]["message"]
    assert results["sheet.xlsx"]["code"] == "input_unsupported"


def test_names_are_safe_and_short(make_spool, daemon_factory) -> None:
    spool = make_spool()
    long_name = "é" * 120 + "x.md"  # 244 bytes
    names = ["new\nline.md", "ünïcödé 文書.md", long_name]
    for n in names:
        stage_file(spool, n, "# T\n")
    daemon_factory(spool)
    wait_for(lambda: len(published(spool)) == 3, what="3 published")
    for p in published(spool):
        assert len(os.fsencode(p.name)) <= 255
        assert "\n" not in p.name
        m = json.loads((p / "manifest.json").read_text())
        assert m["name"] in names
        for art in m["artifacts"]:
            assert len(os.fsencode(art["name"])) <= 255
    stems = {p.name.rsplit(".", 1)[0] for p in published(spool)}
    assert "ünïcödé 文書" in stems
    assert "new_line" in stems


def test_routes_choose_options_by_folder(make_spool, daemon_factory) -> None:
    spool = make_spool(routes={"web": {"targets": ["html"], "priority": 90}})
    (spool / "inbox" / "web").mkdir()
    daemon_factory(spool)
    stage_file(spool, "page.md", "# Routed\n", sub="web")
    done = wait_for(lambda: published(spool), what="routed job")
    m = json.loads((done[0] / "manifest.json").read_text())
    assert m["route"] == "web"
    assert m["options"]["priority"] == 90


def test_two_daemons_race_and_publish_each_job_once(make_spool, daemon_factory) -> None:
    spool = make_spool(settle_ms=100)
    a = daemon_factory(spool, args=("--workers", "2", "--host-id", "host-a"))
    b = daemon_factory(spool, args=("--workers", "2", "--host-id", "host-b"))
    wait_for(
        lambda: sum(e["event"] == "daemon.started" for e in events(spool)) == 2, what="both up"
    )
    # Both able to claim: a daemon whose workers are ready takes tiny jobs 16 to a worker
    # (daemon/batch.py) and could finish all 200 while the other's still import.
    a.wait_workers()
    b.wait_workers()
    n = 200

    def drop(start: int) -> None:
        for i in range(start, n, 2):
            stage_file(spool, f"job-{i:03d}.md", f"# Job {i}\n")

    threads = [threading.Thread(target=drop, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(lambda: len(published(spool)) >= n, timeout=300, what=f"{n} published")
    assert a.stop() == 0 and b.stop() == 0
    ms = [json.loads((p / "manifest.json").read_text()) for p in published(spool)]
    names = sorted(m["name"] for m in ms)
    assert names == [f"job-{i:03d}.md" for i in range(n)], "each job exactly once"
    assert len({m["job_id"] for m in ms}) == n
    assert os.listdir(spool / "running") == []
    assert os.listdir(spool / "inbox") == []
    assert os.listdir(spool / "failed") == []
    hosts = {m["attempts"][-1]["host"] for m in ms}
    assert hosts == {"host-a", "host-b"}, "both daemons took work"
    assert_all_manifests_valid(spool)
