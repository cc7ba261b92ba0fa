"""Worker memory over many jobs: 2,000 tiny md->html jobs, then 500 md->pdf jobs.

A daemon with 2 workers and the default recycling (a worker is replaced after a job
that leaves it over `max_worker_rss_mb`, 512, or after `max_tasks_per_worker`, 10,000,
jobs); `--max-tasks N` and `--max-rss-mb N` set them. The RSS of the workers
(common.worker_pids) is sampled every 0.5 s; it should stay flat from start to end, and
the processes seen say how often a worker was replaced.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

from common import (
    Daemon,
    EventTail,
    corpus,
    make_spool,
    report,
    rss_mb,
    stage_files,
    temp_dir,
    tiny_markdown,
    wait_finished,
    worker_pids,
)

BENCH = "worker_memory"
ENV: dict[str, str] = {}  # the daemon's recycling settings, from the flags


class Sampler(threading.Thread):
    """Every 0.5 s: {worker pid: RSS MB} of the daemon's current workers."""

    def __init__(self, daemon_pid: int) -> None:
        super().__init__(daemon=True)
        self.daemon_pid = daemon_pid
        self.samples: list[dict[int, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            sample = {pid: rss_mb(pid) for pid in worker_pids(self.daemon_pid)}
            sample = {pid: mb for pid, mb in sample.items() if mb > 0}
            if sample:
                self.samples.append(sample)
            self.halt.wait(0.5)


def phase(label: str, target: str, items: list[tuple[str, bytes]]) -> None:
    with temp_dir() as tmp:
        spool = make_spool(tmp, targets=[target])
        with Daemon(spool, workers=2, env=ENV) as daemon:
            daemon.wait_ready()
            pairs = stage_files(spool, items)
            sampler = Sampler(daemon.pid)
            sampler.start()
            tail = EventTail(spool)
            for staged, final in pairs:
                os.rename(staged, final)
            finished = wait_finished(tail, {f.name for _, f in pairs}, timeout=240)
            time.sleep(0.6)  # one more sample after the last job
            sampler.halt.set()
            sampler.join()
            daemon_rss = rss_mb(daemon.pid)
    failed = sum(1 for ev in finished.values() if ev["event"] != "job.succeeded")
    samples = sampler.samples
    seen = {pid for s in samples for pid in s}
    n = len(items)
    for when, sample in (
        ("start", samples[0]),
        ("middle", samples[len(samples) // 2]),
        ("end", samples[-1]),
    ):
        report(
            BENCH,
            f"{label}_worker_rss_{when}",
            max(sample.values()),
            "MB (largest worker)",
            workers=len(sample),
            total_mb=round(sum(sample.values()), 1),
        )
    report(BENCH, f"{label}_worker_rss_peak", max(max(s.values()) for s in samples), "MB")
    report(BENCH, f"{label}_worker_processes_seen", len(seen), "pids", jobs=n, **ENV)
    report(BENCH, f"{label}_daemon_rss_end", daemon_rss, "MB")
    if failed:
        report(BENCH, f"{label}_failed_jobs", failed, "jobs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--html-jobs", type=int, default=2000)
    parser.add_argument("--pdf-jobs", type=int, default=500)
    parser.add_argument("--max-tasks", type=int, default=None, help="max_tasks_per_worker")
    parser.add_argument("--max-rss-mb", type=int, default=None, help="max_worker_rss_mb")
    args = parser.parse_args()
    if args.max_tasks is not None:
        ENV["SPOOLD_MAX_TASKS_PER_WORKER"] = str(args.max_tasks)
    if args.max_rss_mb is not None:
        ENV["SPOOLD_MAX_WORKER_RSS_MB"] = str(args.max_rss_mb)
    phase("html", "html", [(f"m{i:05d}.md", tiny_markdown(i)) for i in range(args.html_jobs)])

    from spoold.convert import get_converter, load_converters

    load_converters()
    if get_converter("md", "pdf") is None:
        print("skipped pdf phase: md->pdf not available")
        return
    # The corpus' 1-3 page documents in turn, each made unique (no duplicate reuse);
    # 500 jobs: with --max-tasks 200 each worker passes it at least once.
    docs = [text for _, text in corpus()[:3]]
    items = [
        (f"p{i:04d}.md", f"{docs[i % 3]}\n\nCopy {i}.\n".encode()) for i in range(args.pdf_jobs)
    ]
    phase("pdf", "pdf", items)


if __name__ == "__main__":
    main()
