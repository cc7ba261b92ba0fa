"""Regression tests, with real daemon processes, for bugs a new user ran into
(issue 10): each test fails on the daemon before the lifecycle rebuild."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .conftest import (
    FAST,
    PLUGIN_ENV,
    ROOT,
    events,
    published,
    stage_file,
    wait_for,
    write_spool_toml,
)

EX_DATAERR = 65


def event_seen(spool: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in events(spool) if e["event"] == name]


def test_submit_wait_returns_for_a_job_cancelled_while_queued(
    make_spool: Any, daemon_factory: Any, tmp_path: Path
) -> None:
    spool = make_spool()
    daemon_factory(spool, args=("--workers", "1"), env=PLUGIN_ENV)
    stage_file(spool, "busy.slow", "30")  # holds the only worker: the next job queues
    wait_for(lambda: event_seen(spool, "job.started"), what="the worker busy")
    doc = tmp_path / "queued.md"
    doc.write_text("# Never converted\n")
    submit = subprocess.Popen(
        [sys.executable, "-m", "spoold", "submit", str(spool), str(doc), "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        wait_for(lambda: (spool / "inbox" / "queued.md").exists(), what="submitted")
        stage_file(spool, "queued.md.cancel", "hard")
        _, err = submit.communicate(timeout=60)  # hung forever before the fix
    finally:
        if submit.poll() is None:
            submit.kill()
    assert submit.returncode == EX_DATAERR
    assert "job cancelled" in err
    detected = [e for e in event_seen(spool, "job.detected") if e["name"] == "queued.md"]
    assert detected and all("ino" in e for e in detected)


def test_a_daemon_whose_lease_was_removed_registers_again_once(
    make_spool: Any, daemon_factory: Any
) -> None:
    spool = make_spool()
    d = daemon_factory(spool)
    d.wait_ready()
    daemons = spool / ".spoold" / "daemons"
    for path in daemons.iterdir():
        path.unlink()  # what another daemon does to one it takes for gone
    wait_for(lambda: event_seen(spool, "daemon.lease_lost"), what="lease loss noticed")
    wait_for(
        lambda: {p.suffix for p in daemons.iterdir()} == {".json", ".lock"},
        what="lease registered again",
    )
    stage_file(spool, "after.md", "# After\n")
    wait_for(lambda: published(spool), what="still converting")
    assert len(event_seen(spool, "daemon.lease_lost")) == 1
    assert "internal error" not in d.log()
    assert d.proc.poll() is None


def _wait_for_new_ctime(path: Path, after_ns: int) -> int:
    """Rewrite `path` until its ctime is past `after_ns` (file times are coarse)."""

    def fresh() -> int:
        path.write_text("# entry\n")
        ctime = path.stat().st_ctime_ns
        return ctime if ctime > after_ns else 0

    return int(wait_for(fresh, what="a later ctime"))


def test_a_backlog_at_start_up_is_claimed_in_arrival_order(
    make_spool: Any, daemon_factory: Any
) -> None:
    spool = make_spool()
    order = ["m.md", "c.md", "x.md", "a.md", "q.md", "f.md", "z.md", "b.md"]
    last = 0
    for name in order:
        last = _wait_for_new_ctime(spool / "inbox" / name, last)
    daemon_factory(spool, args=("--workers", "1"))
    wait_for(lambda: len(published(spool)) == len(order), what="backlog done")
    claimed = [e["name"] for e in event_seen(spool, "job.claimed")]
    assert claimed == order


def test_sighup_records_reloads_and_refusals(make_spool: Any, daemon_factory: Any) -> None:
    spool = make_spool()
    d = daemon_factory(spool)
    d.wait_ready()
    d.signal(signal.SIGHUP)
    wait_for(lambda: event_seen(spool, "daemon.reloaded"), what="reload recorded")
    log_before = len(d.log())
    (spool / "spool.toml").write_text("settle_ms = 'soon'\n")
    d.signal(signal.SIGHUP)
    (refused,) = wait_for(lambda: event_seen(spool, "daemon.reload_refused"), what="refusal")
    assert "settle_ms" in refused["reason"]
    wait_for(lambda: "refused" in d.log()[log_before:], what="refusal logged")
    assert "settings reloaded" not in d.log()[log_before:]
    assert len(event_seen(spool, "daemon.reloaded")) == 1


def test_a_route_added_by_a_reload_is_created_and_watched_at_once(
    make_spool: Any, daemon_factory: Any
) -> None:
    # No periodic scan within the test's deadline: only the new watch can find the file.
    spool = make_spool(scan_interval_s=600)
    d = daemon_factory(spool, args=("--workers", "1", "--detect", "inotify"))
    d.wait_ready()
    write_spool_toml(
        spool, {**FAST, "scan_interval_s": 600, "routes": {"web": {"targets": ["html"]}}}
    )
    d.signal(signal.SIGHUP)
    wait_for(lambda: event_seen(spool, "daemon.reloaded"), what="reloaded")
    assert (spool / "inbox" / "web").is_dir()
    stage_file(spool, "routed.md", "# Routed\n", sub="web")
    (folder,) = wait_for(lambda: published(spool), timeout=60, what="routed job published")
    assert json.loads((folder / "manifest.json").read_text())["route"] == "web"


def _signal_set(pid: int, field: str, signum: int) -> bool:
    """Whether /proc says the process has `signum` in a set (SigCgt: caught, SigBlk: blocked)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    line = next(line for line in status.splitlines() if line.startswith(field + ":"))
    return bool(int(line.split()[1], 16) & (1 << (signum - 1)))


