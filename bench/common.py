"""Shared helpers for the benchmarks: temp spools, a real daemon, waiting, RSS, results.

Every bench prints `name: value unit (target ...)` lines and appends one JSON line per
figure to bench/results/latest.ndjson. Daemons run in their own session so that the
daemon and its workers can be killed together on error.
"""

from __future__ import annotations

import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from spoold.settings import spool_toml  # noqa: E402
from spoold.spool.eventfiles import Tail, read_events  # noqa: E402
from spoold.spool.protocol import init_spool  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "latest.ndjson"


# ------------------------------------------------------------------ results


def report(
    bench: str,
    name: str,
    value: float | str,
    unit: str = "",
    target: str | None = None,
    **extra: Any,
) -> None:
    """Print one figure as a plain line and append it as JSON to latest.ndjson."""
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    line = f"{name}: {shown}{' ' + unit if unit else ''}"
    if target:
        line += f" (target {target})"
    print(line, flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bench": bench,
        "name": name,
        "value": value,
        "unit": unit,
        "target": target,
        "machine": f"{os.cpu_count()}x {platform.machine()}",
        **extra,
    }
    with RESULTS.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; enough for a few hundred samples."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


# ------------------------------------------------------------------ spools


def write_settings(spool: Path, settings: dict[str, Any]) -> None:
    (spool / "spool.toml").write_text(spool_toml(settings))


@contextmanager
def temp_dir(prefix: str = "spoold-bench-", base: str | None = None) -> Iterator[Path]:
    # base=None: $TMPDIR or /tmp, a real disk here; "/dev/shm" separates CPU from disk.
    with tempfile.TemporaryDirectory(prefix=prefix, dir=base) as tmp:
        yield Path(tmp)


