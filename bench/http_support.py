"""bench_http.py's processes and clients: the gateway under test, the CPU of every
process of a route, the routes of the throughput part (folder, curl, httpx), and a raw
keep-alive HTTP client for the latency part."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from common import (
    ROOT,
    EventTail,
    cpu_s,
    pool_cpu_s,
    stage_files,
    tiny_markdown,
    wait_finished,
    wait_for,
)

CLIENTS = 16
FINAL = ("job.succeeded", "job.failed", "job.cancelled")


class Gateway:
    def __init__(self, spool: Path, root: Path = ROOT) -> None:
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
            cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True
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


class Cpu:
    """CPU seconds of the processes a route uses, between `start` and `stop`: the
    gateway, the daemon, its workers and this process (the httpx clients, or the
    renames and the event tail of the folder route); a C client's own from wait4."""

    def __init__(self, daemon_pid: int) -> None:
        self.daemon_pid = daemon_pid
        self.gw: Gateway | None = None
        self.client_s = 0.0

    def _now(self) -> dict[str, float]:
        return {
            "gateway": cpu_s(self.gw.proc.pid) if self.gw else 0.0,
            "daemon": cpu_s(self.daemon_pid),
            "workers": pool_cpu_s(self.daemon_pid),
            "bench": time.process_time(),
        }

    def start(self, gw: Gateway | None = None) -> None:
        self.gw, self.client_s = gw, 0.0
        self._t0, self.started = self._now(), time.monotonic()

    def stop(self, jobs: int) -> dict[str, float]:
        """ms of CPU per job by process, and the wall time in seconds."""
        now = self._now()
        out = {k: (now[k] - self._t0[k]) * 1000 / jobs for k in now}
        out["client"] = self.client_s * 1000 / jobs
        out["wall_s"] = time.monotonic() - self.started
        return out


def _seed(route: int, tag: str, i: int) -> int:
    """Distinct bytes for every job of every route and round (no duplicate reused)."""
    return 10**8 * (route + 1) + int(tag) * 10**5 + i


def folder_route(spool: Path, jobs: int, tag: str, cpu: Cpu) -> dict[str, float]:
    pairs = stage_files(
        spool, [(f"f{tag}{i:05d}.md", tiny_markdown(_seed(0, tag, i))) for i in range(jobs)]
    )
    tail = EventTail(spool)
    cpu.start()
    for staged, final in pairs:
        os.rename(staged, final)
    wait_finished(tail, {f.name for _, f in pairs}, timeout=600)
    return cpu.stop(jobs)


def written_route(spool: Path, jobs: int, tag: str, cpu: Cpu) -> dict[str, float]:
    """The folder route as a tool takes it: each file written into tmp/ and renamed into
    inbox/, one after the other, inside the clock (the folder route's files are written
    before its clock starts; the HTTP routes write theirs inside it)."""
    items = [(f"w{tag}{i:05d}.md", tiny_markdown(_seed(3, tag, i))) for i in range(jobs)]
    tail = EventTail(spool)
    cpu.start()
    for staged, final in stage_files_one_by_one(spool, items):
        os.rename(staged, final)
    wait_finished(tail, {name for name, _ in items}, timeout=600)
    return cpu.stop(jobs)


def stage_files_one_by_one(spool: Path, items: list[tuple[str, bytes]]) -> Any:
    for name, data in items:
        yield stage_files(spool, [(name, data)])[0]


def curl_route(
    spool: Path, gw: Gateway, jobs: int, tag: str, cpu: Cpu, route: int = 1
) -> dict[str, float]:
    """16 parallel raw-body POSTs from one curl process (C, keep-alive connections)."""
    work = spool.parent / f"curl-{route}-{tag}"
    work.mkdir()
    lines = []
    for i in range(jobs):
        body = work / f"{i}.md"
        body.write_bytes(tiny_markdown(_seed(route, tag, i)))
        url = f"{gw.url}/v1/spools/spool/jobs?name=c{route}-{tag}{i:05d}.md"
        lines.append(
            f'url = "{url}"\ndata-binary = "@{body}"\n'
            'header = "Content-Type: text/markdown"\noutput = "/dev/null"\n'
            'write-out = "%{http_code}\\n"\n'
        )
    config = work / "curl.cfg"
    config.write_text("next\n".join(lines))
    names = {f"c{route}-{tag}{i:05d}.md" for i in range(jobs)}
    tail = EventTail(spool)
    cmd = [
        "curl",
        "-s",
        "--no-progress-meter",
        "--parallel",
        "--parallel-max",
        str(CLIENTS),
        "-K",
        str(config),
    ]
    cpu.start(gw)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    codes = proc.stdout.read().split()
    _, _, usage = os.wait4(proc.pid, 0)
    cpu.client_s = usage.ru_utime + usage.ru_stime
    assert codes.count(b"202") == jobs, codes[:20]
    posted = time.monotonic()
    wait_finished(tail, names, timeout=600)
    return {**cpu.stop(jobs), "posted_s": posted - cpu.started}


def httpx_route(
    spool: Path, gw: Gateway, jobs: int, tag: str, cpu: Cpu, route: int = 2
) -> dict[str, float]:
    """16 threads of httpx clients (Python), each POSTing a multipart form."""
    tail = EventTail(spool)
    names = [f"h{route}-{tag}{i:05d}.md" for i in range(jobs)]
    local = threading.local()

    def post(i: int) -> None:
        c = getattr(local, "c", None) or httpx.Client(base_url=gw.url, timeout=120)
        local.c = c
        files = {"file": (names[i], tiny_markdown(_seed(route, tag, i)), "text/markdown")}
        r = c.post("/v1/spools/spool/jobs", files=files)
        assert r.status_code == 202, r.text

    cpu.start(gw)
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        list(pool.map(post, range(jobs)))
    posted = time.monotonic()
    wait_finished(tail, set(names), timeout=600)
    return {**cpu.stop(jobs), "posted_s": posted - cpu.started}


class RawClient:
    """One keep-alive HTTP/1.1 connection, requests written by hand: the client's own
    time out of the latency (httpx spends about a millisecond a request)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request(self, head: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
        self.sock.sendall(head.encode() + body)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        header, _, self.buf = self.buf.partition(b"\r\n\r\n")
        length = int(header.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(self.buf) < length:
            self.buf += self.sock.recv(65536)
        data, self.buf = self.buf[:length], self.buf[length:]
        return int(header.split()[1]), json.loads(data)

    def post(self, name: str, body: bytes) -> dict[str, Any]:
        status, job = self.request(
            f"POST /v1/spools/spool/jobs?name={name} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: text/markdown\r\nContent-Length: {len(body)}\r\n\r\n",
            body,
        )
        assert status == 202, job
        return job

    def wait(self, job_id: str) -> dict[str, Any]:
        head = f"GET /v1/spools/spool/jobs/{job_id}?wait=60 HTTP/1.1\r\nHost: x\r\n\r\n"
        return self.request(head)[1]

    def close(self) -> None:
        self.sock.close()


def times(tail: EventTail, seen: dict[str, dict[str, float]]) -> None:
    """Each job's detected and final event times (the daemon's wall clock), by name."""
    for e in tail.read():
        if e.get("event") in ("job.detected", *FINAL):
            when = datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()
            seen.setdefault(e["name"], {})[
                "detected" if e["event"] == "job.detected" else "final"
            ] = when
