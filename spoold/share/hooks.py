"""on_success / on_failure hooks: run after publishing, never change the job's outcome.

A hook is an argv list from spool.toml (or a route), run without a shell, with the
published job folder appended as its last argument and a small environment:

    PATH, LANG, LC_*, HOME, USER, LOGNAME, TZ, TMPDIR   inherited from the daemon
    SPOOLD_JOB_ID, SPOOLD_STATUS, SPOOLD_ERROR_CODE, SPOOLD_JOB_DIR, ...   from the caller

Each hook runs in a new session (its own process group), so on timeout the hook and
everything it started are killed together: SIGTERM to the group, then SIGKILL after a
short grace. Whatever is left in the group when the hook itself exits is killed too, so
nothing a hook forks outlives it (a hook that really wants a background process must
detach it on purpose: setsid, systemd-run).

Output (stdout and stderr, merged) is kept up to a byte cap; the rest is read and
dropped so a chatty hook can never block on a full pipe.

`HookRunner` runs hooks on a small thread pool so a slow hook never holds up the
daemon's main loop.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_OUTPUT_CAP = 64 * 1024
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# Variables a hook may reasonably need from the daemon's environment; nothing else
# (no SPOOLD_* settings, no credentials the service happens to carry) is passed on.
INHERITED_ENV = ("PATH", "LANG", "LANGUAGE", "HOME", "USER", "LOGNAME", "TZ", "TMPDIR")
# How long a hook gets after SIGTERM before its process group is SIGKILLed.
TERM_GRACE_S = 2.0
# How long we keep reading after the hook exited, for output still in flight from
# children that hold the pipe; then the group is killed and the pipe closed.
EXIT_LINGER_S = 0.5
_READ_CHUNK = 65536


@dataclass(frozen=True)
class HookResult:
    """What became of one hook run.

    ok: exited with status 0, in time. exit_code: the exit status, negative for a
    signal (as subprocess reports it), None when the hook could not be started.
    output: merged stdout/stderr, decoded as UTF-8 with replacement characters,
    at most the cap (`truncated` says whether some was dropped).
    error: a short reason when the hook did not run or did not finish
    ("command not found: x", "timed out after 60s"), else None.
    """

    ok: bool
    exit_code: int | None
    timed_out: bool
    output: str
    duration_s: float
    error: str | None
    truncated: bool = False


def hook_env(
    job_id: str,
    status: str,
    error_code: str | None,
    job_dir: Path,
    spool: str | None = None,
    name: str | None = None,
) -> dict[str, str]:
    """The SPOOLD_* variables for a hook (pass as `env_extra`).

    SPOOLD_ERROR_CODE is empty for a succeeded job. SPOOLD_NAME is the original entry
    name: it comes from whoever dropped the file, so hooks must treat it as untrusted.
    """
    env = {
        "SPOOLD_JOB_ID": job_id,
        "SPOOLD_STATUS": str(status),
        "SPOOLD_ERROR_CODE": str(error_code or ""),
        "SPOOLD_JOB_DIR": str(job_dir),
    }
    if spool is not None:
        env["SPOOLD_SPOOL"] = spool
    if name is not None:
        env["SPOOLD_NAME"] = name
    return env


def _base_env(source: Mapping[str, str]) -> dict[str, str]:
    env = {k: source[k] for k in INHERITED_ENV if k in source}
    env.update({k: v for k, v in source.items() if k.startswith("LC_")})
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already empty (or its members changed uid: not ours)


def _has_exited(pid: int) -> bool:
    """Whether `pid` has exited, WITHOUT reaping it.

    Leaving the zombie in place keeps its pid (and so our process-group id) reserved
    until we reap it, so a later killpg can never hit a recycled pid.
    """
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True  # somebody else reaped it
    return info is not None


def _pidfd(pid: int) -> int | None:
    """A pidfd (readable when `pid` exits), or None where the kernel lacks pidfd_open."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _wait(
    proc: subprocess.Popen[bytes], output: _OutputReader, deadline: float, term_grace_s: float
) -> tuple[int, bool]:
    """Read the hook's output until it exits or the deadline passes (then SIGTERM, and
    SIGKILL after the grace); its exit code and whether it timed out."""
    timed_out = False
    try:
        output.read_until(deadline)
        if not _has_exited(proc.pid):
            timed_out = True
            _killpg(proc.pid, signal.SIGTERM)  # start_new_session: its pid is its group's
            output.read_until(time.monotonic() + term_grace_s)
    finally:
        # Kill whatever is left of the group (stragglers, or all of it on timeout) while
        # the unreaped leader still pins the group id, then reap the leader.
        _killpg(proc.pid, signal.SIGKILL)
        output.close()
        exit_code = proc.wait()
    return exit_code, timed_out