def fs_baseline(folder: Path, n: int = 200) -> dict[str, float]:
    """Microseconds per metadata operation on `folder`'s filesystem: the floor under
    every claim (mkdir, rename) and publish (create, fsync, rename)."""
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    for i in range(n):
        os.mkdir(folder / f"d{i}")
    out["mkdir_us"] = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for i in range(n):
        os.rename(folder / f"d{i}", folder / f"e{i}")
    out["rename_us"] = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for i in range(n):
        fd = os.open(folder / f"f{i}", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"x" * 200)
        os.close(fd)
    out["create_us"] = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for i in range(n // 4):
        fd = os.open(folder / f"f{i}", os.O_WRONLY)
        os.write(fd, b"y")
        os.fsync(fd)
        os.close(fd)
    out["fsync_us"] = (time.perf_counter() - t0) / (n // 4) * 1e6
    return {k: round(v, 1) for k, v in out.items()}


def make_spool(parent: Path, name: str = "spool", **settings: Any) -> Path:
    root = parent / name
    init_spool(root)
    # Figures should not depend on free disk on the test machine.
    write_settings(root, {"min_free_mb": 0, **settings})
    return root


def stage_files(spool: Path, items: list[tuple[str, bytes]]) -> list[tuple[Path, Path]]:
    """Write each file into tmp/; return (staged, final) pairs for a later rename."""
    pairs = []
    for name, data in items:
        staged = spool / "tmp" / f".{name}.staging"
        staged.write_bytes(data)
        pairs.append((staged, spool / "inbox" / name))
    return pairs


def tiny_markdown(i: int) -> bytes:
    # Unique bytes per job: identical inputs would be served from the duplicate cache.
    return f"# Note {i}\n\nA tiny document, number {i}, with *some* text.\n".encode()


# ------------------------------------------------------------------ daemon


class Daemon:
    """`python -m spoold run SPOOL --workers N` in its own session, like systemd."""

    def __init__(
        self,
        spool: Path,
        workers: int = 2,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        python_args: tuple[str, ...] = (),
    ) -> None:
        self.spool = spool
        self.log_path = spool.parent / f"daemon-{spool.name}.log"
        # python_args: e.g. ("-m", "cProfile", "-o", FILE) to profile the daemon.
        cmd = [sys.executable, *python_args, "-m", "spoold", "run", str(spool)]
        cmd += ["--workers", str(workers)]
        self._log = self.log_path.open("ab")
        self._log_start = self._log.tell()  # this daemon's lines (the file is appended to)
        self.proc = subprocess.Popen(
            [*cmd, *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60, workers: bool = True) -> None:
        """Until daemon.started and, with `workers`, until every worker has imported the
        converters. daemon.started comes before that (workers start in parallel since
        68bc5e5): a bench that starts its clock and CPU counters at daemon.started
        charges the workers' start (about 1 s of CPU each) to its jobs."""
        events = self.spool / ".spoold" / "events.ndjson"

        def started() -> bool:
            self._check_alive()
            return any(e.get("event") == "daemon.started" for e in read_events(events))

        wait_for(started, timeout, "daemon start")
        if workers:
            self.wait_workers()

    def wait_workers(self, timeout: float = 120) -> None:
        """Until the daemon logs that all its workers are ready (daemon/executor.py)."""

        def ready() -> bool:
            self._check_alive()
            with self.log_path.open("rb") as fh:
                fh.seek(self._log_start)
                return b"workers ready" in fh.read()

        wait_for(ready, timeout, "workers ready", poll_s=0.02)

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"daemon exited early:\n{self.log_path.read_text()[-2000:]}")

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM (drain), wait; kill the whole session if it does not stop in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap()

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self._reap()

    def _reap(self) -> None:
        # Workers lead their own process groups but stay in the daemon's session.
        for pid in session_pids(self.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.stop()
        else:
            self.kill()


def session_pids(sid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[3]) == sid:
                out.append(int(entry))
    return out


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is index 0)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def worker_pids(daemon_pid: int) -> list[int]:
    """The pool's workers: the daemon's children started by multiprocessing's spawn
    (spoold/daemon/executor.py), or the children of a forkserver if there is one."""
    tree = children_map()
    out = []
    for child in tree.get(daemon_pid, []):
        line = _cmdline(child)
        if "spawn_main" in line:
            out.append(child)
        elif "forkserver" in line:
            out += tree.get(child, [])
    return sorted(out)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far."""
    fields = _stat_fields(pid)
    if not fields:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pool_cpu_s(daemon_pid: int) -> float:
    """CPU seconds so far of the daemon's workers: live ones (with their own reaped
    children), and the ones already recycled and reaped by the daemon (its cutime)."""
    tree = children_map()
    total = 0.0
    for pid in tree.get(daemon_pid, []):
        fields = _stat_fields(pid)
        if fields:
            total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    fields = _stat_fields(daemon_pid)
    if fields:
        total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return total


def job_cpu_s(spool: Path, event: dict[str, Any]) -> float:
    """The worker CPU seconds of a finished job's last attempt, from its manifest."""
    manifest = json.loads((spool / event["path"] / "manifest.json").read_text())
    usage = manifest["attempts"][-1].get("usage") or {}
    return float(usage.get("cpu_s", 0.0))


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# ------------------------------------------------------------------ waiting


def wait_for(cond: Callable[[], Any], timeout: float, what: str, poll_s: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll_s)


def count_entries(folder: Path) -> int:
    with os.scandir(folder) as it:
        return sum(1 for _ in it)


class EventTail:
    """Reads new lines of the events log incrementally (every daemon's file, no
    re-reading): spoold's own eventfiles.Tail."""

    def __init__(self, spool: Path, from_end: bool = True) -> None:
        self.tail = Tail(spool / ".spoold" / "events.ndjson", from_start=not from_end)

    def read(self) -> list[dict[str, Any]]:
        return self.tail.poll()


def wait_finished(
    tail: EventTail, names: set[str], timeout: float, poll_s: float = 0.01
) -> dict[str, dict[str, Any]]:
    """Wait until every entry name in `names` has a final event; return them by name."""
    final = {"job.succeeded", "job.failed", "job.cancelled"}
    out: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(out) < len(names):
        for ev in tail.read():
            if ev.get("event") in final and ev.get("name") in names:
                out[ev["name"]] = ev
        if len(out) >= len(names):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(out)}/{len(names)} jobs finished in {timeout:g} s")
        time.sleep(poll_s)
    return out


