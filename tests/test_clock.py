"""The wall-clock seam and the skew-robust time helpers."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spoold.spool.clock import (
    SKEW_ENV,
    SpoolClock,
    age_s,
    new_job_id,
    wall_time,
)
from spoold.spool.protocol import job_id_of


def test_the_test_seam_moves_the_wall_clock_by_whole_minutes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SKEW_ENV, "-120")
    assert wall_time() - time.time() == pytest.approx(-120, abs=1)
    job_id = new_job_id()
    stamp = datetime.strptime(job_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert stamp.timestamp() - time.time() == pytest.approx(-120, abs=2)
    assert job_id_of(f"report.{job_id}") == job_id  # still a job id the protocol knows


def test_a_bad_skew_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SKEW_ENV, "two minutes")
    with pytest.raises(ValueError, match=SKEW_ENV):
        wall_time()


def test_job_ids_made_in_one_second_on_skewed_hosts_do_not_collide() -> None:
    assert len({new_job_id() for _ in range(5000)}) == 5000


def test_ages_from_a_host_that_is_ahead_are_zero_not_negative() -> None:
    assert age_s(1000.0, 900.0) == 0.0
    assert age_s(900.0, 1000.0) == 100.0


class Mono:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_spool_clock_reads_the_file_servers_time_and_extrapolates(tmp_path: Path) -> None:
    mono = Mono()
    clock = SpoolClock(tmp_path / "clock", monotonic=mono, refresh_s=60)
    first = clock.now()
    assert first == (tmp_path / "clock").stat().st_mtime
    os.utime(tmp_path / "clock", (0, 0))  # not read again before the refresh
    mono.now += 10
    assert clock.now() == pytest.approx(first + 10)
    mono.now += 60
    assert clock.now() == pytest.approx((tmp_path / "clock").stat().st_mtime)


def test_spool_clock_ages_a_file_by_the_spools_time_not_the_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SKEW_ENV, "600")  # this host's clock is ten minutes ahead
    state = tmp_path / "state.json"
    state.write_text("{}")
    os.utime(state, (time.time() - 30, time.time() - 30))
    clock = SpoolClock(tmp_path / "clock", monotonic=Mono())
    assert clock.age_of(state) == pytest.approx(30, abs=2)
