"""Latency of one tiny job: staged rename into inbox/ -> job.succeeded in the events log.

Sequential (one job in flight), daemon warm, 2 workers. The bench polls the events log
every 0.5 ms rather than spinning, so it does not steal a core from the daemon.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from common import (
    Daemon,
    EventTail,
    make_spool,
    percentile,
    report,
    stage_files,
    temp_dir,
    tiny_markdown,
)

BENCH = "latency"


def one(
    spool_tail: EventTail, staged: os.PathLike[str], final: os.PathLike[str], name: str
) -> float:
    t0 = time.monotonic()
    os.rename(staged, final)
    while True:
        for ev in spool_tail.read():
            if ev.get("name") == name and ev.get("event") in ("job.succeeded", "job.failed"):
                if ev["event"] != "job.succeeded":
                    raise RuntimeError(f"{name} failed: {ev.get('message')}")
                return time.monotonic() - t0
        time.sleep(0.0005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    total = args.warmup + args.samples
    with temp_dir() as tmp:
        spool = make_spool(tmp, targets=["html"])
        with Daemon(spool, workers=2) as daemon:
            daemon.wait_ready()
            pairs = stage_files(spool, [(f"l{i:04d}.md", tiny_markdown(i)) for i in range(total)])
            tail = EventTail(spool)
            samples = []
            for i, (staged, final) in enumerate(pairs):
                took = one(tail, staged, final, final.name)
                if i >= args.warmup:
                    samples.append(took * 1000)
    report(BENCH, "latency_median", statistics.median(samples), "ms", "<= 20", samples=len(samples))
    report(BENCH, "latency_p95", percentile(samples, 95), "ms", samples=len(samples))
    report(BENCH, "latency_max", max(samples), "ms", samples=len(samples))


if __name__ == "__main__":
    main()
