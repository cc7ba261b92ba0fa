"""Which workers a medium document may borrow (daemon/parts.py `idle_workers`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from spoold.daemon import parts

from .conftest import wait_for


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(parts.IGNORE_LOAD_ENV, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)

    def load(value: float) -> None:  # cores busy with other work now
        monkeypatch.setattr(parts, "busy_cores", lambda: value)

    return load


def test_idle_cores_lend_the_other_free_workers(machine) -> None:
    machine(0.0)
    assert parts.idle_workers(free=4, queued=False) == 3
    assert parts.idle_workers(free=2, queued=False) == 1


def test_nothing_is_lent_when_a_job_waits_or_no_other_worker_is_free(machine) -> None:
    machine(0.0)
    assert parts.idle_workers(free=4, queued=True) == 0
    assert parts.idle_workers(free=1, queued=False) == 0


def test_a_machine_busy_with_other_work_lends_only_its_spare_cores(machine) -> None:
    machine(1.5)  # of 4 cores: 1 for the job's own worker, 1.5 spare
    assert parts.idle_workers(free=4, queued=False) == 1
    machine(18.0)
    assert parts.idle_workers(free=4, queued=False) == 0


def test_a_process_busy_now_is_counted() -> None:
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        wait_for(lambda: parts.busy_cores() >= 1, what="the spinning process counted")
    finally:
        spin.kill()
        spin.wait()
