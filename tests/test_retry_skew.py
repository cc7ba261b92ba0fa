"""A retry's "not before" time between hosts whose clocks disagree (issue 11).

The requeuing host records its backoff in its own clock (next_attempt_at and the
attempt's finished_at); the claiming host waits that delay from the requeue as the
spool's clock measures it (the state file's mtime), never comparing the two clocks.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spoold.daemon.admission import retry_not_before
from spoold.daemon.jobfolder import save_state
from spoold.daemon.setup import open_runtime
from spoold.spool.clock import iso
from spoold.spool.job import Attempt, AttemptOutcome, JobState
from spoold.spool.protocol import STATE_FILE, init_spool

DELAY_S = 4.0


def requeued_state(requeuer_skew_s: float, delay_s: float | None = DELAY_S) -> JobState:
    finished = time.time() + requeuer_skew_s  # the requeuing host's wall clock
    attempt = Attempt(
        number=1,
        host="elsewhere",
        pid=1,
        claimed_at=iso(datetime.fromtimestamp(finished - 1, UTC)),
        finished_at=iso(datetime.fromtimestamp(finished, UTC)),
        outcome=AttemptOutcome.RETRY,
    )
    return JobState(
        job_id="20260101T000000Z-0123456789",
        name="doc.md",
        jobdir="doc.20260101T000000Z-0123456789",
        kind="file",
        owner_uid=0,
        arrived_at=attempt.claimed_at,
        attempts=[attempt],
        next_attempt_at=None if delay_s is None else finished + delay_s,
    )


@pytest.mark.parametrize("requeuer_skew_s", [-120.0, 0.0, 120.0])
def test_a_retry_waits_its_delay_whatever_the_requeuing_hosts_clock(
    tmp_path: Path, requeuer_skew_s: float
) -> None:
    init_spool(tmp_path / "spool")
    rt = open_runtime(tmp_path / "spool", {"backoff_max_s": 60.0}, "here", "0a0b0c0d")
    folder = rt.paths.inbox / "doc.20260101T000000Z-0123456789"
    folder.mkdir()
    save_state(folder, requeued_state(requeuer_skew_s), durable=False)
    wall = time.time()
    not_before = retry_not_before(rt, folder, requeued_state(requeuer_skew_s), wall)
    # Just requeued: the whole delay is still to wait (less the instants since the write).
    assert wall + DELAY_S - 1.0 <= not_before <= wall + DELAY_S + 0.001  # iso: microseconds
    # Requeued long ago as the spool's clock says: due now, not in 120 s.
    old = os.stat(folder / STATE_FILE).st_mtime - 3 * DELAY_S
    os.utime(folder / STATE_FILE, (old, old))
    assert retry_not_before(rt, folder, requeued_state(requeuer_skew_s), wall) == wall


def test_a_not_before_time_without_its_finish_time_is_capped_at_backoff_max(
    tmp_path: Path,
) -> None:
    init_spool(tmp_path / "spool")
    rt = open_runtime(tmp_path / "spool", {"backoff_max_s": 5.0}, "here", "0a0b0c0d")
    folder = rt.paths.inbox / "doc.20260101T000000Z-0123456789"
    folder.mkdir()
    state = requeued_state(0.0)
    state.attempts[0].finished_at = None
    state.next_attempt_at = time.time() + 3600  # written by a host an hour ahead
    save_state(folder, state, durable=False)
    wall = time.time()
    assert retry_not_before(rt, folder, state, wall) <= wall + 5.0
