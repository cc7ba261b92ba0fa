"""The HTTP gateway against the folder route, on one spool and one daemon (2 workers).

1. Throughput: tiny Markdown -> HTML jobs, renamed into inbox/ (the folder route) vs
   POSTed by 16 concurrent clients (HTTP); the clock runs from the first job in to the
   last final event. Target: HTTP >= 0.8x the folder route's jobs/s.
2. Latency: one job at a time, alternating: rename -> job.succeeded in the events log
   (folder) vs POST -> the answer of GET ?wait=60 (HTTP). Target: the median added by
   HTTP <= 5 ms.

Both run with `durable = false`: a tool renaming a file into inbox/ does not fsync it,
and neither then does the gateway, so the figures compare the routes, not the disk.
The latency is measured again with `durable = true` (the default), where the gateway
fsyncs the job folder, its files and inbox/ before it answers 202 (four fsyncs: their
cost on this disk is printed as fsync_ms).
3. A 1 GB upload: the gateway's peak RSS while it streams (VmHWM). Target <= 150 MB.
4. GET /jobs/{id} with 100,000 jobs in done/ (made by this bench, with real-sized
   manifests), a fresh gateway: requests/s and p99 from 8 keep-alive connections of a
   small asyncio client. Targets >= 1,000 req/s, p99 <= 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from common import (
    ROOT,
    Daemon,
    EventTail,
    fs_baseline,
    make_spool,
    percentile,
    report,
    stage_files,
    temp_dir,
    tiny_markdown,
    wait_finished,
    wait_for,
    write_settings,
)

BENCH = "http"
FINAL = ("job.succeeded", "job.failed", "job.cancelled")


class Gateway:
    def __init__(self, spool: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = (spool.parent / "gateway.log").open("ab")
        cmd = [
            sys.executable,
            "-m",
            "spoold",
            "serve",
            str(spool),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--log-level",
            "warning",
        ]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
        wait_for(self._up, 120, "gateway start", poll_s=0.02)
        self.start_s = time.monotonic() - self.started

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def status(self, key: str) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self._log.close()


def throughput(spool: Path, gw: Gateway, jobs: int, clients: int) -> tuple[float, float]:
    pairs = stage_files(spool, [(f"f{i:05d}.md", tiny_markdown(i)) for i in range(jobs)])
    tail = EventTail(spool)
    t0 = time.monotonic()
    for staged, final in pairs:
        os.rename(staged, final)
    wait_finished(tail, {f.name for _, f in pairs}, timeout=600)
    folder_rate = jobs / (time.monotonic() - t0)

    tail = EventTail(spool)
    names = [f"h{i:05d}.md" for i in range(jobs)]
    local = threading.local()

    def post(i: int) -> None:
        c = getattr(local, "c", None) or httpx.Client(base_url=gw.url, timeout=120)
        local.c = c
        files = {"file": (names[i], tiny_markdown(jobs + i), "text/markdown")}
        r = c.post("/v1/spools/spool/jobs", files=files)
        assert r.status_code == 202, r.text

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(post, range(jobs)))
    wait_finished(tail, set(names), timeout=600)
    return folder_rate, jobs / (time.monotonic() - t0)


def latency(spool: Path, gw: Gateway, samples: int) -> tuple[list[float], list[float]]:
    folder, http = [], []
    tail = EventTail(spool)
    with httpx.Client(base_url=gw.url, timeout=120) as c:
        for i in range(samples + 10):
            name = f"l{i:05d}.md"
            ((staged, final),) = stage_files(spool, [(name, tiny_markdown(10**6 + i))])
            t0 = time.perf_counter()
            os.rename(staged, final)
            while not any(e.get("name") == name and e.get("event") in FINAL for e in tail.read()):
                time.sleep(0.0005)
            took_folder = time.perf_counter() - t0
            files = {"file": (f"w{i:05d}.md", tiny_markdown(2 * 10**6 + i), "text/markdown")}
            t0 = time.perf_counter()
            job = c.post("/v1/spools/spool/jobs", files=files).json()
            done = c.get(f"/v1/spools/spool/jobs/{job['job_id']}", params={"wait": 60}).json()
            took_http = time.perf_counter() - t0
            assert done["status"] == "succeeded", done
            tail.read()
            if i >= 10:  # warm-up
                folder.append(took_folder * 1000)
                http.append(took_http * 1000)
    return folder, http


def big_upload(spool: Path, gw: Gateway, mb: int) -> tuple[float, float, float]:
    """(seconds, RSS before, peak RSS) of one upload of `mb` MiB."""
    write_settings(
        spool,
        {"min_free_mb": 0, "targets": ["html"], "max_upload_mb": mb + 16, "max_input_mb": mb + 16},
    )
    before = gw.status("VmRSS")
    block = (b"lorem ipsum dolor sit amet " * 40 + b"\n") * 1000

    def body():  # type: ignore[no-untyped-def]
        left = mb * 1024 * 1024
        while left > 0:
            chunk = block[: min(len(block), left)]
            left -= len(chunk)
            yield chunk

    t0 = time.monotonic()
    r = httpx.post(
        f"{gw.url}/v1/spools/spool/jobs",
        params={"name": "big.md"},
        content=body(),
        headers={"Content-Type": "text/markdown"},
        timeout=600,
    )
    took = time.monotonic() - t0
    assert r.status_code == 202, r.text
    httpx.delete(f"{gw.url}/v1/spools/spool/jobs/{r.json()['job_id']}", params={"mode": "hard"})
    return took, before, gw.status("VmHWM")


def make_durable(spool: Path, daemon_pid: int) -> None:
    """durable = true (the default) for the daemon (SIGHUP) and the gateway (mtime)."""
    write_settings(spool, {"min_free_mb": 0, "targets": ["html"]})
    tail = EventTail(spool)
    os.kill(daemon_pid, signal.SIGHUP)
    wait_for(lambda: any(e["event"] == "daemon.reloaded" for e in tail.read()), 60, "reload")


def fill_done(spool: Path, n: int) -> list[str]:
    """n finished jobs in done/, each with a manifest like a real one."""
    sample = json.loads(next((spool / "done").glob("*/manifest.json")).read_text())
    ids = []
    rng = random.Random(1)
    for i in range(n):
        job_id = f"20260101T{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}Z-{rng.getrandbits(40):010x}"
        folder = spool / "done" / f"d{i:06d}.{job_id}"
        folder.mkdir()
        sample.update(job_id=job_id, name=f"d{i:06d}.md")
        (folder / "manifest.json").write_text(json.dumps(sample))
        ids.append(job_id)
    return ids


async def _get_load(port: int, paths: list[str], seconds: float, conns: int) -> list[float]:
    lat: list[float] = []
    deadline = time.monotonic() + seconds

    async def one_conn() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < deadline:
            path = random.choice(paths)
            t0 = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200"), head
            lat.append((time.perf_counter() - t0) * 1000)
        writer.close()

    await asyncio.gather(*(one_conn() for _ in range(conns)))
    return lat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--done", type=int, default=100_000)
    parser.add_argument("--upload-mb", type=int, default=1024)
    parser.add_argument(
        "--base",
        default=None,
        help="where the spool goes (default $TMPDIR or /tmp; /dev/shm leaves the disk out)",
    )
    args = parser.parse_args()
    report(BENCH, "spool_on", args.base or "disk (tmp)")
    with temp_dir(base=args.base) as tmp:
        report(BENCH, "fsync_ms", fs_baseline(tmp)["fsync_us"] / 1000, "ms")
        spool = make_spool(tmp, targets=["html"], durable=False)
        with Daemon(spool, workers=2) as daemon:
            daemon.wait_ready()
            gw = Gateway(spool)
            try:
                folder_rate, http_rate = throughput(spool, gw, args.jobs, clients=16)
                report(BENCH, "folder_jobs_per_s", folder_rate, "jobs/s", jobs=args.jobs)
                report(BENCH, "http_jobs_per_s", http_rate, "jobs/s", jobs=args.jobs, clients=16)
                report(BENCH, "http_vs_folder", http_rate / folder_rate, "x", ">= 0.8")
                for durable in (False, True):
                    if durable:
                        make_durable(spool, daemon.pid)
                    folder, http = latency(spool, gw, args.samples)
                    added = statistics.median(http) - statistics.median(folder)
                    tag = "_durable" if durable else ""
                    report(BENCH, f"folder_latency_median{tag}", statistics.median(folder), "ms")
                    report(BENCH, f"http_wait_latency_median{tag}", statistics.median(http), "ms")
                    report(
                        BENCH,
                        f"http_added_latency_median{tag}",
                        added,
                        "ms",
                        None if durable else "<= 5",
                    )
                    report(BENCH, f"http_wait_latency_p95{tag}", percentile(http, 95), "ms")
            finally:
                gw.stop()
        gw = Gateway(spool)
        try:
            took, before, peak = big_upload(spool, gw, args.upload_mb)
            report(BENCH, "upload_seconds", took, "s", mb=args.upload_mb)
            report(BENCH, "upload_rss_before", before, "MB")
            report(BENCH, "upload_peak_rss", peak, "MB", "<= 150", mb=args.upload_mb)
        finally:
            gw.stop()
        for p in (spool / "inbox").iterdir():
            subprocess.run(["rm", "-rf", str(p)], check=True)
        t0 = time.monotonic()
        ids = fill_done(spool, args.done)
        report(BENCH, "fill_done_seconds", time.monotonic() - t0, "s", jobs=args.done)
        gw = Gateway(spool)
        try:
            report(BENCH, "gateway_start_with_done", gw.start_s, "s", jobs=args.done)
            paths = [f"/v1/spools/spool/jobs/{i}" for i in ids]
            asyncio.run(_get_load(gw.port, paths, 2.0, 8))  # warm-up
            seconds = 10.0
            lat = asyncio.run(_get_load(gw.port, paths, seconds, 8))
            report(BENCH, "get_job_per_s", len(lat) / seconds, "req/s", ">= 1000", done=args.done)
            report(BENCH, "get_job_p50", percentile(lat, 50), "ms")
            report(BENCH, "get_job_p99", percentile(lat, 99), "ms", "<= 20", done=args.done)
            report(BENCH, "gateway_rss_with_done", gw.status("VmRSS"), "MB", done=args.done)
        finally:
            gw.stop()


if __name__ == "__main__":
    main()
