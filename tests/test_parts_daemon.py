"""Big PDFs in parts through a real daemon: the merged file, cancel, a killed part worker.

The split threshold and part size are lowered through the daemon's environment
(SPOOLD_PARTS_SPLIT_ABOVE, SPOOLD_PARTS_PART_COST) so a document of a few dozen pages is
laid out in several parts on the daemon's two workers.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from tests.bigdoc import outline_entries, release_notes

from .conftest import PLUGIN_ENV, cli, events, pid_alive, published, wait_for

pytestmark = pytest.mark.slow


def parts_env(part_cost: int) -> dict[str, str]:
    return {"SPOOLD_PARTS_SPLIT_ABOVE": "40000", "SPOOLD_PARTS_PART_COST": str(part_cost)}


def only_manifest(spool: Path, state: str) -> tuple[Path, dict[str, Any]]:
    folders = published(spool, state)
    assert len(folders) == 1, folders
    return folders[0], json.loads((folders[0] / "manifest.json").read_text())


def page_text(path: Path, page: int) -> str:
    args = ["pdftotext", "-f", str(page), "-l", str(page), str(path), "-"]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def running_parts(spool: Path) -> list[tuple[int, Path]]:
    """(worker pid, part PDF) of every part a worker has started and not finished."""
    out = []
    for pid_file in spool.glob("running/*/.spoold-parts/*.pdf.pid"):
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            continue  # being written, or the folder just went
        pdf = pid_file.with_suffix("")
        if not pdf.exists():
            out.append((pid, pdf))
    return out


def drop(spool: Path, name: str, text: str) -> None:
    staged = spool / f".{name}.tmp"
    staged.write_text(text)
    os.rename(staged, spool / "inbox" / name)


def test_a_split_job_publishes_one_pdf_that_reads_as_one(make_spool, daemon_factory) -> None:
    spool = make_spool(targets=["pdf"])
    daemon_factory(spool, env=parts_env(50_000))
    drop(spool, "notes.md", release_notes(40))
    wait_for(lambda: published(spool), what="the split job published")
    folder, m = only_manifest(spool, "done")
    assert m["status"] == "succeeded"
    parts = m["parts"]
    assert parts["count"] >= 3 and parts["count"] % 2 == 0, parts
    pdf = folder / "notes.pdf"
    total = m["artifacts"][0]["pages"]
    assert sum(parts["pages"]) == total == len(PdfReader(pdf).pages)
    assert not (folder / ".spoold-parts").exists()
    # Page numbers run on across parts: "n / N" on every page.
    for n in range(1, total + 1):
        assert re.search(rf"\b{n} / {total}\b", page_text(pdf, n)), f"page {n}"
    reader = PdfReader(pdf)
    entries = outline_entries(reader)
    assert entries[0] == (0, "Release history")
    releases = [(d, t) for d, t in entries if t.startswith("Release 0.")]
    assert releases == [(1, f"Release 0.{s}") for s in range(40)], "one outline, in order"
    assert len(entries) == 1 + 40 * 2, "each release and its Changes, once"
    # Links reach their release's heading, also from one part into another.
    firsts = list(itertools.accumulate(parts["pages"]))
    part_of = {page: sum(page >= f for f in firsts) for page in range(total)}
    names = reader.named_destinations
    crossing = 0
    for number, page in enumerate(reader.pages):
        for ref in page.get("/Annots", []):
            annot = ref.get_object()
            action = annot.get("/A") or {}
            if "/Dest" in annot:
                name = str(annot["/Dest"])
            elif action.get("/S") == "/GoTo":
                name = str(action["/D"])
            else:
                continue
            dest = reader.get_destination_page_number(names[name])
            release = re.fullmatch(r"release-0(\d+)", name)
            if release:
                assert f"Release 0.{release[1]}" in page_text(pdf, dest + 1)
            crossing += part_of[number] != part_of[dest]
    assert crossing >= 3, "links from one part into another"
    usage = m["attempts"][0]["usage"]
    assert len(parts["cpu_s"]) == parts["count"] and min(parts["cpu_s"]) > 0
    assert usage["cpu_s"] > sum(parts["cpu_s"]), "usage sums the split, the parts, the merge"
    assert usage["peak_rss_mb"] > 0
    # Two workers lay the parts out: the time they took is at least half their CPU.
    assert m["timings"]["pdf"] >= sum(parts["cpu_s"]) / 2, "the PDF's time covers its parts"


@pytest.mark.parametrize("mode", ["hard", "graceful"])
def test_cancel_during_a_split_job_stops_every_part(make_spool, daemon_factory, mode) -> None:
    spool = make_spool(targets=["pdf"], max_attempts=1)
    daemon_factory(spool, env=parts_env(150_000))
    drop(spool, "long.md", release_notes(120))
    running = wait_for(lambda: running_parts(spool), what="a part running")
    job_id = next(e["job_id"] for e in events(spool) if e["event"] == "job.started")
    cli("cancel", str(spool), job_id, *(["--hard"] if mode == "hard" else []))
    wait_for(lambda: published(spool, "failed"), what="the cancelled job published")
    folder, m = only_manifest(spool, "failed")
    assert m["status"] == "cancelled" and m["artifacts"] == []
    assert not (folder / ".spoold-parts").exists(), "no parts folder left"
    if mode == "hard":  # graceful lets the running parts finish: their workers stay
        for pid, _ in running:
            wait_for(lambda pid=pid: not pid_alive(pid), what=f"part worker {pid} stopped")


def test_a_killed_part_worker_loses_only_its_part(make_spool, daemon_factory) -> None:
    spool = make_spool(targets=["pdf"])
    daemon_factory(spool, env=parts_env(150_000))
    drop(spool, "long.md", release_notes(120))
    pid, _ = wait_for(lambda: running_parts(spool), what="a part running")[0]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: published(spool), timeout=180, what="the job published")
    folder, m = only_manifest(spool, "done")
    assert m["status"] == "succeeded"
    assert [a["outcome"] for a in m["attempts"]] == ["succeeded"], "one attempt: no job retry"
    parts = m["parts"]
    assert parts["relaid"] == 1 and parts["count"] >= 2
    assert sum(parts["pages"]) == m["artifacts"][0]["pages"]
    assert len(PdfReader(folder / "long.pdf").pages) == sum(parts["pages"])
    assert m["attempts"][0]["usage"]["cpu_s"] > 0


def test_a_small_job_does_not_wait_for_a_split_job(make_spool, daemon_factory) -> None:
    spool = make_spool(targets=["pdf"])
    daemon_factory(spool, env=parts_env(150_000))
    drop(spool, "long.md", release_notes(120))
    wait_for(lambda: len(running_parts(spool)) == 2, what="the split job on both workers")
    drop(spool, "small.md", "# Small\n\nA short note.\n")

    def succeeded() -> list[str]:
        # The events log, not the folders: a job is in done/ just before its event.
        return [e["name"] for e in events(spool) if e["event"] == "job.succeeded"]

    ended = wait_for(lambda: len(succeeded()) == 2 and succeeded(), timeout=180, what="both")
    assert ended == ["small.md", "long.md"], "the small job ran between the parts"


def test_the_jobs_timeout_bounds_all_its_parts(make_spool, daemon_factory) -> None:
    # Parts of about 15 s of layout each against an 8 s timeout: the timeout must end
    # the job while its parts run, and no part can end first on its own. (With a small
    # document a fast machine could simply finish the job within the timeout.)
    spool = make_spool(targets=["pdf"], max_attempts=1, timeout_s=8)
    daemon_factory(spool, env=parts_env(900_000)).wait_workers()  # the 8 s are the job's
    drop(spool, "long.md", release_notes(1000))
    running = wait_for(lambda: running_parts(spool), timeout=60, what="a part running")
    wait_for(lambda: published(spool, "failed"), timeout=120, what="the job timed out")
    folder, m = only_manifest(spool, "failed")
    assert m["error"]["code"] == "timeout", m["error"]
    for pid, _ in running:
        wait_for(lambda pid=pid: not pid_alive(pid), what=f"part worker {pid} stopped")
    assert not (folder / ".spoold-parts").exists()
    assert m.get("parts") is None and m["artifacts"] == []


def test_a_split_job_converts_its_other_targets_too(make_spool, daemon_factory) -> None:
    spool = make_spool(targets=["docx", "pdf", "html"])
    daemon_factory(spool, env=parts_env(50_000))
    drop(spool, "notes.md", release_notes(30))
    wait_for(lambda: published(spool), what="the split job published")
    folder, m = only_manifest(spool, "done")
    assert m["status"] == "succeeded" and m["parts"]["count"] >= 2
    assert sorted(a["target"] for a in m["artifacts"]) == ["docx", "html", "pdf"]
    for a in m["artifacts"]:
        assert (folder / a["path"]).stat().st_size == a["size"]
    pdf = next(a for a in m["artifacts"] if a["target"] == "pdf")
    assert pdf["pages"] == sum(m["parts"]["pages"]) == len(PdfReader(folder / pdf["path"]).pages)


def test_a_recovered_split_job_leaves_its_part_files_behind(make_spool, daemon_factory) -> None:
    spool = make_spool(targets=["pdf"], max_attempts=1)
    first = daemon_factory(spool, env=parts_env(60_000))
    drop(spool, "long.md", release_notes(200))
    wait_for(lambda: running_parts(spool), what="a part running")
    first.kill_group()  # the daemon and its workers die, as with their host
    first.wait(timeout=30)
    # Out of attempts: the next daemon publishes the lost job to failed/ at once.
    daemon_factory(spool, env=parts_env(60_000))
    wait_for(lambda: published(spool, "failed"), what="the lost job published")
    folder, m = only_manifest(spool, "failed")
    assert m["error"]["code"] == "worker_lost", m["error"]
    assert not (folder / ".spoold-parts").exists(), "part files published with the job"
    assert not (folder / ".spoold-parts-kept").exists(), "nor the parts kept for a resume"


def pdf_words(path: Path) -> list[str]:
    args = ["pdftotext", str(path), "-"]
    text = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    # The page numbers ("n / N") are the stamp's: they move with the page breaks.
    return re.sub(r"\b\d+ ?/ ?\d+\b", " ", text).split()


def test_a_medium_document_is_split_only_while_the_other_workers_are_idle(
    make_spool, daemon_factory, tmp_path: Path
) -> None:
    # The big-document threshold stays at its default: only the idle rule can split.
    spool = make_spool(targets=["pdf"], on_duplicate="rerun")
    # The machine may be busy with other tests: idle workers count without idle cores.
    env = {"SPOOLD_PARTS_IDLE_SPLIT_ABOVE": "10000", "SPOOLD_PARTS_IGNORE_LOAD": "1"}
    d = daemon_factory(spool, env={**PLUGIN_ENV, **env})
    # Only a worker that has started counts as idle: on a busy machine the second one
    # may still be importing when the first job starts.
    d.wait_workers()
    drop(spool, "idle.md", release_notes(6))
    wait_for(lambda: published(spool), what="the medium job on an idle daemon")
    split_folder, split = only_manifest(spool, "done")
    assert split["parts"]["count"] == 2, "one part per worker"
    # The other worker busy: the same document is laid out whole.
    gate = tmp_path / "open"
    drop(spool, "hold.gate", str(gate))
    wait_for(lambda: list(spool.glob("running/hold.*")), what="the gate job running")
    drop(spool, "busy.md", release_notes(6))
    wait_for(lambda: len(published(spool)) == 2, what="the medium job next to a busy worker")
    gate.touch()
    wait_for(lambda: len(published(spool)) == 3, what="the gate job")
    whole_folder = next(p for p in published(spool) if p.name.startswith("busy.2"))
    whole = json.loads((whole_folder / "manifest.json").read_text())
    assert whole.get("parts") is None
    # The split one reads as the whole one: words, outline, links.
    split_pdf, whole_pdf = split_folder / "idle.pdf", whole_folder / "busy.pdf"
    assert pdf_words(split_pdf) == pdf_words(whole_pdf)
    assert outline_entries(PdfReader(split_pdf)) == outline_entries(PdfReader(whole_pdf))
    links = [
        sum(len(p.get("/Annots", [])) for p in PdfReader(f).pages) for f in (split_pdf, whole_pdf)
    ]
    assert links[0] == links[1]
    pages = [m["artifacts"][0]["pages"] for m in (split, whole)]
    assert pages[1] <= pages[0] <= pages[1] + 1, "at most one short page at the cut"
