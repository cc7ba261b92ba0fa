"""A split PDF job that resumes: the 30,000-row table killed half-way, then recovered.

(a) The table (tests.bigdoc.export_table) through a fresh 2-worker daemon, timed from
    the rename into inbox/ to job.succeeded: the uninterrupted run.
(b) The same table in another spool: when about half its parts are laid out (kept in
    running/*/.spoold-parts-kept/), the daemon's process group is killed with SIGKILL
    and a second daemon is started at once; it recovers the job, whose next attempt
    lays out only the missing parts. Timed from the rename to job.succeeded, including
    the second daemon's start-up.

Printed: both times, the limit (the uninterrupted time plus half), the parts kept at the
kill and reused by the recovered attempt (manifest parts.reused), and whether the two
PDFs have the same pages, the same pdftotext text and the same bytes. The load average
is printed with the figures: the machine may be shared. Appended to
bench/results/latest.ndjson; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench_bigdoc import export_table_file
from common import Daemon, EventTail, make_spool, report, temp_dir, wait_finished, wait_for

BENCH = "parts_resume"
KEPT = ".spoold-parts-kept"
SETTINGS: dict[str, Any] = {
    "targets": ["pdf"],
    "memory_limit_mb": 1024,
    "cpu_limit_s": 3600,
    "timeout_s": 3600,
    "settle_ms": 200,
    "max_attempts": 3,
}


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def progress(spool: Path) -> tuple[int, int]:
    kept = len(list(spool.glob(f"running/*/{KEPT}/part-*.json")))
    planned = len(list(spool.glob("running/*/.spoold-parts/part-*.html")))
    return kept, planned


def run(tmp: Path, html: Path, name: str, kill: bool) -> dict[str, Any]:
    spool = make_spool(tmp, name, **SETTINGS)
    staged = spool / "tmp" / ".export.html.staging"
    staged.write_bytes(html.read_bytes())
    first = Daemon(spool, workers=2)
    second: Daemon | None = None
    try:
        first.wait_ready()
        time.sleep(1.0)  # the pool's workers spawned and imported (not part of a job)
        tail = EventTail(spool)
        t0 = time.monotonic()
        os.rename(staged, spool / "inbox" / "export.html")
        kept = planned = 0
        killed_at = None
        if kill:
            kept, planned = wait_for(
                lambda: (p := progress(spool))[1] and p[0] >= p[1] // 2 and p,
                timeout=3600,
                what="half the parts",
                poll_s=0.05,
            )
            first.kill()
            killed_at = time.monotonic() - t0
            second = Daemon(spool, workers=2)
        event = wait_finished(tail, {"export.html"}, timeout=3600)["export.html"]
        wall = time.monotonic() - t0
    finally:
        for d in (first, second):
            if d is not None:
                d.kill()
    manifest = json.loads((spool / event["path"] / "manifest.json").read_text())
    return {
        "wall_s": wall,
        "killed_at_s": killed_at,
        "kept": kept,
        "planned": planned,
        "manifest": manifest,
        "pdf": spool / event["path"] / "export.pdf",
    }


def pdftotext(pdf: Path) -> str:
    args = ["pdftotext", "-layout", str(pdf), "-"]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=30_000)
    args = parser.parse_args()
    with temp_dir() as tmp:
        html = export_table_file(tmp, args.rows, BENCH, load=load())
        whole = run(tmp, html, "whole", kill=False)
        m = whole["manifest"]
        report(
            BENCH,
            "uninterrupted_wall",
            whole["wall_s"],
            "s",
            parts=m["parts"]["count"],
            pages=m["artifacts"][0]["pages"],
            load=load(),
        )
        killed = run(tmp, html, "killed", kill=True)
        k = killed["manifest"]
        limit = whole["wall_s"] * 1.5
        report(
            BENCH,
            "killed_and_resumed_wall",
            killed["wall_s"],
            "s",
            f"< {limit:.1f} (uninterrupted plus half)",
            killed_at_s=round(killed["killed_at_s"], 1),
            load=load(),
        )
        report(
            BENCH,
            "without_resume_estimate",
            killed["killed_at_s"] + whole["wall_s"],
            "s",
            note="the time of the kill plus a whole run: what starting over would cost",
        )
        report(
            BENCH,
            "parts_reused",
            k["parts"]["reused"],
            "parts",
            kept_at_kill=killed["kept"],
            planned=killed["planned"],
            count=k["parts"]["count"],
            attempts=[a["outcome"] for a in k["attempts"]],
        )
        a, b = whole["pdf"], killed["pdf"]
        same_pages = m["artifacts"][0]["pages"] == k["artifacts"][0]["pages"]
        report(BENCH, "same_pages", str(same_pages), pages=k["artifacts"][0]["pages"])
        report(BENCH, "same_text", str(pdftotext(a) == pdftotext(b)))
        report(BENCH, "same_bytes", str(a.read_bytes() == b.read_bytes()))


if __name__ == "__main__":
    main()