def run_batch(
    daemon_pid: int, spool: Path, tail: EventTail, pairs: list[tuple[Path, Path]], timeout: float
) -> tuple[float, float, int]:
    """Rename the staged `pairs` into inbox/ at once and wait for their final events:
    (wall seconds, daemon + worker CPU seconds, failed jobs)."""
    cpu0 = cpu_s(daemon_pid)
    t0 = time.monotonic()
    for staged, final in pairs:
        os.rename(staged, final)
    finished = wait_finished(tail, {f.name for _, f in pairs}, timeout=timeout)
    wall = time.monotonic() - t0
    daemon_cpu = cpu_s(daemon_pid) - cpu0
    failed = [ev for ev in finished.values() if ev["event"] != "job.succeeded"]
    for ev in failed:
        print(f"  failed: {ev['name']}: {ev.get('message')}", file=sys.stderr)
    workers = sum(job_cpu_s(spool, ev) for ev in finished.values())
    return wall, daemon_cpu + workers, len(failed)


# ------------------------------------------------------------------ corpus

_WORDS = [
    "spool",
    "daemon",
    "folder",
    "rename",
    "claim",
    "worker",
    "publish",
    "manifest",
    "document",
    "page",
    "table",
    "list",
    "heading",
    "paragraph",
    "render",
    "layout",
    "font",
    "margin",
    "queue",
    "inbox",
    "result",
    "archive",
    "printer",
    "report",
    "quarterly",
    "figure",
    "summary",
    "method",
    "analysis",
    "budget",
    "review",
    "draft",
    "final",
]


def corpus(count: int = 20, seed: int = 7) -> list[tuple[str, str]]:
    """Markdown documents of 1-20 pages with headings, lists, tables, code, quotes."""
    rng = random.Random(seed)
    docs = []
    for i in range(count):
        pages = 1 + round(19 * i / max(1, count - 1))  # 1 .. 20, spread evenly
        docs.append((f"doc-{i:02d}.md", _document(rng, i, pages)))
    return docs


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(8, 18))
    return " ".join(words).capitalize() + "."


def _document(rng: random.Random, index: int, pages: int) -> str:
    out = [f"---\ntitle: Benchmark document {index}\nauthor: bench\n---\n", f"# Document {index}\n"]
    # About one section of ~450 words of mixed blocks per page (A4, default theme).
    for section in range(pages):
        out.append(f"## Section {section + 1}\n")
        for _ in range(2):
            out.append(" ".join(_sentence(rng) for _ in range(5)) + "\n")
        out.append("".join(f"- {_sentence(rng)}\n" for _ in range(4)))
        out.append("".join(f"{n}. {_sentence(rng)}\n" for n in range(1, 4)))
        rows = "".join(
            f"| {rng.choice(_WORDS)} | {rng.randint(1, 9999)} | {rng.random():.3f} |\n"
            for _ in range(6)
        )
        out.append("| name | count | ratio |\n|---|---:|---:|\n" + rows)
        out.append(
            "```python\n"
            + "".join(f"value_{k} = compute({k}, {rng.randint(0, 99)})\n" for k in range(5))
            + "```\n"
        )
        out.append(f"> {_sentence(rng)}\n")
        out.append(" ".join(_sentence(rng) for _ in range(4)) + "\n")
    return "\n".join(out)


def warm_workers(spool: Path, text: str, workers: int = 2) -> EventTail:
    """Run one job per worker outside the timing (fonts, WeasyPrint caches), and return
    the event tail positioned after them."""
    warm = stage_files(spool, [(f"warm{i}.md", f"{text}\n{i}\n".encode()) for i in range(workers)])
    tail = EventTail(spool)
    for staged, final in warm:
        os.rename(staged, final)
    wait_finished(tail, {f.name for _, f in warm}, timeout=120)
    return tail
