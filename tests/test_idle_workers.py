"""Which workers a medium document may borrow (daemon/parts.py `idle_workers`)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from spoold.daemon import cores, parts

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
    machine(1.7)  # of 4 cores: 1 for the job's own worker, 1.3 spare
    assert parts.idle_workers(free=4, queued=False) == 1
    machine(1.4)  # 1.6 spare: half a core used by others still leaves one
    assert parts.idle_workers(free=4, queued=False) == 2
    machine(18.0)
    assert parts.idle_workers(free=4, queued=False) == 0


def spinning(own: bool) -> tuple[int, subprocess.Popen[bytes] | None]:
    """A process using a whole core: this process's child, or another's (reparented)."""
    loop = [sys.executable, "-c", "while True: pass"]
    if own:
        child = subprocess.Popen(loop)
        return child.pid, child
    shell = f"{shlex.join(loop)} >/dev/null 2>&1 & echo $!"
    out = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, check=True)
    return int(out.stdout), None


def full_window(sampler: cores.CoreSampler, pid: int) -> bool:
    """The sampler's window covers seconds of the spinning process's work."""
    samples = list(sampler.samples)
    return (
        len(samples) > 2
        and samples[-1][0] - samples[0][0] >= cores.WINDOW_S * 0.9
        and cores.process_cpu_s(pid) >= cores.WINDOW_S
    )


@pytest.mark.parametrize("own", [False, True], ids=["another-process", "our-worker"])
def test_only_other_processes_count_as_busy(own: bool) -> None:
    sampler = cores.CoreSampler()
    sampler.start()
    pid, child = spinning(own)
    try:
        wait_for(lambda: full_window(sampler, pid), what="a window of the spinning process")
        if own:  # this daemon's own work (its workers) leaves the cores it uses idle
            assert sampler.busy_cores() < 0.5
        else:
            assert sampler.busy_cores() >= 0.8
    finally:
        os.kill(pid, 9)
        if child is not None:
            child.wait()