def run_hook(
    argv: list[str],
    job_dir: Path,
    env_extra: Mapping[str, str],
    timeout_s: float,
    output_cap: int = DEFAULT_OUTPUT_CAP,
    *,
    on_start: Callable[[int], None] | None = None,
    term_grace_s: float = TERM_GRACE_S,
) -> HookResult:
    """Run one hook to completion (or timeout) and report; never raises for the hook's sake.

    The command is `argv + [str(job_dir)]`, run with no shell, stdin from /dev/null,
    cwd = `job_dir` (or / when it no longer exists), env = a minimal inherited
    environment plus `env_extra` (SPOOLD_JOB_DIR defaults to `job_dir`).

    `on_start(pid)` is called once the process exists; its pid is also its process
    group id (used by HookRunner to kill stragglers on shutdown).

    Caveats: blocks the calling thread for up to timeout_s + term_grace_s (+ a short
    linger); call it from a worker thread (see HookRunner). The leader is detected with
    waitid(WNOWAIT), so the daemon must not reap arbitrary children (waitpid(-1)) while
    hooks run. A process that leaves the hook's session (setsid) is not tracked.
    """
    started = time.monotonic()
    if not argv:
        return HookResult(False, None, False, "", 0.0, "empty hook command")
    proc = _start(argv, job_dir, env_extra)
    if isinstance(proc, str):
        return _not_started(started, proc)
    if on_start is not None:
        try:
            on_start(proc.pid)
        except Exception:
            log.exception("hook on_start callback failed")
    output = _OutputReader(proc, output_cap)
    exit_code, timed_out = _wait(proc, output, started + timeout_s, term_grace_s)
    if output.dropped:
        log.debug("hook %s: dropped %d bytes of output over the cap", argv[0], output.dropped)
    error = _failure(exit_code, timed_out, timeout_s)
    return HookResult(
        ok=error is None,
        exit_code=exit_code,
        timed_out=timed_out,
        output=bytes(output.buf).decode("utf-8", errors="replace"),
        duration_s=time.monotonic() - started,
        error=error,
        truncated=output.dropped > 0,
    )


