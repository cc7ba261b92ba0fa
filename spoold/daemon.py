"""The daemon loop: detect, claim, run in the worker pool, publish, requeue, recover.

One thread owns every decision; observers, the pool and signal handlers only put
wake-ups on a queue. Per iteration: collect finished work, look at the inbox (cheap
pending checks, full scans on a timer), handle cancel markers, renew the lease, recover
lost claims on a timer, then claim only as many jobs as there are idle workers.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import multiprocessing
import os
import select
import shutil
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tenacity

from . import __version__
from .convert.base import MEDIA_TYPES, SUFFIX_TYPES
from .crashpoints import crash_point
from .detect import Entry, InboxTracker, InotifyObserver, Observer, PollingObserver, needs_polling
from .errors import ErrorCode, JobError, io_error_code
from .events import EventLog
from .hooks import HookResult, HookRunner, hook_env
from .intake import JobPlan, plan_job
from .job import Attempt, AttemptOutcome, ErrorInfo, JobState, JobStatus, Usage, check_transition
from .manifest import Artifact, FetchRecord, InputInfo, Manifest
from .outputs import apply_output_permissions, error_text, link_flat_output
from .protocol import (
    INPUT_DIR,
    MANIFEST,
    STATE_FILE,
    DaemonLease,
    SpoolPaths,
    atomic_write,
    atomic_write_json,
    claim_entry,
    claim_requeued,
    forget_daemon,
    free_disk_mb,
    iso,
    job_dir_name,
    job_id_of,
    new_job_id,
    new_token,
    open_spool,
    owner_is_gone,
    parse_running_name,
    publish,
    requeue,
)
from .retention import purge
from .scheduler import Candidate, Scheduler
from .settings import DaemonSettings, SpoolSettings, load_spool_settings
from .worker import (
    CANCEL_FLAG,
    STAGE_FILE,
    JobSpec,
    WorkerLimits,
    dedup_record,
    init_worker,
    run_job,
    sha256_file,
)

log = logging.getLogger("spoold")

PURGE_FIRST_DELAY_S = 60.0
PURGE_INTERVAL_S = 3600.0


def read_state(folder: Path) -> JobState | None:
    try:
        return JobState.model_validate_json((folder / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return None


ATTEMPT_HINT = ".spoold-attempt-"


def attempt_hint(folder: Path) -> int:
    """The highest attempt number of the hint files in a job folder (0 when none)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    return max(
        (
            int(n[len(ATTEMPT_HINT) :])
            for n in names
            if n.startswith(ATTEMPT_HINT) and n[len(ATTEMPT_HINT) :].isdigit()
        ),
        default=0,
    )


def state_of(folder: Path, jobdir: str) -> JobState | None:
    """The job's state file, or one rebuilt from the folder when it could not be written
    (a full disk at claim time): the job id from the name, the input from input/.
    Either way, attempt hint files keep attempt numbers growing."""
    state = read_state(folder)
    if state is not None:
        state.attempt_floor = max(state.attempt_floor, attempt_hint(folder))
        return state
    try:
        inputs = sorted(n for n in os.listdir(folder / INPUT_DIR) if not n.startswith("."))
        job_id = jobdir.rsplit(".", 1)[1]
        st = os.lstat(folder / INPUT_DIR / inputs[0])
    except (OSError, IndexError):
        return None
    return JobState(
        job_id=job_id,
        name=inputs[0],
        jobdir=jobdir,
        kind="dir" if os.path.isdir(folder / INPUT_DIR / inputs[0]) else "file",
        owner_uid=st.st_uid,
        arrived_at=iso(),
        attempt_floor=attempt_hint(folder),
    )


