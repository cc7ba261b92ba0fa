"""The gateway under load and under a kill: back-pressure at max_queued, and SIGKILL of
its process group in the middle of uploads. Nothing is lost, nothing half-made is left."""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from spoold.spool.ids import split_named_id

from .conftest import DaemonProc, events, wait_for

ENDS = ("job.succeeded", "job.failed", "job.cancelled")


def doc(i: int) -> bytes:
    return f"# Job {i}\n\nText of job {i}.\n".encode()


def test_back_pressure_300_posts_against_max_queued_50(
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
) -> None:
    spool = make_spool(max_queued=50)
    gw = gateway_factory(spool)
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=0)

    def post(i: int) -> httpx.Response:
        with httpx.Client(base_url=gw.url, timeout=120, limits=limits) as c:
            files = {"file": (f"n{i}.md", doc(i), "text/markdown")}
            return c.post("/v1/spools/spool/jobs", files=files)

    with ThreadPoolExecutor(max_workers=300) as pool:
        answers = list(pool.map(post, range(300)))
    codes = Counter(r.status_code for r in answers)
    # One gateway, no daemon: the queue count and the rename agree, so exactly 50 fit.
    assert codes == {202: 50, 429: 250}, codes
    for r in answers:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) > 0
            assert r.json()["error"]["code"] == "queue_full" and r.json()["error"]["retryable"]
    with gw.client() as c:
        full = c.post(
            "/v1/spools/spool/jobs", files={"file": ("late.md", doc(999), "text/markdown")}
        )
        assert full.status_code == 429  # full until a job leaves the queue
        accepted = {r.json()["job_id"] for r in answers if r.status_code == 202}
        daemon_factory(spool)

        def ended() -> bool:
            return accepted <= {e["job_id"] for e in events(spool) if e["event"] in ENDS}

        wait_for(ended, timeout=240, what="every accepted job ended")
        again = c.post(
            "/v1/spools/spool/jobs", files={"file": ("late.md", doc(999), "text/markdown")}
        )
        assert again.status_code == 202
    terminal = Counter(e["job_id"] for e in events(spool) if e["event"] in ENDS)
    assert all(terminal[j] == 1 for j in accepted), "every 202 job ends exactly once"
    done = {p.name.rsplit(".", 1)[1] for p in (spool / "done").iterdir()}
    assert accepted <= done
    assert not [p for p in (spool / "tmp").iterdir() if p.name.startswith(".spoold-http")]


def _slow_body(i: int, chunks: int, pause: threading.Event) -> Iterator[bytes]:
    boundary = "b0undary"
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="up{i}.md"\r\n'
        "Content-Type: text/markdown\r\n\r\n"
    ).encode()
    for n in range(chunks):
        yield f"line {n} of upload {i}\n".encode() * 100
        pause.wait(0.05)  # a client on a slow line: the upload is in flight for seconds
    yield f"\r\n--{boundary}--\r\n".encode()


def test_kill_the_gateway_during_50_uploads(
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
) -> None:
    spool = make_spool()
    gw = gateway_factory(spool)
    # `spoold submit` stages in tmp/ too: the gateway must leave its files alone.
    other = spool / "tmp" / ".submit-4242-1"
    other.mkdir()
    accepted: dict[int, str] = {}
    lock = threading.Lock()
    never = threading.Event()

    def upload(i: int) -> None:
        chunks = 2 if i % 2 else 400  # half finish at once, half are still sending
        # Half are forms (a job folder), half raw bodies (one file, up{i}.ID.md).
        raw = i % 4 >= 2
        body = _slow_body(i, chunks, never)
        headers = {"Content-Type": "multipart/form-data; boundary=b0undary"}
        if raw:
            body = itertools.islice(body, 1, chunks + 1)  # the document alone
            headers = {"Content-Type": "text/markdown"}
        try:
            r = httpx.post(
                f"{gw.url}/v1/spools/spool/jobs",
                params={"name": f"up{i}.md"} if raw else None,
                content=body,
                headers=headers,
                timeout=120,
            )
        except httpx.HTTPError:
            return  # cut off by the kill
        if r.status_code == 202:
            with lock:
                accepted[i] = r.json()["job_id"]

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    wait_for(lambda: len(accepted) >= 20, timeout=120, what="the quick uploads answered")
    in_flight = [p for p in (spool / "tmp").iterdir() if p.name.startswith(".spoold-http")]
    assert in_flight, "uploads are in flight when the gateway is killed"
    gw.kill_group()
    for t in threads:
        t.join(timeout=120)
    with lock:
        answered = dict(accepted)
    # inbox/ holds every job answered 202, and nothing partial: a job renamed in just
    # before the kill whose answer never reached its client is whole too (the client
    # sends it again, with an Idempotency-Key to be sure of one job).
    jobs: dict[str, tuple[str, Path]] = {}  # job id -> (name sent, the document's bytes)
    for entry in (spool / "inbox").iterdir():
        if entry.is_dir():
            job_id = json.loads((entry / "job.json").read_text())["id"]
            jobs[job_id] = (entry.name, entry / entry.name)
        else:
            name, chosen = split_named_id(entry.name)
            assert chosen is not None, entry.name
            jobs[chosen] = (name, entry)
    assert set(answered.values()) <= set(jobs)
    assert len({i % 4 >= 2 for i in answered}) == 2, "raw bodies and forms were answered"
    for name, document in jobs.values():
        i = int(name.removeprefix("up").removesuffix(".md"))
        body = document.read_bytes()
        assert body == b"".join(list(_slow_body(i, 2 if i % 2 else 400, never))[1:-1])
    leftovers = [p for p in (spool / "tmp").iterdir() if p.name.startswith(".spoold-http")]
    assert leftovers, "the killed gateway left its staging folders"
    gateway_factory(spool)
    assert not [p for p in (spool / "tmp").iterdir() if p.name.startswith(".spoold-http")]
    assert other.exists()
    daemon_factory(spool)
    wanted = set(jobs)  # the answered ones and any whole one whose answer was cut off
    wait_for(
        lambda: wanted <= {e["job_id"] for e in events(spool) if e["event"] in ENDS},
        timeout=120,
        what="the accepted jobs ran",
    )
    assert len(os.listdir(spool / "done")) == len(wanted)
