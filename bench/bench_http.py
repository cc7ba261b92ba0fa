"""The HTTP gateway against the folder route, on one spool and one daemon (2 workers).

1. Throughput: tiny Markdown -> HTML jobs in rounds alternating the routes: renamed
   into inbox/ (the folder route), POSTed as raw bodies by one curl process with 16
   parallel keep-alive connections (C: the clients' CPU stays out of the gateway's
   way on a small machine), and POSTed as multipart forms by 16 httpx clients (Python
   threads). The clock runs from the first job in to the last final event. Target:
   HTTP (curl) >= 0.8x the folder route's jobs/s (medians over the rounds). A fourth
   route, `written`, is the folder route as a tool takes it: each file written into
   tmp/ and renamed in, one after the other, inside the clock (the folder route's files
   are written before its clock starts, the HTTP routes' inside it); curl's rate is
   also given against it. Each round
   prints the CPU ms per job of the gateway, the daemon, its workers and the clients
   (curl's own from wait4; the httpx threads' and the folder route's renames in
   `bench`, this process), and the load average.
2. Latency: one job at a time, alternating: rename -> the final event in the log
   (folder), POST -> the answer of GET ?wait=60 from a raw keep-alive connection
   (HTTP, the target: median added <= 5 ms) and from httpx; each with its steps (`in`,
   `claim`, `run`, `out`: see `latency`) from the events' times.

Both run with `durable = false`: a tool renaming a file into inbox/ does not fsync it,
and neither then does the gateway, so the figures compare the routes, not the disk.
The latency is measured again with `durable = true` (the default), where the gateway
fsyncs the job folder, its files and inbox/ before it answers 202 (four fsyncs: their
cost on this disk is printed as fsync_ms).
3. A 1 GB upload: the gateway's peak RSS while it streams (VmHWM). Target <= 150 MB.
4. GET /jobs/{id} with 100,000 jobs in done/ (made by this bench, with real-sized
   manifests), a fresh gateway: requests/s and p99 from 8 keep-alive connections of a
   small asyncio client. Targets >= 1,000 req/s, p99 <= 20 ms.

`--before DIR` (a checkout of an earlier version) runs its gateway on the same spool
beside this one, and every HTTP route of 1 and 2 through both: before/after figures
from one run, under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import time
from pathlib import Path

import httpx
from common import (
    Daemon,
    EventTail,
    fs_baseline,
    make_spool,
    percentile,
    report,
    stage_files,
    temp_dir,
    tiny_markdown,
    wait_for,
    write_settings,
)
from http_support import (
    CLIENTS,
    Cpu,
    Gateway,
    RawClient,
    curl_route,
    folder_route,
    httpx_route,
    times,
    written_route,
)

BENCH = "http"

CPU_OF = ("gateway", "daemon", "workers", "client", "bench")


def show_route(route: str, rnd: int, jobs: int, figures: dict[str, float]) -> tuple[float, float]:
    """(jobs/s, CPU ms per job of every process) of one route's round."""
    rate = jobs / figures["wall_s"]
    cpu = " ".join(f"{k} {figures[k]:.2f}" for k in CPU_OF)
    load = os.getloadavg()[0]
    if "posted_s" in figures:
        cpu += f"; all posted after {figures['posted_s']:.2f} of {figures['wall_s']:.2f} s"
    print(
        f"  round {rnd} {route}: {rate:.1f} jobs/s; CPU ms/job: {cpu}; load {load:.1f}", flush=True
    )
    report(BENCH, f"{route}_round_jobs_per_s", rate, "jobs/s", round=rnd, load=load, cpu_ms=figures)
    return rate, sum(figures[k] for k in CPU_OF)


