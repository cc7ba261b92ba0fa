"""Tiny Markdown -> HTML jobs per second through a real daemon (2 workers).

2,000 unique tiny files are staged in tmp/, then renamed into inbox/ as fast as
possible, once the daemon and all its workers have started; the clock runs from the
first rename until the last job's final event.
Run durable (fsync, the default) and with `durable = false`, on the default temp
filesystem; then both again on /dev/shm (tmpfs), which takes the disk out and leaves
the daemon's own CPU cost. Each run also reports CPU milliseconds per job of the
daemon process (all its threads) and of the worker processes: on 2 cores their sum
bounds the rate at 2000 / (daemon + workers) jobs/s.

`--entries folders` stages job folders instead, as the HTTP gateway writes them (the
document and a job.json with `main` and a chosen `id`, spoold/http/submit.py), and
`--entries named` stages single files that carry their id in their name
(`t00001.ID.md`), as the gateway queues a raw body, and `--entries both` alternates
plain files and folders (`all`: the three kinds) `--repeat` times, so the CPU per job
of each kind comes from the same minutes of a shared machine.
`--rate N` renames N jobs a second instead of all at once (one at a time, as HTTP
uploads arrive). `--profile DIR` runs the daemon under cProfile (bench/cpu_profile.py:
the loop thread's CPU time) and writes DIR/KIND-FS-N.prof.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

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

from spoold.spool.clock import new_job_id
from spoold.spool.ids import name_with_id, split_named_id

BENCH = "throughput"


def stage_folders(spool: Path, items: list[tuple[str, bytes]]) -> list[tuple[Path, Path]]:
    """Job folders like the gateway's: inbox/NAME/ holding NAME and job.json (`main`,
    `id`), staged in tmp/; (staged, final) pairs for a later rename."""
    pairs = []
    for name, data in items:
        staged = spool / "tmp" / f".{name}.staging"
        staged.mkdir()
        (staged / name).write_bytes(data)
        job = {"main": name, "id": new_job_id()}
        (staged / "job.json").write_bytes(json.dumps(job, indent=2).encode())
        pairs.append((staged, spool / "inbox" / name))
    return pairs


def stage_named(spool: Path, items: list[tuple[str, bytes]]) -> list[tuple[Path, Path]]:
    """Files named STEM.ID.md, as the gateway queues a raw body (spool/ids.py)."""
    pairs = stage_files(spool, items)
    return [
        (staged, final.with_name(name_with_id(final.name, new_job_id()))) for staged, final in pairs
    ]


STAGE = {"files": stage_files, "folders": stage_folders, "named": stage_named}


def run(
    jobs: int,
    durable: bool,
    base: str | None,
    kind: str = "files",
    profile: Path | None = None,
    rate: float = 0.0,
) -> tuple[float, int, float, float]:
    """(seconds, failed jobs, daemon CPU ms per job, worker CPU ms per job)."""
    with temp_dir(base=base) as tmp:
        spool = make_spool(tmp, targets=["html"], durable=durable)
        profiler = (
            (str(Path(__file__).with_name("cpu_profile.py")), str(profile)) if profile else ()
        )
        with Daemon(spool, workers=2, python_args=profiler) as daemon:
            daemon.wait_ready()
            pairs = STAGE[kind](spool, [(f"t{i:05d}.md", tiny_markdown(i)) for i in range(jobs)])
            tail = EventTail(spool)
            cpu0, pool0 = cpu_s(daemon.pid), pool_cpu_s(daemon.pid)
            t0 = time.monotonic()
            for i, (staged, final) in enumerate(pairs):
                if rate:  # paced: one at a time, as uploads arrive
                    time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                os.rename(staged, final)
            names = {split_named_id(final.name)[0] for _, final in pairs}
            finished = wait_finished(tail, names, timeout=240)
            elapsed = time.monotonic() - t0
            daemon_ms = (cpu_s(daemon.pid) - cpu0) / jobs * 1000
            workers_ms = (pool_cpu_s(daemon.pid) - pool0) / jobs * 1000
        failed = sum(1 for ev in finished.values() if ev["event"] != "job.succeeded")
        return elapsed, failed, daemon_ms, workers_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--no-tmpfs", action="store_true", help="skip the /dev/shm runs")
    parser.add_argument("--no-disk", action="store_true", help="skip the runs on the disk")
    parser.add_argument(
        "--durable", choices=("both", "on", "off"), default="both", help="which modes to run"
    )
    parser.add_argument(
        "--entries",
        choices=("files", "folders", "named", "both", "all"),
        default="files",
        help="single files, job folders, files named with their id, or alternating",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each kind, alternating")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="rename N jobs a second (default: all at once)"
    )
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the daemon into DIR")
    args = parser.parse_args()
    bases: list[tuple[str, str | None]] = [] if args.no_disk else [("disk", None)]
    if not args.no_tmpfs and os.path.isdir("/dev/shm"):
        bases.append(("tmpfs", "/dev/shm"))
    kinds = {"both": ["files", "folders"], "all": ["files", "folders", "named"]}.get(
        args.entries, [args.entries]
    )
    modes = {"both": (True, False), "on": (True,), "off": (False,)}[args.durable]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    for fs, base in bases:
        with temp_dir(base=base) as tmp:
            for key, value in fs_baseline(tmp).items():
                report(BENCH, f"fs_{fs}_{key}", value, "us")
        for durable, n, kind in [
            (d, n, k) for d in modes for n in range(args.repeat) for k in kinds
        ]:
            label = f"{fs}_{'durable' if durable else 'not_durable'}"
            if kind != "files":
                label += f"_{kind}"
            if args.rate:
                label += f"_paced{args.rate:g}"
            prof = args.profile / f"{kind}-{fs}-{n}.prof" if args.profile else None
            elapsed, failed, daemon_ms, workers_ms = run(
                args.jobs, durable, base, kind, prof, args.rate
            )
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
                TARGETS[fs] if durable and kind == "files" and not args.rate else None,
                jobs=args.jobs,
                seconds=round(elapsed, 3),
                load=load,
            )


# Issue 23: tiny md -> html jobs, durable, renamed in at once.
TARGETS = {"disk": ">= 800", "tmpfs": ">= 1200"}


if __name__ == "__main__":
    main()
