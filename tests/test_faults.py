"""Faults from outside: a flood of files, a worker killed like the OOM killer does,
a daemon killed between two targets, a log that must rotate."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from .conftest import PLUGIN_ENV, events, published, stage_file, wait_for


def test_flood_of_files_misses_nothing(make_spool, daemon_factory) -> None:
    spool = make_spool(scan_interval_s=30, durable=False)
    d = daemon_factory(spool, args=("--workers", "2", "--detect", "inotify"))
    d.wait_ready()
    # Freeze the daemon while the flood lands: its inotify queue (16,384 events by
    # default) must overflow, and only the rescan after the overflow can find the rest.
    d.signal(signal.SIGSTOP)
    n = 10_000
    inbox = spool / "inbox"
    for i in range(n):
        # Written in place: several inotify events each, enough to overflow the queue.
        (inbox / f"f{i:05d}.md").write_text(f"# {i}\n")
    d.signal(signal.SIGCONT)
    wait_for(lambda: len(os.listdir(spool / "done")) == n, timeout=600, what=f"{n} published")
    assert os.listdir(inbox) == []
    assert os.listdir(spool / "failed") == []
    names = {json.loads((p / "manifest.json").read_text())["name"] for p in published(spool)}
    assert len(names) == n
    overflowed = "inotify queue overflowed" in d.log()
    print(f"flood: {n} files, inotify overflow seen: {overflowed}")
    assert overflowed, "20,000 events into a 16,384-event queue must overflow"


def test_worker_killed_like_the_oom_killer(make_spool, daemon_factory, tmp_path: Path) -> None:
    spool = make_spool(max_attempts=3)
    daemon_factory(spool, env=PLUGIN_ENV)
    pid_file = tmp_path / "worker.pid"
    stage_file(spool, "victim.slow", f"2 {pid_file}")
    wait_for(pid_file.exists, what="worker started converting")
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    wait_for(lambda: published(spool), timeout=60, what="job finished on a new worker")
    m = json.loads((published(spool)[0] / "manifest.json").read_text())
    assert [a["outcome"] for a in m["attempts"]] == ["retry", "succeeded"]
    assert m["attempts"][0]["error"]["code"] == "worker_lost"


def test_resume_converts_only_the_missing_target(make_spool, daemon_factory) -> None:
    spool = make_spool(targets=["html", "pdf"])
    d = daemon_factory(spool, env=PLUGIN_ENV)
    stage_file(spool, "two.slow", "1.5")

    def first_target_done() -> bool:
        return any(
            (p / ".spoold-artifacts" / "html.json").exists() for p in (spool / "running").iterdir()
        )

    wait_for(first_target_done, what="first target produced")
    d.proc.send_signal(signal.SIGKILL)
    d.wait()
    daemon_factory(spool, env=PLUGIN_ENV)
    wait_for(lambda: published(spool), timeout=60, what="resumed job published")
    m = json.loads((published(spool)[0] / "manifest.json").read_text())
    by_target = {a["target"]: a for a in m["artifacts"]}
    assert by_target["html"]["attempt"] == 1, "kept from the lost attempt"
    assert by_target["pdf"]["attempt"] == 2, "only the missing target converted again"
    assert "pdf" not in m["timings"] or "html" not in m["timings"]


def test_events_log_rotates_by_size(make_spool, daemon_factory) -> None:
    spool = make_spool(events_max_mb=0.01)  # about 10 KB
    daemon_factory(spool)
    # The log checks its size every 256 writes: 100 jobs write at least 400 lines (more
    # when later ones are served as duplicates of earlier ones, which depends on timing).
    n = 100
    for i in range(n):
        stage_file(spool, f"r{i}.md", "# r\n")
    wait_for(lambda: len(published(spool)) == n, what=f"{n} published")
    logs = spool / ".spoold" / "events"
    wait_for(lambda: list(logs.glob("*.ndjson.1")), what="rotation")
    # Nothing lost across the rotation: every job's terminal event is in one of the files
    # (each is appended just after its job's publish rename).
    wait_for(
        lambda: len({e["job_id"] for e in events(spool) if e["event"] == "job.succeeded"}) == n,
        what=f"{n} job.succeeded lines",
    )
    for e in events(spool):
        assert {"ts", "event", "job_id", "attempt", "host"} <= set(e)


def test_usage_and_stage_are_reported(make_spool, daemon_factory) -> None:
    spool = make_spool()
    daemon_factory(spool, env=PLUGIN_ENV)
    stage_file(spool, "staged.slow", "1.5")
    from spoold import api

    wait_for(
        lambda: any(j["stage"] == "layout" for j in api.status(spool)["running"]),
        what="stage shown by status",
    )
    wait_for(lambda: published(spool), what="done")
    m = json.loads((published(spool)[0] / "manifest.json").read_text())
    usage = m["attempts"][-1]["usage"]
    assert usage["wall_s"] >= 1.0 and usage["peak_rss_mb"] > 0 and usage["cpu_s"] >= 0
