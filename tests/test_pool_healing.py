"""The worker pool heals itself (issue 11), with real daemons and workers.

A worker that ran out of its memory limit is replaced before it takes another job; a
pool whose manager thread died is replaced, its job in flight retried as worker_lost;
a pool that cannot be replaced makes the daemon exit 70 for systemd to restart it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .conftest import PLUGIN_ENV, events, published, stage_file, wait_for

EX_SOFTWARE = 70


def worker_pid(spool: Path, stem: str) -> int:
    """The pid a .pid job's artifact names (the worker that converted it)."""
    (folder,) = [p for p in published(spool) if p.name.startswith(stem + ".")]
    (html,) = folder.glob("*.html")
    match = re.search(r"worker (\d+)", html.read_text())
    assert match, html.read_text()
    return int(match.group(1))


def manifest_of(spool: Path, stem: str, state: str = "done") -> dict[str, Any]:
    (folder,) = [p for p in published(spool, state) if p.name.startswith(stem + ".")]
    data: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    return data


def test_a_worker_that_ran_out_of_memory_is_replaced_before_its_next_job(
    make_spool: Any, daemon_factory: Any
) -> None:
    spool = make_spool(memory_limit_mb=1024, max_attempts=1)
    daemon_factory(spool, args=("--workers", "1"), env=PLUGIN_ENV)
    stage_file(spool, "first.pid", "first")  # contents differ: no dedup
    wait_for(lambda: published(spool), what="first job done")
    before = worker_pid(spool, "first")
    stage_file(spool, "greedy.alloc", "2000")  # over the 1024 MB limit
    wait_for(lambda: published(spool, "failed"), what="the greedy job stopped")
    assert manifest_of(spool, "greedy", "failed")["error"]["code"] == "resource_limit"
    stage_file(spool, "second.pid", "second")
    wait_for(lambda: len(published(spool)) == 2, what="second job done")
    assert manifest_of(spool, "second")["status"] == "succeeded"
    assert worker_pid(spool, "second") != before  # a fresh worker, not the exhausted one


def two_jobs_worker_pids(make_spool: Any, daemon_factory: Any, env: dict[str, str]) -> set[int]:
    """The pids of the workers that ran two jobs, one after the other, on 1 worker."""
    spool = make_spool()
    daemon_factory(spool, args=("--workers", "1"), env={**PLUGIN_ENV, **env})
    stage_file(spool, "first.pid", "first")
    wait_for(lambda: published(spool), what="first job done")
    stage_file(spool, "second.pid", "second")
    wait_for(lambda: len(published(spool)) == 2, what="second job done")
    return {worker_pid(spool, "first"), worker_pid(spool, "second")}


def test_a_worker_over_max_worker_rss_mb_is_replaced_after_its_job(
    make_spool: Any, daemon_factory: Any
) -> None:
    # Every worker holds more than 1 MB: each job leaves for a fresh worker.
    pids = two_jobs_worker_pids(make_spool, daemon_factory, {"SPOOLD_MAX_WORKER_RSS_MB": "1"})
    assert len(pids) == 2


def test_a_worker_under_max_worker_rss_mb_keeps_taking_jobs(
    make_spool: Any, daemon_factory: Any
) -> None:
    # The default (512 MB) and max_tasks_per_worker (10,000): no replacement per job.
    assert len(two_jobs_worker_pids(make_spool, daemon_factory, {})) == 1


def test_a_pool_whose_manager_died_is_rebuilt_and_its_job_retried(
    make_spool: Any, daemon_factory: Any
) -> None:
    spool = make_spool()
    env = {**PLUGIN_ENV, "SPOOLD_TEST_POOL_FAULT": "manager"}
    d = daemon_factory(spool, args=("--workers", "1"), env=env)
    stage_file(spool, "inflight.slow", "3")  # its submit kills the manager thread
    wait_for(lambda: published(spool), what="the job in flight done after all")
    manifest = manifest_of(spool, "inflight")
    assert [a["outcome"] for a in manifest["attempts"]] == ["retry", "succeeded"]
    assert manifest["attempts"][0]["error"]["code"] == "worker_lost"
    stage_file(spool, "after.pid", "")
    wait_for(lambda: len(published(spool)) == 2, what="the new pool converting")
    assert d.log().count("the worker pool failed") == 1
    assert d.proc.poll() is None
    assert d.stop() == 0


def test_a_pool_that_cannot_be_rebuilt_makes_the_daemon_exit_70(
    make_spool: Any, daemon_factory: Any
) -> None:
    spool = make_spool()
    env = {**PLUGIN_ENV, "SPOOLD_TEST_POOL_FAULT": "manager,norebuild"}
    d = daemon_factory(spool, args=("--workers", "1"), env=env)
    stage_file(spool, "held.slow", "3")
    assert d.wait(timeout=60) == EX_SOFTWARE
    failed = [e for e in events(spool) if e["event"] == "daemon.failed"]
    assert failed and "could not be started again" in failed[0]["error"]
    # Nothing is lost: the next daemon (systemd's restart) runs the job.
    daemon_factory(spool, args=("--workers", "1"), env=PLUGIN_ENV)
    wait_for(lambda: published(spool), what="the restarted daemon runs the job")