def throughput(
    spool: Path, gateways: dict[str, Gateway], daemon_pid: int, jobs: int, rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """Rounds alternating the routes: folder, HTTP from curl, HTTP from httpx (and the
    same through the `before` gateway, when there is one): (jobs/s, CPU ms a job)."""
    cpu = Cpu(daemon_pid)
    folder_route(spool, 40, "99", cpu)  # warm-up: the workers start, imports load
    routes = ["folder", "written"]
    routes += [f"{c}{suffix(which)}" for which in gateways for c in ("curl", "httpx")]
    rates: dict[str, list[tuple[float, float]]] = {route: [] for route in routes}
    for rnd in range(rounds):
        for n, route in enumerate(routes):
            tag = f"{rnd}"
            gw = gateways["before" if route.endswith("_before") else "after"]
            if route == "folder":
                figures = folder_route(spool, jobs, tag, cpu)
            elif route == "written":
                figures = written_route(spool, jobs, tag, cpu)
            elif route.startswith("curl"):
                figures = curl_route(spool, gw, jobs, tag, cpu, route=n)
            else:
                figures = httpx_route(spool, gw, jobs, tag, cpu, route=n)
            rates[route].append(show_route(route, rnd, jobs, figures))
    return rates


def report_throughput(rounds: dict[str, list[tuple[float, float]]], jobs: int) -> None:
    """Medians over the rounds: jobs/s and its ratio to the folder route's; and the ratio
    the CPU per job allows (all processes' CPU ms a job, folder / HTTP), which is what
    the rates come to when the cores are the bound (a busy shared machine)."""
    folder_rate = statistics.median(r for r, _ in rounds["folder"])
    folder_cpu = statistics.median(c for _, c in rounds["folder"])
    report(BENCH, "folder_jobs_per_s", folder_rate, "jobs/s", jobs=jobs)
    report(BENCH, "folder_cpu_ms_per_job", folder_cpu, "ms")
    written_rate = statistics.median(r for r, _ in rounds["written"])
    report(BENCH, "written_jobs_per_s", written_rate, "jobs/s")
    report(BENCH, "written_vs_folder", written_rate / folder_rate, "x")
    for route, figures in rounds.items():
        if route in ("folder", "written"):
            continue
        target = ">= 0.8" if route == "curl" else None
        rate = statistics.median(r for r, _ in figures)
        cpu = statistics.median(c for _, c in figures)
        report(BENCH, f"http_{route}_jobs_per_s", rate, "jobs/s", clients=CLIENTS)
        report(BENCH, f"http_{route}_vs_folder", rate / folder_rate, "x", target)
        report(BENCH, f"http_{route}_cpu_ms_per_job", cpu, "ms")
        report(BENCH, f"http_{route}_cpu_bound_vs_folder", folder_cpu / cpu, "x")
    for route in [r for r in rounds if r.startswith("curl")]:
        rate = statistics.median(r for r, _ in rounds[route])
        report(BENCH, f"http_{route}_vs_written", rate / written_rate, "x")


def suffix(which: str) -> str:
    return "_before" if which == "before" else ""


def latency(
    spool: Path, gateways: dict[str, Gateway], samples: int, seed: int
) -> dict[str, list[dict[str, float]]]:
    """One job at a time, alternating the folder route, HTTP from a raw keep-alive
    connection and HTTP from httpx (through each gateway); each sample's steps in ms:
    `in` (the rename, or the POST until its 202), `claim` (until job.detected, from the
    start), `run` (detected to the final event), `out` (the final event to the rename
    seen in the log, or to the ?wait answer), `total`."""
    tail = EventTail(spool)
    seen: dict[str, dict[str, float]] = {}
    raws = {which: RawClient(gw.port) for which, gw in gateways.items()}
    pools = {which: httpx.Client(base_url=gw.url, timeout=120) for which, gw in gateways.items()}
    routes = ["folder"] + [f"{c}{suffix(which)}" for which in gateways for c in ("raw", "httpx")]
    out: dict[str, list[dict[str, float]]] = {route: [] for route in routes}
    for i in range(samples + 10):
        for n, route in enumerate(routes):
            name = f"l{n}-{seed}{i:05d}.md"
            body = tiny_markdown(seed + n * 10**5 + i)
            which = "before" if route.endswith("_before") else "after"
            if route == "folder":
                ((staged, final),) = stage_files(spool, [(name, body)])
                t0 = time.time()
                os.rename(staged, final)
                t1 = time.time()
                while "final" not in seen.get(name, {}):
                    times(tail, seen)
                    time.sleep(0.0005)
            elif route.startswith("raw"):
                t0 = time.time()
                job = raws[which].post(name, body)
                t1 = time.time()
                done = raws[which].wait(job["job_id"])
                assert done["status"] == "succeeded", done
            else:
                c = pools[which]
                t0 = time.time()
                r = c.post("/v1/spools/spool/jobs", files={"file": (name, body, "text/markdown")})
                t1 = time.time()
                got = c.get(f"/v1/spools/spool/jobs/{r.json()['job_id']}", params={"wait": 60})
                assert got.json()["status"] == "succeeded", got.text
            t2 = time.time()
            while "final" not in seen.get(name, {}):
                times(tail, seen)
            if i >= 10:  # warm-up
                out[route].append(_steps(t0, t1, t2, seen[name]))
    for which in gateways:
        raws[which].close()
        pools[which].close()
    return out


def _steps(t0: float, t1: float, t2: float, ev: dict[str, float]) -> dict[str, float]:
    return {
        "in": (t1 - t0) * 1000,
        "claim": (ev["detected"] - t0) * 1000,
        "run": (ev["final"] - ev["detected"]) * 1000,
        "out": (t2 - ev["final"]) * 1000,
        "total": (t2 - t0) * 1000,
    }


def report_latency(lat: dict[str, list[dict[str, float]]], tag: str, durable: bool) -> None:
    def med(route: str, step: str) -> float:
        return statistics.median(x[step] for x in lat[route])

    load = os.getloadavg()[0]
    for route in lat:
        parts = ", ".join(f"{k} {med(route, k):.1f}" for k in ("in", "claim", "run", "out"))
        print(f"  {route}: median ms {parts}; total {med(route, 'total'):.1f}; load {load:.1f}")
    folder = med("folder", "total")
    report(BENCH, f"folder_latency_median{tag}", folder, "ms", load=load)
    for route in lat:
        if route == "folder":
            continue
        name = route.replace("raw", "http")
        report(BENCH, f"{name}_wait_latency_median{tag}", med(route, "total"), "ms")
        target = None if durable or route != "raw" else "<= 5"
        report(
            BENCH, f"{name}_added_latency_median{tag}", med(route, "total") - folder, "ms", target
        )
        p95 = percentile([x["total"] for x in lat[route]], 95)
        report(BENCH, f"{name}_wait_latency_p95{tag}", p95, "ms")


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
    parser.add_argument("--jobs", type=int, default=300, help="jobs per route and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--before",
        default=None,
        help="a checkout of an earlier version (its spoold/ is enough): its gateway serves "
        "the same spool beside this one, every HTTP route is run through both, alternating",
    )
    parser.add_argument(
        "--parts", default="throughput,latency,upload,get", help="which parts to run"
    )
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--done", type=int, default=100_000)
    parser.add_argument("--upload-mb", type=int, default=1024)
    parser.add_argument(
        "--base",
        default=None,
        help="where the spool goes (default $TMPDIR or /tmp; /dev/shm leaves the disk out)",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    report(BENCH, "spool_on", args.base or "disk (tmp)")
    with temp_dir(base=args.base) as tmp:
        # The filesystem's own costs. A create inside the clock is the HTTP route's
        # (the staging file, the id's registration), outside it the folder route's:
        # on an ext4 without a journal a create costs 7-200 us, more after recent
        # deletions (docs/performance.md "The HTTP ratio and the filesystem").
        fs = fs_baseline(tmp)
        report(BENCH, "fsync_ms", fs["fsync_us"] / 1000, "ms")
        report(BENCH, "create_us", fs["create_us"], "us")
        report(BENCH, "mkdir_us", fs["mkdir_us"], "us")
        spool = make_spool(tmp, targets=["html"], durable=False)
        # No worker recycled mid-run: a new worker's start would land on one route alone.
        config = tmp / "spoold.toml"
        config.write_text("max_tasks_per_worker = 100000\n")
        with Daemon(spool, workers=2, args=("--config", str(config))) as daemon:
            daemon.wait_ready()
            gateways = {"after": Gateway(spool)}
            if args.before:
                gateways["before"] = Gateway(spool, root=Path(args.before).resolve())
            try:
                if "throughput" in parts:
                    rounds = throughput(spool, gateways, daemon.pid, args.jobs, args.rounds)
                    report_throughput(rounds, args.jobs)
                    load = os.getloadavg()
                    report(BENCH, "load_average", " / ".join(f"{x:.1f}" for x in load))
                for durable in (False, True) if "latency" in parts else ():
                    if durable:
                        make_durable(spool, daemon.pid)
                    lat = latency(spool, gateways, args.samples, seed=(5 + durable) * 10**6)
                    report_latency(lat, "_durable" if durable else "", durable)
            finally:
                for one in gateways.values():
                    one.stop()
        if "upload" in parts:
            upload_part(spool, args.upload_mb)
        if "get" in parts:
            get_part(spool, args.done)


def upload_part(spool: Path, mb: int) -> None:
    gw = Gateway(spool)
    try:
        took, before, peak = big_upload(spool, gw, mb)
        report(BENCH, "upload_seconds", took, "s", mb=mb)
        report(BENCH, "upload_rss_before", before, "MB")
        report(BENCH, "upload_peak_rss", peak, "MB", "<= 150", mb=mb)
    finally:
        gw.stop()


def get_part(spool: Path, done: int) -> None:
    for p in (spool / "inbox").iterdir():
        subprocess.run(["rm", "-rf", str(p)], check=True)
    t0 = time.monotonic()
    ids = fill_done(spool, done)
    report(BENCH, "fill_done_seconds", time.monotonic() - t0, "s", jobs=done)
    gw = Gateway(spool)
    try:
        report(BENCH, "gateway_start_with_done", gw.start_s, "s", jobs=done)
        paths = [f"/v1/spools/spool/jobs/{i}" for i in ids]
        asyncio.run(_get_load(gw.port, paths, 2.0, 8))  # warm-up
        seconds = 10.0
        lat = asyncio.run(_get_load(gw.port, paths, seconds, 8))
        report(BENCH, "get_job_per_s", len(lat) / seconds, "req/s", ">= 1000", done=done)
        report(BENCH, "get_job_p50", percentile(lat, 50), "ms")
        report(BENCH, "get_job_p99", percentile(lat, 99), "ms", "<= 20", done=done)
        report(BENCH, "gateway_rss_with_done", gw.status("VmRSS"), "MB", done=done)
    finally:
        gw.stop()


if __name__ == "__main__":
    main()
