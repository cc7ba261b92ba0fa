"""Tiny Markdown -> HTML jobs per second through a real daemon (2 workers).

2,000 unique tiny files are staged in tmp/, then renamed into inbox/ as fast as
possible, once the daemon and all its workers have started; the clock runs from the
first rename until the last job's final event.
Run durable (fsync, the default) and with `durable = false`, on the default temp
filesystem; then both again on /dev/shm (tmpfs), which takes the disk out and leaves
the daemon's own CPU cost. Each run also reports CPU milliseconds per job of the
daemon process (all its threads) and of the worker processes: on 2 cores their sum
bounds the rate at 2000 / (daemon + workers) jobs/s.
"""

from __future__ import annotations

import argparse
import os
import time

from common import (
    Daemon,
    EventTail,
    cpu_s,
    fs_baseline,
    make_spool,
    pool_cpu_s,
    report,
    stage_files,
    temp_dir,
    tiny_markdown,
    wait_finished,
)

BENCH = "throughput"


def run(jobs: int, durable: bool, base: str | None) -> tuple[float, int, float, float]:
    """(seconds, failed jobs, daemon CPU ms per job, worker CPU ms per job)."""
    with temp_dir(base=base) as tmp:
        spool = make_spool(tmp, targets=["html"], durable=durable)
        with Daemon(spool, workers=2) as daemon:
            daemon.wait_ready()
            pairs = stage_files(spool, [(f"t{i:05d}.md", tiny_markdown(i)) for i in range(jobs)])
            tail = EventTail(spool)
            cpu0, pool0 = cpu_s(daemon.pid), pool_cpu_s(daemon.pid)
            t0 = time.monotonic()
            for staged, final in pairs:
                os.rename(staged, final)
            finished = wait_finished(tail, {final.name for _, final in pairs}, timeout=240)
            elapsed = time.monotonic() - t0
            daemon_ms = (cpu_s(daemon.pid) - cpu0) / jobs * 1000
            workers_ms = (pool_cpu_s(daemon.pid) - pool0) / jobs * 1000
        failed = sum(1 for ev in finished.values() if ev["event"] != "job.succeeded")
        return elapsed, failed, daemon_ms, workers_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--no-tmpfs", action="store_true", help="skip the /dev/shm runs")
    args = parser.parse_args()
    bases: list[tuple[str, str | None]] = [("disk", None)]
    if not args.no_tmpfs and os.path.isdir("/dev/shm"):
        bases.append(("tmpfs", "/dev/shm"))
    for fs, base in bases:
        with temp_dir(base=base) as tmp:
            for key, value in fs_baseline(tmp).items():
                report(BENCH, f"fs_{fs}_{key}", value, "us")
        for durable in (True, False):
            label = f"{fs}_{'durable' if durable else 'not_durable'}"
            elapsed, failed, daemon_ms, workers_ms = run(args.jobs, durable, base)
            if failed:
                report(BENCH, f"throughput_{label}_failed_jobs", failed, "jobs")
            report(BENCH, f"cpu_{label}_daemon", daemon_ms, "ms/job")
            report(BENCH, f"cpu_{label}_workers", workers_ms, "ms/job")
            load = " ".join(f"{v:.2f}" for v in os.getloadavg())
            report(
                BENCH,
                f"throughput_{label}",
                args.jobs / elapsed,
                f"jobs/s (load {load})",
                ">= 1000",
                jobs=args.jobs,
                seconds=round(elapsed, 3),
                load=load,
            )


if __name__ == "__main__":
    main()
