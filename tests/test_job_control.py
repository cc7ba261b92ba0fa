"""Job control and recovery with real daemons: kill, freeze, time out, cancel, retry."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    FAST,
    PLUGIN_ENV,
    assert_all_manifests_valid,
    cli,
    events,
    pid_alive,
    published,
    session_pids,
    stage_file,
    wait_for,
    write_spool_toml,
)


def manifest_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())


def only_manifest(spool: Path, state: str = "done") -> dict[str, Any]:
    folders = published(spool, state)
    assert len(folders) == 1, folders
    return manifest_of(folders[0])


def started(spool: Path, n: int = 1) -> bool:
    return sum(e["event"] == "job.started" for e in events(spool)) >= n


def daemon_up(spool: Path, n: int = 1) -> bool:
    return sum(e["event"] == "daemon.started" for e in events(spool)) >= n


def test_sigkill_mid_job_then_restart_completes(make_spool, daemon_factory) -> None:
    spool = make_spool()
    d = daemon_factory(spool, env=PLUGIN_ENV)
    stage_file(spool, "long.slow", "3")
    wait_for(lambda: started(spool), what="job started")
    d.proc.send_signal(signal.SIGKILL)  # the main process only: its worker is orphaned
    d.wait()
    assert os.listdir(spool / "running"), "the claim stays in running/ while nobody holds it"
    daemon_factory(spool, env=PLUGIN_ENV)
    wait_for(lambda: published(spool), what="job published after restart")
    m = only_manifest(spool)
    assert m["status"] == "succeeded"
    assert [a["outcome"] for a in m["attempts"]] == ["lost", "succeeded"]
    assert [a["number"] for a in m["attempts"]] == [1, 2]
    assert m["attempts"][0]["error"]["code"] == "worker_lost"
    assert any(e["event"] == "job.recovered" for e in events(spool))
    assert os.listdir(spool / "running") == []
    assert_all_manifests_valid(spool)


def _host_of_token(spool: Path) -> dict[str, str]:
    out = {}
    for info in (spool / ".spoold" / "daemons").glob("*.json"):
        try:
            out[info.stem] = json.loads(info.read_text())["host"]
        except (OSError, ValueError):
            continue
    return out


def _running_hosts(spool: Path) -> list[str]:
    hosts = _host_of_token(spool)
    return [hosts.get(n.rsplit(".", 1)[1], "?") for n in os.listdir(spool / "running")]


def test_other_hosts_recover_claims_after_the_lease_expires(make_spool, daemon_factory) -> None:
    spool = make_spool(lease_ttl_s=3)
    ds = {
        h: daemon_factory(
            spool, args=("--workers", "1", "--host-id", h, "--detect", "poll"), env=PLUGIN_ENV
        )
        for h in ("host-a", "host-b", "host-c")
    }
    wait_for(lambda: daemon_up(spool, 3), what="three daemons")
    for i in range(6):
        stage_file(spool, f"job{i}.slow", "2")
    wait_for(lambda: "host-c" in _running_hosts(spool), what="host-c holds a job")
    victim = ds["host-c"]
    victim.kill_group()
    victim.wait()
    wait_for(lambda: len(published(spool)) == 6, timeout=120, what="all six published")
    ms = [manifest_of(p) for p in published(spool)]
    lost = [m for m in ms if any(a["outcome"] == "lost" for a in m["attempts"])]
    assert lost, "at least the job host-c held was recovered"
    for m in lost:
        assert m["attempts"][0]["host"] == "host-c"
        assert m["attempts"][-1]["host"] in ("host-a", "host-b")
        assert m["status"] == "succeeded"
    assert os.listdir(spool / "running") == []
    assert_all_manifests_valid(spool)


def test_fencing_a_frozen_host_cannot_publish(make_spool, daemon_factory) -> None:
    spool = make_spool(lease_ttl_s=2)
    a = daemon_factory(
        spool, args=("--workers", "1", "--host-id", "host-a", "--detect", "poll"), env=PLUGIN_ENV
    )
    stage_file(spool, "frozen.slow", "3")
    wait_for(lambda: started(spool), what="host-a started the job")
    frozen = session_pids(a.pid)
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        b = daemon_factory(
            spool,
            args=("--workers", "1", "--host-id", "host-b", "--detect", "poll"),
            env=PLUGIN_ENV,
        )
        wait_for(lambda: published(spool), timeout=120, what="host-b finished the job")
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    # The thawed host finishes its stale attempt, fails to publish and says so.
    wait_for(
        lambda: any(e["event"] == "job.discarded" and e["host"] == "host-a" for e in events(spool)),
        timeout=60,
        what="stale result discarded",
    )
    m = only_manifest(spool)
    assert m["attempts"][-1]["host"] == "host-b"
    assert m["status"] == "succeeded"
    art = published(spool)[0] / m["artifacts"][0]["path"]
    assert "slept 3" in art.read_text()
    assert os.listdir(spool / "failed") == [] and os.listdir(spool / "inbox") == []
    assert a.proc.poll() is None, "the thawed daemon keeps running"
    assert a.stop() == 0 and b.stop() == 0
    assert_all_manifests_valid(spool)


def test_timeout_kills_the_worker_and_its_children(make_spool, daemon_factory, tmp_path) -> None:
    spool = make_spool(timeout_s=2, max_attempts=1)
    daemon_factory(spool, env=PLUGIN_ENV)
    pid_file = tmp_path / "child.pid"
    stage_file(spool, "stuck.child", str(pid_file))
    wait_for(lambda: published(spool, "failed"), what="timed-out job failed")
    m = only_manifest(spool, "failed")
    assert m["error"]["code"] == "timeout"
    # The killed worker cannot report its CPU, but the attempt's wall time is known.
    assert m["attempts"][-1]["usage"]["wall_s"] >= 2
    child = int(pid_file.read_text())
    wait_for(lambda: not pid_alive(child), timeout=30, what="the converter's child killed")
    # The daemon goes on with a fresh worker.
    stage_file(spool, "after.slow", "0")
    wait_for(lambda: published(spool), what="next job on a new worker")


def test_cpu_limit_stops_a_busy_loop(make_spool, daemon_factory) -> None:
    spool = make_spool(cpu_limit_s=1, timeout_s=120, max_attempts=1)
    daemon_factory(spool, env=PLUGIN_ENV)
    stage_file(spool, "busy.spin", "")
    wait_for(lambda: published(spool, "failed"), what="busy loop stopped")
    m = only_manifest(spool, "failed")
    assert m["error"]["code"] == "resource_limit"
    assert "CPU" in m["error"]["message"]


def test_memory_limit_gives_resource_limit(make_spool, daemon_factory) -> None:
    spool = make_spool(memory_limit_mb=1024, max_attempts=1)
    daemon_factory(spool, env=PLUGIN_ENV)
    stage_file(spool, "greedy.hog", "")
    wait_for(lambda: published(spool, "failed"), what="memory hog stopped")
    assert only_manifest(spool, "failed")["error"]["code"] == "resource_limit"


def _cancel_marker(spool: Path, target: str, mode: str = "graceful") -> None:
    stage_file(spool, f"{target}.cancel", mode + "\n")


def test_cancel_a_queued_job(make_spool, daemon_factory) -> None:
    spool = make_spool()
    daemon_factory(spool, args=("--workers", "1"), env=PLUGIN_ENV)
    stage_file(spool, "blocker.slow", "3")
    wait_for(lambda: started(spool), what="the only worker is busy")
    stage_file(spool, "waiting.slow", "0")
    _cancel_marker(spool, "waiting.slow")
    wait_for(lambda: published(spool, "failed"), what="queued job cancelled")
    m = only_manifest(spool, "failed")
    assert m["status"] == "cancelled" and m["error"]["code"] == "cancelled"
    assert (published(spool, "failed")[0] / "input" / "waiting.slow").exists()
    error_txt = (published(spool, "failed")[0] / "ERROR.txt").read_text()
    # The hint names this job's id, no placeholder: it can be run as it stands.
    assert f"spoold retry` on this spool with job id {m['job_id']}" in m["error"]["hint"]
    assert m["error"]["hint"] in error_txt
    wait_for(lambda: published(spool), what="the blocker still succeeds")
    assert not (spool / "inbox" / "waiting.slow.cancel").exists(), "marker consumed"


def test_cancel_running_graceful_finishes_the_current_target(make_spool, daemon_factory) -> None:
    spool = make_spool(targets=["html", "pdf"], cancel_grace_s=30)
    daemon_factory(spool, env=PLUGIN_ENV)
    converting = spool.parent / "converting.pid"  # written as the first target begins
    stage_file(spool, "two.slow", f"3 {converting}")
    wait_for(converting.exists, what="the first target converting")
    _cancel_marker(spool, "two.slow")
    wait_for(lambda: published(spool, "failed"), what="cancelled")
    m = only_manifest(spool, "failed")
    assert m["status"] == "cancelled"
    assert [a["target"] for a in m["artifacts"]] == ["html"], "the current target was finished"


def test_cancel_running_hard_kills_now(make_spool, daemon_factory) -> None:
    spool = make_spool(max_attempts=1)
    daemon_factory(spool, env=PLUGIN_ENV)
    stage_file(spool, "forever.hang", "")
    wait_for(lambda: started(spool), what="started")
    job_id = next(e["job_id"] for e in events(spool) if e["event"] == "job.started")
    cli("cancel", str(spool), job_id, "--hard")
    wait_for(lambda: published(spool, "failed"), what="hard-cancelled")
    m = only_manifest(spool, "failed")
    assert m["status"] == "cancelled" and m["artifacts"] == []


def test_early_marker_and_marker_for_a_finished_job(make_spool, daemon_factory) -> None:
    spool = make_spool(cancel_marker_window_s=600)  # later.slow is dropped well after it
    daemon_factory(spool, env=PLUGIN_ENV)
    _cancel_marker(spool, "later.slow")
    wait_for(lambda: daemon_up(spool), what="up")
    stage_file(spool, "done-first.slow", "0")
    wait_for(lambda: published(spool), what="first job done")
    stage_file(spool, "later.slow", "0")
    wait_for(lambda: published(spool, "failed"), what="early marker applied")
    assert only_manifest(spool, "failed")["status"] == "cancelled"
    _cancel_marker(spool, "done-first.slow")
    wait_for(
        lambda: any(e["event"] == "cancel.ignored" for e in events(spool)),
        what="marker for a finished job recorded",
    )
    assert len(published(spool)) == 1


def test_a_leftover_name_marker_does_not_cancel_a_later_drop(make_spool, daemon_factory) -> None:
    # The TTL stays an hour: only the window may end a marker for a name.
    spool = make_spool(cancel_marker_window_s=0.2)
    daemon_factory(spool, env=PLUGIN_ENV)
    _cancel_marker(spool, "x.md")
    wait_for(
        lambda: any(e["event"] == "cancel.ignored" and e["name"] == "x.md" for e in events(spool)),
        what="the marker dropped once its window passed",
    )
    assert not (spool / "inbox" / "x.md.cancel").exists()
    stage_file(spool, "x.md", "# x\n")
    wait_for(lambda: published(spool), what="the later x.md converted")
    assert only_manifest(spool)["status"] == "succeeded"
    assert published(spool, "failed") == []


def test_retry_keeps_history_and_backoff_survives_restart(make_spool, daemon_factory) -> None:
    spool = make_spool(max_attempts=2, backoff_initial_s=4, backoff_max_s=4)
    d = daemon_factory(spool, env=PLUGIN_ENV)
    stage_file(spool, "wobbly.flaky", "2")
    wait_for(
        lambda: any(e["event"] == "job.retry_scheduled" for e in events(spool)),
        what="first failure scheduled for retry",
    )
    assert d.stop() == 0
    requeued = [p for p in (spool / "inbox").iterdir() if p.is_dir()]
    assert len(requeued) == 1
    state = json.loads((requeued[0] / ".spoold-state.json").read_text())
    not_before = state["next_attempt_at"]
    assert not_before > time.time() - 1
    daemon_factory(spool, env=PLUGIN_ENV)
    wait_for(lambda: published(spool, "failed"), timeout=60, what="second failure, out of attempts")
    m = only_manifest(spool, "failed")
    assert [a["outcome"] for a in m["attempts"]] == ["retry", "failed"]
    claimed2 = m["attempts"][1]["claimed_at"]
    claimed2_ts = time.mktime(time.strptime(claimed2[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert claimed2_ts >= int(not_before) - 1, "the restart kept the backoff"
    # A manual retry is a new attempt; the history stays.
    out = cli("retry", str(spool), m["job_id"])
    assert m["job_id"] in out.stdout
    wait_for(lambda: published(spool), timeout=60, what="retried job succeeds")
    m2 = only_manifest(spool)
    assert [a["number"] for a in m2["attempts"]] == [1, 2, 3]
    assert m2["attempts"][-1]["outcome"] == "succeeded"
    assert m2["job_id"] == m["job_id"]
    assert_all_manifests_valid(spool)


@pytest.mark.parametrize("mode", ["reuse", "rerun", "reject"])
def test_duplicates(make_spool, daemon_factory, mode: str) -> None:
    spool = make_spool(on_duplicate=mode)
    daemon_factory(spool)
    stage_file(spool, "first.md", "# Same bytes\n")
    first = wait_for(lambda: published(spool), what="first")
    first_m = manifest_of(first[0])
    stage_file(spool, "second.md", "# Same bytes\n")
    if mode == "reject":
        wait_for(lambda: published(spool, "failed"), what="duplicate rejected")
        m = only_manifest(spool, "failed")
        assert m["error"]["code"] == "duplicate"
        assert m["duplicate_of"] == first_m["job_id"]
        return
    wait_for(lambda: len(published(spool)) == 2, what="second published")
    second = next(p for p in published(spool) if manifest_of(p)["name"] == "second.md")
    m = manifest_of(second)
    a1 = first[0] / first_m["artifacts"][0]["path"]
    a2 = second / m["artifacts"][0]["path"]
    assert "Same bytes" in a2.read_text()
    if mode == "reuse":
        assert m["duplicate_of"] == first_m["job_id"]
        assert os.stat(a1).st_ino == os.stat(a2).st_ino, "hard-linked, not converted again"
        # The event follows the publish rename: wait for it, do not race it.
        wait_for(
            lambda: any(e["event"] == "job.duplicate" for e in events(spool)),
            what="job.duplicate recorded",
        )
    else:
        assert "duplicate_of" not in m
        assert os.stat(a1).st_ino != os.stat(a2).st_ino


def test_drain_on_sigterm_finishes_or_requeues(make_spool, daemon_factory) -> None:
    spool = make_spool(drain_s=30)
    d = daemon_factory(spool, env=PLUGIN_ENV)
    stage_file(spool, "short.slow", "1")
    wait_for(lambda: started(spool), what="started")
    assert d.stop() == 0
    assert only_manifest(spool)["status"] == "succeeded", "finished within drain_s"
    write_spool_toml(spool, {**FAST, "drain_s": 1})
    d2 = daemon_factory(spool, env=PLUGIN_ENV)
    stage_file(spool, "long.slow", "600")
    wait_for(lambda: started(spool, 2), what="long job started")
    assert d2.stop() == 0
    requeued = [p for p in (spool / "inbox").iterdir() if p.is_dir()]
    assert len(requeued) == 1, "killed at the drain deadline and put back"
    state = json.loads((requeued[0] / ".spoold-state.json").read_text())
    assert state["attempts"][-1]["outcome"] == "interrupted"
    assert os.listdir(spool / "running") == []


def test_sighup_reloads_settings_without_dropping_jobs(make_spool, daemon_factory) -> None:
    spool = make_spool()
    d = daemon_factory(spool, env=PLUGIN_ENV)
    stage_file(spool, "running.slow", "2")
    wait_for(lambda: started(spool), what="started")
    write_spool_toml(spool, {**FAST, "targets": ["html", "pdf"]})
    d.signal(signal.SIGHUP)
    wait_for(lambda: "settings reloaded" in d.log(), what="reload logged")
    stage_file(spool, "after.slow", "0")
    wait_for(lambda: len(published(spool)) == 2, what="both published")
    by_name = {manifest_of(p)["name"]: manifest_of(p) for p in published(spool)}
    assert by_name["running.slow"]["status"] == "succeeded"
    assert sorted(a["target"] for a in by_name["after.slow"]["artifacts"]) == ["html", "pdf"]
    assert d.proc.poll() is None


def test_invalid_reload_keeps_old_settings(make_spool, daemon_factory) -> None:
    spool = make_spool()
    d = daemon_factory(spool)
    wait_for(lambda: daemon_up(spool), what="up")
    (spool / "spool.toml").write_text("settle_ms = 'soon'\n")
    d.signal(signal.SIGHUP)
    wait_for(lambda: "reload of" in d.log(), what="refusal logged")
    stage_file(spool, "still.md", "# still works\n")
    wait_for(lambda: published(spool), what="still converting")


def test_a_storm_of_signals_neither_deadlocks_nor_kills(make_spool, daemon_factory) -> None:
    # A signal handler runs in the main thread: one that took a lock the loop holds
    # (queue.Queue) deadlocked the daemon. Many signals make that interleaving likely.
    spool = make_spool()
    d = daemon_factory(spool)
    d.wait_ready()
    for i in range(30):
        stage_file(spool, f"s{i}.md", "# s\n")
        d.signal(signal.SIGHUP)
    wait_for(lambda: len(published(spool)) == 30, what="jobs done between the signals")
    for _ in range(5):
        d.signal(signal.SIGTERM)
    assert d.wait(timeout=60) == 0
