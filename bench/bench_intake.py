"""The daemon's own CPU per job, in-process: single files against job folders, arriving
in one batch or one at a time (as HTTP uploads do).

The daemon's loop (`spoold.daemon.Daemon`) runs in this process with an executor that
"converts" each job at once (a tiny HTML artifact, no worker process), so the main
thread's CPU time (`time.thread_time`) is the daemon's path from detection to publish:
the tracker, admission, claim, intake, publish, the events log. Job folders are staged
as the HTTP gateway writes them (the document and a job.json with `main` and a chosen
`id`). The rename hint inotify would give is handed to the tracker directly. Rounds
alternate the kinds; the median of the rounds is printed, in µs per job, with the
folder's extra cost over a file. On a shared machine this is steadier than a real
daemon's process CPU (bench_throughput.py --entries both), which also counts its
threads and the pool's bookkeeping.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench_throughput import stage_folders
from common import make_spool, report, stage_files, temp_dir, tiny_markdown

from spoold.daemon import Daemon
from spoold.daemon.executor import Completed, Outcome
from spoold.daemon.listeners import Listener, Published
from spoold.settings import DaemonSettings
from spoold.spool.formats import artifact_name
from spoold.spool.records import Artifact
from spoold.worker.spec import JobSpec, WorkerResult

BENCH = "intake"


class Done:
    def __init__(self, outcome: Outcome) -> None:
        self._outcome = outcome

    def done(self) -> bool:
        return True

    def cancel(self) -> None:
        pass

    def outcome(self) -> Outcome:
        return self._outcome


class InstantExecutor:
    """Every job ends as it is submitted, with one tiny HTML artifact."""

    workers = 2
    ready_workers = 2

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def batch(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()  # one by one: each ends as it is submitted

    def submit(self, spec: JobSpec, timeout_s: float, on_done: Callable[[], None]) -> Done:
        name = artifact_name(spec.stem, "html")
        data = b"<p>converted</p>"
        (Path(spec.folder) / name).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        art = Artifact(
            name=name,
            path=name,
            target="html",
            media_type="text/html",
            size=len(data),
            sha256=digest,
            attempt=spec.attempt,
        )
        on_done()
        return Done(Completed(WorkerResult(artifacts=[art])))


def loop_without_waits(spool: Path) -> Daemon:
    """A Daemon whose passes never sleep and whose timers (scan, heartbeat, recovery,
    housekeeping) are not due: what is measured is the path of the jobs."""
    daemon = Daemon([spool], DaemonSettings(workers=2), executor=InstantExecutor())
    far = time.monotonic() + 10**6
    daemon.next_scan = daemon.next_heartbeat = daemon.next_housekeeping = far
    daemon.next_recovery = daemon._scan_mark = far
    daemon.watchdog_s = None
    daemon.next_watchdog = far
    daemon.wakeups.wait = lambda timeout: None  # type: ignore[method-assign]
    daemon.rescan_requested = False
    for rt in daemon.spools:
        rt.lease.acquire()
    return daemon


class Count(Listener):
    """Jobs published so far (a listener: counting them costs nothing measurable)."""

    def __init__(self) -> None:
        self.published = 0

    def after_publish(self, published: Published) -> None:
        self.published += 1


def run(jobs: int, folders: bool, one_at_a_time: bool, base: str | None) -> float:
    """Main-thread CPU µs per job, from the first rename to the last publish."""
    with temp_dir(base=base) as tmp:
        spool = make_spool(tmp, targets=["html"], durable=False)
        daemon = loop_without_waits(spool)
        count = Count()
        daemon.bus.add(count)
        rt = daemon.spools[0]
        stage = stage_folders if folders else stage_files
        pairs = stage(spool, [(f"t{i:05d}.md", tiny_markdown(i)) for i in range(jobs)])
        daemon._iterate()  # the first pass's one-off work (loading, first writes)
        cpu = 0.0
        batches = [[p] for p in pairs] if one_at_a_time else [pairs]
        for n, batch in enumerate(batches, 1):
            for staged, final in batch:
                os.rename(staged, final)  # not timed: the sender's work
            t0 = time.thread_time()
            for _, final in batch:
                rt.tracker.hint_moved(final.name)
            target = n if one_at_a_time else jobs
            while count.published < target:
                daemon._iterate()
            cpu += time.thread_time() - t0
        daemon.executor.stop()
        for one in daemon.spools:
            one.lease.release()
            one.events.close()
        failed = len(os.listdir(spool / "failed"))
        if failed:
            report(BENCH, "failed_jobs", failed, "jobs")
        return cpu / jobs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", default="/dev/shm", help="where the spools go")
    args = parser.parse_args()
    for arrival, one in (("batch", False), ("one_at_a_time", True)):
        results: dict[str, list[float]] = {"files": [], "folders": []}
        for _ in range(args.rounds):
            for kind in results:
                results[kind].append(run(args.jobs, kind == "folders", one, args.base))
        med = {kind: statistics.median(v) for kind, v in results.items()}
        for kind, values in results.items():
            shown = ", ".join(f"{v:.0f}" for v in values)
            report(BENCH, f"{arrival}_{kind}_us", med[kind], "µs/job", rounds=shown)
        report(BENCH, f"{arrival}_folder_extra_us", med["folders"] - med["files"], "µs/job")


if __name__ == "__main__":
    main()
