"""Operations (SPEC section 8) with real daemons: sd_notify, metrics, logs.

Each test runs `spoold run` as a subprocess and looks at what leaves it: datagrams on a
NOTIFY_SOCKET this test binds, .spoold/metrics.prom and the /metrics endpoint, and the
daemon's stderr.
"""

from __future__ import annotations

import collections
import json
import os
import re
import secrets
import signal
import socket
import struct
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from spoold.ops.metrics import FolderCount

from .conftest import (
    PLUGIN_ENV,
    DaemonProc,
    events,
    manifests,
    published,
    stage_file,
    wait_for,
)

MD = "# Title\n\nSome *text*.\n"

# ------------------------------------------------------------------ helpers


class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET: a datagram socket bound here.

    SO_PASSCRED makes the kernel attach the sender's pid to each datagram, so a test
    can check that only the daemon's main process speaks (systemd's NotifyAccess=main).
    """

    def __init__(self, address: str) -> None:
        self.address = address  # as it goes into NOTIFY_SOCKET ('@name' or '/path')
        bind_to = "\0" + address[1:] if address.startswith("@") else address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(bind_to)
        self.sock.setblocking(False)
        self.messages: list[tuple[int, dict[str, str]]] = []  # (sender pid, fields)

    def poll(self) -> list[tuple[int, dict[str, str]]]:
        """Every message so far (reads what arrived since the last call)."""
        while True:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(
                    65536, socket.CMSG_SPACE(struct.calcsize("3i"))
                )
            except BlockingIOError:
                return self.messages
            pid = -1
            for level, kind, cdata in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", cdata[: struct.calcsize("3i")])[0]
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            self.messages.append((pid, fields))

    def fields(self) -> list[dict[str, str]]:
        return [f for _pid, f in self.poll()]

    def wait(
        self, pred: Callable[[dict[str, str]], bool], start: int = 0, what: str = "message"
    ) -> int:
        """The index of the first message from `start` on that satisfies `pred`."""

        def find() -> int | None:
            for i, f in enumerate(self.fields()[start:], start):
                if pred(f):
                    return i + 1  # truthy even for index 0
            return None

        return int(wait_for(find, what=what)) - 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NotifyListener]:
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
    else:
        address = f"@spoold-test-{os.getpid()}-{secrets.token_hex(6)}"
    ln = NotifyListener(address)
    try:
        yield ln
    finally:
        ln.close()


def leave_a_claim_behind(spool: Path, daemon_factory: Callable[..., DaemonProc]) -> str:
    """Kill a daemon (and its workers) mid-job: its claim stays in running/. The job id."""
    d = daemon_factory(spool, env=PLUGIN_ENV)
    stage_file(spool, "long.slow", "60")
    started = wait_for(
        lambda: [e for e in events(spool) if e["event"] == "job.started"], what="job started"
    )
    d.kill_group()
    d.wait()
    assert len(os.listdir(spool / "running")) == 1, "the claim stays behind"
    return str(started[0]["job_id"])


def metric_samples(text: str) -> list[Sample]:
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def sample_values(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """{sorted label items: value} of every sample called `name`."""
    return {
        tuple(sorted(s.labels.items())): s.value for s in metric_samples(text) if s.name == name
    }


def one_value(text: str, name: str, **labels: str) -> float:
    found = [s.value for s in metric_samples(text) if s.name == name and s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def metrics_text(spool: Path) -> str:
    try:
        return (spool / ".spoold" / "metrics.prom").read_text()
    except FileNotFoundError:
        return ""


def entries(folder: Path) -> int:
    return sum(1 for n in os.listdir(folder) if not n.startswith("."))


def depths(text: str, spool: str) -> dict[str, float]:
    return {
        dict(labels)["state"]: v
        for labels, v in sample_values(text, "spoold_queue_depth").items()
        if dict(labels)["spool"] == spool
    }


def folder_depths(spool: Path) -> dict[str, float]:
    return {
        "queued": entries(spool / "inbox"),
        "running": entries(spool / "running"),
        "done": entries(spool / "done"),
        "failed": entries(spool / "failed"),
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())
    except (urllib.error.URLError, ConnectionError):
        return None


# ------------------------------------------------------------------ sd_notify


def test_sd_notify_lifecycle(
    listener: NotifyListener, make_spool: Callable[..., Path], daemon_factory: Any
) -> None:
    spool = make_spool(drain_s=3)
    job_id = leave_a_claim_behind(spool, daemon_factory)
    env = {**PLUGIN_ENV, "NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "1000000"}

    # A daemon that dies in the middle of recovering running/ never said READY=1.
    crashed = daemon_factory(spool, env={**env, "SPOOLD_CRASH_AT": "before_recovery_requeue"})
    assert crashed.wait() == -signal.SIGKILL
    crashed.kill_group()  # its forkserver
    assert not any("READY" in f for f in listener.fields())
    assert not any(e["event"] == "job.recovered" for e in events(spool))
    first = len(listener.fields())

    d = daemon_factory(spool, env=env)
    ready = listener.wait(lambda f: f.get("READY") == "1", first, what="READY=1")
    # Read at once: recovery was over when READY=1 was sent.
    recovered = [e for e in events(spool) if e["event"] == "job.recovered"]
    assert [e["job_id"] for e in recovered] == [job_id]
    status = listener.fields()[ready].get("STATUS", "")
    assert re.fullmatch(r"\d+/2 busy, \d+ queued", status), status

    # WATCHDOG=1 keeps coming (every half WATCHDOG_USEC) while the loop runs.
    wait_for(
        lambda: sum("WATCHDOG" in f for f in listener.fields()[ready:]) >= 3,
        what="three WATCHDOG=1",
    )
    assert all(f["WATCHDOG"] == "1" for f in listener.fields() if "WATCHDOG" in f)
    # The recovered job runs again (attempt 2) and STATUS follows it.
    wait_for(
        lambda: any(
            e["event"] == "job.started" and e["job_id"] == job_id and e["attempt"] == 2
            for e in events(spool)
        ),
        what="recovered job started again",
    )
    listener.wait(lambda f: f.get("STATUS", "").startswith("1/2 busy"), ready, "STATUS busy")

    # SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 once the settings are in.
    mark = len(listener.fields())
    d.signal(signal.SIGHUP)
    reloading = listener.wait(lambda f: f.get("RELOADING") == "1", mark, "RELOADING=1")
    usec = listener.fields()[reloading].get("MONOTONIC_USEC", "")
    assert usec.isdigit() and int(usec) > 0
    listener.wait(lambda f: f.get("READY") == "1", reloading + 1, "READY=1 after the reload")

    # SIGTERM: STOPPING=1, STATUS says draining until the end, exit 0. A SIGHUP while
    # draining must not bring READY=1 back.
    mark = len(listener.fields())
    d.signal(signal.SIGTERM)
    stopping = listener.wait(lambda f: f.get("STOPPING") == "1", mark, "STOPPING=1")
    d.signal(signal.SIGHUP)
    assert d.wait() == 0
    after = listener.fields()[stopping:]
    assert not any("READY" in f or "RELOADING" in f for f in after)
    statuses = [f["STATUS"] for f in after if "STATUS" in f]
    assert statuses and all(s.startswith("draining") for s in statuses), statuses
    # The drain deadline put the unfinished job back, without a lost attempt.
    assert entries(spool / "inbox") == 1 and entries(spool / "running") == 0

    # Only the main process ever wrote to the socket (NotifyAccess=main).
    pids = {pid for pid, _f in listener.poll()[first:]}
    assert pids == {d.pid}, (pids, d.pid)


# ------------------------------------------------------------------ metrics


def test_metrics_textfile_matches_the_folders(
    make_spool: Callable[..., Path], daemon_factory: Any
) -> None:
    spool = make_spool(max_attempts=1)
    daemon_factory(spool, env=PLUGIN_ENV)
    for i in range(3):
        # Distinct texts: the same text twice is a duplicate, reused, not converted again.
        stage_file(spool, f"doc{i}.md", MD + f"\nDocument {i}.\n")
    stage_file(spool, "odd.xyz", "not a document")  # input_unsupported
    stage_file(spool, "wobbly.flaky", "5")  # io_error, no second attempt
    wait_for(
        lambda: len(published(spool)) == 3 and len(published(spool, "failed")) == 2,
        what="three done, two failed",
    )
    # The file is rewritten every housekeeping pass: wait for one that saw the end.
    wait_for(
        lambda: depths(metrics_text(spool), spool.name) == folder_depths(spool),
        what="queue depths equal to the folders",
    )
    text = metrics_text(spool)
    assert depths(text, spool.name) == {"queued": 0, "running": 0, "done": 3, "failed": 2}

    ms = manifests(spool)
    expected = collections.Counter(
        (m["status"], (m.get("error") or {}).get("code", "")) for m in ms
    )
    assert expected == {
        ("succeeded", ""): 3,
        ("failed", "input_unsupported"): 1,
        ("failed", "io_error"): 1,
    }
    jobs = {
        (dict(k)["outcome"], dict(k)["error_code"]): v
        for k, v in sample_values(text, "spoold_jobs_total").items()
        if dict(k)["spool"] == spool.name
    }
    assert jobs == expected
    counts = sample_values(text, "spoold_job_duration_seconds_count")
    assert sum(counts.values()) == len(ms) == 5
    by_outcome = {dict(k)["outcome"]: v for k, v in counts.items()}
    assert by_outcome == {"succeeded": 3, "failed": 2}

    spools = {"spools": spool.name}
    assert one_value(text, "spoold_workers_busy", **spools) == 0
    assert one_value(text, "spoold_workers_configured", **spools) == 2
    assert one_value(text, "spoold_worker_utilization_ratio", **spools) == 0
    assert one_value(text, "spoold_disk_free_bytes", spool=spool.name) > 0
    started = one_value(text, "spoold_start_time_seconds")
    assert one_value(text, "spoold_last_scan_timestamp_seconds", spool=spool.name) >= started
    assert one_value(text, "spoold_oldest_queued_age_seconds", spool=spool.name) == 0
    # Each converted document was timed per target (the html of the three successes).
    conversions = sample_values(text, "spoold_conversion_seconds_count")
    assert conversions == {(("spool", spool.name), ("target", "html")): 3}


def test_worker_restarts_and_conversion_seconds(
    make_spool: Callable[..., Path], daemon_factory: Any
) -> None:
    spool = make_spool(max_attempts=1, targets=["html", "pdf"])
    daemon_factory(spool, env=PLUGIN_ENV)
    # Only the hanging job has the short timeout: doc.md must finish however loaded the
    # machine is.
    folder = spool / "tmp" / "forever"
    folder.mkdir()
    (folder / "forever.hang").write_text("")
    (folder / "job.json").write_text(json.dumps({"timeout_s": 1}))
    folder.rename(spool / "inbox" / "forever")
    stage_file(spool, "doc.md", MD)
    wait_for(lambda: published(spool) and published(spool, "failed"), what="both finished")
    # The textfile is rewritten every 2 s: wait for one written after both ended.
    wait_for(
        lambda: (
            sample_values(metrics_text(spool), "spoold_worker_restarts_total")
            and sample_values(metrics_text(spool), "spoold_conversion_seconds_count")
        ),
        what="the restart and the conversions counted",
    )
    text = metrics_text(spool)
    restarts = sample_values(text, "spoold_worker_restarts_total")
    assert restarts == {(("cause", "timeout"), ("spool", spool.name)): 1}
    conversions = sample_values(text, "spoold_conversion_seconds_count")
    assert conversions == {
        (("spool", spool.name), ("target", "html")): 1,
        (("spool", spool.name), ("target", "pdf")): 1,
    }


def test_queued_depth_counts_the_inbox_while_claims_are_paused(
    make_spool: Callable[..., Path], daemon_factory: Any
) -> None:
    # More free space than any disk has: the daemon pauses claims, jobs stay queued.
    spool = make_spool(min_free_mb=2**40)
    daemon_factory(spool)
    for i in range(4):
        stage_file(spool, f"wait{i}.md", MD)
    wait_for(
        lambda: depths(metrics_text(spool), spool.name).get("queued") == 4,
        what="four queued in the metrics",
    )
    assert any(e["event"] == "daemon.paused" for e in events(spool))
    assert depths(metrics_text(spool), spool.name) == folder_depths(spool)
    assert folder_depths(spool)["queued"] == 4
    # They wait: the oldest one's age grows past zero (as a stuck-queue alert sees it).
    wait_for(
        lambda: any(
            v > 0
            for v in sample_values(metrics_text(spool), "spoold_oldest_queued_age_seconds").values()
        ),
        what="the oldest entry's age reported",
    )


def test_last_scan_time_moves_only_when_a_scan_completes(
    make_spool: Callable[..., Path], daemon_factory: Any
) -> None:
    # inotify and no timed rescans: after the first, a scan runs only when a job is put
    # back into the inbox (here: a retry).
    spool = make_spool(scan_interval_s=3600, max_attempts=2)
    daemon_factory(spool, args=("--workers", "1", "--detect", "inotify"), env=PLUGIN_ENV)
    prom = spool / ".spoold" / "metrics.prom"

    def last_scan() -> float | None:
        text = metrics_text(spool)
        found = [
            s.value for s in metric_samples(text) if s.name == "spoold_last_scan_timestamp_seconds"
        ]
        return found[0] if found else None

    first = wait_for(last_scan, what="first scan reported")
    # Two more housekeeping passes (each replaces the file, so a new inode).
    seen = {prom.stat().st_ino}
    wait_for(lambda: seen.add(prom.stat().st_ino) or len(seen) >= 3, what="two rewrites")
    assert last_scan() == first, "no scan ran, so the time must not move"

    stage_file(spool, "once.flaky", "1")  # fails once (retryable), then succeeds
    wait_for(lambda: published(spool), what="retried job done")
    assert any(e["event"] == "job.retry_scheduled" for e in events(spool))
    wait_for(lambda: (last_scan() or 0) > first, what="the rescan after the retry reported")


def test_metrics_port_serves_the_same_families(
    make_spool: Callable[..., Path], daemon_factory: Any
) -> None:
    spool = make_spool()
    port = free_port()
    d = daemon_factory(spool, args=("--workers", "2", "--metrics-port", str(port)))
    stage_file(spool, "one.md", MD)
    wait_for(lambda: published(spool), what="job done")
    url = f"http://127.0.0.1:{port}/metrics"

    def same() -> bool:
        served = http_get(url)
        text = metrics_text(spool)
        if not served or not text:
            return False
        fams = {f.name for f in text_string_to_metric_families(served)}
        return fams == {f.name for f in text_string_to_metric_families(text)} and (
            sample_values(served, "spoold_jobs_total") == sample_values(text, "spoold_jobs_total")
        )

    wait_for(same, what="the endpoint and the file agree")
    served = http_get(url) or ""
    assert "spoold_queue_depth" in served and "spoold_jobs_total" in served
    assert d.stop() == 0
    assert http_get(url) is None, "the server is gone with the daemon"


def test_metrics_port_in_use_stops_the_start(
    make_spool: Callable[..., Path], daemon_factory: Any
) -> None:
    spool = make_spool()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        d = daemon_factory(spool, args=("--workers", "1", "--metrics-port", str(port)))
        assert d.wait() == 69
    out = d.log()
    assert "Traceback" not in out
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0].lower()
    # Stopped before touching the spool: no lease taken, nothing recorded.
    assert os.listdir(spool / ".spoold" / "daemons") == []
    assert events(spool) == []


def test_folder_count_lists_only_after_a_change(tmp_path: Path) -> None:
    folder = tmp_path / "done"
    folder.mkdir()
    for n in ("a", "b", ".hidden"):
        (folder / n).mkdir()
    old = os.stat(folder).st_mtime - 3600
    os.utime(folder, (old, old))  # long quiet: its mtime can be trusted
    fc = FolderCount(folder)
    fc.SPACING_FACTOR = 0  # no pause between listings here (tested below)
    assert fc.count() == 2 and fc.listings == 1
    assert fc.count() == 2 and fc.listings == 1, "unchanged folder: no second listing"
    (folder / "c").mkdir()
    assert fc.count() == 3 and fc.listings == 2
    assert fc.count() == 3 and fc.listings == 3, "a fresh mtime is not trusted yet"
    os.rmdir(folder / "a")
    os.rmdir(folder / "b")
    assert fc.count() == 1
    folder.rename(tmp_path / "gone")
    assert fc.count() == 1, "an unreadable folder keeps the last figure"


def test_folder_count_spaces_out_listings(tmp_path: Path) -> None:
    fc = FolderCount(tmp_path)
    fc.SPACING_FACTOR = 1e9  # the next listing waits "forever"
    assert fc.count() == 0 and fc.listings == 1
    (tmp_path / "new").mkdir()
    assert fc.count() == 0 and fc.listings == 1, "too soon after the last listing"


# ------------------------------------------------------------------ logs


def test_a_failing_job_is_one_log_line_without_a_traceback(
    make_spool: Callable[..., Path], daemon_factory: Any
) -> None:
    # DOCX: the PDF is parsed (by pdfminer), so a broken one fails in the converter.
    spool = make_spool(max_attempts=1, targets=["docx"])
    d = daemon_factory(spool, env=PLUGIN_ENV)
    stage_file(spool, "fine.md", MD)
    stage_file(spool, "odd.xyz", "not a document")
    stage_file(spool, "broken.pdf", b"%PDF-1.4\nthis is no PDF at all\n%%EOF\n")
    stage_file(spool, "wobbly.flaky", "5")
    wait_for(lambda: len(published(spool, "failed")) == 3, what="three failures")
    wait_for(lambda: len(published(spool)) == 1, what="one success")
    assert d.stop() == 0
    out = d.log()
    assert "Traceback" not in out, out
    failed = [m for m in manifests(spool) if m["status"] == "failed"]
    assert {m["error"]["code"] for m in failed} >= {"input_unsupported", "io_error"}
    for m in failed:
        lines = [line for line in out.splitlines() if m["job_id"] in line and "failed" in line]
        assert len(lines) == 1, lines
        assert "job.failed" in lines[0] and f"code={m['error']['code']}" in lines[0]


def test_json_log_format_is_one_object_per_line(
    make_spool: Callable[..., Path], daemon_factory: Any
) -> None:
    spool = make_spool(max_attempts=1)
    d = daemon_factory(spool, args=("--workers", "2", "--log-format", "json"))
    stage_file(spool, "fine.md", MD)
    stage_file(spool, "odd.xyz", "not a document")
    wait_for(lambda: published(spool) and published(spool, "failed"), what="both finished")
    d.signal(signal.SIGHUP)  # "settings reloaded": a plain message, not an event
    wait_for(lambda: "settings reloaded" in d.log(), what="reload logged")
    assert d.stop() == 0
    lines = [line for line in d.log().splitlines() if line.strip()]
    objects = []
    for line in lines:
        obj = json.loads(line)
        assert isinstance(obj, dict) and {"ts", "level", "logger"} <= obj.keys(), line
        objects.append(obj)
    by_event = {o.get("event"): o for o in objects}
    assert by_event["job.failed"]["code"] == "input_unsupported"
    assert by_event["job.succeeded"]["name"] == "fine.md"
    assert {"daemon.started", "daemon.stopping"} <= by_event.keys()
    assert any(o.get("message") == "settings reloaded" for o in objects)
