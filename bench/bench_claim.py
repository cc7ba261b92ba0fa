"""Claim cost with 100 vs 100,000 jobs queued, and daemon memory at 100,000 queued.

SPEC 2: claiming must not grow with the length of the inbox. In-process, with the
daemon's own pieces: an InboxTracker scans the inbox (timed on its own), a Scheduler
holds the ready entries, and each claim is what Daemon._claim does to the queue and
the folders: pop, claim_entry (mkdir + rename), tracker.drop.

Then a real daemon on a spool with 100,000 queued files, twice: files still inside
their settle window (settle_ms = 600000; created in inbox/ directly, so no rename hint
makes them complete) and files that are ready but not claimed (min_free_mb set far
above the free space, which pauses claiming). RSS is read once it stops changing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

from common import Daemon, cpu_s, make_spool, report, rss_mb, temp_dir

from spoold.daemon.inbox.tracker import InboxTracker
from spoold.daemon.scheduler import Candidate, Scheduler
from spoold.settings import DEFAULT_IGNORE
from spoold.spool.clock import new_job_id
from spoold.spool.protocol import SpoolPaths, claim_entry, job_dir_name, new_token

BENCH = "claim"
CLAIMS = 100


def fill_inbox(inbox: Path, n: int) -> None:
    for i in range(n):
        fd = os.open(inbox / f"q{i:06d}.md", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"# q\n")
        os.close(fd)


def setup(parent: Path, n: int) -> tuple[SpoolPaths, InboxTracker, Scheduler, float]:
    """A spool with n queued files, scanned and scheduled; returns the scan seconds."""
    root = make_spool(parent, f"n{n}")
    paths = SpoolPaths(root)
    fill_inbox(paths.inbox, n)
    tracker = InboxTracker(paths.inbox, (), DEFAULT_IGNORE, 0.0, 3600)
    scheduler = Scheduler()
    t0 = time.perf_counter()
    now, wall = time.monotonic(), time.time()
    for entry in tracker.scan(now):
        scheduler.push(Candidate(root.name, entry, 50), wall)
    scan_s = time.perf_counter() - t0
    assert scheduler.ready_count() == n
    return paths, tracker, scheduler, scan_s


def claim_batch(paths: SpoolPaths, tracker: InboxTracker, scheduler: Scheduler) -> float:
    """Pop and claim CLAIMS jobs; return microseconds per claim."""
    token = new_token()
    t0 = time.perf_counter()
    for _ in range(CLAIMS):
        cand = scheduler.pop(time.time())
        assert cand is not None
        entry = cand.entry
        job_id = new_job_id()
        folder = claim_entry(
            paths, entry.key, entry.name, job_dir_name(entry.name, job_id), 1, token
        )
        tracker.drop(entry.key)
        assert folder is not None
    per_claim = (time.perf_counter() - t0) / CLAIMS * 1e6
    # Empty running/ again (untimed) so every batch starts alike.
    for name in os.listdir(paths.running):
        shutil.rmtree(paths.running / name)
    return per_claim


def claim_cost(big: int, rounds: int, fs: str, base: str | None) -> None:
    with temp_dir(base=base) as tmp:
        paths, tracker, scheduler, big_scan = setup(tmp, big)
        small_costs, small_scans, big_costs = [], [], []
        # Small and big batches alternate, so a burst of other load on the machine
        # (or of the disk's writeback) hits both sides alike; medians are reported.
        for r in range(rounds):
            s_paths, s_tracker, s_scheduler, scan_s = setup(tmp / f"small{r}", CLAIMS)
            small_scans.append(scan_s)
            small_costs.append(claim_batch(s_paths, s_tracker, s_scheduler))
            big_costs.append(claim_batch(paths, tracker, scheduler))
    small, large = statistics.median(small_costs), statistics.median(big_costs)
    report(BENCH, f"scan_{CLAIMS}_queued_{fs}", statistics.median(small_scans) * 1000, "ms")
    report(BENCH, f"scan_{big}_queued_{fs}", big_scan * 1000, "ms")
    report(BENCH, f"claim_{CLAIMS}_queued_{fs}", small, "us/claim", runs=small_costs)
    report(BENCH, f"claim_{big}_queued_{fs}", large, "us/claim", runs=big_costs)
    report(BENCH, f"claim_ratio_{big}_over_{CLAIMS}_{fs}", large / small, "x", "<= 1.2")


def settled_rss(pid: int, timeout: float = 180) -> float:
    """RSS once three samples 0.5 s apart agree within 1%."""
    samples: list[float] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples.append(rss_mb(pid))
        last = samples[-3:]
        if len(last) == 3 and max(last) - min(last) <= 0.01 * max(last):
            return last[-1]
        time.sleep(0.5)
    return samples[-1]


def daemon_memory(n: int) -> None:
    with temp_dir() as tmp:
        base = make_spool(tmp, "empty", targets=["html"])
        with Daemon(base, workers=2) as daemon:
            daemon.wait_ready()
            report(BENCH, "daemon_rss_empty_spool", settled_rss(daemon.pid), "MB")
    cases = {
        "settling": {"settle_ms": 600000},
        # 10**9 MB free is never there, so the daemon pauses and claims nothing.
        "ready_paused": {"settle_ms": 0, "min_free_mb": 10**9},
    }
    for label, settings in cases.items():
        with temp_dir() as tmp:
            spool = make_spool(tmp, targets=["html"])
            settings_text = (spool / "spool.toml").read_text().replace("min_free_mb = 0\n", "")
            (spool / "spool.toml").write_text(
                settings_text + "".join(f"{k} = {v}\n" for k, v in settings.items())
            )
            fill_inbox(spool / "inbox", n)
            with Daemon(spool, workers=2) as daemon:
                t0 = time.monotonic()
                daemon.wait_ready(timeout=180)
                rss = settled_rss(daemon.pid)
                settle_s = time.monotonic() - t0
                c0 = cpu_s(daemon.pid)
                time.sleep(5)
                busy = (cpu_s(daemon.pid) - c0) / 5 * 100
                queued = len(os.listdir(spool / "inbox"))
            report(BENCH, f"daemon_rss_{n}_queued_{label}", rss, "MB", queued=queued)
            report(BENCH, f"daemon_start_to_stable_rss_{label}", settle_s, "s")
            report(BENCH, f"daemon_idle_cpu_{n}_queued_{label}", busy, "% of a core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    # On tmpfs the figure is the daemon's own work (scheduler, tracker); on the disk,
    # mkdir and rename dominate and their cost varies with the disk's load.
    claim_cost(args.queued, args.rounds, "disk", None)
    if os.path.isdir("/dev/shm"):
        claim_cost(args.queued, args.rounds, "tmpfs", "/dev/shm")
    daemon_memory(args.queued)


if __name__ == "__main__":
    main()
