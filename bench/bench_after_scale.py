"""What jobs that wait (job.json `after`) cost a daemon with a long inbox.

In-process, with the daemon's own pieces: an inbox of N queued files (100, then
10,000) plus W job folders whose job.json waits for a job in running/. Printed:

- the tracker's scan of the whole inbox, and the accept step (`Admission.accept`'s
  job.json read: the waiting folders go to the waiting room, the files to the
  scheduler), per entry: jobs without `after` cost what they did before;
- one evaluation round of the W waiting jobs (what the daemon does about once a
  second while jobs wait): the folders looked at again (the tracker's inbox, running/)
  and every condition evaluated. It grows with the inbox (one pass over the tracker's
  entries per round), not with W times the inbox.

Appended to bench/results/latest.ndjson; nothing is asserted.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from common import make_spool, report, temp_dir

from spoold.daemon.inbox.tracker import InboxTracker
from spoold.settings import DEFAULT_IGNORE
from spoold.spool.after import Found, JobPhase, after_of, read_job_json
from spoold.spool.entries import EntryKind
from spoold.spool.protocol import SpoolPaths, job_dir_name, running_name
from spoold.spool.waits import InboxItem, SpoolIndex, evaluate

BENCH = "after_scale"
WAITING = 20
ROUNDS = 20


def fill(paths: SpoolPaths, n: int) -> None:
    for i in range(n):
        (paths.inbox / f"q{i:06d}.md").write_bytes(b"# q\n")
    for i in range(WAITING):
        folder = paths.inbox / f"w{i:03d}"
        folder.mkdir()
        (folder / "doc.md").write_text("# w\n")
        (folder / "job.json").write_text(json.dumps({"after": ["report.md"]}))
    running = paths.running / running_name(job_dir_name("report.md", "20261206T000000Z-0"), 1, "0")
    (running / "input").mkdir(parents=True)
    (running / "input" / "report.md").write_text("# r\n")


def measure(parent: Path, n: int) -> None:
    paths = SpoolPaths(make_spool(parent, f"n{n}"))
    fill(paths, n)
    tracker = InboxTracker(paths.inbox, (), DEFAULT_IGNORE, 0.0, 3600)
    t0 = time.perf_counter()
    entries = tracker.scan(time.monotonic())
    scan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    waiting = []
    for entry in entries:  # what Admission.accept reads
        if entry.kind is EntryKind.DIR:
            refs = after_of(read_job_json(paths.inbox / entry.key))
            if refs:
                waiting.append((entry, refs))
    accept_s = time.perf_counter() - t0
    assert len(waiting) == WAITING

    def items() -> list[InboxItem]:
        return [
            InboxItem(k, e.name, e.kind is EntryKind.REQUEUED)
            for k, e in list(tracker.entries.items())
            if not e.gone
        ]

    index = SpoolIndex(paths, items)
    t0 = time.perf_counter()
    for _ in range(ROUNDS):
        index.refresh()
        for entry, refs in waiting:
            me = Found(f"inbox/{entry.key}", None, entry.name, "queued", JobPhase.QUEUED, False)
            assert not evaluate(index, me, refs).met
    round_s = (time.perf_counter() - t0) / ROUNDS
    total = n + WAITING
    report(BENCH, f"scan_us_per_entry_{n}", scan_s / total * 1e6, "us", entries=total)
    report(BENCH, f"accept_us_per_entry_{n}", accept_s / total * 1e6, "us")
    report(BENCH, f"waiting_round_ms_{n}", round_s * 1e3, "ms", waiting=WAITING, every_s=1.0)


def main() -> None:
    with temp_dir() as tmp:
        for n in (100, 10_000):
            measure(tmp, n)
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
