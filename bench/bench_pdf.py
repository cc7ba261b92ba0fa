"""A corpus of 20 Markdown documents (1-20 pages) to PDF: spoold against a bare pool.

spoold: a daemon with 2 workers and targets = ["pdf"], all 20 renamed in at once, timed
until the last final event. Bare: a warm ProcessPoolExecutor(2) calling markdown-it-py
and WeasyPrint directly. The ratio spoold/bare is what a user pays for the daemon.

A third run calls spoold's own md->pdf converter from the same bare pool, which splits
that ratio into converter cost (print theme, sanitising) and daemon overhead (claim,
IPC, manifest, fsync).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import time
from collections.abc import Callable
from pathlib import Path

from common import (
    Daemon,
    corpus,
    make_spool,
    report,
    run_batch,
    stage_files,
    temp_dir,
    warm_workers,
)

BENCH = "pdf"


def available() -> bool:
    from spoold.convert import get_converter, load_converters

    load_converters()
    return get_converter("md", "pdf") is not None


def bare_convert(job: tuple[str, str, str]) -> float:
    import weasyprint
    from markdown_it import MarkdownIt

    cpu0 = time.process_time()
    _, text, out = job
    body = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text)
    weasyprint.HTML(string=f"<!DOCTYPE html><html><body>{body}</body></html>").write_pdf(out)
    return time.process_time() - cpu0


def spoold_convert(job: tuple[str, str, str]) -> float:
    from spoold.convert import ConversionContext, get_converter, load_converters

    cpu0 = time.process_time()
    name, text, out = job
    load_converters()
    folder = Path(out).parent / (name + ".in")
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    converter = get_converter("md", "pdf")
    assert converter is not None
    converter.convert(folder / name, Path(out), ConversionContext(job_root=folder))
    return time.process_time() - cpu0


def run_pool(
    fn: Callable[[tuple[str, str, str]], float], docs: list[tuple[str, str]], out: Path
) -> tuple[float, float]:
    """(wall seconds, worker CPU seconds) for the corpus on a warm pool."""
    warm = ("warm.md", docs[0][1], str(out / "warm.pdf"))
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=2, initializer=fn, initargs=(warm,)
    ) as pool:
        # Two sleeps at once: both workers exist and have run their warm-up conversion.
        list(pool.map(time.sleep, [0.5, 0.5]))
        t0 = time.monotonic()
        cpu = sum(pool.map(fn, [(name, text, str(out / (name + ".pdf"))) for name, text in docs]))
        return time.monotonic() - t0, cpu


def run_spoold(docs: list[tuple[str, str]], tmp: Path) -> tuple[float, float, int]:
    """(wall seconds, daemon + worker CPU seconds, failed jobs)."""
    spool = make_spool(tmp, targets=["pdf"])
    with Daemon(spool, workers=2) as daemon:
        daemon.wait_ready()
        tail = warm_workers(spool, docs[0][1])
        pairs = stage_files(spool, [(name, text.encode()) for name, text in docs])
        return run_batch(daemon.pid, spool, tail, pairs, timeout=240)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not available():
        print("skipped: md->pdf not available")
        return
    docs = corpus()
    walls: dict[str, list[float]] = {"bare": [], "conv": [], "spoold": []}
    cpus: dict[str, list[float]] = {"bare": [], "conv": [], "spoold": []}
    failed = 0
    # Best of N rounds, the three runs interleaved: the machine is shared, and a burst
    # of someone else's work should not land on one side of the ratio only. CPU seconds
    # are reported too because they barely move with such noise.
    for r in range(args.rounds):
        with temp_dir() as tmp:
            for sub in ("bare", "conv"):
                (tmp / sub).mkdir()
            for key, fn in (("bare", bare_convert), ("conv", spoold_convert)):
                wall, cpu = run_pool(fn, docs, tmp / key)
                walls[key].append(wall)
                cpus[key].append(cpu)
            wall, cpu, nfailed = run_spoold(docs, tmp)
            walls["spoold"].append(wall)
            cpus["spoold"].append(cpu)
            failed += nfailed
        print(
            f"  round {r + 1}: "
            + ", ".join(f"{k} {walls[k][-1]:.2f} s wall / {cpus[k][-1]:.2f} s CPU" for k in walls)
        )
    wall = {k: min(v) for k, v in walls.items()}
    cpu = {k: min(v) for k, v in cpus.items()}
    n = len(docs)
    report(BENCH, "pdf_bare_pool_wall", wall["bare"], "s", docs=n, runs=walls["bare"])
    report(BENCH, "pdf_pool_spoold_converter_wall", wall["conv"], "s", docs=n, runs=walls["conv"])
    report(BENCH, "pdf_spoold_wall", wall["spoold"], "s", docs=n, runs=walls["spoold"])
    if failed:
        report(BENCH, "pdf_spoold_failed_jobs", failed, "jobs")
    report(BENCH, "pdf_ratio_spoold_over_bare", wall["spoold"] / wall["bare"], "x", "<= 1.05")
    report(BENCH, "pdf_ratio_converter_over_bare", wall["conv"] / wall["bare"], "x")
    report(BENCH, "pdf_ratio_spoold_over_converter_pool", wall["spoold"] / wall["conv"], "x")
    report(BENCH, "pdf_cpu_bare", cpu["bare"], "s", runs=cpus["bare"])
    report(BENCH, "pdf_cpu_converter_pool", cpu["conv"], "s", runs=cpus["conv"])
    report(BENCH, "pdf_cpu_spoold", cpu["spoold"], "s", runs=cpus["spoold"])
    report(BENCH, "pdf_cpu_ratio_spoold_over_bare", cpu["spoold"] / cpu["bare"], "x")


if __name__ == "__main__":
    main()
