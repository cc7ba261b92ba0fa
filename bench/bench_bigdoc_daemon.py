"""Big documents through the daemon: a split PDF job on 2 workers against one bare call.

(a) A long Markdown changelog (pass real ones with --changelog, concatenated in the
    order given; without any, the generated release history of bench_bigdoc.py) becomes
    one HTML file through spoold's md->html converter. In the same run: one bare
    `weasyprint.HTML(...).write_pdf()` on that HTML in a child process, then the same
    HTML dropped into a spool served by `spoold run --workers 2` with
    memory_limit_mb = 1024 (timed from the rename into inbox/ to job.succeeded).
    Printed: both times and their ratio (target <= 0.6), the peak RSS of every worker
    (VmHWM, sampled so recycled workers count too), the manifest's parts and usage,
    page counts (target: within 3 %), pdftotext words identical (page-number lines
    aside), outlines equal, internal links resolving.
(b) The 30,000-row table (tests.bigdoc.export_table) through the same daemon: time,
    parts, peak RSS per worker.

The load average is printed with the figures: the machine may be shared. Figures are
appended to bench/results/latest.ndjson; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from bench_bigdoc import (
    bare_layout,
    export_table_file,
    markdown_source,
    markdown_to_html_file,
    report_fidelity,
    two_core_span,
    with_contents,
)
from common import Daemon, EventTail, make_spool, report, temp_dir, wait_finished, worker_pids

BENCH = "bigdoc_daemon"
MEMORY_LIMIT_MB = 1024


class PeakRss:
    """The daemon's workers' peak RSS (VmHWM), sampled until stopped."""

    def __init__(self, daemon_pid: int, every_s: float = 0.2) -> None:
        self.daemon_pid = daemon_pid
        self.every_s = every_s
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for pid in worker_pids(self.daemon_pid):
                hwm = _vm_hwm_mb(pid)
                if hwm:
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), hwm)

    def stop(self) -> dict[int, float]:
        self._stop.set()
        self._thread.join()
        return self.peaks


def _vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def through_daemon(
    tmp: Path, source: Path, name: str, timeout: float, target: str = "pdf"
) -> dict[str, Any]:
    """One job of `source` (as `name`) through a fresh 2-worker daemon."""
    spool = make_spool(
        tmp,
        f"spool-{name.split('.')[0]}-{target}",
        targets=[target],
        memory_limit_mb=MEMORY_LIMIT_MB,
        cpu_limit_s=3600,
        timeout_s=timeout,
        settle_ms=200,
        max_attempts=1,
    )
    staged = spool / "tmp" / f".{name}.staging"
    staged.write_bytes(source.read_bytes())
    with Daemon(spool, workers=2) as daemon:
        daemon.wait_ready()
        time.sleep(1.0)  # the pool's workers forked and imported (not part of a job)
        sampler = PeakRss(daemon.pid)
        tail = EventTail(spool)
        t0 = time.monotonic()
        os.rename(staged, spool / "inbox" / name)
        event = wait_finished(tail, {name}, timeout=timeout + 60)[name]
        wall = time.monotonic() - t0
        peaks = sampler.stop()
    manifest = json.loads((spool / event["path"] / "manifest.json").read_text())
    pdf = spool / event["path"] / (Path(name).stem + "." + target)
    return {
        "event": event["event"],
        "wall_s": wall,
        "manifest": manifest,
        "pdf": pdf,
        "worker_peak_rss_mb": sorted(round(v, 1) for v in peaks.values()),
    }


def bench_markdown(tmp: Path, sources: list[Path]) -> None:
    text, what = markdown_source(sources)
    text, contents = with_contents(text, tmp)
    what += f", with a contents list of {contents} internal links"
    html = markdown_to_html_file(text, tmp)
    report(BENCH, "md_source", what, md_bytes=len(text.encode()), html_bytes=html.stat().st_size)
    report(BENCH, "load_average_before", load())
    bare = bare_layout(html, tmp / "bare.pdf", None, timeout=1800)
    if not bare["ok"]:
        report(BENCH, "md_bare_failed", str(bare["error"]))
        return
    report(BENCH, "md_bare_wall", bare["wall_s"], "s", pages=bare["pages"], cpu_s=bare["cpu_s"])
    report(BENCH, "md_bare_peak_rss", bare["peak_rss_mb"], "MB", load=load())
    run = through_daemon(tmp, html, "CHANGELOG.html", timeout=1800)
    m = run["manifest"]
    if run["event"] != "job.succeeded":
        report(BENCH, "md_daemon_failed", json.dumps(m.get("error")))
        return
    usage = m["attempts"][-1]["usage"]
    report(BENCH, "md_daemon_wall", run["wall_s"], "s", cpu_s=usage["cpu_s"], load=load())
    ratio = run["wall_s"] / bare["wall_s"]
    report(BENCH, "md_ratio_daemon_over_bare", ratio, "x", "<= 0.6")
    # The machine may be shared: the same run on 2 idle cores, from CPU seconds (the
    # split and merge runs serial, the parts greedily on 2 workers).
    part_cpu = (m.get("parts") or {}).get("cpu_s") or []
    serial = usage["cpu_s"] - sum(part_cpu)
    idle = (serial + two_core_span(part_cpu)) / bare["cpu_s"]
    report(
        BENCH,
        "md_ratio_on_2_idle_cores_from_cpu",
        idle,
        "x",
        "<= 0.6",
        split_and_merge_cpu_s=round(serial, 2),
        part_cpu_s=part_cpu,
    )
    report(
        BENCH,
        "md_worker_peak_rss",
        max(run["worker_peak_rss_mb"]),
        "MB",
        per_worker=run["worker_peak_rss_mb"],
        manifest_peak=usage["peak_rss_mb"],
        memory_limit_mb=MEMORY_LIMIT_MB,
    )
    report(
        BENCH,
        "md_parts",
        (m.get("parts") or {}).get("count", 1),
        "parts",
        pages=(m.get("parts") or {}).get("pages"),
    )
    pages = m["artifacts"][0]["pages"]
    report_fidelity(BENCH, bare, tmp / "bare.pdf", run["pdf"], pages, "daemon")


def bench_docx(tmp: Path, sources: list[Path]) -> None:
    """The same Markdown to DOCX through the daemon under the same memory limit."""
    text, what = markdown_source(sources)
    source = tmp / "CHANGELOG-docx.md"
    source.write_text(text, encoding="utf-8")
    run = through_daemon(tmp, source, "CHANGELOG-docx.md", timeout=1800, target="docx")
    m = run["manifest"]
    if run["event"] != "job.succeeded":
        report(BENCH, "docx_daemon_failed", json.dumps(m.get("error")), source=what)
        return
    usage = m["attempts"][-1]["usage"]
    report(
        BENCH,
        "docx_daemon_wall",
        run["wall_s"],
        "s",
        cpu_s=usage["cpu_s"],
        size=m["artifacts"][0]["size"],
        load=load(),
    )
    report(
        BENCH,
        "docx_worker_peak_rss",
        max(run["worker_peak_rss_mb"]),
        "MB",
        per_worker=run["worker_peak_rss_mb"],
        manifest_peak=usage["peak_rss_mb"],
        memory_limit_mb=MEMORY_LIMIT_MB,
    )


def bench_table(tmp: Path, rows: int) -> None:
    html = export_table_file(tmp, rows, BENCH, load=load())
    run = through_daemon(tmp, html, "export.html", timeout=3600)
    m = run["manifest"]
    if run["event"] != "job.succeeded":
        report(BENCH, "table_daemon_failed", json.dumps(m.get("error")))
        return
    usage = m["attempts"][-1]["usage"]
    parts = m.get("parts") or {}
    report(
        BENCH,
        "table_daemon_wall",
        run["wall_s"],
        "s",
        cpu_s=usage["cpu_s"],
        pages=m["artifacts"][0]["pages"],
        parts=parts.get("count", 1),
        load=load(),
    )
    part_cpu = parts.get("cpu_s") or []
    serial = usage["cpu_s"] - sum(part_cpu)
    report(
        BENCH,
        "table_on_2_idle_cores_from_cpu",
        serial + two_core_span(part_cpu),
        "s",
        split_and_merge_cpu_s=round(serial, 2),
    )
    report(
        BENCH,
        "table_worker_peak_rss",
        max(run["worker_peak_rss_mb"]),
        "MB",
        per_worker=run["worker_peak_rss_mb"],
        manifest_peak=usage["peak_rss_mb"],
        memory_limit_mb=MEMORY_LIMIT_MB,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changelog", type=Path, action="append", default=[])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--only", choices=("md", "docx", "table"))
    args = parser.parse_args()
    with temp_dir() as tmp:
        if args.only in (None, "md"):
            bench_markdown(tmp, args.changelog)
        if args.only in (None, "docx"):
            bench_docx(tmp, args.changelog)
        if args.only in (None, "table"):
            bench_table(tmp, args.rows)


if __name__ == "__main__":
    main()