class Wakeups:
    """How threads and signal handlers wake the main loop.

    Items go on a deque (append is atomic, no lock) and a byte goes down a
    non-blocking pipe that the loop select()s on. A queue.Queue would deadlock here:
    a signal handler runs in the main thread and may interrupt it while it holds the
    queue's lock inside get().
    """

    def __init__(self) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._items: deque[tuple[str, Any]] = deque()

    def put(self, item: tuple[str, Any]) -> None:
        self._items.append(item)
        try:
            os.write(self._w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of pokes already: the loop will wake anyway

    def wait(self, timeout: float) -> None:
        if self._items:
            return
        try:
            select.select([self._r], [], [], timeout)
        except InterruptedError:
            pass
        try:
            while os.read(self._r, 4096):
                pass
        except BlockingIOError:
            pass

    def pop_all(self) -> list[tuple[str, Any]]:
        out = []
        while self._items:
            out.append(self._items.popleft())
        return out


@dataclass
class RunningJob:
    rt: SpoolRuntime
    state: JobState
    folder: Path
    plan: JobPlan | None
    attempt: Attempt
    future: Any = None
    cancel_mode: str | None = None
    cancel_deadline: float | None = None
    draining: bool = False


@dataclass
class SpoolRuntime:
    """One spool served by this daemon."""

    root: Path
    paths: SpoolPaths
    settings: SpoolSettings
    events: EventLog
    lease: DaemonLease
    tracker: InboxTracker
    markers: dict[str, Entry] = field(default_factory=dict)
    waiting_markers: dict[str, str] = field(default_factory=dict)  # key -> target
    paused: str | None = None
    next_disk_check: float = 0.0

    @property
    def name(self) -> str:
        return self.root.name


class Daemon:
    def __init__(
        self,
        spool_roots: list[Path],
        settings: DaemonSettings,
        spool_defaults: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.spool_defaults = spool_defaults or {}
        self.host_id = settings.host_id or os.uname().nodename
        self.token = new_token()
        self.spools: list[SpoolRuntime] = []
        for root in spool_roots:
            paths = open_spool(root)
            spool_settings = load_spool_settings(root, self.spool_defaults)
            for route in spool_settings.routes:
                (paths.inbox / route).mkdir(exist_ok=True)
            tracker = InboxTracker(
                paths.inbox,
                spool_settings.routes,
                (*spool_settings.ignore, *self._ignore_defaults()),
                spool_settings.settle_ms / 1000,
                spool_settings.incomplete_after_s,
            )
            self.spools.append(
                SpoolRuntime(
                    root=root,
                    paths=paths,
                    settings=spool_settings,
                    events=EventLog(
                        paths.events, self.host_id, int(spool_settings.events_max_mb * 2**20)
                    ),
                    lease=DaemonLease(paths, self.host_id, self.token),
                    tracker=tracker,
                )
            )
        self.scheduler = Scheduler()
        self.running: dict[str, RunningJob] = {}
        self.wakeups = Wakeups()
        self.stopping = False
        self.stop_signalled = False  # SIGTERM seen; begin_stop runs when it is drained
        self.reload_requested = False
        self.rescan_requested = True
        self.pool: Any = None
        self.observer: Observer = PollingObserver()
        self.notifier: Any = None
        self.metrics: Any = None
        self.hooks = HookRunner()
        # Retention runs on its own thread: deleting thousands of folders must not stall
        # claiming. The first purge waits a minute so start-up stays quick.
        self.next_purge = time.monotonic() + PURGE_FIRST_DELAY_S
        self._purge_thread: threading.Thread | None = None
        self.last_progress = time.monotonic()
        self._fs_wake_pending = False

    @staticmethod
    def _ignore_defaults() -> tuple[str, ...]:
        from .settings import DEFAULT_IGNORE

        return DEFAULT_IGNORE

    # ------------------------------------------------------------------ set-up

    def _detect_mode(self) -> str:
        forced = self.settings.detect
        modes = set()
        for rt in self.spools:
            mode = forced or rt.settings.detect
            if mode == "auto":
                mode = "poll" if needs_polling(rt.root) else "inotify"
            modes.add(mode)
        return "poll" if "poll" in modes else "inotify"

    def _start_pool(self) -> None:
        from pebble import ProcessPool

        first = self.spools[0].settings
        limits = WorkerLimits(memory_mb=first.memory_limit_mb, cpu_s=first.cpu_limit_s)
        # forkserver: workers fork from a clean process that preloaded the converters,
        # not from this threaded daemon (fork after threads can deadlock on locks).
        ctx = multiprocessing.get_context("forkserver")
        from .convert import CONVERTER_MODULES

        ctx.set_forkserver_preload(["spoold.worker", *CONVERTER_MODULES])
        self.pool = ProcessPool(
            max_workers=self.settings.workers,
            max_tasks=self.settings.max_tasks_per_worker,
            initializer=init_worker,
            initargs=(limits,),
            context=ctx,
        )
        # Reading `active` starts the forkserver and the workers now, before READY=1;
        # otherwise the first schedule() would, and the first job's job.started would
        # be logged ~250 ms before its worker could begin.
        if not self.pool.active:
            raise RuntimeError("the worker pool did not start")

    def _start_observer(self) -> None:
        self.detect_mode = self._detect_mode()
        if self.detect_mode == "inotify":
            watches: dict[Path, tuple[InboxTracker, str]] = {}
            for rt in self.spools:
                watches[rt.paths.inbox] = (rt.tracker, "")
                for route in rt.settings.routes:
                    watches[rt.paths.inbox / route] = (rt.tracker, route + "/")
            self.observer = InotifyObserver(
                watches,
                wake=self._fs_wake,
                on_overflow=lambda: self.wakeups.put(("overflow", None)),
            )
        else:
            self.observer = PollingObserver()
        self.observer.start()

    def _fs_wake(self) -> None:
        # Called from watchdog's thread for every event: one queued wake-up is enough
        # until the loop has run again.
        if not self._fs_wake_pending:
            self._fs_wake_pending = True
            self.wakeups.put(("fs", None))

    def _install_signals(self) -> None:
        def on_stop(signum: int, frame: object) -> None:
            self.stop_signalled = True  # a plain store: safe in a signal handler
            self.wakeups.put(("stop", signum))

        def on_hup(signum: int, frame: object) -> None:
            self.wakeups.put(("reload", None))

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def _notify(self, **fields: str) -> None:
        if self.notifier is not None:
            try:
                self.notifier.notify(**fields)
            except Exception:  # sd_notify must never take the daemon down
                log.debug("sd_notify failed", exc_info=True)

    # ------------------------------------------------------------------ main loop

    def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT and a drain, return the exit code (0).

        Raises MetricsPortError (before touching any spool) when --metrics-port cannot
        be bound; `spoold run` turns it into one line and exit code 69.
        """
        from .convert import load_plugins
        from .metrics import FolderCount, Metrics, MetricsPortError
        from .sdnotify import Notifier

        # The notifier keeps its own copy of the variables, which leave the environment
        # (as sd_notify(3)'s unset_environment does): workers and hooks inherit it, and
        # must neither report for the daemon nor believe they are watched.
        self.notifier = Notifier(dict(os.environ))
        for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            os.environ.pop(var, None)
        self.metrics = Metrics(rt.name for rt in self.spools)
        # Queue depths of running/, done/ and failed/ (see FolderCount for the cost).
        self._folder_counts: dict[Path, FolderCount] = {
            folder: FolderCount(folder)
            for rt in self.spools
            for folder in (rt.paths.running, rt.paths.done, rt.paths.failed)
        }
        port = self.settings.metrics_port
        if port:
            # Bound first, so a busy port stops the start with nothing to undo (no lease
            # taken, no worker started, no claim recovered).
            try:
                self.metrics.serve(port)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                message = (
                    f"cannot serve metrics on 127.0.0.1:{port}: {reason} "
                    "(choose another --metrics-port / metrics_port)"
                )
                self._notify(STATUS=message)
                raise MetricsPortError(message) from exc
        load_plugins()
        for rt in self.spools:
            rt.paths.daemons.mkdir(exist_ok=True)
            rt.lease.acquire()
        self._install_signals()
        self._start_pool()
        self._notify(STATUS="starting: recovering running/")
        for rt in self.spools:
            self.recover(rt, startup=True)
        self._start_observer()
        for rt in self.spools:
            rt.events.emit(
                "daemon.started",
                pid=os.getpid(),
                workers=self.settings.workers,
                detect=self.detect_mode,
                version=__version__,
            )
        # Only now: running/ is recovered, so whatever systemd starts after spoold sees
        # every job either queued or finished.
        self._notify(READY="1", STATUS=self.status_line())
        try:
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _loop(self) -> None:
        now = time.monotonic()
        self.next_scan = self.next_heartbeat = self.next_housekeeping = now
        self.next_recovery = now + self._recovery_interval()
        # _iterate moves next_scan on only after a full scan of every inbox went
        # through; _housekeeping compares it with this mark to report completed scans.
        self._scan_mark = self.next_scan
        self.watchdog_s: float | None = None
        if self.notifier is not None:
            try:
                self.watchdog_s = self.notifier.watchdog_interval()
            except Exception:
                self.watchdog_s = None
        self.next_watchdog = now
        while True:
            try:
                if self._iterate():
                    return
            except Exception:
                # A bug in handling one job must not stop the daemon: the job stays where
                # it is (recovery picks it up), the error goes to the log.
                log.exception("internal error in the main loop; continuing")
                self._wait(0.5)

    def _iterate(self) -> bool:
        """One pass of the main loop; True when the daemon should exit."""
        now = time.monotonic()
        wall = time.time()
        self._fs_wake_pending = False
        if not self.stopping and not self.stop_signalled:
            # A finished future frees its worker before its job is published: give the
            # worker its next job first, so it does not wait for the publish. (Before
            # the wake-ups are taken: if this raises, they are still queued.)
            self._claim_ready(wall)
        self._drain_wakeups()
        if self.stopping and not self.running:
            return True
        if self.reload_requested:
            self.reload()
        if self.rescan_requested or now >= self.next_scan:
            self.rescan_requested = False
            for rt in self.spools:
                self._accept(rt, rt.tracker.scan(now), wall)
            self.next_scan = now + self._scan_interval()
        else:
            for rt in self.spools:
                self._accept(rt, rt.tracker.check_pending(now), wall)
        if now >= self.next_heartbeat:
            for rt in self.spools:
                rt.lease.heartbeat()
            crash_point("after_heartbeat")
            self.next_heartbeat = now + min(rt.settings.lease_ttl_s for rt in self.spools) / 3
        if now >= self.next_recovery:
            for rt in self.spools:
                self.recover(rt)
            self.next_recovery = now + self._recovery_interval()
        if now >= self.next_housekeeping:
            self._housekeeping()
            self._maybe_purge(now)
            self.next_housekeeping = now + 2.0
        self._handle_markers(wall)
        self._enforce_cancel_deadlines(now)
        if not self.stopping:
            self._claim_ready(wall)
        self.last_progress = now
        if self.watchdog_s is not None and now >= self.next_watchdog:
            # Sent only from here: a loop that stops making progress stops the pings.
            self._notify(WATCHDOG="1")
            self.next_watchdog = now + self.watchdog_s
        timeout = (
            min(self.next_scan, self.next_heartbeat, self.next_recovery, self.next_housekeeping)
            - now
        )
        pending = self._pending_interval(now)
        if pending is not None:
            timeout = min(timeout, pending)
        due = self.scheduler.next_due()
        if due is not None:
            timeout = min(timeout, max(0.0, due - time.time()))
        if self.watchdog_s is not None:
            timeout = min(timeout, max(0.0, self.next_watchdog - now))
        if not self.stopping and self._free_workers():
            paused = {rt.name for rt in self.spools if rt.paused}
            if self.scheduler.has_ready(paused):
                timeout = 0
            for rt in self.spools:
                if rt.paused:
                    timeout = min(timeout, rt.next_disk_check - now)
        # Wake-ups are handled at the top of the next pass, after the claims.
        self.wakeups.wait(max(0.0, timeout))
        return False

    def _wait(self, timeout: float) -> None:
        self.wakeups.wait(timeout)
        self._drain_wakeups()

    def _drain_wakeups(self) -> None:
        for item in self.wakeups.pop_all():
            self._handle_wakeup(item)

    def _handle_wakeup(self, item: tuple[str, Any]) -> None:
        kind, value = item
        if kind == "done":
            job = self.running.get(value)
            if job is not None:
                self._finish(job)
        elif kind == "stop":
            if not self.stopping:
                self.begin_stop()
        elif kind == "reload":
            self.reload_requested = True
        elif kind == "hook":
            self._hook_finished(*value)
        elif kind == "overflow":
            log.warning("inotify queue overflowed: rescanning every inbox")
            self.rescan_requested = True

    def _scan_interval(self) -> float:
        if self.detect_mode == "poll":
            return min(rt.settings.poll_interval_ms for rt in self.spools) / 1000
        return min(rt.settings.scan_interval_s for rt in self.spools)

    def _pending_interval(self, now: float) -> float | None:
        """Seconds until a tracker has an entry to look at again (None: none waits)."""
        due = [t for rt in self.spools if (t := rt.tracker.next_check()) is not None]
        return max(0.0, min(due) - now) if due else None

    def _recovery_interval(self) -> float:
        return max(0.5, min(rt.settings.lease_ttl_s for rt in self.spools) / 2)

    def _free_workers(self) -> int:
        # A job whose future is done holds no worker any more, even before it is published.
        busy = sum(1 for j in self.running.values() if j.future is None or not j.future.done())
        return self.settings.workers - busy

    # ------------------------------------------------------------------ intake

    def _accept(self, rt: SpoolRuntime, entries: list[Entry], wall: float) -> None:
        priorities: dict[str | None, int] = {}  # for_route builds a model: once per route
        for entry in entries:
            if entry.kind == "cancel":
                rt.markers[entry.key] = entry
                continue
            if rt.waiting_markers and self._match_waiting_markers(rt, entry):
                continue
            priority = priorities.get(entry.route)
            if priority is None:
                priority = priorities[entry.route] = rt.settings.for_route(entry.route).priority
            not_before = 0.0
            if entry.kind == "requeued":
                state = state_of(rt.paths.inbox / entry.key, entry.key)
                if state is not None:
                    priority = state.priority
                    not_before = state.next_attempt_at or 0.0
            elif entry.kind == "dir":
                priority = self._job_file_priority(rt.paths.inbox / entry.key, priority)
            self.scheduler.push(Candidate(rt.name, entry, priority, not_before), wall)

    @staticmethod
    def _job_file_priority(folder: Path, default: int) -> int:
        try:
            path = folder / "job.json"
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20:
                value = json.loads(path.read_bytes()).get("priority")
                if isinstance(value, int) and 0 <= value <= 100:
                    return value
        except (OSError, ValueError, AttributeError):
            pass
        return default

    def _runtime(self, name: str) -> SpoolRuntime:
        for rt in self.spools:
            if rt.name == name:
                return rt
        raise KeyError(name)

    def _claim_ready(self, wall: float) -> None:
        free = self._free_workers()  # counted once: as many claims as idle workers now
        if free <= 0:
            return
        for rt in self.spools:
            self._check_disk(rt)
        # Disk short: a paused spool's jobs stay queued (and in the inbox) untouched.
        paused = {rt.name for rt in self.spools if rt.paused}
        for _ in range(free):
            cand = self.scheduler.pop(wall, paused)
            if cand is None:
                return
            rt = self._runtime(cand.spool)
            try:
                self._claim(rt, cand)
            except OSError as exc:
                log.warning("claim of %s failed: %s", cand.entry.key, exc)
                cand.not_before = wall + 1.0
                self.scheduler.push(cand, wall)
                return

    def _check_disk(self, rt: SpoolRuntime) -> None:
        now = time.monotonic()
        if now < rt.next_disk_check:
            return
        rt.next_disk_check = now + 1.0
        try:
            free = free_disk_mb(rt.root)
        except OSError:
            return
        if free < rt.settings.min_free_mb:
            if rt.paused is None:
                rt.paused = (
                    f"free disk {free:.0f} MB is below min_free_mb {rt.settings.min_free_mb}"
                )
                rt.events.emit("daemon.paused", reason=rt.paused)
        elif rt.paused is not None:
            rt.paused = None

    def _claim(self, rt: SpoolRuntime, cand: Candidate) -> None:
        entry = cand.entry
        paths = rt.paths
        if entry.kind == "requeued":
            state = state_of(paths.inbox / entry.key, entry.key)
            if state is None:
                rt.tracker.drop(entry.key)
                return
            folder = claim_requeued(paths, entry.key, state.next_attempt_number, self.token)
            rt.tracker.drop(entry.key)
            if folder is None:
                return
            fresh = read_state(folder)
            if fresh is not None:
                fresh.attempt_floor = state.attempt_floor
                state = fresh
        else:
            job_id = new_job_id()
            jobdir = job_dir_name(entry.name, job_id)
            folder = claim_entry(paths, entry.key, entry.name, jobdir, 1, self.token)
            rt.tracker.drop(entry.key)
            if folder is None:
                return
            crash_point("after_claim_rename")
            state = JobState(
                job_id=job_id,
                name=entry.name,
                jobdir=jobdir,
                kind=entry.kind if entry.kind in ("file", "dir") else "special",
                owner_uid=entry.uid,
                route=entry.route,
                priority=cand.priority,
                arrived_at=iso(_dt(entry.arrived_at)),
            )
            rt.events.emit(
                "job.detected", state.job_id, name=entry.name, route=entry.route, ino=entry.sig[0]
            )
        attempt = Attempt(
            number=state.next_attempt_number,
            host=self.host_id,
            pid=os.getpid(),
            claimed_at=iso(),
        )
        state.attempts.append(attempt)
        state.next_attempt_at = None
        job = RunningJob(rt, state, folder, None, attempt)
        self.running[state.job_id] = job
        # No state write here: the running folder's name already records the job id,
        # the attempt and the claiming daemon, which is all recovery needs. The state
        # file is written when the job goes back to the inbox.
        crash_point("after_state_write")
        rt.events.emit("job.claimed", state.job_id, attempt.number, name=state.name)
        if entry.truncated:
            self._fail_now(
                job,
                JobError(
                    ErrorCode.INPUT_INVALID,
                    f"{entry.name} looks truncated: it stopped changing "
                    f"{rt.settings.incomplete_after_s:.0f} s ago but is not complete",
                    hint="Copy the file again, completely.",
                ),
            )
            return
        self._start(job)

    def _save_state(self, job: RunningJob) -> None:
        atomic_write_json(
            job.folder / STATE_FILE, job.state.to_json(), durable=job.rt.settings.durable
        )

    def _entry_path(self, job: RunningJob) -> Path:
        return job.folder / INPUT_DIR / job.state.name

    def _start(self, job: RunningJob) -> None:
        rt = job.rt
        defaults = rt.settings.for_route(job.state.route)
        try:
            plan = plan_job(
                self._entry_path(job),
                defaults,
                int(rt.settings.max_input_mb * 1024 * 1024),
                rt.settings.allow_fetch,
            )
        except JobError as exc:
            self._fail_now(job, exc)
            return
        except OSError as exc:
            self._fail_now(
                job, JobError(io_error_code(exc), f"cannot read the input: {exc.strerror}")
            )
            return
        job.plan = plan
        reference = plan.extra.get("reference")
        options = dict(plan.options)
        if reference is not None:
            options["reference_docx"] = str(reference)
        spec = JobSpec(
            job_id=job.state.job_id,
            attempt=job.attempt.number,
            folder=str(job.folder),
            job_root=str(plan.job_root),
            main=str(plan.main),
            source_type=plan.source_type,
            targets=plan.targets,
            stem=job.state.jobdir.rsplit(".", 1)[0],
            options=options,
            limits=WorkerLimits(
                memory_mb=rt.settings.memory_limit_mb, cpu_s=rt.settings.cpu_limit_s
            ),
            durable=rt.settings.durable,
            dedup_dir=str(rt.paths.state / "dedup"),
            done_dir=str(rt.paths.done),
            on_duplicate=str(plan.options.get("on_duplicate", "reuse")),
            idempotency_key=plan.idempotency_key,
        )
        job.attempt.started_at = iso()
        job.future = self.pool.schedule(run_job, args=(spec,), timeout=plan.timeout_s)
        job_id = job.state.job_id
        job.future.add_done_callback(lambda _f: self.wakeups.put(("done", job_id)))
        crash_point("after_worker_start")
        rt.events.emit("job.started", job_id, job.attempt.number, targets=list(plan.targets))

    # ------------------------------------------------------------------ finishing

    def _finish(self, job: RunningJob) -> None:
        """A worker future completed: publish, retry or requeue."""
        fut = job.future
        result: dict[str, Any] = {}
        err: JobError | None = None
        try:
            result = fut.result()
        except concurrent.futures.CancelledError:
            if job.draining:
                self._requeue(job, AttemptOutcome.INTERRUPTED, delay=0.0)
                return
            err = JobError(
                ErrorCode.CANCELLED, f"cancelled on request ({job.cancel_mode or 'hard'})"
            )
        except concurrent.futures.TimeoutError:
            timeout = job.plan.timeout_s if job.plan else 0
            err = JobError(
                ErrorCode.TIMEOUT,
                f"the conversion took longer than {timeout:g} s and was stopped",
                retryable=job.rt.settings.timeout_retryable,
            )
        except Exception as exc:
            err = self._worker_death(exc)
        else:
            if "error" in result:
                e = result["error"]
                err = JobError(ErrorCode(e["code"]), e["message"], e["hint"], e["retryable"])
        if err is not None and err.code is ErrorCode.CANCELLED and job.draining:
            self._requeue(job, AttemptOutcome.INTERRUPTED, delay=0.0)
            return
        usage = result.get("usage")
        if usage:
            job.attempt.usage = Usage(**usage)
        if err is None:
            self._publish(job, JobStatus.SUCCEEDED, None, result)
        else:
            self._fail(job, err, result)

    @staticmethod
    def _worker_death(exc: BaseException) -> JobError:
        code = getattr(exc, "exitcode", None)
        if code in (-signal.SIGXCPU, -signal.SIGXFSZ):
            what = "CPU time" if code == -signal.SIGXCPU else "output file size"
            return JobError(ErrorCode.RESOURCE_LIMIT, f"the conversion exceeded its {what} limit")
        return JobError(
            ErrorCode.WORKER_LOST,
            f"the worker process died ({type(exc).__name__}: exit code {code})",
        )

    def _fail(self, job: RunningJob, err: JobError, result: dict[str, Any]) -> None:
        limit = job.plan.max_attempts if job.plan else job.rt.settings.max_attempts
        if err.retryable and job.state.counted_attempts() + 1 < limit and not self.stopping:
            job.attempt.error = self._error_info(err)
            self._requeue(job, AttemptOutcome.RETRY, delay=self._backoff(job))
            return
        status = JobStatus.CANCELLED if err.code is ErrorCode.CANCELLED else JobStatus.FAILED
        self._publish(job, status, err, result)

    def _fail_now(self, job: RunningJob, err: JobError) -> None:
        self._publish(job, JobStatus.FAILED, err, {})

    @staticmethod
    def _error_info(err: JobError) -> ErrorInfo:
        return ErrorInfo(
            code=err.code.value, message=err.message, hint=err.hint, retryable=err.retryable
        )

    def _backoff(self, job: RunningJob) -> float:
        s = job.rt.settings
        wait = tenacity.wait_exponential_jitter(initial=s.backoff_initial_s, max=s.backoff_max_s)
        state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = max(1, job.state.counted_attempts() + 1)
        return float(wait(state))

    def _requeue(self, job: RunningJob, outcome: AttemptOutcome, delay: float) -> None:
        rt = job.rt
        self.running.pop(job.state.job_id, None)
        job.attempt.outcome = outcome
        job.attempt.finished_at = iso()
        job.state.next_attempt_at = time.time() + delay if delay > 0 else None
        check_transition(job.state.job_id, JobStatus.RUNNING, JobStatus.QUEUED)
        if job.cancel_mode is not None:
            _unlink_quiet(job.folder / CANCEL_FLAG)
        _unlink_quiet(job.folder / STAGE_FILE)  # a killed worker may have left it
        try:
            self._save_state(job)
        except FileNotFoundError:
            pass  # the folder is gone: the rename below says so
        except OSError as exc:
            # Disk full: requeue anyway; the stale state only lacks this attempt's end.
            # An empty file needs no data block, so this hint usually still fits, and the
            # next claim numbers its attempt above it.
            log.warning("could not record the state of %s: %s", job.state.job_id, exc.strerror)
            try:
                (job.folder / f"{ATTEMPT_HINT}{job.attempt.number}").touch()
            except OSError:
                pass
        crash_point("before_requeue_rename")
        try:
            dest = requeue(rt.paths, job.folder, job.state.jobdir)
        except FileNotFoundError:
            dest = None
        crash_point("after_requeue_rename")
        if dest is None:
            rt.events.emit(
                "job.discarded", job.state.job_id, job.attempt.number, reason="claim lost"
            )
            return
        if outcome is AttemptOutcome.RETRY:
            rt.events.emit(
                "job.retry_scheduled",
                job.state.job_id,
                job.attempt.number,
                delay_s=round(delay, 3),
                code=job.attempt.error.code if job.attempt.error else None,
            )
        else:
            rt.events.emit(
                "job.requeued", job.state.job_id, job.attempt.number, reason=outcome.value
            )
        self.rescan_requested = True

    def _input_info(self, job: RunningJob, result: dict[str, Any]) -> InputInfo | None:
        main = job.plan.main if job.plan else self._entry_path(job)
        try:
            st = os.lstat(main)
            if not os.path.isfile(main) or os.path.islink(main):
                return InputInfo(
                    name=job.state.name, media_type="application/octet-stream", size=0, sha256=""
                )
            digest = result.get("input_sha256") or sha256_file(main)
        except OSError:
            return None
        media = MEDIA_TYPES.get(
            SUFFIX_TYPES.get(main.suffix.lower(), ""), "application/octet-stream"
        )
        return InputInfo(name=job.state.name, media_type=media, size=st.st_size, sha256=digest)

    def _publish(
        self, job: RunningJob, status: JobStatus, err: JobError | None, result: dict[str, Any]
    ) -> None:
        rt = job.rt
        self.running.pop(job.state.job_id, None)
        check_transition(job.state.job_id, JobStatus.RUNNING, status)
        job.attempt.finished_at = iso()
        job.attempt.outcome = AttemptOutcome(status.value)
        if err is not None:
            job.attempt.error = self._error_info(err)
        started = job.attempt.started_at or job.attempt.claimed_at
        manifest = Manifest(
            job_id=job.state.job_id,
            name=job.state.name,
            spool=rt.name,
            route=job.state.route,
            status=status,
            input=self._input_info(job, result),
            options=job.plan.options if job.plan else {},
            artifacts=[Artifact(**a) for a in result.get("artifacts", [])],
            attempts=job.state.attempts,
            error=job.attempt.error,
            warnings=result.get("warnings", []),
            fetches=[FetchRecord(**f) for f in result.get("fetches", [])],
            timings=dict(result.get("timings", {})),
            duplicate_of=result.get("duplicate_of"),
            versions=_versions(),
            created_at=job.state.arrived_at,
            finished_at=job.attempt.finished_at,
        )
        durable = rt.settings.durable
        dest_dir = rt.paths.done if status is JobStatus.SUCCEEDED else rt.paths.failed
        try:
            if job.cancel_mode is not None:
                _unlink_quiet(job.folder / CANCEL_FLAG)
            if len(job.state.attempts) > 1:
                # Requeued before: keep the state (owner, history) for `spoold retry`.
                self._save_state(job)
            if job.state.attempt_floor:
                # The manifest now records the attempt numbers: the hints are not for readers.
                for n in range(1, job.state.attempt_floor + 1):
                    _unlink_quiet(job.folder / f"{ATTEMPT_HINT}{n}")
            if err is not None:
                info = job.attempt.error or self._error_info(err)
                text = error_text(status.value, job.state.name, info.code, info.message, info.hint)
                atomic_write(job.folder / "ERROR.txt", text.encode(), durable=durable)
            crash_point("before_manifest_write")
            atomic_write(
                job.folder / MANIFEST,
                manifest.model_dump_json(indent=2, exclude_none=True).encode() + b"\n",
                durable=durable,
            )
            crash_point("after_manifest_write")
            dest = publish(job.folder, dest_dir, job.state.jobdir, durable=durable)
            crash_point("after_publish_rename")
        except FileNotFoundError:
            dest = None
        except OSError as exc:
            # Disk full or I/O error while publishing: keep the job in running/ untouched
            # (input is safe); recovery requeues it once this daemon restarts or gives up.
            log.error("could not publish %s: %s", job.state.job_id, exc)
            self._requeue(job, AttemptOutcome.RETRY, delay=self._backoff(job))
            return
        if dest is None:
            rt.events.emit(
                "job.discarded", job.state.job_id, job.attempt.number, reason="claim lost"
            )
            return
        key = result.get("idempotency_key")
        if result.get("duplicate_of"):
            rt.events.emit(
                "job.duplicate",
                job.state.job_id,
                job.attempt.number,
                duplicate_of=result["duplicate_of"],
                name=job.state.name,
            )
        elif status is JobStatus.SUCCEEDED and key:
            try:
                record = dedup_record(rt.paths.state / "dedup", key)
                atomic_write(record, job.state.jobdir.encode(), durable=False)
            except OSError as exc:
                log.warning("could not record the key of %s: %s", job.state.job_id, exc)
        event = {
            JobStatus.SUCCEEDED: "job.succeeded",
            JobStatus.FAILED: "job.failed",
            JobStatus.CANCELLED: "job.cancelled",
        }[status]
        rt.events.emit(
            event,
            job.state.job_id,
            job.attempt.number,
            name=job.state.name,
            code=err.code.value if err else None,
            message=err.message if err else None,
            path=str(dest.relative_to(rt.root)),
        )
        self._after_publish(job, status, err, dest, manifest)
        if self.metrics is not None:
            # A job that never reached a worker (intake failure, killed worker) has no
            # usage: its duration is from claim (or start) to now, not 0.
            wall = job.attempt.usage.wall_s if job.attempt.usage else _seconds_since(started)
            try:
                self.metrics.job_finished(
                    rt.name, status.value, err.code.value if err else None, wall
                )
            except Exception:
                log.debug("metrics update failed", exc_info=True)

    def _after_publish(
        self,
        job: RunningJob,
        status: JobStatus,
        err: JobError | None,
        dest: Path,
        manifest: Manifest,
    ) -> None:
        """What people and tools see after a job lands: modes, out/ links, hooks.

        None of it can change the outcome: the job is published already.
        """
        rt = job.rt
        settings = rt.settings
        if settings.output_mode is not None or settings.output_group is not None:
            apply_output_permissions(
                [dest], settings.output_mode, settings.output_group, recursive=True
            )
        if settings.flat_output and status is JobStatus.SUCCEEDED and manifest.artifacts:
            links = link_flat_output(rt.paths.out, [dest / a.path for a in manifest.artifacts])
            if links and (settings.output_mode is not None or settings.output_group is not None):
                apply_output_permissions(links, settings.output_mode, settings.output_group)
        defaults = settings.for_route(job.state.route)
        argv = defaults.on_success if status is JobStatus.SUCCEEDED else defaults.on_failure
        if not argv:
            return
        job_id, attempt = job.state.job_id, job.attempt.number
        env = hook_env(
            job_id,
            status.value,
            err.code.value if err else None,
            dest,
            spool=rt.name,
            name=job.state.name,
        )

        def on_done(result: HookResult) -> None:
            # Runs on a hook thread: hand the result to the main loop, which owns the log.
            self.wakeups.put(("hook", (rt, job_id, attempt, argv[0], result)))

        self.hooks.submit(argv, dest, env, settings.hook_timeout_s, on_done)

    def _hook_finished(
        self, rt: SpoolRuntime, job_id: str, attempt: int, command: str, result: HookResult
    ) -> None:
        if result.ok:
            return
        head = result.output[:2000]  # the start says what went wrong; the cap is 64 KiB
        rt.events.emit(
            "hook.failed",
            job_id,
            attempt,
            command=command,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            error=result.error or f"exited with status {result.exit_code}",
            output=head,
        )

    def _maybe_purge(self, now: float) -> None:
        if now < self.next_purge or self.stopping:
            return
        if self._purge_thread is not None and self._purge_thread.is_alive():
            return
        self.next_purge = now + PURGE_INTERVAL_S
        work = [
            (rt.paths, rt.settings.keep_done_days, rt.settings.keep_failed_days)
            for rt in self.spools
        ]

        def purge_all() -> None:
            for paths, keep_done, keep_failed in work:
                try:
                    purge(paths, keep_done, keep_failed)
                except Exception:  # retention must never take the daemon down
                    log.exception("purge of %s failed", paths.root)

        self._purge_thread = threading.Thread(target=purge_all, name="spoold-purge", daemon=True)
        self._purge_thread.start()

    # ------------------------------------------------------------------ cancel

    def _handle_markers(self, wall: float) -> None:
        """Apply markers that just arrived; re-check waiting ones against new jobs only.

        A marker is looked up in full (running, queued, finished) once, when it arrives.
        While it waits for its job (cancel_marker_ttl_s), each newly ready entry is
        matched against the waiting markers by name in `_accept`, so waiting costs
        nothing per loop.
        """
        for rt in self.spools:
            for key, entry in list(rt.markers.items()):
                if entry.gone:
                    rt.markers.pop(key, None)
                    rt.waiting_markers.pop(key, None)
                    continue
                if key not in rt.waiting_markers:
                    self._apply_marker(rt, key, entry)
                elif wall - entry.arrived_at > rt.settings.cancel_marker_ttl_s:
                    rt.events.emit(
                        "cancel.ignored",
                        None,
                        reason="no such job before the marker expired",
                        name=_marker_target(entry.name),
                    )
                    self._consume_marker(rt, key)

    def _marker_mode(self, rt: SpoolRuntime, key: str) -> str | None:
        try:
            text = (rt.paths.inbox / key).read_text(errors="replace")[:64].strip().lower()
        except OSError:
            return None
        return "hard" if text.startswith("hard") else "graceful"

    def _apply_marker(self, rt: SpoolRuntime, key: str, entry: Entry) -> None:
        target = _marker_target(entry.name)
        mode = self._marker_mode(rt, key)
        if mode is None:
            rt.markers.pop(key, None)
            return
        matched = False
        for job in list(self.running.values()):
            if job.rt is rt and target in (job.state.job_id, job.state.name):
                matched |= self._cancel_running(job, mode, entry)
        for cand_key in self._queued_matches(rt, target):
            matched |= self._cancel_queued(rt, cand_key, entry)
        if matched:
            self._consume_marker(rt, key)
            return
        finished = self._finished_match(rt, target)
        if finished is not None:
            rt.events.emit("cancel.ignored", finished, reason="job already finished", name=target)
            self._consume_marker(rt, key)
            return
        rt.waiting_markers[key] = target

    def _match_waiting_markers(self, rt: SpoolRuntime, entry: Entry) -> bool:
        """A new entry arrived: cancel it if a waiting marker names it."""
        for key, target in list(rt.waiting_markers.items()):
            if target != entry.name:
                continue
            marker = rt.markers.get(key)
            if marker is None:
                continue
            if self._cancel_queued(rt, entry.key, marker):
                self._consume_marker(rt, key)
                return True
        return False

    def _consume_marker(self, rt: SpoolRuntime, key: str) -> None:
        rt.markers.pop(key, None)
        rt.waiting_markers.pop(key, None)
        _unlink_quiet(rt.paths.inbox / key)
        rt.tracker.drop(key)

    def _marker_allowed(
        self,
        rt: SpoolRuntime,
        marker: Entry,
        owner_uid: int,
        job_id: str | None,
        name: str | None = None,
    ) -> bool:
        """Only the job's owner, root or admin_group may cancel (shared folders).

        A fresh queued entry has no job id yet: the event names the entry instead.
        """
        from .owners import marker_allowed

        if marker_allowed(marker.uid, owner_uid, rt.settings.admin_group):
            return True
        rt.events.emit(
            "cancel.refused",
            job_id,
            reason="the marker's owner is not the job's owner, root or in admin_group",
            marker_uid=marker.uid,
            name=name,
        )
        return False

    def _queued_matches(self, rt: SpoolRuntime, target: str) -> list[str]:
        out = []
        for key, entry in rt.tracker.entries.items():
            if entry.kind == "cancel" or entry.gone:
                continue
            if entry.name == target or (
                entry.kind == "requeued"
                and (
                    entry.name.endswith("." + target)
                    or _jobdir_name_matches(rt.paths.inbox / key, target)
                )
            ):
                out.append(key)
        return out

    def _cancel_queued(self, rt: SpoolRuntime, key: str, marker: Entry) -> bool:
        entry = rt.tracker.entries.get(key)
        if entry is None or entry.gone:
            return False
        owner = entry.uid
        if entry.kind == "requeued":
            state = read_state(rt.paths.inbox / key)
            owner = state.owner_uid if state is not None else entry.uid
        job_id = job_id_of(entry.name) if entry.kind == "requeued" else None
        if not self._marker_allowed(rt, marker, owner, job_id, entry.name):
            return False
        try:
            self._claim_for_cancel(rt, entry)
        except OSError as exc:
            log.warning("could not cancel queued %s: %s", key, exc)
            return False
        return True

    def _claim_for_cancel(self, rt: SpoolRuntime, entry: Entry) -> None:
        entry.gone = True  # the scheduler must not start it
        if entry.kind == "requeued":
            state = state_of(rt.paths.inbox / entry.key, entry.key)
            if state is None:
                return
            folder = claim_requeued(rt.paths, entry.key, state.next_attempt_number, self.token)
            rt.tracker.drop(entry.key)
            if folder is None:
                return
        else:
            job_id = new_job_id()
            jobdir = job_dir_name(entry.name, job_id)
            folder = claim_entry(rt.paths, entry.key, entry.name, jobdir, 1, self.token)
            rt.tracker.drop(entry.key)
            if folder is None:
                return
            state = JobState(
                job_id=job_id,
                name=entry.name,
                jobdir=jobdir,
                kind=entry.kind,
                owner_uid=entry.uid,
                route=entry.route,
                arrived_at=iso(_dt(entry.arrived_at)),
            )
            rt.events.emit("job.detected", job_id, name=entry.name, route=entry.route)
        attempt = Attempt(
            number=state.next_attempt_number, host=self.host_id, pid=os.getpid(), claimed_at=iso()
        )
        state.attempts.append(attempt)
        job = RunningJob(rt, state, folder, None, attempt)
        self.running[state.job_id] = job
        rt.events.emit("job.claimed", state.job_id, attempt.number, name=state.name)
        self._publish(
            job,
            JobStatus.CANCELLED,
            JobError(ErrorCode.CANCELLED, "cancelled on request before it started"),
            {},
        )

    def _finished_match(self, rt: SpoolRuntime, target: str) -> str | None:
        """The id of a finished job named by a marker (by job id or entry name)."""
        from .protocol import safe_stem

        prefix = safe_stem(target) + "."
        for folder in (rt.paths.done, rt.paths.failed):
            try:
                with os.scandir(folder) as it:
                    for de in it:
                        if de.name.endswith("." + target):
                            return target
                        if de.name.startswith(prefix):
                            try:
                                m = json.loads((Path(de.path) / MANIFEST).read_bytes())
                            except (OSError, ValueError):
                                continue
                            if m.get("name") == target:
                                return str(m.get("job_id"))
            except OSError:
                continue
        return None

    def _cancel_running(self, job: RunningJob, mode: str, marker: Entry) -> bool:
        if not self._marker_allowed(job.rt, marker, job.state.owner_uid, job.state.job_id):
            return False
        if job.cancel_mode == "hard" or job.future is None:
            return True
        job.cancel_mode = mode
        if mode == "hard":
            job.future.cancel()
            return True
        try:
            (job.folder / CANCEL_FLAG).write_text("graceful")
        except OSError:
            pass
        job.cancel_deadline = time.monotonic() + job.rt.settings.cancel_grace_s
        return True

    def _enforce_cancel_deadlines(self, now: float) -> None:
        for job in list(self.running.values()):
            if (
                job.cancel_deadline is not None
                and now >= job.cancel_deadline
                and job.future is not None
            ):
                job.cancel_deadline = None
                job.cancel_mode = "hard"
                job.future.cancel()

    # ------------------------------------------------------------------ recovery

    def recover(self, rt: SpoolRuntime, startup: bool = False) -> None:
        """Requeue claims whose owner is gone (same host: lock free; else lease expired)."""
        try:
            names = os.listdir(rt.paths.running)
        except OSError:
            return
        for name in names:
            parsed = parse_running_name(name)
            if parsed is None or parsed.token == self.token:
                continue
            if not owner_is_gone(rt.paths, parsed.token, self.host_id, rt.settings.lease_ttl_s):
                continue
            self._recover_one(rt, rt.paths.running / name, parsed.jobdir, parsed.attempt)
        self._forget_dead_daemons(rt)

    def _forget_dead_daemons(self, rt: SpoolRuntime) -> None:
        """Remove the lease files of daemons that are gone and hold no claim any more."""
        try:
            holding = {n.rsplit(".", 1)[-1] for n in os.listdir(rt.paths.running)}
            tokens = {p.stem for p in rt.paths.daemons.iterdir()}
        except OSError:
            return
        for token in tokens - holding - {self.token}:
            if owner_is_gone(rt.paths, token, self.host_id, rt.settings.lease_ttl_s):
                forget_daemon(rt.paths, token)

    def _recover_one(self, rt: SpoolRuntime, folder: Path, jobdir: str, attempt_no: int) -> None:
        try:
            inputs = os.listdir(folder / INPUT_DIR)
        except FileNotFoundError:
            inputs = []
        except OSError:
            return
        if not inputs:
            # Crashed between preparing the folder and the claim rename: nothing to keep.
            shutil.rmtree(folder, ignore_errors=True)
            return
        state = state_of(folder, jobdir)
        if state is None:
            return
        last = state.last_attempt()
        if last is None or last.number < attempt_no:
            # The claim wrote no state: rebuild the attempt from the folder and lease.
            info = _daemon_info(rt.paths, folder.name.rsplit(".", 1)[1])
            last = Attempt(
                number=attempt_no,
                host=str(info.get("host", "unknown")),
                pid=int(info.get("pid", 0)),
                claimed_at=iso(_dt(folder.stat().st_mtime)),
            )
            state.attempts.append(last)
        if last.number == attempt_no and last.outcome is AttemptOutcome.RUNNING:
            last.outcome = AttemptOutcome.LOST
            last.finished_at = iso()
            last.error = ErrorInfo(
                code=ErrorCode.WORKER_LOST.value,
                message="the daemon holding this job stopped before it finished",
                hint="Nothing to do: spoold runs the job again.",
                retryable=True,
            )
        limit = rt.settings.for_route(state.route).max_attempts
        job = RunningJob(
            rt,
            state,
            folder,
            None,
            last,
        )
        if state.counted_attempts() >= limit:
            self.running[state.job_id] = job
            self._publish(
                job,
                JobStatus.FAILED,
                JobError(
                    ErrorCode.WORKER_LOST,
                    f"the job was lost {state.counted_attempts()} times "
                    "(its daemon or worker died each time)",
                ),
                {},
            )
            return
        state.next_attempt_at = None
        try:
            self._save_state(job)
            crash_point("before_recovery_requeue")
            dest = requeue(rt.paths, folder, state.jobdir)
        except FileNotFoundError:
            dest = None
        crash_point("after_recovery_requeue")
        if dest is not None:
            rt.events.emit("job.recovered", state.job_id, attempt_no, name=state.name)
            self.rescan_requested = True

    # ------------------------------------------------------------------ stop / reload

    def begin_stop(self) -> None:
        self.stopping = True
        for rt in self.spools:
            rt.events.emit("daemon.stopping", pid=os.getpid(), running=len(self.running))
        # status_line() says "draining" from now on, so housekeeping keeps it.
        self._notify(STOPPING="1", STATUS=self.status_line())
        drain = min(rt.settings.drain_s for rt in self.spools)
        deadline = time.monotonic() + drain
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._drain_deadline)
        timer.daemon = True
        timer.start()

    def _drain_deadline(self) -> None:
        self.wakeups.put(("drain_deadline", None))
        for job in list(self.running.values()):
            job.draining = True
            if job.future is not None:
                job.future.cancel()

    def reload(self) -> None:
        self.reload_requested = False
        if self.stopping:
            # READY=1 after STOPPING=1 would tell systemd the daemon is back.
            log.info("reload ignored: the daemon is stopping")
            return
        # The notifier adds MONOTONIC_USEC=, which systemd needs with RELOADING=1.
        self._notify(RELOADING="1")
        for rt in self.spools:
            try:
                new = load_spool_settings(rt.root, self.spool_defaults)
            except Exception as exc:
                log.error("reload of %s refused, keeping the old settings: %s", rt.root, exc)
                continue
            rt.settings = new
            rt.tracker.configure(
                new.routes,
                (*new.ignore, *self._ignore_defaults()),
                new.settle_ms / 1000,
                new.incomplete_after_s,
            )
        log.info("settings reloaded")
        self._notify(READY="1", STATUS=self.status_line())

    def _housekeeping(self) -> None:
        """Every ~2 s: STATUS= for systemd, then the metrics and their textfiles."""
        self._notify(STATUS=self.status_line())
        if self.metrics is None:
            return
        scanned_at: float | None = None
        if self.next_scan != self._scan_mark:
            # A full scan completed since the last pass: _iterate set next_scan to the
            # scan's start plus the interval. Reported once, as the scan's start time.
            self._scan_mark = self.next_scan
            started = self.next_scan - self._scan_interval()
            scanned_at = time.time() - max(0.0, time.monotonic() - started)
        try:
            busy = max(0, self.settings.workers - self._free_workers())
            self.metrics.set_workers(busy, self.settings.workers)
            for rt in self.spools:
                # queued: the tracker's ready entries (no listing). running/done/failed:
                # the folders themselves, as every daemon on the spool sees them;
                # FolderCount lists a folder only when it may have changed.
                self.metrics.set_queue_depth(rt.name, "queued", rt.tracker.queued_count())
                for state, folder in (
                    ("running", rt.paths.running),
                    ("done", rt.paths.done),
                    ("failed", rt.paths.failed),
                ):
                    n = self._folder_counts[folder].count()
                    self.metrics.set_queue_depth(rt.name, state, n)
                if scanned_at is not None:
                    self.metrics.scan_completed(rt.name, scanned_at)
                try:
                    self.metrics.set_disk_free(rt.name, int(free_disk_mb(rt.root) * 2**20))
                except OSError:
                    log.debug("statvfs of %s failed", rt.root, exc_info=True)
        except Exception:
            log.debug("metrics update failed", exc_info=True)
        # Each spool's file gets the whole set (docs/operations.md: link one per daemon).
        for rt in self.spools:
            try:
                self.metrics.write_textfile(rt.paths.state / "metrics.prom")
            except Exception:
                log.debug("writing %s/metrics.prom failed", rt.paths.state, exc_info=True)

    def status_line(self) -> str:
        """STATUS= for systemctl status: '1/4 busy, 17 queued' (+ paused, draining)."""
        queued = sum(rt.tracker.queued_count() for rt in self.spools)
        # Busy as _free_workers counts it: a job whose worker finished but which is not
        # published yet no longer holds a worker (so never more than workers/workers).
        busy = max(0, self.settings.workers - self._free_workers())
        line = f"{busy}/{self.settings.workers} busy, {queued} queued"
        paused = [rt.name for rt in self.spools if rt.paused]
        if paused:
            line += f", claims paused (low disk): {', '.join(paused)}"
        if self.stopping:
            line = f"draining: {line}"
        return line

    def _shutdown(self) -> None:
        # Hooks of jobs published before the stop get a moment; then they are killed.
        self.hooks.shutdown(wait_s=5.0)
        self.observer.stop()
        if self.pool is not None:
            self.pool.stop()
            self.pool.join(timeout=10)
        for rt in self.spools:
            rt.lease.release()
            rt.events.close()
        if self.metrics is not None:
            try:
                self.metrics.close()  # the --metrics-port server thread
            except Exception:
                log.debug("closing the metrics server failed", exc_info=True)
        if self.notifier is not None:
            self.notifier.close()


def _dt(ts: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


def _seconds_since(stamp: str) -> float:
    from datetime import UTC, datetime

    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return 0.0
    return max(0.0, time.time() - then.timestamp())


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _daemon_info(paths: SpoolPaths, token: str) -> dict[str, Any]:
    try:
        data = json.loads((paths.daemons / f"{token}.json").read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _marker_target(name: str) -> str:
    return name[: -len(".cancel")]


def _jobdir_name_matches(folder: Path, target: str) -> bool:
    state = read_state(folder)
    return state is not None and target in (state.job_id, state.name)


_VERSIONS: dict[str, str] | None = None


def _versions() -> dict[str, str]:
    global _VERSIONS
    if _VERSIONS is None:
        from importlib.metadata import PackageNotFoundError, version

        out = {"spoold": __version__}
        for pkg in ("weasyprint", "python-docx", "markdown-it-py", "pypdf", "pdfminer.six"):
            try:
                out[pkg] = version(pkg)
            except PackageNotFoundError:
                pass
        _VERSIONS = out
    return _VERSIONS


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
