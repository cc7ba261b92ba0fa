"""Side by side, in one run: spoold against the bare engine on real documents.

(a) corpus: every Markdown file of tests/corpus/ and tests/corpus/dialects/, and the two
    HTML documents there that bring their own stylesheet (invoice, report: folder jobs),
    to PDF. spoold: a daemon with 2 workers, every job renamed into inbox/ at once in name
    order, timed to the last final event. Bare: a warm ProcessPoolExecutor(2) calling
    markdown-it-py (CommonMark, tables, strikethrough) and WeasyPrint on each document in
    the same order (an HTML file: WeasyPrint on the file). Neither side reads the network
    (WeasyPrint's fetcher gets data: and file: only). The two sides alternate, round after
    round; each round prints wall and CPU seconds of both and the load average.
(b) latency: a 10-page document (generated, bench/common.py) and a 20-page real one
    (tests/corpus/python-markdown-extension-api.md), alone on an idle 2-worker daemon
    (rename into inbox/ to its job.succeeded line) against one bare call in a warm
    process, samples alternating; medians and their ratio.

(s) split (`--only split`): where laying a medium document out in parts on idle
    workers starts to pay. Generated documents of 3-20 pages and the real 20-page one,
    one at a time, on two idle daemons (one always splitting on idle workers whatever
    the machine's load, one never: SPOOLD_PARTS_IDLE_SPLIT_ABOVE) and one bare call,
    samples alternating. Also each daemon's time projected on 2 idle cores from the
    manifests' CPU seconds (split, stamp and merge in turn, the parts side by side).
(c) docx: the corpus's Markdown files to DOCX, spoold (2 workers) against pandoc
    (`-f markdown -t docx`, two processes at a time), rounds alternating.

Targets (issue 23): corpus spoold / bare <= 1.05; a 10-20 page document <= 0.7x one
bare call; DOCX pandoc / spoold >= 8.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from common import (
    ROOT,
    Daemon,
    EventTail,
    corpus,
    make_spool,
    report,
    run_batch,
    temp_dir,
    wait_finished,
    warm_workers,
)

from spoold.daemon.cores import WINDOW_S as IDLE_WINDOW_S

BENCH = "compare"
CORPUS = ROOT / "tests" / "corpus"
HTML_FOLDERS = ("invoice", "report")
REAL_MEDIUM = CORPUS / "python-markdown-extension-api.md"


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# ------------------------------------------------------------------ the documents


def corpus_jobs(tmp: Path) -> list[tuple[str, Path]]:
    """(entry name, path) in name order: Markdown files, and HTML folders (copied)."""
    jobs = [(p.name, p) for p in sorted(CORPUS.glob("*.md")) if p.name != "SOURCES.md"]
    jobs += [(p.name, p) for p in sorted((CORPUS / "dialects").glob("*.md"))]
    for name in HTML_FOLDERS:
        folder = tmp / "html" / name
        shutil.copytree(CORPUS / "dialects" / name, folder, dirs_exist_ok=True)
        jobs.append((name, folder))
    return sorted(jobs)


# ------------------------------------------------------------------ the bare engine


def bare_convert(job: tuple[str, str, str]) -> float:
    """One document with WeasyPrint alone (CPU seconds): what a script around it does."""
    import weasyprint
    from markdown_it import MarkdownIt
    from weasyprint.urls import URLFetcher

    cpu0 = time.process_time()
    _, source, out = job
    path = Path(source)
    fetcher = URLFetcher(allowed_protocols=("data", "file"))
    if path.is_dir():
        html = weasyprint.HTML(filename=str(next(path.glob("*.html"))), url_fetcher=fetcher)
    else:
        text = path.read_text(encoding="utf-8")
        body = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text)
        html = weasyprint.HTML(
            string=f"<!DOCTYPE html><html><body>{body}</body></html>",
            base_url=str(path.parent) + "/",
            url_fetcher=fetcher,
        )
    html.write_pdf(out)
    return time.process_time() - cpu0


def bare_pool(workers: int, warm: tuple[str, str, str]) -> concurrent.futures.ProcessPoolExecutor:
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, initializer=bare_convert, initargs=(warm,)
    )
    # Sleeps on every worker at once: each exists and has run its warm-up conversion.
    list(pool.map(time.sleep, [0.5] * workers))
    return pool


def run_bare(
    pool: concurrent.futures.ProcessPoolExecutor, jobs: list[tuple[str, Path]], out: Path
) -> tuple[float, float]:
    """(wall, CPU seconds) for the jobs on the warm pool, in order."""
    tasks = [(name, str(path), str(out / f"{name}.pdf")) for name, path in jobs]
    t0 = time.monotonic()
    cpu = sum(pool.map(bare_convert, tasks))
    return time.monotonic() - t0, cpu


# ------------------------------------------------------------------ spoold


def stage(spool: Path, name: str, path: Path) -> tuple[Path, Path]:
    staged = spool / "tmp" / f".{name}.staging"
    if path.is_dir():
        shutil.copytree(path, staged)
    else:
        shutil.copyfile(path, staged)
    return staged, spool / "inbox" / name


def run_spoold(daemon: Daemon, tail: EventTail, jobs: list[tuple[str, Path]], tag: str) -> Any:
    """(wall, daemon + worker CPU seconds, failed) for one batch through a warm daemon."""
    pairs = [stage(daemon.spool, f"{tag}-{name}", path) for name, path in jobs]
    return run_batch(daemon.pid, daemon.spool, tail, pairs, timeout=600)


def bench_corpus(tmp: Path, rounds: int) -> None:
    jobs = corpus_jobs(tmp)
    report(BENCH, "corpus_documents", len(jobs), "jobs", load=load())
    # Every round converts again: the same input would otherwise be a duplicate.
    spool = make_spool(tmp, "corpus", targets=["pdf"], on_duplicate="rerun")
    walls: dict[str, list[float]] = {"bare": [], "spoold": []}
    cpus: dict[str, list[float]] = {"bare": [], "spoold": []}
    (tmp / "bare").mkdir()
    warm = ("warm", str(jobs[0][1]), str(tmp / "bare" / "warm.pdf"))
    with Daemon(spool, workers=2) as daemon, bare_pool(2, warm) as pool:
        daemon.wait_ready()
        tail = warm_workers(spool, jobs[0][1].read_text(encoding="utf-8"))
        for r in range(rounds):
            wall, cpu = run_bare(pool, jobs, tmp / "bare")
            walls["bare"].append(wall)
            cpus["bare"].append(cpu)
            before = load()
            wall, cpu, failed = run_spoold(daemon, tail, jobs, f"r{r}")
            walls["spoold"].append(wall)
            cpus["spoold"].append(cpu)
            print(
                f"  round {r + 1}: bare {walls['bare'][-1]:.2f} s wall / {cpus['bare'][-1]:.2f} s"
                f" CPU, spoold {wall:.2f} s / {cpu:.2f} s ({wall / walls['bare'][-1]:.3f}x)"
                f"{f', {failed} failed' if failed else ''}; load {before}",
                flush=True,
            )
    ratios = [s / b for s, b in zip(walls["spoold"], walls["bare"], strict=True)]
    report(BENCH, "corpus_bare_wall", min(walls["bare"]), "s", runs=walls["bare"])
    report(BENCH, "corpus_spoold_wall", min(walls["spoold"]), "s", runs=walls["spoold"])
    report(
        BENCH,
        "corpus_ratio_spoold_over_bare",
        statistics.median(ratios),
        "x (median of rounds)",
        "<= 1.05",
        rounds=[round(x, 3) for x in ratios],
        best_of=round(min(walls["spoold"]) / min(walls["bare"]), 3),
    )
    report(BENCH, "corpus_cpu_bare", min(cpus["bare"]), "s", runs=cpus["bare"])
    report(BENCH, "corpus_cpu_spoold", min(cpus["spoold"]), "s", runs=cpus["spoold"])
    report(BENCH, "corpus_cpu_ratio", min(cpus["spoold"]) / min(cpus["bare"]), "x", load=load())


# ------------------------------------------------------------------ latency


def timed_job(spool: Path, tail: EventTail, name: str, text: str) -> tuple[float, dict[str, Any]]:
    """(seconds from the rename into inbox/ to its final event, the job's manifest)."""
    staged = spool / "tmp" / f".{name}.staging"
    staged.write_text(text, encoding="utf-8")
    t0 = time.monotonic()
    os.rename(staged, spool / "inbox" / name)
    event = wait_finished(tail, {name}, timeout=300, poll_s=0.002)[name]
    wall = time.monotonic() - t0
    if event["event"] != "job.succeeded":
        raise RuntimeError(f"{name}: {event.get('message')}")
    return wall, json.loads((spool / event["path"] / "manifest.json").read_text())


def idle_cores_s(manifest: dict[str, Any]) -> float:
    """The job's time on 2 otherwise idle cores, from its CPU seconds: the split,
    stamp and merge one after another, the parts two at a time (greedily)."""
    cpu = float((manifest["attempts"][-1].get("usage") or {}).get("cpu_s", 0.0))
    parts = (manifest.get("parts") or {}).get("cpu_s") or []
    lanes = [0.0, 0.0]
    for part in parts:
        lanes[lanes.index(min(lanes))] += part
    return cpu - sum(parts) + max(lanes)


def one_bare(pool: concurrent.futures.ProcessPoolExecutor, source: Path, out: Path) -> float:
    t0 = time.monotonic()
    pool.submit(bare_convert, ("one", str(source), str(out))).result()
    return time.monotonic() - t0


def bench_latency(tmp: Path, samples: int) -> None:
    generated = dict(corpus())["doc-09.md"]  # about 10 pages
    documents = [("10-page", generated), ("20-page", REAL_MEDIUM.read_text(encoding="utf-8"))]
    spool = make_spool(tmp, "latency", targets=["pdf"], on_duplicate="rerun")
    (tmp / "one").mkdir()
    warm = ("warm", str(REAL_MEDIUM), str(tmp / "one" / "warm.pdf"))
    with Daemon(spool, workers=2) as daemon, bare_pool(1, warm) as pool:
        daemon.wait_ready()
        tail = warm_workers(spool, generated)
        for label, text in documents:
            bare, ours, parts = [], [], []
            for i in range(samples):
                source = tmp / "one" / f"{label}.md"
                source.write_text(text, encoding="utf-8")
                bare.append(one_bare(pool, source, tmp / "one" / f"{label}-{i}.pdf"))
                # An idle daemon on an idle machine: the bare call's layout is another
                # process's work in the window the daemon reads idle cores from.
                time.sleep(IDLE_WINDOW_S)
                wall, manifest = timed_job(spool, tail, f"{label}-{i}.md", text)
                ours.append(wall)
                # 1: laid out whole (no idle core was seen as the job started)
                parts.append(len((manifest.get("parts") or {}).get("cpu_s") or []) or 1)
            report(BENCH, f"latency_{label}_bare", statistics.median(bare), "s", runs=bare)
            report(BENCH, f"latency_{label}_spoold", statistics.median(ours), "s", runs=ours)
            report(BENCH, f"latency_{label}_parts_per_sample", " ".join(map(str, parts)))
            report(
                BENCH,
                f"latency_{label}_ratio",
                statistics.median(ours) / statistics.median(bare),
                "x",
                "<= 0.7",
                load=load(),
            )


# ------------------------------------------------------------------ split threshold

SPLIT_DOCS = ("doc-02.md", "doc-04.md", "doc-06.md", "doc-09.md", "doc-14.md", "doc-19.md")


def bench_split(tmp: Path, samples: int) -> None:
    from spoold.convert.markdown import markdown_to_html
    from spoold.convert.parts.plan import ELEMENT_COST

    generated = dict(corpus())
    docs = [(name, generated[name]) for name in SPLIT_DOCS]
    docs.append(("ext-api", REAL_MEDIUM.read_text(encoding="utf-8")))
    (tmp / "one").mkdir()
    warm = ("warm", str(REAL_MEDIUM), str(tmp / "one" / "warm.pdf"))
    env = {"always": "1", "never": str(10**12)}
    spools = {k: make_spool(tmp, f"split-{k}", targets=["pdf"], on_duplicate="rerun") for k in env}
    with (
        Daemon(
            spools["always"],
            env={"SPOOLD_PARTS_IDLE_SPLIT_ABOVE": env["always"], "SPOOLD_PARTS_IGNORE_LOAD": "1"},
        ) as split,
        Daemon(spools["never"], env={"SPOOLD_PARTS_IDLE_SPLIT_ABOVE": env["never"]}) as whole,
        bare_pool(1, warm) as pool,
    ):
        split.wait_ready()
        whole.wait_ready()
        tails = {k: warm_workers(spools[k], docs[0][1]) for k in env}
        for label, text in docs:
            html = markdown_to_html(text, "x", {}, lambda _: None)
            cost = len(html) + ELEMENT_COST * (html.count("<") + 2)
            times: dict[str, list[float]] = {"bare": [], "always": [], "never": []}
            idle: dict[str, list[float]] = {"always": [], "never": []}
            source = tmp / "one" / f"{label}.md"
            source.write_text(text, encoding="utf-8")
            for i in range(samples):
                times["bare"].append(one_bare(pool, source, tmp / "one" / f"{label}-{i}.pdf"))
                for k in env:
                    wall, manifest = timed_job(spools[k], tails[k], f"{label}-{i}.md", text)
                    times[k].append(wall)
                    idle[k].append(idle_cores_s(manifest))
            med = {k: statistics.median(v) for k, v in times.items()}
            cores = {k: statistics.median(v) for k, v in idle.items()}
            print(
                f"  {label}: cost {cost}, bare {med['bare']:.3f} s, whole {med['never']:.3f} s,"
                f" split {med['always']:.3f} s (split / whole {med['always'] / med['never']:.3f});"
                f" on 2 idle cores from CPU: whole {cores['never']:.3f} s, split"
                f" {cores['always']:.3f} s ({cores['always'] / cores['never']:.3f}); load {load()}",
                flush=True,
            )
            report(
                BENCH,
                f"split_{label}",
                med["always"] / med["never"],
                "x (split / whole, medians)",
                cost=cost,
                bare_s=round(med["bare"], 3),
                whole_s=round(med["never"], 3),
                split_s=round(med["always"], 3),
                split_over_bare=round(med["always"] / med["bare"], 3),
                idle_cores_ratio=round(cores["always"] / cores["never"], 3),
                load=load(),
            )


# ------------------------------------------------------------------ docx


def run_pandoc(jobs: list[tuple[str, Path]], out: Path) -> float:
    def one(job: tuple[str, Path]) -> None:
        name, path = job
        cmd = ["pandoc", "-f", "markdown", "-t", "docx", "-o", str(out / f"{name}.docx")]
        # stderr: its warnings about images it cannot fetch (no network here).
        subprocess.run([*cmd, str(path)], cwd=path.parent, check=True, stderr=subprocess.DEVNULL)

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(one, jobs))
    return time.monotonic() - t0