def _catches(pid: int, signum: int) -> bool:
    return _signal_set(pid, "SigCgt", signum)


def test_a_sighup_during_start_up_does_not_kill_the_daemon(
    make_spool: Any, daemon_factory: Any
) -> None:
    spool = make_spool()
    d = daemon_factory(spool)
    wait_for(lambda: _catches(d.pid, signal.SIGHUP), what="SIGHUP handled")
    d.signal(signal.SIGHUP)  # the pool, recovery and the observer are still starting
    d.wait_ready()
    wait_for(lambda: event_seen(spool, "daemon.reloaded"), what="the early SIGHUP applied")
    stage_file(spool, "alive.md", "# Alive\n")
    wait_for(lambda: published(spool), what="converting")
    assert d.proc.poll() is None
    assert d.stop() == 0


def test_sighups_before_the_handlers_exist_wait_instead_of_killing(
    make_spool: Any, daemon_factory: Any
) -> None:
    spool = make_spool()
    d = daemon_factory(spool)
    sent = 0
    deadline = time.monotonic() + 60
    # Until the daemon's handler exists, a SIGHUP would kill it (rc 129) unless blocked:
    # send one whenever /proc shows it blocked, as fast as we can look.
    while not _catches(d.pid, signal.SIGHUP):
        assert d.proc.poll() is None, f"killed during start-up (rc {d.proc.returncode})"
        assert time.monotonic() < deadline, "the daemon never installed its handlers"
        if _signal_set(d.pid, "SigBlk", signal.SIGHUP):
            d.signal(signal.SIGHUP)
            sent += 1
    assert sent > 0, "SIGHUP was never blocked while the daemon was starting"
    d.wait_ready()
    wait_for(lambda: event_seen(spool, "daemon.reloaded"), what="the pending SIGHUP applied")
    d.signal(signal.SIGHUP)
    stage_file(spool, "alive.md", "# Alive\n")
    wait_for(lambda: published(spool), what="converting")
    assert d.proc.poll() is None
    assert d.stop() == 0


def test_each_spool_gets_its_own_memory_limit(make_spool: Any, daemon_factory: Any) -> None:
    roomy = make_spool("roomy", memory_limit_mb=6000)
    tight = make_spool("tight", memory_limit_mb=2500, max_attempts=1)
    daemon_factory(roomy, tight, env=PLUGIN_ENV)
    stage_file(roomy, "big.alloc", "3000")
    stage_file(tight, "big.alloc", "3000")
    wait_for(lambda: published(roomy), timeout=180, what="roomy job done")  # 3 GB on a busy host
    (failed,) = wait_for(lambda: published(tight, "failed"), what="tight job failed")
    manifest = json.loads((failed / "manifest.json").read_text())
    assert manifest["error"]["code"] == "resource_limit"
    assert "2500 MB" in manifest["error"]["message"]
    assert os.listdir(tight / "done") == []


def test_a_daemon_that_lost_its_lease_and_its_claim_gives_the_claim_up(
    make_spool: Any, daemon_factory: Any
) -> None:
    # Daemon A holds a running job and freezes; its lease files vanish; daemon B takes
    # A for gone and recovers the claim. A wakes up: it must notice once, give up the
    # claim it lost (its worker's result would be fenced anyway), register again and
    # carry on, while B finishes the job.
    spool = make_spool()
    a = daemon_factory(spool, args=("--workers", "1"), env=PLUGIN_ENV)
    gate = spool.parent / "gate"  # the job converts until the test opens it
    stage_file(spool, "held.gate", str(gate))
    wait_for(lambda: event_seen(spool, "job.started"), what="A runs the job")
    b = daemon_factory(spool, args=("--workers", "1"), env=PLUGIN_ENV)
    wait_for(lambda: len(event_seen(spool, "daemon.started")) == 2, what="B up")
    (holder,) = {p.name.rsplit(".", 1)[1] for p in (spool / "running").iterdir()}
    os.kill(a.pid, signal.SIGSTOP)
    try:
        for path in (spool / ".spoold" / "daemons").glob(f"{holder}.*"):
            path.unlink()
        wait_for(lambda: event_seen(spool, "job.recovered"), what="B recovers the claim")
    finally:
        os.kill(a.pid, signal.SIGCONT)
    gate.touch()
    (lost,) = wait_for(lambda: event_seen(spool, "daemon.lease_lost"), what="A notices")
    assert lost["claims_lost"] == 1
    (discarded,) = event_seen(spool, "job.discarded")
    assert discarded["reason"] == "claim lost: this daemon's lease was removed"
    (folder,) = wait_for(lambda: published(spool), timeout=60, what="B's result")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [x["outcome"] for x in manifest["attempts"]] == ["lost", "succeeded"]
    wait_for(lambda: (spool / ".spoold" / "daemons" / f"{holder}.lock").exists(), what="A back")
    assert "internal error" not in a.log() + b.log()
    assert a.proc.poll() is None and b.proc.poll() is None


def test_input_describes_the_main_document_of_a_job_folder(
    make_spool: Any, daemon_factory: Any
) -> None:
    spool = make_spool()
    daemon_factory(spool)
    staging = spool / "tmp" / "brochure"
    staging.mkdir()
    (staging / "main.md").write_text("# Brochure\n")
    os.rename(staging, spool / "inbox" / "brochure")
    (folder,) = wait_for(lambda: published(spool), what="brochure published")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["name"] == "brochure"
    assert manifest["input"]["name"] == "main.md"
    assert manifest["input"]["size"] == len("# Brochure\n")
