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


def test_busy_is_the_machine_less_this_daemon_and_its_workers() -> None:
    sampler = cores.CoreSampler()
    # No sampler thread: its first real reading could land among these (it did, once,
    # under CI's load) and the window would span the real machine's uptime.
    sampler._started = True
    sampler.samples.extend([(100.0, 50.0, 20.0), (101.0, 51.0, 20.6), (102.0, 52.5, 21.5)])
    # 2.5 s of busy CPU in 2 s on the machine, 1.5 s of it this daemon's: 0.5 core others'
    assert sampler.busy_cores() == pytest.approx(0.5)


def test_the_sampler_counts_its_child_processes_as_its_own() -> None:
    pid, child = spinning(own=True)
    other, _ = spinning(own=False)
    try:
        wait_for(lambda: cores.process_cpu_s(pid) >= 0.2, what="the worker spinning")
        children = cores.child_pids(os.getpid())
        assert pid in children and other not in children
        before = cores.process_cpu_s(pid) + cores.process_cpu_s("self")
        _, _, own = cores.CoreSampler().read()  # a new sampler lists its children first
        assert own >= before
    finally:
        os.kill(other, 9)
        os.kill(pid, 9)
        assert child is not None
        child.wait()


def test_another_process_busy_for_seconds_is_counted() -> None:
    sampler = cores.CoreSampler()
    sampler.start()
    pid, _ = spinning(own=False)
    try:
        # Its share of a core, whatever else runs (other tests), over the window.
        wait_for(
            lambda: len(sampler.samples) >= 5 and sampler.busy_cores() >= 0.3,
            what="the spinning process counted",
        )
    finally:
        os.kill(pid, 9)
