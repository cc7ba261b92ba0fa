"""No file is lost: SIGKILL at random moments, at every named crash point, a full disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from spoold.daemon.crashpoints import POINTS
from spoold.spool.entries import is_requeued_folder

from .conftest import (
    PLUGIN_ENV,
    assert_all_manifests_valid,
    events,
    published,
    session_pids,
    stage_file,
    wait_for,
)


def input_places(spool: Path) -> Counter[str]:
    """Where every input is: its name, counted once per place it appears."""
    seen: Counter[str] = Counter()
    for entry in os.listdir(spool / "inbox"):
        path = spool / "inbox" / entry
        if path.is_dir() and is_requeued_folder(path):
            seen.update(n for n in os.listdir(path / "input") if not n.startswith("."))
        elif not entry.endswith(".cancel"):
            seen[entry] += 1
    for state in ("running", "done", "failed"):
        for folder in (spool / state).iterdir():
            if (folder / "input").is_dir():
                # Hidden files are the test plugins' own scratch files, not inputs.
                seen.update(n for n in os.listdir(folder / "input") if not n.startswith("."))
    return seen


def check_invariants(spool: Path, names: list[str], finished: bool) -> None:
    places = input_places(spool)
    assert sorted(places) == sorted(names), f"lost or extra inputs: {places}"
    assert all(n == 1 for n in places.values()), f"an input in two places: {places}"
    for state in ("done", "failed"):
        for folder in (spool / state).iterdir():
            m = json.loads((folder / "manifest.json").read_text())
            numbers = [a["number"] for a in m["attempts"]]
            assert numbers == sorted(set(numbers)), f"attempt numbers must grow: {numbers}"
    assert_all_manifests_valid(spool)
    if finished:
        assert os.listdir(spool / "running") == []
        published_names = [
            json.loads((p / "manifest.json").read_text())["name"]
            for p in published(spool) + published(spool, "failed")
        ]
        assert sorted(published_names) == sorted(names), "each job published exactly once"


def reap(d) -> None:
    for pid in session_pids(d.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
def test_chaos_sigkill_the_daemon_ten_times(make_spool, daemon_factory) -> None:
    # rerun: the 200 inputs are identical, and reused duplicates finish too fast to kill.
    spool = make_spool(lease_ttl_s=2, max_attempts=20, on_duplicate="rerun")
    names = [f"job{i:03d}.slow" for i in range(200)]
    for n in names:
        stage_file(spool, n, "0.2")
    kills = 0
    while kills < 10:
        d = daemon_factory(spool, env=PLUGIN_ENV)
        before = len(published(spool))
        # Kill at a moment when work is in flight.
        wait_for(
            lambda b=before: len(published(spool)) > b + 3 and os.listdir(spool / "running"),
            timeout=120,
            what="work in flight",
        )
        d.proc.send_signal(signal.SIGKILL)  # main process only: workers are orphaned
        d.wait()
        kills += 1
        check_invariants(spool, names, finished=False)
        reap(d)
    d = daemon_factory(spool, env=PLUGIN_ENV)
    wait_for(
        lambda: len(published(spool)) + len(published(spool, "failed")) == len(names),
        timeout=300,
        what="every job published",
    )
    assert d.stop() == 0
    check_invariants(spool, names, finished=True)
    assert published(spool, "failed") == []
    recovered = sum(e["event"] == "job.recovered" for e in events(spool))
    print(f"chaos: 200 jobs, {kills} SIGKILLs, {recovered} recoveries, 0 lost")


@pytest.mark.parametrize("point", POINTS)
def test_crash_points(make_spool, daemon_factory, point: str) -> None:
    spool = make_spool(lease_ttl_s=2, max_attempts=10, backoff_initial_s=0.1)
    names = ["a.md", "b.md", "c.slow", "d.flaky"]
    stage_file(spool, "a.md", "# A\n")
    stage_file(spool, "b.md", "# B\n")
    stage_file(spool, "c.slow", "0.3")
    stage_file(spool, "d.flaky", "1")
    crashed = 0
    for _ in range(3):
        d = daemon_factory(spool, env={**PLUGIN_ENV, "SPOOLD_CRASH_AT": point})
        wait_for(
            lambda d=d: d.proc.poll() is not None or len(published(spool)) == len(names),
            timeout=120,
            what="crash or done",
        )
        if d.proc.poll() is None:
            d.stop()
        else:
            assert d.proc.returncode == -signal.SIGKILL, d.log()
            d.wait()
            crashed += 1
        reap(d)
        check_invariants(spool, names, finished=False)
    d = daemon_factory(spool, env=PLUGIN_ENV)
    d.wait_ready()
    wait_for(lambda: len(published(spool)) == len(names), timeout=120, what="all published")
    assert d.stop() == 0
    check_invariants(spool, names, finished=True)


def test_a_published_job_is_reported_only_once_its_group_is_durable(
    make_spool, daemon_factory
) -> None:
    # Jobs finished in one pass are renamed into done/ one by one, then done/ and
    # running/ are fsynced once for all of them, and only then reported. Killed in
    # between: the jobs are in done/ (nothing lost, nothing redone) but were never
    # reported done, so nobody was told of a result a power cut could still take.
    spool = make_spool()
    names = ["a.md", "b.md", "c.md"]
    for n in names:
        stage_file(spool, n, f"# {n}\n")
    d = daemon_factory(spool, env={**PLUGIN_ENV, "SPOOLD_CRASH_AT": "before_group_commit"})
    wait_for(lambda: d.proc.poll() is not None, timeout=120, what="the crash")
    assert d.proc.returncode == -signal.SIGKILL, d.log()
    d.wait()
    reap(d)
    check_invariants(spool, names, finished=False)
    in_done = {json.loads((p / "manifest.json").read_text())["name"] for p in published(spool)}
    assert in_done, "the crash came before any publish rename"
    reported = {e.get("name") for e in events(spool) if e["event"] == "job.succeeded"}
    assert not reported & in_done, "a job was reported before its group was fsynced"
    d = daemon_factory(spool, env=PLUGIN_ENV)
    # Ready first: the three may all have been published before the crash (one batch,
    # one group), and a SIGTERM before the daemon's handlers are set is no clean stop.
    d.wait_ready()
    wait_for(lambda: len(published(spool)) == len(names), timeout=120, what="all published")
    assert d.stop() == 0
    check_invariants(spool, names, finished=True)
    for p in published(spool):
        m = json.loads((p / "manifest.json").read_text())
        assert m["status"] == "succeeded"
        if m["name"] in in_done:  # published before the crash: not run again
            assert len(m["attempts"]) == 1, m["attempts"]


def _is_root() -> bool:
    return os.geteuid() == 0


@pytest.mark.skipif(not _is_root(), reason="mounting a small tmpfs needs root")
def test_disk_full_loses_nothing_and_resumes(make_spool, daemon_factory, tmp_path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {mounted.stderr.strip()}")
    try:
        from spoold.spool.protocol import init_spool

        from .conftest import FAST, write_spool_toml

        spool = disk / "spool"
        init_spool(spool)
        write_spool_toml(
            spool,
            {
                **FAST,
                "max_attempts": 100,
                "backoff_initial_s": 0.2,
                "backoff_max_s": 0.5,
                "min_free_mb": 0,
                "on_duplicate": "rerun",
            },
        )
        names = [f"doc{i:02d}.md" for i in range(10)]
        for n in names:
            stage_file(spool, n, f"# {n}\n\n" + f"Some text of {n} to convert. " * 8000 + "\n")
        # Fill the disk to the last byte before the daemon starts: every job meets ENOSPC.
        filler = spool / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        d = daemon_factory(spool, log=tmp_path / "daemon.log")
        # The events log cannot grow on a full disk, so read what the daemon logged.
        wait_for(
            lambda: "code=disk_full" in d.log() or "claim of" in d.log(),
            timeout=60,
            what="disk-full met by a job",
        )
        assert published(spool) == [] and published(spool, "failed") == []
        # Freeze the daemon for a consistent look at the folders: every state change is
        # one rename, so a stopped daemon leaves each input in exactly one place.
        d.kill_group(signal.SIGSTOP)
        try:
            check_invariants(spool, names, finished=False)
        finally:
            d.kill_group(signal.SIGCONT)
        filler.unlink()
        wait_for(lambda: len(published(spool)) == len(names), timeout=180, what="all published")
        assert d.stop() == 0
        check_invariants(spool, names, finished=True)
        for p in published(spool):
            m = json.loads((p / "manifest.json").read_text())
            art = p / m["artifacts"][0]["path"]
            assert art.stat().st_size == m["artifacts"][0]["size"], "artifact intact"
            # Attempt hints written while the disk was full are gone once the state is saved.
            assert not list(p.glob(".spoold-attempt-*")), p
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
        shutil.rmtree(disk, ignore_errors=True)
