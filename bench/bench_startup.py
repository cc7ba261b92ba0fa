"""Start-up: `spoold run SPOOL --workers N` to READY=1, and to the first job done.

The daemon runs as systemd runs it: NOTIFY_SOCKET names a datagram socket this bench
listens on, and the time is taken from the Popen to the READY=1 datagram. Then one tiny
job is renamed into inbox/ and timed to its `job.succeeded` (from the Popen too): with
workers still starting, that is the figure a person who submits at once sees.

`--before DIR` also runs the spoold of another checkout (its `python -m spoold`, with
this interpreter), alternating with this one start by start, so that both meet the same
load on a shared machine: `git archive BASE | tar -x -C /tmp/base`, then
`bench_startup.py --before /tmp/base`. Median of `--runs` starts for each worker count.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, make_spool, report, session_pids, temp_dir, tiny_markdown

from spoold.spool.events import read_events

BENCH = "startup"
TIMEOUT_S = 120.0


def one_start(spool: Path, workers: int, root: Path) -> tuple[float, float]:
    """(seconds to READY=1, seconds to the first job's job.succeeded), both from Popen."""
    sock_path = spool.parent / f"notify-{workers}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(TIMEOUT_S)
    staged = spool / "tmp" / ".first.md"
    staged.write_bytes(tiny_markdown(workers))
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "spoold", "run", str(spool), "--workers", str(workers)]
    log = (spool.parent / f"daemon-{workers}.log").open("ab")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True
    )
    try:
        while b"READY=1" not in sock.recv(4096).split(b"\n"):
            pass
        ready = time.monotonic() - t0
        os.rename(staged, spool / "inbox" / "first.md")
        deadline = time.monotonic() + TIMEOUT_S
        while not any(e.get("event") == "job.succeeded" for e in read_events(_log_of(spool))):
            if time.monotonic() > deadline:
                raise TimeoutError("the first job did not finish")
            time.sleep(0.005)
        first = time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in session_pids(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        sock.close()
        sock_path.unlink()
    return ready, first


def _log_of(spool: Path) -> Path:
    return spool / ".spoold" / "events.ndjson"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, action="append", help="repeatable; default 2 and 8")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, default=None, help="a checkout to compare")
    args = parser.parse_args()
    roots = {"after": ROOT}
    if args.before is not None:
        roots = {"before": args.before.resolve(), **roots}
    for workers in args.workers or [2, 8]:
        times: dict[str, list[tuple[float, float]]] = {label: [] for label in roots}
        for run in range(args.runs):
            for label, root in roots.items():
                with temp_dir() as tmp:
                    spool = make_spool(tmp, f"s{run}", targets=["html"])
                    times[label].append(one_start(spool, workers, root))
        for label, pairs in times.items():
            extra = {"workers": workers, "runs": args.runs, "root": str(roots[label])}
            prefix = f"{label}_" if args.before is not None else ""
            for i, figure in enumerate(("ready", "first_job_done")):
                values = [pair[i] for pair in pairs]
                report(
                    BENCH,
                    f"{prefix}{figure}_{workers}_workers",
                    statistics.median(values),
                    "s",
                    "<= 1.5" if figure == "ready" else None,
                    **extra,
                    samples=[round(v, 3) for v in values],
                    load=os.getloadavg()[0],
                )


if __name__ == "__main__":
    main()
