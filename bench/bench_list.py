"""`spoold list` with 100,000 finished jobs in done/ and 1,000 in failed/; `status`
and `list --state queued` with 10,000 jobs queued in inbox/.

Folders are named like real ones (STEM.YYYYMMDDTHHMMSSZ-<10 hex>) and each holds a
small manifest.json. Timed: list_jobs with a name pattern over done/ and failed/, with
an error code over failed/, and the CLI `spoold list SPOOL --json` (a new process, so
its import time counts, as it does for a person typing it). Then, on a second spool,
10,000 queued entries (a tenth of them job folders): `api.status` and
`list_jobs(("queued",))`, first with nothing waiting, then with a daemon's waiting file
(.spoold/waiting/, spoold/spool/waiting.py) naming 100 of them. Median of 3 runs each.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import ROOT, make_spool, report, temp_dir

from spoold.api import list_jobs, status
from spoold.spool.waiting import WaitingEntry, write_board

BENCH = "list"
CODES = ("timeout", "conversion_failed", "input_invalid", "worker_lost")


def build(folder: Path, count: int, status: str, rng: random.Random) -> None:
    now = time.time()
    for i in range(count):
        ts = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now - rng.uniform(0, 30 * 86400)))
        job_id = f"{ts}-{rng.getrandbits(40):010x}"
        name = f"report-{i}" if status == "succeeded" else f"broken-{i}"
        manifest: dict[str, Any] = {
            "schema_version": 1,
            "job_id": job_id,
            "name": f"{name}.md",
            "status": status,
        }
        if status == "failed":
            manifest["error"] = {"code": CODES[i % len(CODES)], "message": "x"}
        job = folder / f"{name}.{job_id}"
        os.mkdir(job)
        fd = os.open(job / "manifest.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, json.dumps(manifest).encode())
        os.close(fd)


def build_queue(spool: Path, count: int) -> list[str]:
    """`count` entries in inbox/, every tenth a job folder; their keys."""
    keys = []
    for i in range(count):
        if i % 10 == 0:
            folder = spool / "inbox" / f"job-{i}"
            folder.mkdir()
            (folder / "doc.md").write_text(f"# Job {i}\n")
            (folder / "reference.docx").write_bytes(b"PK cut short")
            keys.append(folder.name)
        else:
            (spool / "inbox" / f"note-{i}.md").write_text(f"# Note {i}\n")
            keys.append(f"note-{i}.md")
    return keys


def publish_waiting(spool: Path, keys: list[str]) -> None:
    """What a daemon writes when these entries fail their format check."""
    token = "benchdae"
    daemons = spool / ".spoold" / "daemons"
    (daemons / f"{token}.lock").touch()  # a live daemon's lease files
    entries = [
        WaitingEntry(
            key=key,
            ino=os.lstat(spool / "inbox" / key).st_ino,
            member="reference.docx",
            message=f"{key}/reference.docx is not a complete DOCX file",
            since="2026-01-30T10:15:00.000000Z",
            until="2026-01-30T10:17:00.000000Z",
        )
        for key in keys
    ]
    write_board(spool / ".spoold" / "waiting", token, "bench", entries)


def queued_figures(base: Path, count: int) -> None:
    spool = make_spool(base, "queue")
    keys = build_queue(spool, count)
    for label in ("nothing_waiting", "100_waiting"):
        if label == "100_waiting":
            publish_waiting(spool, [k for k in keys if k.startswith("job-")][:100])
        s, data = timed(lambda: status(spool))
        report(BENCH, f"status_{count}_queued_{label}", s, "s", waiting=data["waiting"])
        s, jobs = timed(lambda: list_jobs(spool, ("queued",)))
        report(BENCH, f"list_queued_{count}_{label}", s, "s", jobs=len(jobs))


def timed(fn: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--done", type=int, default=100_000)
    parser.add_argument("--failed", type=int, default=1_000)
    parser.add_argument("--queued", type=int, default=10_000)
    parser.add_argument("--base", default=None, help="parent folder for the temp spool")
    args = parser.parse_args()
    rng = random.Random(42)
    with temp_dir(base=args.base) as tmp:
        spool = make_spool(tmp)
        t0 = time.perf_counter()
        build(spool / "done", args.done, "succeeded", rng)
        build(spool / "failed", args.failed, "failed", rng)
        print(
            f"  built {args.done} + {args.failed} job folders in {time.perf_counter() - t0:.1f} s"
        )

        s, jobs = timed(lambda: list_jobs(spool, ("done", "failed"), pattern="report-42*"))
        report(BENCH, "list_pattern_done_failed", s, "s", matches=len(jobs))
        s, jobs = timed(lambda: list_jobs(spool, ("failed",), code="timeout"))
        report(BENCH, "list_code_failed", s, "s", matches=len(jobs))

        def cli() -> int:
            out = subprocess.run(
                [sys.executable, "-m", "spoold", "list", str(spool), "--json"],
                capture_output=True,
                check=True,
                cwd=ROOT,
            ).stdout
            return len(json.loads(out))

        s, count = timed(cli)
        report(BENCH, "list_cli_json_all", s, "s", jobs=count)
        s, _ = timed(
            lambda: subprocess.run(
                [sys.executable, "-m", "spoold", "--version"], check=True, capture_output=True
            )
        )
        report(BENCH, "cli_startup", s, "s")
        queued_figures(tmp, args.queued)


if __name__ == "__main__":
    main()
