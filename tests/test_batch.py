"""Light jobs several to a worker (daemon/batch.py), seen from outside: real daemons,
real workers, files in and manifests out.

A batch must change nothing a user can see but the speed: every job gets its own
manifest and its own attempts, a worker that dies in a batch costs only the job that
killed it, and a cancel stops only the job it names.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from spoold.spool.clock import new_job_id

from .conftest import PLUGIN_ENV, manifests, published, stage_file, wait_for


def _debug_config(tmp_path: Path) -> Path:
    config = tmp_path / "spoold.toml"
    config.write_text('log_level = "debug"\n')
    return config


def _rename_all(spool: Path, files: dict[str, str]) -> None:
    """Stage every file in tmp/, then rename them all into inbox/ at once."""
    staged = []
    for name, text in files.items():
        tmp = spool / "tmp" / f".{name}.staging"
        tmp.write_text(text)
        staged.append((tmp, spool / "inbox" / name))
    for tmp, dest in staged:
        os.rename(tmp, dest)


def _batches(log: str) -> list[int]:
    return [int(n) for n in re.findall(r"(\d+) light jobs to one worker", log)]


def test_tiny_jobs_go_several_to_a_worker_and_each_gets_its_own_result(
    make_spool, daemon_factory, tmp_path: Path
) -> None:
    spool = make_spool(durable=True)
    d = daemon_factory(spool, args=("--workers", "2", "--config", str(_debug_config(tmp_path))))
    d.wait_ready()
    n = 120
    _rename_all(spool, {f"n{i:03d}.md": f"# Note {i}\n\nText *{i}*.\n" for i in range(n)})
    wait_for(lambda: len(published(spool)) == n, timeout=120, what=f"{n} published")
    assert os.listdir(spool / "failed") == [] and os.listdir(spool / "inbox") == []
    for folder in published(spool):
        m = json.loads((folder / "manifest.json").read_text())
        i = int(m["name"][1:4])
        assert m["status"] == "succeeded"
        assert [a["outcome"] for a in m["attempts"]] == ["succeeded"]
        html = (folder / m["artifacts"][0]["path"]).read_text()
        assert f"Note {i}</h1>" in html and f"<em>{i}</em>" in html
    sizes = _batches(d.log())
    print(f"batches: {len(sizes)}, sizes {sorted(sizes)}")
    assert sizes and max(sizes) > 1, "120 tiny jobs at once on 2 workers: some batched"
    assert sum(sizes) <= n


def test_job_folders_as_the_gateway_writes_them_are_batched_too(
    make_spool, daemon_factory, tmp_path: Path
) -> None:
    spool = make_spool()
    d = daemon_factory(spool, args=("--workers", "2", "--config", str(_debug_config(tmp_path))))
    d.wait_workers()
    staged = []
    for i in range(60):
        folder = spool / "tmp" / f".f{i:02d}.staging"
        folder.mkdir()
        (folder / f"f{i:02d}.md").write_text(f"# Folder {i}\n")
        job = {"main": f"f{i:02d}.md", "id": new_job_id()}
        if i % 10 == 9:
            job["targets"] = ["html", "docx"]  # not light: never in a batch
        (folder / "job.json").write_text(json.dumps(job))
        staged.append((folder, spool / "inbox" / f"f{i:02d}"))
    for folder, dest in staged:
        os.rename(folder, dest)
    wait_for(lambda: len(published(spool)) == 60, timeout=120, what="60 published")
    ids = set()
    for folder in published(spool):
        m = json.loads((folder / "manifest.json").read_text())
        assert [a["outcome"] for a in m["attempts"]] == ["succeeded"]
        ids.add(m["job_id"])
    sizes = _batches(d.log())
    print(f"batches: {sizes}")
    assert sizes and max(sizes) > 1
    batched = set(re.findall(r"light jobs to one worker: (.*)", d.log()))
    two_targets = {
        json.loads((f / "manifest.json").read_text())["job_id"]
        for f in published(spool)
        if len(json.loads((f / "manifest.json").read_text())["artifacts"]) == 2
    }
    assert len(two_targets) == 6
    assert not any(job_id in line for line in batched for job_id in two_targets)


def test_a_pdf_or_a_big_file_is_never_batched(make_spool, daemon_factory, tmp_path: Path) -> None:
    spool = make_spool(targets=["pdf"])
    d = daemon_factory(spool, args=("--workers", "1", "--config", str(_debug_config(tmp_path))))
    d.wait_ready()
    _rename_all(spool, {f"p{i}.md": f"# P {i}\n" for i in range(4)})
    big = make_spool("big")
    d2 = daemon_factory(big, args=("--workers", "1", "--config", str(_debug_config(tmp_path))))
    d2.wait_ready()
    _rename_all(big, {f"b{i}.md": "# Big\n\n" + "word " * 8000 for i in range(6)})
    wait_for(lambda: len(published(spool)) == 4, timeout=120, what="4 PDFs")
    wait_for(lambda: len(published(big)) == 6, timeout=120, what="6 big files")
    assert _batches(d.log()) == [] and _batches(d2.log()) == []


def _notes_around(spool: Path, culprit: str, content: str, before: int, after: int) -> int:
    """Tiny notes queued before and after one misbehaving light job (before the daemon
    starts: its one worker, once ready, takes them in batches); how many jobs in all."""
    files = {f"a{i}.md": f"# A {i}\n" for i in range(before)}
    files[culprit] = content
    files.update({f"b{i}.md": f"# B {i}\n" for i in range(after)})
    _rename_all(spool, files)
    return len(files)


def _culprit_alone(spool: Path, culprit: str, total: int) -> dict[str, Any]:
    """Once all are published: every other job succeeded at its first attempt (its
    batch's failure counted for none of them); the culprit's manifest."""
    wait_for(lambda: len(manifests(spool)) == total, timeout=120, what=f"all {total} published")
    by_name = {m["name"]: m for m in manifests(spool)}
    job = by_name.pop(culprit)
    for name, m in by_name.items():
        assert m["status"] == "succeeded", name
        assert [a["outcome"] for a in m["attempts"]] == ["succeeded"], name
    return job


def test_a_worker_dying_in_a_batch_costs_only_its_own_job(make_spool, daemon_factory) -> None:
    spool = make_spool(max_attempts=2)
    total = _notes_around(spool, "killer.die", "", before=4, after=6)
    d = daemon_factory(spool, args=("--workers", "1"), env=PLUGIN_ENV)
    killer = _culprit_alone(spool, "killer.die", total)
    assert killer["status"] == "failed"
    assert killer["error"]["code"] == "worker_lost"
    assert len(killer["attempts"]) == 2  # its own attempts, each alone
    assert re.search(r"a batch of \d+ light jobs failed \(ProcessExpired", d.log()), d.log()[-3000:]


def test_a_hard_cancel_in_a_batch_stops_only_the_job_it_names(
    make_spool, daemon_factory, tmp_path: Path
) -> None:
    spool = make_spool()
    gate = tmp_path / "never"  # a light job that waits for a gate never opened
    total = _notes_around(spool, "stuck.lgate", str(gate), before=0, after=5)
    d = daemon_factory(spool, args=("--workers", "1"), env=PLUGIN_ENV)
    wait_for(Path(f"{gate}.started").exists, what="the stuck job began")
    stage_file(spool, "stuck.lgate.cancel", "hard")
    assert _culprit_alone(spool, "stuck.lgate", total)["status"] == "cancelled"
    assert "light jobs was cancelled" in d.log(), d.log()[-3000:]


def test_a_job_that_hangs_in_a_batch_times_out_alone(make_spool, daemon_factory) -> None:
    spool = make_spool(timeout_s=1, max_attempts=1)
    total = _notes_around(spool, "stuck.lhang", "", before=3, after=3)
    d = daemon_factory(spool, args=("--workers", "1"), env=PLUGIN_ENV)
    stuck = _culprit_alone(spool, "stuck.lhang", total)
    assert stuck["status"] == "failed" and stuck["error"]["code"] == "timeout"
    assert len(stuck["attempts"]) == 1  # the batch's timeout counted for no job
    assert "light jobs timed out" in d.log(), d.log()[-3000:]
