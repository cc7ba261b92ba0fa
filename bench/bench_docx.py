"""The PDF bench's corpus to DOCX: spoold (daemon, 2 workers) against pandoc.

pandoc runs two at a time (one per core, as fair to spoold's 2 workers as it gets).
The figure is pandoc_time / spoold_time: how many times faster spoold is.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import (
    Daemon,
    corpus,
    make_spool,
    report,
    stage_files,
    temp_dir,
    wait_finished,
    warm_workers,
)

BENCH = "docx"


def available() -> str | None:
    """Why the bench cannot run, or None."""
    from spoold.convert import get_converter, load_converters

    load_converters()
    if get_converter("md", "docx") is None:
        return "md->docx not available"
    if shutil.which("pandoc") is None:
        return "pandoc not installed"
    return None


def run_pandoc(docs: list[tuple[str, str]], out: Path) -> float:
    for name, text in docs:
        (out / name).write_text(text)

    def one(name: str) -> None:
        subprocess.run(
            ["pandoc", "-f", "markdown", "-t", "docx", "-o", str(out / (name + ".docx")), name],
            cwd=out,
            check=True,
        )

    one(docs[0][0])  # page cache and pandoc's data files, outside the timing
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(one, [name for name, _ in docs]))
    return time.monotonic() - t0


def run_spoold(docs: list[tuple[str, str]], tmp: Path) -> tuple[float, int]:
    spool = make_spool(tmp, targets=["docx"])
    with Daemon(spool, workers=2) as daemon:
        daemon.wait_ready()
        tail = warm_workers(spool, docs[0][1])
        pairs = stage_files(spool, [(name, text.encode()) for name, text in docs])
        t0 = time.monotonic()
        for staged, final in pairs:
            os.rename(staged, final)
        finished = wait_finished(tail, {f.name for _, f in pairs}, timeout=240)
        elapsed = time.monotonic() - t0
    failed = [ev for ev in finished.values() if ev["event"] != "job.succeeded"]
    for ev in failed:
        print(f"  failed: {ev['name']}: {ev.get('message')}", file=sys.stderr)
    return elapsed, len(failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    why = available()
    if why is not None:
        print(f"skipped: {why}")
        return
    docs = corpus()
    pandocs, spoolds, failed = [], [], 0
    for r in range(args.rounds):  # best of N, interleaved: the machine is shared
        with temp_dir() as tmp:
            (tmp / "pandoc").mkdir()
            pandocs.append(run_pandoc(docs, tmp / "pandoc"))
            elapsed, nfailed = run_spoold(docs, tmp)
            spoolds.append(elapsed)
            failed += nfailed
        print(f"  round {r + 1}: pandoc {pandocs[-1]:.2f} s, spoold {spoolds[-1]:.2f} s")
    pandoc_s, spoold_s = min(pandocs), min(spoolds)
    report(BENCH, "docx_pandoc_wall", pandoc_s, "s", docs=len(docs), runs=pandocs)
    report(BENCH, "docx_spoold_wall", spoold_s, "s", docs=len(docs), runs=spoolds)
    if failed:
        report(BENCH, "docx_spoold_failed_jobs", failed, "jobs")
    report(BENCH, "docx_ratio_pandoc_over_spoold", pandoc_s / spoold_s, "x", ">= 3")


if __name__ == "__main__":
    main()