def bench_docx(tmp: Path, rounds: int) -> None:
    if shutil.which("pandoc") is None:
        print("docx: skipped, pandoc is not installed")
        return
    jobs = [(name, path) for name, path in corpus_jobs(tmp) if path.suffix == ".md"]
    spool = make_spool(tmp, "docx", targets=["docx"], on_duplicate="rerun")
    (tmp / "pandoc").mkdir()
    run_pandoc(jobs[:1], tmp / "pandoc")  # page cache and pandoc's data files
    pandoc: list[float] = []
    ours: list[float] = []
    cpus: list[float] = []
    with Daemon(spool, workers=2) as daemon:
        daemon.wait_ready()
        tail = warm_workers(spool, jobs[0][1].read_text(encoding="utf-8"))
        for r in range(rounds):
            pandoc.append(run_pandoc(jobs, tmp / "pandoc"))
            before = load()
            wall, cpu, failed = run_spoold(daemon, tail, jobs, f"d{r}")
            ours.append(wall)
            cpus.append(cpu)
            # CPU (daemon + workers): what a shared machine's load moves least.
            print(
                f"  round {r + 1}: pandoc {pandoc[-1]:.2f} s, spoold {wall:.2f} s"
                f" ({pandoc[-1] / wall:.2f}x), spoold CPU {cpu:.2f} s"
                f"{f', {failed} failed' if failed else ''}; load {before}",
                flush=True,
            )
    report(BENCH, "docx_pandoc_wall", min(pandoc), "s", docs=len(jobs), runs=pandoc)
    report(BENCH, "docx_spoold_wall", min(ours), "s", docs=len(jobs), runs=ours)
    report(BENCH, "docx_spoold_cpu", min(cpus), "s", docs=len(jobs), runs=cpus)
    ratios = [p / s for p, s in zip(pandoc, ours, strict=True)]
    report(
        BENCH,
        "docx_ratio_pandoc_over_spoold",
        statistics.median(ratios),
        "x (median of rounds)",
        ">= 8",
        rounds=[round(x, 2) for x in ratios],
        load=load(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--only", choices=("corpus", "latency", "docx", "split"))
    args = parser.parse_args()
    with temp_dir() as tmp:
        if args.only in (None, "corpus"):
            bench_corpus(tmp, args.rounds)
        if args.only in (None, "latency"):
            bench_latency(tmp, args.samples)
        if args.only == "split":
            bench_split(tmp, args.samples)
        if args.only in (None, "docx"):
            bench_docx(tmp, args.rounds)


if __name__ == "__main__":
    main()
