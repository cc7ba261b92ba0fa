"""A split PDF job resumes where it stopped: the parts a killed daemon had laid out are
kept in the job folder, and the recovered attempt lays out only the missing ones.

The resumed PDF is compared with an uninterrupted run's of the same document: pages,
pdftotext's text and the bytes. Timings belong to bench/bench_parts_resume.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from tests.bigdoc import export_table, release_notes

from .conftest import published, wait_for

pytestmark = pytest.mark.slow

KEPT = ".spoold-parts-kept"


def parts_env(part_cost: int) -> dict[str, str]:
    return {"SPOOLD_PARTS_SPLIT_ABOVE": "40000", "SPOOLD_PARTS_PART_COST": str(part_cost)}


def drop(spool: Path, name: str, text: str) -> None:
    staged = spool / "tmp" / f".{name}.staging"
    staged.write_text(text, encoding="utf-8")
    os.rename(staged, spool / "inbox" / name)


def progress(spool: Path) -> tuple[int, int]:
    """(parts kept, parts planned) of the job running in the spool."""
    kept = len(list(spool.glob(f"running/*/{KEPT}/part-*.json")))
    planned = len(list(spool.glob("running/*/.spoold-parts/part-*.html")))
    return kept, planned


def only_manifest(spool: Path) -> tuple[Path, dict[str, Any]]:
    (folder,) = published(spool)
    return folder, json.loads((folder / "manifest.json").read_text())


def text_of(pdf: Path) -> str:
    args = ["pdftotext", "-layout", str(pdf), "-"]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def run_through(
    make_spool: Any, daemon_factory: Any, name: str, text: str, env: dict[str, str], kill: bool
) -> tuple[Path, dict[str, Any], int]:
    """The document through a daemon; with `kill`, the daemon's group is killed after
    about half the parts and a second daemon recovers the job. (PDF, manifest, kept)."""
    spool = make_spool(
        f"spool-{'killed' if kill else 'whole'}",
        targets=["pdf"],
        max_attempts=3,
        timeout_s=3600,  # the table takes minutes on a shared machine
        cpu_limit_s=3600,
        memory_limit_mb=1024,
    )
    first = daemon_factory(spool, env=env)
    first.wait_ready()
    drop(spool, name, text)
    kept = 0
    if kill:
        kept = wait_for(
            lambda: (p := progress(spool))[1] and p[0] >= p[1] // 2 and p[0],
            timeout=1500,  # the table on a loaded 2-core machine: minutes per half
            what="half the parts laid out",
        )
        first.kill_group()  # the daemon and its workers, as when its host dies
        first.wait(timeout=30)
        daemon_factory(spool, env=env)
    wait_for(lambda: published(spool), timeout=1800, what="the job published")
    folder, m = only_manifest(spool)
    assert m["status"] == "succeeded", m.get("error")
    assert not (folder / KEPT).exists() and not (folder / ".spoold-parts").exists()
    return folder / (Path(name).stem + ".pdf"), m, kept


def check_same_pdf(resumed: Path, whole: Path) -> None:
    assert len(PdfReader(resumed).pages) == len(PdfReader(whole).pages)
    assert text_of(resumed) == text_of(whole)
    assert resumed.read_bytes() == whole.read_bytes(), "byte-identical: the output is deterministic"


def test_a_recovered_split_job_reuses_its_parts(make_spool, daemon_factory) -> None:
    env = parts_env(60_000)
    text = release_notes(100)
    whole, m_whole, _ = run_through(make_spool, daemon_factory, "long.md", text, env, kill=False)
    resumed, m, kept = run_through(make_spool, daemon_factory, "long.md", text, env, kill=True)
    parts = m["parts"]
    assert parts["count"] == m_whole["parts"]["count"] >= 6
    assert parts["reused"] >= kept > 0, (parts, kept)
    assert parts["reused"] < parts["count"], "the parts not kept were laid out again"
    assert [a["outcome"] for a in m["attempts"]] == ["lost", "succeeded"]
    assert parts["cpu_s"].count(0.0) == parts["reused"], "a reused part cost this attempt nothing"
    assert m_whole["parts"]["reused"] == 0
    check_same_pdf(resumed, whole)


def test_parts_of_another_plan_are_not_reused(tmp_path: Path) -> None:
    # A kept part whose key does not match the plan (other bytes) is laid out again.
    from spoold.spool.checkpoints import kept_parts, part_key
    from spoold.spool.parts import PartTask

    folder = tmp_path / "job"
    (folder / KEPT).mkdir(parents=True)
    html = folder / "part-0000.html"
    html.write_text("<p>one</p>")
    task = PartTask(0, str(html), str(folder / "out.pdf"), base_url=folder.resolve().as_uri())
    keyed = PartTask(**{**task.__dict__, "key": part_key(task, folder, "v1")})
    record = {"key": keyed.key, "sha256": "0" * 64, "result": {}}
    (folder / KEPT / "part-0000.json").write_text(json.dumps(record))
    (folder / KEPT / "part-0000.pdf").write_bytes(b"%PDF-1.7 damaged")
    assert kept_parts(folder, (keyed,)) == (), "a checksum that does not match is not reused"
    assert not list((folder / KEPT).iterdir()), "and removed"
    html.write_text("<p>two</p>")
    assert part_key(task, folder, "v1") != keyed.key, "other bytes, another key"
    assert part_key(task, folder, "v2") != keyed.key, "another WeasyPrint, another key"


# Two runs of the table (about 75 s each on 2 idle cores; far longer on a shared machine).
@pytest.mark.timeout(4000)
def test_the_30000_row_table_resumes_after_a_kill(make_spool, daemon_factory) -> None:
    env = {"SPOOLD_PARTS_SPLIT_ABOVE": "", "SPOOLD_PARTS_PART_COST": ""}
    text = export_table(30_000)
    whole, m_whole, _ = run_through(make_spool, daemon_factory, "export.html", text, env, False)
    resumed, m, kept = run_through(make_spool, daemon_factory, "export.html", text, env, True)
    assert m["parts"]["count"] == m_whole["parts"]["count"] > 10
    assert m["parts"]["reused"] >= kept > 0, (m["parts"], kept)
    assert m["artifacts"][0]["pages"] == m_whole["artifacts"][0]["pages"]
    check_same_pdf(resumed, whole)
