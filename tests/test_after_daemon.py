"""Jobs that wait for other jobs (job.json `after`), with two real daemons on one spool.

Each job is a job folder holding one `.slow` document (the test converter sleeps the
seconds it says) and a job.json with `after`. Order is read from the events log: the
`job.started` and terminal events of every job, whichever daemon wrote them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from spoold import api
from spoold.tools.checker import check_events

from .conftest import PLUGIN_ENV, cli, events, published, wait_for

pytestmark = pytest.mark.processes


def drop_job(spool: Path, name: str, seconds: float, after: list[Any] | None = None) -> None:
    """A job folder NAME/ with NAME.slow, renamed into inbox/ in one step."""
    staged = spool / "tmp" / f".{name}.staging"
    staged.mkdir()
    (staged / f"{name}.slow").write_text(f"{seconds}")
    if after is not None:
        (staged / "job.json").write_text(json.dumps({"after": after}))
    os.rename(staged, spool / "inbox" / name)


def ended(spool: Path) -> dict[str, dict[str, Any]]:
    """name -> its terminal event."""
    names = {"job.succeeded", "job.failed", "job.cancelled"}
    return {e["name"]: e for e in events(spool) if e["event"] in names}


def first(spool: Path, event: str, name: str) -> dict[str, Any]:
    ids = {e["job_id"] for e in events(spool) if e["event"] == "job.detected" and e["name"] == name}
    return next(e for e in events(spool) if e["event"] == event and e["job_id"] in ids)


def manifest_of(spool: Path, name: str) -> dict[str, Any]:
    # The job.failed record follows the publish: wait for it, not only for the folder.
    event = wait_for(lambda: ended(spool).get(name), what=f"{name} ended")
    path = spool / event["path"] / "manifest.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def two_daemons(daemon_factory: Any, spool: Path) -> None:
    for _ in range(2):
        daemon_factory(spool, env=PLUGIN_ENV, args=("--workers", "2"))


def test_a_chain_dropped_in_reverse_order_runs_in_order(make_spool, daemon_factory) -> None:
    spool = make_spool()
    two_daemons(daemon_factory, spool)
    drop_job(spool, "c", 0.2, after=["b"])
    drop_job(spool, "b", 0.5, after=[{"job": "a"}])
    drop_job(spool, "a", 1.0)
    done = wait_for(lambda: len(ended(spool)) == 3 and ended(spool), what="the chain finished")
    assert {n: e["event"] for n, e in done.items()} == dict.fromkeys("abc", "job.succeeded")
    # Each starts only after the one it waits for succeeded (times from the log).
    assert first(spool, "job.started", "b")["ts"] >= done["a"]["ts"]
    assert first(spool, "job.started", "c")["ts"] >= done["b"]["ts"]
    waited = {e["name"] for e in events(spool) if e["event"] == "job.waiting"}
    assert {"b", "c"} <= waited, "the waiting jobs said so"
    released = {e["name"] for e in events(spool) if e["event"] == "job.released"}
    assert {"b", "c"} <= released
    assert manifest_of(spool, "b")["options"]["after"] == [
        {"job": "a", "kind": "finish_to_start", "on_failure": "fail"}
    ]
    report = check_events(events(spool))
    assert report.ok, report.format()


def test_a_waiting_job_shows_what_it_waits_for(make_spool, daemon_factory) -> None:
    spool = make_spool()
    two_daemons(daemon_factory, spool)
    drop_job(spool, "a", 4.0)
    wait_for(lambda: list((spool / "running").iterdir()), what="a running")
    drop_job(spool, "b", 0.1, after=["a"])
    record = wait_for(
        lambda: (r := api.show(spool, "b"))["waiting"] is not None and r, what="b waiting"
    )
    assert record["state"] == "queued" and record["job_id"] is None
    waiting = record["waiting"]
    assert waiting["reason"] == "after" and waiting["since"] and waiting["until"] is None
    (ref,) = waiting["after"]
    assert ref["job"] == "a" and ref["kind"] == "finish_to_start" and ref["state"] == "running"
    status = api.status(spool)
    assert status["waiting"] == 1 and status["queued"] == 0
    listed = {r["name"]: r for r in api.list_jobs(spool, states=("queued",))}
    assert listed["b"]["waiting"]["after"][0]["job"] == "a"
    shown = cli("show", str(spool), "b").stdout
    assert "waiting" in shown and "a" in shown
    wait_for(lambda: len(ended(spool)) == 2, what="both finished")
    assert api.show(spool, "b")["waiting"] is None


def test_start_to_start_and_finish_to_finish(make_spool, daemon_factory) -> None:
    spool = make_spool()
    two_daemons(daemon_factory, spool)
    drop_job(spool, "s2s", 0.2, after=[{"job": "long", "kind": "start_to_start"}])
    drop_job(spool, "f2f", 0.2, after=[{"job": "long", "kind": "finish_to_finish"}])
    drop_job(spool, "long", 3.0)
    done = wait_for(lambda: len(ended(spool)) == 3 and ended(spool), what="all three")
    assert all(e["event"] == "job.succeeded" for e in done.values()), done
    long_started = first(spool, "job.started", "long")["ts"]
    # start_to_start: started once long had started, and ended well before it.
    assert first(spool, "job.started", "s2s")["ts"] >= long_started
    assert done["s2s"]["ts"] < done["long"]["ts"]
    # finish_to_finish: converted at once, published only after long finished.
    assert first(spool, "job.started", "f2f")["ts"] < done["long"]["ts"]
    assert done["f2f"]["ts"] >= done["long"]["ts"]
    held = [e for e in events(spool) if e["event"] == "job.waiting" and e["name"] == "f2f"]
    assert held and held[0]["job_id"], "held after its conversion, with its job id"
    report = check_events(events(spool))
    assert report.ok, report.format()


@pytest.mark.parametrize("on_failure", ["fail", "run"])
def test_a_failed_dependency(make_spool, daemon_factory, on_failure: str) -> None:
    spool = make_spool(max_attempts=1)
    two_daemons(daemon_factory, spool)
    drop_job(spool, "b", 0.1, after=[{"job": "a", "on_failure": on_failure}])
    drop_job(spool, "a", "never")  # not a number of seconds: the slow converter fails
    done = wait_for(lambda: len(ended(spool)) == 2 and ended(spool), what="both ended")
    assert done["a"]["event"] == "job.failed"
    if on_failure == "fail":
        assert done["b"]["event"] == "job.failed"
        error = manifest_of(spool, "b")["error"]
        assert error["code"] == "dependency_failed", error
        assert "'a'" in error["message"]
        assert (spool / done["b"]["path"] / "ERROR.txt").exists()
    else:
        assert done["b"]["event"] == "job.succeeded"
        assert first(spool, "job.started", "b")["ts"] >= done["a"]["ts"]


def test_a_cycle_fails_every_job_in_it(make_spool, daemon_factory) -> None:
    spool = make_spool()
    two_daemons(daemon_factory, spool)
    drop_job(spool, "x", 0.1, after=["z"])
    drop_job(spool, "y", 0.1, after=["x"])
    drop_job(spool, "z", 0.1, after=["y"])
    drop_job(spool, "w", 0.1, after=["x"])  # waits on the cycle, is not in it
    done = wait_for(lambda: len(ended(spool)) == 4 and ended(spool), what="all four ended")
    for name in "xyz":
        error = manifest_of(spool, name)["error"]
        assert error["code"] == "input_invalid", error
        assert "cycle" in error["message"]
        assert all(n in error["message"] for n in "xyz"), error["message"]
    assert manifest_of(spool, "w")["error"]["code"] == "dependency_failed"
    assert done["w"]["event"] == "job.failed"


def test_a_missing_reference_fails_naming_it(make_spool, daemon_factory) -> None:
    spool = make_spool(after_missing_s=1)
    two_daemons(daemon_factory, spool)
    drop_job(spool, "b", 0.1, after=["no-such-job.md"])
    wait_for(lambda: published(spool, "failed"), what="b failed")
    error = manifest_of(spool, "b")["error"]
    assert error["code"] == "input_invalid" and "'no-such-job.md'" in error["message"], error


def test_a_bad_after_fails_with_the_key(make_spool, daemon_factory) -> None:
    spool = make_spool()
    daemon_factory(spool, env=PLUGIN_ENV)
    drop_job(spool, "b", 0.1, after=[{"job": "a", "kind": "sometime"}])
    wait_for(lambda: published(spool, "failed"), what="b failed")
    error = manifest_of(spool, "b")["error"]
    assert error["code"] == "input_invalid" and "after.0.kind" in error["message"], error


def test_b_waits_while_the_daemon_holding_a_is_killed(make_spool, daemon_factory) -> None:
    spool = make_spool(lease_ttl_s=2.0)
    daemons = {
        host: daemon_factory(spool, env=PLUGIN_ENV, args=("--workers", "1", "--host-id", host))
        for host in ("h1", "h2")
    }
    for d in daemons.values():
        d.wait_ready()
    drop_job(spool, "a", 6.0)
    claimed = wait_for(lambda: [e for e in events(spool) if e["event"] == "job.started"])
    holder = claimed[0]["host"]
    drop_job(spool, "b", 0.1, after=["a"])
    wait_for(lambda: any(e["event"] == "job.waiting" for e in events(spool)), what="b waits")
    daemons[holder].kill_group()
    daemons[holder].wait(timeout=30)
    done = wait_for(lambda: len(ended(spool)) == 2 and ended(spool), timeout=90, what="both")
    assert done["a"]["event"] == done["b"]["event"] == "job.succeeded"
    recovered = [e for e in events(spool) if e["event"] == "job.recovered"]
    assert recovered and recovered[0]["name"] == "a"
    # b never started before a's recovery finished it, on the daemon that lived.
    assert first(spool, "job.started", "b")["ts"] >= done["a"]["ts"]
    assert done["a"]["host"] != holder
    assert len(manifest_of(spool, "a")["attempts"]) == 2


def test_a_waiting_job_can_be_cancelled(make_spool, daemon_factory) -> None:
    spool = make_spool()
    daemon_factory(spool, env=PLUGIN_ENV)
    drop_job(spool, "a", 30.0)
    drop_job(spool, "b", 0.1, after=["a"])
    wait_for(lambda: any(e["event"] == "job.waiting" for e in events(spool)), what="b waits")
    cli("cancel", str(spool), "b")
    wait_for(lambda: "b" in ended(spool), what="b cancelled")
    assert ended(spool)["b"]["event"] == "job.cancelled"
    assert "a" not in ended(spool), "a still runs"


def test_a_held_result_survives_a_drain(make_spool, daemon_factory) -> None:
    # b is converted at once but may not finish before a: its result is held. Stopping
    # the daemon puts b back in the inbox with its artifact; the next daemon publishes
    # it after a, without converting it again.
    spool = make_spool(drain_s=30)
    d = daemon_factory(spool, env=PLUGIN_ENV)
    drop_job(spool, "a", 4.0)
    drop_job(spool, "b", 0.1, after=[{"job": "a", "kind": "finish_to_finish"}])
    held = wait_for(
        lambda: [e for e in events(spool) if e["event"] == "job.waiting" and e["job_id"]],
        what="b's result held",
    )
    record = api.show(spool, "b")
    assert record["state"] == "running" and record["stage"] == "waiting"
    assert record["waiting"]["after"][0]["state"] == "running"
    assert api.status(spool)["waiting"] == 1
    d.stop()  # a finishes within the drain; b goes back to the inbox at once
    assert ended(spool).keys() == {"a"}
    assert list((spool / "inbox").glob(f"b.{held[0]['job_id']}"))
    daemon_factory(spool, env=PLUGIN_ENV)
    done = wait_for(lambda: len(ended(spool)) == 2 and ended(spool), what="b published")
    assert done["b"]["event"] == "job.succeeded" and done["b"]["ts"] >= done["a"]["ts"]
    attempts = manifest_of(spool, "b")["attempts"]
    assert [a["outcome"] for a in attempts] == ["interrupted", "succeeded"]
    html = manifest_of(spool, "b")["artifacts"][0]
    assert html["attempt"] == 1, "the artifact of the first attempt, kept"