def _start(
    argv: list[str], job_dir: Path, env_extra: Mapping[str, str]
) -> subprocess.Popen[bytes] | str:
    """The hook's process, leading its own session; or why it could not start."""
    env = _base_env(os.environ)
    env["SPOOLD_JOB_DIR"] = str(job_dir)
    env.update(env_extra)
    try:
        return subprocess.Popen(
            [*argv, str(job_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=job_dir if job_dir.is_dir() else Path("/"),
            close_fds=True,
            start_new_session=True,
        )
    except FileNotFoundError:
        return f"command not found: {argv[0]}"
    except PermissionError:
        return f"command not executable: {argv[0]}"
    except OSError as exc:
        return f"could not start {argv[0]}: {exc.strerror or exc}"


class _OutputReader:
    """A running hook's merged output, kept up to `cap` bytes; the rest is read and
    counted in `dropped`, so a chatty hook never blocks on a full pipe."""

    def __init__(self, proc: subprocess.Popen[bytes], cap: int) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.stdout = proc.stdout
        self.fd = proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.pidfd = _pidfd(proc.pid)
        self.cap = cap
        self.buf = bytearray()
        self.dropped = 0
        self.eof = False

    def read_until(self, until: float) -> None:
        """Read output until the hook has exited and its pipe is at EOF, or `until`.

        After the leader exits, output still in flight (children holding the pipe)
        is read for at most EXIT_LINGER_S more.
        """
        exited_at: float | None = None
        with selectors.DefaultSelector() as sel:
            if not self.eof:
                sel.register(self.fd, selectors.EVENT_READ)
            if self.pidfd is not None:
                sel.register(self.pidfd, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                if exited_at is None and _has_exited(self.proc.pid):
                    exited_at = now
                if exited_at is not None and self.eof:
                    return
                limit = until if exited_at is None else min(until, exited_at + EXIT_LINGER_S)
                if now >= limit:
                    return
                wait = limit - now
                if self.pidfd is None and exited_at is None:
                    wait = min(wait, 0.05)  # no pidfd: poll for the leader's exit
                for key, _ev in sel.select(wait):
                    if key.fd == self.pidfd:
                        sel.unregister(self.pidfd)  # exited: noticed at the top of the loop
                    else:
                        self._read_chunk(sel)

    def _read_chunk(self, sel: selectors.BaseSelector) -> None:
        try:
            chunk = os.read(self.fd, _READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            sel.unregister(self.fd)
            return
        room = self.cap - len(self.buf)
        if room > 0:
            self.buf += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))

    def close(self) -> None:
        self.stdout.close()
        if self.pidfd is not None:
            os.close(self.pidfd)


def _failure(exit_code: int, timed_out: bool, timeout_s: float) -> str | None:
    """Why a hook that ran did not succeed, or None."""
    if timed_out:
        return f"timed out after {timeout_s:g}s"
    if exit_code < 0:
        return f"killed by signal {-exit_code}"
    if exit_code != 0:
        return f"exited with status {exit_code}"
    return None


def _not_started(started: float, error: str) -> HookResult:
    return HookResult(False, None, False, "", time.monotonic() - started, error)


class HookRunner:
    """Runs hooks on a background thread pool (2 threads) so they never block the caller.

    `on_done` is called on a pool thread (or, for hooks skipped at shutdown, on the
    thread calling `shutdown`/`submit`), never while a lock of ours is held: it must be
    thread-safe and quick (e.g. put the result on the daemon's wake-up queue). Hooks
    queue up when both threads are busy; `pending` says how many are queued or running.
    """

    def __init__(self, max_workers: int = 2) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="spoold-hook"
        )
        self._cond = threading.Condition()
        # A hook stays in _futures until its on_done has returned, so shutdown() can
        # promise that every callback has run.
        self._futures: set[concurrent.futures.Future[HookResult]] = set()
        self._pids: set[int] = set()
        self._closed = False
        self._killing = False

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._futures)

    def submit(
        self,
        argv: list[str],
        job_dir: Path,
        env_extra: Mapping[str, str],
        timeout_s: float,
        on_done: Callable[[HookResult], None],
        output_cap: int = DEFAULT_OUTPUT_CAP,
    ) -> None:
        """Queue a hook; returns at once. After shutdown, on_done gets a not-run result."""
        with self._cond:
            closed = self._closed
            if not closed:
                fut = self._pool.submit(
                    self._run, list(argv), job_dir, dict(env_extra), timeout_s, output_cap
                )
                self._futures.add(fut)
        if closed:
            self._call(on_done, _not_started(time.monotonic(), "not run: spoold is stopping"))
            return
        fut.add_done_callback(lambda f: self._finished(f, on_done))

    def _run(
        self,
        argv: list[str],
        job_dir: Path,
        env_extra: dict[str, str],
        timeout_s: float,
        output_cap: int,
    ) -> HookResult:
        pid: list[int] = []

        def started(p: int) -> None:
            pid.append(p)
            with self._cond:
                self._pids.add(p)
                kill = self._killing
            if kill:  # started just as shutdown gave up waiting: stop it too
                _killpg(p, signal.SIGKILL)

        try:
            return run_hook(argv, job_dir, env_extra, timeout_s, output_cap, on_start=started)
        except Exception as exc:  # a bug here must not kill the pool thread silently
            log.exception("hook %s crashed", argv[:1])
            return _not_started(time.monotonic(), f"internal error running the hook: {exc}")
        finally:
            with self._cond:
                self._pids.difference_update(pid)

    def _finished(
        self, fut: concurrent.futures.Future[HookResult], on_done: Callable[[HookResult], None]
    ) -> None:
        if fut.cancelled():
            result = _not_started(time.monotonic(), "not run: spoold is stopping")
        else:
            result = fut.result()
        self._call(on_done, result)
        with self._cond:
            self._futures.discard(fut)
            self._cond.notify_all()

    @staticmethod
    def _call(on_done: Callable[[HookResult], None], result: HookResult) -> None:
        try:
            on_done(result)
        except Exception:
            log.exception("hook on_done callback failed")

    def shutdown(self, wait_s: float) -> bool:
        """Stop: queued hooks are not run (on_done gets "not run"), running ones get
        `wait_s` to finish, then their process groups are SIGKILLed.

        When it returns, every on_done has been called (bounded: a few seconds after
        the kill at most). Returns True when every hook had finished within `wait_s`.
        Idempotent.
        """
        with self._cond:
            self._closed = True
        # Cancelling runs the queued hooks' callbacks right here, in this thread.
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._cond:
            if self._cond.wait_for(lambda: not self._futures, timeout=max(0.0, wait_s)):
                return True
            self._killing = True
            pids = set(self._pids)
        for pid in pids:
            _killpg(pid, signal.SIGKILL)
        with self._cond:
            # run_hook notices the dead group at once; bound the wait anyway.
            self._cond.wait_for(lambda: not self._futures, timeout=5.0)
        return False
