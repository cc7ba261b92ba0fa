"""The events checker: hand-written logs, then the log of a real daemon."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spoold.tools.checker import check_events, check_path, main

from .conftest import PLUGIN_ENV, ROOT, DaemonProc, cli, events, published, stage_file, wait_for

JOB = "20240101T000000Z-0123456789"
OTHER = "20240101T000001Z-abcdef0123"


def ev(
    event: str, attempt: int | None = None, job_id: str | None = JOB, host: str = "h1"
) -> dict[str, Any]:
    return {
        "ts": "2024-01-01T00:00:00.000000Z",
        "event": event,
        "job_id": job_id,
        "attempt": attempt,
        "host": host,
    }


def lifecycle(
    job_id: str = JOB, host: str = "h1", outcome: str = "job.succeeded"
) -> list[dict[str, Any]]:
    return [
        ev("job.detected", None, job_id, host),
        ev("job.claimed", 1, job_id, host),
        ev("job.started", 1, job_id, host),
        ev(outcome, 1, job_id, host),
    ]


def assert_problem(log: list[dict[str, Any]], index: int, words: str, strict: bool = False) -> None:
    report = check_events(log, strict=strict)
    assert not report.ok, report.format()
    assert any(f"event #{index}:" in p and words in p for p in report.problems), report.problems


# ---------------------------------------------------------------- hand-written logs


def test_waiting_and_released_jobs_pass() -> None:
    waiting = {**ev("job.waiting", None, None), "name": "b", "after": [{"job": "a"}]}
    released = {**ev("job.released", None, None), "name": "b", "reason": "conditions met"}
    # A finish_to_finish result held by its daemon: its job id and running attempt.
    held = {**ev("job.waiting", 1), "name": "b", "after": [{"job": "a"}]}
    let_go = {**ev("job.released", 1), "name": "b", "reason": "conditions met"}
    log = [waiting, released, *lifecycle()[:3], held, let_go, lifecycle()[3]]
    report = check_events(log, strict=True)
    assert report.ok, report.format()


def test_a_waiting_event_without_its_references_is_a_problem() -> None:
    assert_problem([{**ev("job.waiting", None, None), "name": "b"}], 0, "references")
    assert_problem([{**ev("job.released", None, None), "reason": "x"}], 0, "name")


def test_a_held_result_of_a_finished_job_is_a_problem() -> None:
    late = {**ev("job.waiting", 1), "name": "b", "after": []}
    assert_problem([*lifecycle(), late], 4, "not running")


def test_valid_lifecycle_passes() -> None:
    log = [ev("daemon.started", None, None), *lifecycle(), ev("daemon.stopping", None, None)]
    report = check_events(log, strict=True)
    assert report.ok, report.format()
    assert report.jobs == 1
    assert report.terminal == {"succeeded": 1}
    assert report.open_jobs == 0
    assert not report.warnings


def test_double_terminal_fails() -> None:
    assert_problem([*lifecycle(), ev("job.succeeded", 1)], 4, "already ended with job.succeeded")
    # Another outcome for the same result, or a terminal line for a later attempt that
    # was never claimed, is no better.
    assert_problem([*lifecycle(outcome="job.failed"), ev("job.cancelled", 1)], 4, "already ended")
    assert_problem([*lifecycle(), ev("job.failed", 2)], 4, "")


def test_claim_with_non_increasing_attempt_fails() -> None:
    log = [
        *lifecycle()[:3],
        ev("job.retry_scheduled", 1),
        ev("job.claimed", 1),
    ]
    assert_problem(log, 4, "not greater than earlier attempt 1")
    log[4] = ev("job.claimed", 0)
    assert_problem(log, 4, "expected a number >= 1")


def test_terminal_from_queued_fails() -> None:
    log = [
        ev("job.detected"),
        ev("job.claimed", 1),
        ev("job.requeued", 1),
        ev("job.failed", 1),
    ]
    assert_problem(log, 3, "already ended with job.requeued")
    # A terminal event before any claim of a known job is a gap in a strict check.
    assert_problem(
        [ev("job.detected"), ev("job.succeeded", 1)], 1, "job.claimed is missing", strict=True
    )


def test_retry_after_failure_passes() -> None:
    log = [
        *lifecycle(outcome="job.failed"),
        # `spoold retry` logs nothing: the next claim re-queues the failed job.
        ev("job.claimed", 2, host="h2"),
        ev("job.started", 2, host="h2"),
        ev("job.succeeded", 2, host="h2"),
    ]
    report = check_events(log, strict=True)
    assert report.ok, report.format()
    assert report.terminal == {"failed": 1, "succeeded": 1}


def test_no_claim_after_success() -> None:
    assert_problem([*lifecycle(), ev("job.claimed", 2)], 4, "after job.succeeded")


def test_retry_and_recovery_across_hosts_pass() -> None:
    log = [
        ev("job.detected", host="a"),
        ev("job.claimed", 1, host="a"),
        ev("job.started", 1, host="a"),
        ev("job.retry_scheduled", 1, host="a"),
        ev("job.claimed", 2, host="b"),
        ev("job.started", 2, host="b"),
        # b dies; a recovers the claim and runs it again
        ev("job.recovered", 2, host="a"),
        ev("job.claimed", 3, host="a"),
        ev("job.succeeded", 3, host="a"),
    ]
    report = check_events(log, strict=True)
    assert report.ok, report.format()


def test_release_logged_after_the_next_claim_passes() -> None:
    # a requeues attempt 1 (rename), b claims attempt 2 before a's line is appended.
    log = [
        ev("job.detected", host="a"),
        ev("job.claimed", 1, host="a"),
        ev("job.claimed", 2, host="b"),
        ev("job.requeued", 1, host="a"),
        ev("job.succeeded", 2, host="b"),
    ]
    assert check_events(log, strict=True).ok
    # Without the release line it is a gap: a problem only in a strict check.
    del log[3]
    assert check_events(log).ok
    assert check_events(log).warnings
    assert_problem(log, 2, "superseded", strict=True)


def test_a_gap_declared_by_events_gap_passes_a_strict_check() -> None:
    # The claim and start lines were dropped on a full disk; the daemon said so.
    gap = {
        **ev("events.gap", None, None),
        "count": 2,
        "job_ids": [JOB],
        "job_ids_complete": True,
        "first_ts": "2024-01-01T00:00:00.000000Z",
        "last_ts": "2024-01-01T00:00:00.000000Z",
        "error": "No space left on device",
    }
    log = [ev("job.detected"), ev("job.succeeded", 1), gap]
    report = check_events(log, strict=True)
    assert report.ok, report.format()
    assert report.lost_events == 2
    assert any("declared by events.gap #2" in w for w in report.warnings)
    assert "events lost (declared by events.gap records): 2" in report.format()
    # Another job's gap is not excused by it.
    other = [*log, ev("job.detected", None, OTHER), ev("job.succeeded", 1, OTHER)]
    assert_problem(other, 4, "job.claimed is missing", strict=True)
    # A capped list of jobs excuses every gap; a record without a count is a problem.
    capped = [*other[:2], {**gap, "job_ids": [], "job_ids_complete": False}, *other[3:]]
    assert check_events(capped, strict=True).ok
    assert_problem([{**gap, "count": 0}], 0, "events.gap with count 0")


def test_fenced_off_attempt_must_not_publish() -> None:
    log = [
        ev("job.detected", host="a"),
        ev("job.claimed", 1, host="a"),
        ev("job.recovered", 1, host="b"),
        ev("job.claimed", 2, host="b"),
        ev("job.succeeded", 1, host="a"),
    ]
    assert_problem(log, 4, "recovered at #2")
    # What a fenced-off holder must log instead:
    log[4] = ev("job.discarded", 1, host="a")
    assert check_events([*log, ev("job.succeeded", 2, host="b")], strict=True).ok


def test_discard_needs_a_recovery() -> None:
    log = [ev("job.detected"), ev("job.claimed", 1), ev("job.discarded", 1)]
    assert_problem(log, 2, "job.recovered never came", strict=True)
    # The recovery line may come after the discard line (appended after its rename).
    assert check_events([*log, ev("job.recovered", 1, host="h2")], strict=True).ok
    # A discarded attempt cannot also publish.
    assert_problem([*log, ev("job.recovered", 1), ev("job.failed", 1)], 4, "already ended")


def test_first_event_must_be_detected_unless_a_crash_explains_it() -> None:
    log = [
        ev("job.recovered", 1, host="b"),
        ev("job.claimed", 2, host="b"),
        ev("job.succeeded", 2, host="b"),
    ]
    assert check_events(log).ok
    assert_problem(log, 0, "first event is job.recovered", strict=True)
    assert_problem([ev("job.detected"), ev("job.detected")], 1, "job.detected again")


def test_started_only_for_a_live_claim() -> None:
    assert_problem([*lifecycle(), ev("job.started", 1)], 4, "already ended")
    assert_problem(
        [ev("job.detected"), ev("job.claimed", 1, host="a"), ev("job.started", 1, host="b")],
        2,
        "claimed by a",
    )
    # A claim of one job says nothing about another.
    assert_problem(
        [*lifecycle(), ev("job.detected", None, OTHER), ev("job.started", 1, OTHER)],
        5,
        "job.claimed is missing",
        strict=True,
    )


def test_schema_of_every_event() -> None:
    bad = ev("job.claimed", 1)
    del bad["host"]
    assert_problem([ev("job.detected"), bad], 1, "lacks host")
    assert_problem([ev("job.nonsense", 1)], 0, "unknown event name")
    assert_problem([ev("job.claimed", 1, job_id=None)], 0, "without a job_id")
    assert_problem([ev("job.detected", 3)], 0, "expected null")


def test_main_reports_and_exits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in lifecycle()))
    assert main([str(path)]) == 0
    path.write_text("".join(json.dumps(e) + "\n" for e in [*lifecycle(), ev("job.failed", 1)]))
    assert main([str(path)]) == 1
    out = capsys.readouterr().out
    assert JOB in out and "event #4" in out
    # As a module, as `spoold check-events` will run it.
    proc = subprocess.run(
        [sys.executable, "-m", "spoold.tools.checker", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 1 and "problem" in proc.stdout


# ---------------------------------------------------------------- a real daemon


def test_real_daemon_log_is_clean(
    make_spool: Callable[..., Path], daemon_factory: Callable[..., DaemonProc]
) -> None:
    spool = make_spool(max_attempts=3)
    stage_file(spool, "a.md", "# A\n\ntext\n")
    stage_file(spool, "b.md", "# B\n")
    stage_file(spool, "c.flaky", "1")  # fails once (retryable), then succeeds
    stage_file(spool, "d.unknownext", "?")  # input_unsupported: failed at once
    stage_file(spool, "e.slow", "30")  # held by a daemon that will be killed
    a = daemon_factory(spool, args=("--workers", "2", "--host-id", "host-a"), env=PLUGIN_ENV)
    wait_for(lambda: len(published(spool)) + len(published(spool, "failed")) == 4, what="4 results")
    wait_for(
        lambda: any(
            e["event"] == "job.started" and e["job_id"] and _named(spool, e, "e.slow")
            for e in events(spool)
        )
    )
    a.kill_group(signal.SIGKILL)
    a.wait()
    # A second host recovers the lost claim (same host id space, lock is free).
    b = daemon_factory(spool, args=("--workers", "2", "--host-id", "host-b"), env=PLUGIN_ENV)
    wait_for(lambda: any(e["event"] == "job.recovered" for e in events(spool)), what="recovery")
    # The failed job is retried by hand and fails again.
    failed = published(spool, "failed")
    assert len(failed) == 1
    cli("retry", str(spool), failed[0].name.rsplit(".", 1)[1])
    wait_for(
        lambda: sum(e["event"] == "job.failed" for e in events(spool)) == 2, what="second failure"
    )
    # c.flaky's retry runs after a backoff: on a busy machine it may still be queued.
    wait_for(
        lambda: sum(e["event"] == "job.succeeded" for e in events(spool)) == 3,
        what="c.flaky's retry succeeded",
    )
    # Cancel the slow job (hard) so the run ends quickly.
    (spool / "inbox" / "e.slow.cancel").write_text("hard")
    wait_for(lambda: any(e["event"] == "job.cancelled" for e in events(spool)), what="cancel")
    assert b.stop() == 0

    report = check_path(spool, strict=True)
    assert report.ok, report.format()
    assert report.jobs == 5
    assert report.terminal == {"succeeded": 3, "failed": 2, "cancelled": 1}
    names = [e["event"] for e in events(spool)]
    for needed in ("job.retry_scheduled", "job.recovered", "job.cancelled"):
        assert needed in names
    assert {e["host"] for e in events(spool)} == {"host-a", "host-b"}


def _named(spool: Path, event: dict[str, Any], name: str) -> bool:
    return any(
        e.get("name") == name and e["job_id"] == event["job_id"]
        for e in events(spool)
        if e["event"] == "job.claimed"
    )
