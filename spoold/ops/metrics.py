"""Prometheus metrics of one spoold daemon.

The figures live in a private :class:`~prometheus_client.CollectorRegistry` (not the
process-global one, so tests and embedding tools never see each other's series) and
leave the process two ways: :meth:`Metrics.write_textfile` writes
``SPOOL/.spoold/metrics.prom`` for node_exporter's textfile collector, and
:meth:`Metrics.serve` answers ``/metrics`` on a loopback port.

Metrics (every name starts with ``spoold_``; docs/operations.md lists them too):

``spoold_queue_depth{spool,state}`` (gauge)
    Jobs per state: ``queued`` (waiting in inbox/), ``running``, ``done``, ``failed``.
``spoold_jobs_total{spool,outcome,error_code}`` (counter)
    Finished jobs since start, by outcome (``succeeded``, ``failed``, ``cancelled``)
    and error code (empty when there is none).
``spoold_job_duration_seconds{spool,outcome}`` (histogram)
    Wall time of the finished attempt, buckets from 10 ms to 10 min.
``spoold_conversion_seconds{spool,target}`` (histogram)
    Wall time of converting to one target (html, pdf, docx) in a worker, per artifact
    made; same buckets.
``spoold_oldest_queued_age_seconds{spool}`` (gauge)
    How long the longest-waiting inbox entry has waited since this daemon first saw it
    (0 when none waits): a stuck queue shows as a growing age.
``spoold_worker_restarts_total{spool,cause}`` (counter)
    Worker processes replaced because one was stopped during a job of this spool:
    ``timeout``, ``died`` (crash, CPU limit, out of memory), ``cancelled`` (a hard
    cancel or a drain deadline).
``spoold_workers_busy{spools}`` / ``spoold_workers_configured{spools}`` (gauges)
    Worker processes converting now / in the pool.
``spoold_worker_utilization_ratio{spools}`` (gauge)
    busy / configured, 0..1.
``spoold_disk_free_bytes{spool}`` (gauge)
    Free space for unprivileged users on the spool's filesystem.
``spoold_last_scan_timestamp_seconds{spool}`` (gauge)
    Unix time (when it began) of the last completed full scan of the spool's inbox;
    alert when it falls behind.
``spoold_start_time_seconds`` (gauge)
    Unix time the daemon started.
``spoold_build_info{version}`` (gauge, always 1)
    The running spoold version.
``spoold_http_requests_total{route,method,status}`` (counter), ``spoold_http_request_duration_seconds{route,method,status}`` (histogram)
    The HTTP gateway's requests (``spoold serve``; only in its /metrics), by route
    template (``/v1/spools/{spool}/jobs/{job_id}``), method and status; 1 ms to 60 s.

The daemon-wide worker gauges carry a ``spools`` label (the sorted, comma-separated
names of the spools this daemon serves) instead of none: two daemons on one host
(``spoold@a``, ``spoold@b``) feeding one textfile collector would otherwise export
the same series twice, which node_exporter rejects.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from .. import __version__
from ..errors import SpooldError
from ..spool.clock import wall_time

log = logging.getLogger(__name__)

QUEUE_STATES = ("queued", "running", "done", "failed")

# Document conversion spans a small HTML copy (tens of ms) to a long PDF with images
# (minutes, up to the default 600 s CPU limit).
DURATION_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)


class MetricsPortError(SpooldError):
    """The metrics port could not be bound (in use, or not allowed): start-up stops.

    `spoold run` prints it as one line and exits 69 (EX_UNAVAILABLE).
    """


class FolderCount:
    """How many entries (non-hidden names) one folder holds, listed only when needed.

    For the done/failed/running queue depths. Why not counters kept by the daemon on
    publish and purge: these folders also change behind its back (other daemons on the
    same spool, `spoold purge` or `spoold retry` from a shell, people deleting their
    results), so a counter would drift for good. A listing is the truth, but costs
    about 60 ms per 100,000 entries on a local disk (far more over NFS): too much for
    every 2-second housekeeping pass of a big done/. So:

    - the folder is stat'ed on each call (microseconds) and listed again only when its
      inode, mtime or ctime changed;
    - an mtime less than ``MTIME_SLACK_S`` old is not trusted (filesystems with coarse
      timestamps can change twice within one tick): such a folder is listed again on
      the next call;
    - listings are spaced out: after one that took *t* seconds the next waits at least
      ``SPACING_FACTOR`` × *t*, so counting costs at most ~2% of the daemon's time;
    - and every ``FORCE_S`` seconds the folder is listed regardless, in case a
      (network) filesystem does not update a directory's mtime.

    :meth:`count` never raises: on an error it returns the last known figure.
    """

    MTIME_SLACK_S = 2.0
    SPACING_FACTOR = 50.0
    FORCE_S = 300.0

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.listings = 0  # how many times the folder was listed (tests, debugging)
        self._count = 0
        self._sig: tuple[int, int, int] | None = None
        self._trusted = False
        self._next_allowed = 0.0
        self._next_forced = 0.0

    def count(self) -> int:
        now = time.monotonic()
        try:
            st = os.stat(self.path)
        except OSError as exc:
            log.debug("cannot stat %s: %s", self.path, exc)
            return self._count
        sig = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        unchanged = sig == self._sig and self._trusted and now < self._next_forced
        if unchanged or now < self._next_allowed:
            return self._count
        try:
            n = 0
            with os.scandir(self.path) as it:
                for de in it:
                    if not de.name.startswith("."):
                        n += 1
        except OSError as exc:
            log.debug("cannot list %s: %s", self.path, exc)
            return self._count
        done = time.monotonic()
        self.listings += 1
        self._count = n
        # The signature from before the listing: a change made while listing moves the
        # mtime past it, so the next call lists again.
        self._sig = sig
        self._trusted = wall_time() - st.st_mtime_ns / 1e9 > self.MTIME_SLACK_S
        self._next_allowed = done + (done - now) * self.SPACING_FACTOR
        self._next_forced = done + self.FORCE_S
        return n


def loopback_host(host: str) -> str:
    """``host`` if it is a loopback IP address ('localhost' means 127.0.0.1).

    Raises ValueError otherwise: the metrics endpoint has no authentication, so it is
    never exposed beyond the machine (a local node_exporter or proxy may forward it).
    """
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"metrics host must be a loopback IP address such as 127.0.0.1 or ::1, not {host!r}"
        ) from None
    if not ip.is_loopback:
        raise ValueError(f"metrics host must be a loopback address, not {host!r}")
    return host


class _WorkerCollector:
    """The daemon-wide worker gauges, labelled with the spools seen so far."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spools: set[str] = set()
        self.busy = 0
        self.total = 0

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            label = ",".join(sorted(self.spools))
            busy, total = self.busy, self.total
        families = (
            ("spoold_workers_busy", "Worker processes converting a job now.", busy),
            ("spoold_workers_configured", "Worker processes in the pool.", total),
            (
                "spoold_worker_utilization_ratio",
                "Busy workers divided by configured workers (0..1).",
                busy / total if total else 0.0,
            ),
        )
        for name, doc, value in families:
            fam = GaugeMetricFamily(name, doc, labels=["spools"])
            fam.add_metric([label], float(value))
            yield fam


REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0)


class Metrics:
    """The metrics one daemon (or, with `gateway`, one HTTP gateway) exports; see the
    module docstring for the list."""

    def __init__(self, spools: Iterable[str] = (), *, gateway: bool = False) -> None:
        self.registry = CollectorRegistry()
        self._workers = _WorkerCollector()
        self._workers.spools.update(spools)
        self._servers: list[tuple[WSGIServer, threading.Thread]] = []

        self._define_job_metrics()
        self._define_spool_metrics()
        self.start_time = Gauge(
            "spoold_start_time_seconds",
            "Unix time the daemon started.",
            registry=self.registry,
        )
        self.start_time.set(wall_time())
        self.build_info = Gauge(
            "spoold_build_info",
            "The running spoold version (value always 1).",
            ["version"],
            registry=self.registry,
        )
        self.build_info.labels(version=__version__).set(1)
        if gateway:  # no workers there: its own requests instead
            labels = ["route", "method", "status"]
            self.requests = Counter(
                "spoold_http_requests", "HTTP requests answered.", labels, registry=self.registry
            )
            self.request_duration = Histogram(
                "spoold_http_request_duration_seconds",
                "Time to answer an HTTP request (a stream: until it ended).",
                labels,
                buckets=REQUEST_BUCKETS,
                registry=self.registry,
            )
        else:
            self.registry.register(self._workers)

    def request_finished(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.request_duration.labels(route=route, method=method, status=str(status)).observe(
            max(0.0, seconds)
        )

    def _define_job_metrics(self) -> None:
        self.queue_depth = Gauge(
            "spoold_queue_depth",
            "Jobs per state (queued, running, done, failed).",
            ["spool", "state"],
            registry=self.registry,
        )
        self.jobs = Counter(
            "spoold_jobs",
            "Finished jobs by outcome and error code (empty when none).",
            ["spool", "outcome", "error_code"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "spoold_job_duration_seconds",
            "Wall time of finished job attempts.",
            ["spool", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.conversion = Histogram(
            "spoold_conversion_seconds",
            "Wall time of one conversion to one target in a worker.",
            ["spool", "target"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )

    def _define_spool_metrics(self) -> None:
        self.oldest_queued_age = Gauge(
            "spoold_oldest_queued_age_seconds",
            "Seconds the longest-waiting inbox entry has waited (0 when none waits).",
            ["spool"],
            registry=self.registry,
        )
        self.worker_restarts = Counter(
            "spoold_worker_restarts",
            "Worker processes replaced after one was stopped during a job, by cause.",
            ["spool", "cause"],
            registry=self.registry,
        )
        self.disk_free = Gauge(
            "spoold_disk_free_bytes",
            "Free bytes (for unprivileged users) on the spool's filesystem.",
            ["spool"],
            registry=self.registry,
        )
        self.last_scan = Gauge(
            "spoold_last_scan_timestamp_seconds",
            "Unix time of the last completed scan of the spool.",
            ["spool"],
            registry=self.registry,
        )

    # ------------------------------------------------------------------ updates

    def _seen(self, spool: str) -> None:
        with self._workers.lock:
            self._workers.spools.add(spool)

    def set_queue_depth(self, spool: str, state: str, n: int) -> None:
        if state not in QUEUE_STATES:
            raise ValueError(f"unknown queue state {state!r}; expected one of {QUEUE_STATES}")
        self._seen(spool)
        self.queue_depth.labels(spool=spool, state=state).set(n)

    def job_finished(
        self, spool: str, outcome: str, error_code: str | None, duration_s: float
    ) -> None:
        self._seen(spool)
        self.jobs.labels(spool=spool, outcome=outcome, error_code=error_code or "").inc()
        # A clock step can make a measured wall time negative; it still counts as a job.
        self.job_duration.labels(spool=spool, outcome=outcome).observe(max(0.0, duration_s))

    def conversion_finished(self, spool: str, target: str, seconds: float) -> None:
        self._seen(spool)
        self.conversion.labels(spool=spool, target=target).observe(max(0.0, seconds))

    def set_oldest_queued_age(self, spool: str, age_s: float) -> None:
        self._seen(spool)
        self.oldest_queued_age.labels(spool=spool).set(max(0.0, age_s))

    def worker_restarted(self, spool: str, cause: str) -> None:
        self._seen(spool)
        self.worker_restarts.labels(spool=spool, cause=cause).inc()

    def set_workers(self, busy: int, total: int) -> None:
        with self._workers.lock:
            self._workers.busy = busy
            self._workers.total = total

    def set_disk_free(self, spool: str, free_bytes: int) -> None:
        self._seen(spool)
        self.disk_free.labels(spool=spool).set(free_bytes)

    def scan_completed(self, spool: str, unix_ts: float) -> None:
        self._seen(spool)
        self.last_scan.labels(spool=spool).set(unix_ts)

    # ------------------------------------------------------------------ output

    def render(self) -> bytes:
        """The Prometheus text exposition format (what /metrics serves)."""
        return generate_latest(self.registry)

    def write_textfile(self, path: Path) -> None:
        """Replace ``path`` atomically with :meth:`render`'s text.

        prometheus_client's write_to_textfile renames but does not fsync, so a crash
        could leave an empty file behind the new name. Here: a temporary file in the
        same directory (its name does not end in .prom, so the textfile collector never
        reads it half-written), fsync, rename(2). Mode 0666 minus the umask, so the
        node_exporter user can read it (mkstemp would make it 0600).
        """
        path = Path(path)
        data = self.render()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
            raise

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve /metrics on ``host:port`` (loopback only) from a daemon thread.

        Returns the bound port (useful with port 0). Raises ValueError for a
        non-loopback host and OSError when the port cannot be bound.
        """
        addr = loopback_host(host)
        server, thread = start_http_server(port, addr=addr, registry=self.registry)
        self._servers.append((server, thread))
        bound = int(server.server_port)
        log.info("metrics on http://%s:%d/metrics", addr, bound)
        return bound

    def close(self) -> None:
        """Stop the HTTP servers started by :meth:`serve`."""
        while self._servers:
            server, thread = self._servers.pop()
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
