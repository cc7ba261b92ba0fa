"""Shared test helpers: real spools on disk and real daemon processes.

Nothing here sleeps to wait: `wait_for` polls a condition until a deadline, and the
deadline only bounds a hang; it never asserts speed.
"""

from __future__ import annotations

import json
import os
import signal as _signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from spoold.daemon.cores import proc_stats
from spoold.settings import spool_toml
from spoold.spool.eventfiles import read_events
from spoold.spool.protocol import init_spool

ROOT = Path(__file__).resolve().parent.parent

# Fast settings for tests: short settle window, quick polling and leases.
FAST = {
    "settle_ms": 200,
    "poll_interval_ms": 50,
    "scan_interval_s": 1.0,
    "lease_ttl_s": 3.0,
    "backoff_initial_s": 0.2,
    "backoff_max_s": 1.0,
    "targets": ["html"],
    "drain_s": 10,
    "cancel_grace_s": 2,
    "min_free_mb": 0,
}


PLUGIN_ENV = {
    "PYTHONPATH": str(ROOT / "tests" / "plugins"),
    "SPOOLD_PLUGINS": "spoold_test_plugins",
}


def session_pids(sid: int) -> list[int]:
    """Every process in session `sid` (the daemon, its forkserver and workers)."""
    return [pid for pid, fields in proc_stats() if int(fields[3]) == sid]


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(cond: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll `cond` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def write_spool_toml(root: Path, settings: dict[str, Any]) -> None:
    (root / "spool.toml").write_text(spool_toml(settings))


@pytest.fixture
def make_spool(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "spool", **settings: Any) -> Path:
        root = tmp_path / name
        init_spool(root)
        merged = {**FAST, **settings}
        write_spool_toml(root, {k: v for k, v in merged.items() if v is not None})
        return root

    return make


class DaemonProc:
    """`spoold run` in its own process group, as systemd would run it."""

    def __init__(
        self,
        spools: list[Path],
        *args: str,
        env: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        self.spools = spools
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.log_path = (
            log
            or spools[0].parent / f"daemon-{len(list(spools[0].parent.glob('daemon-*.log')))}.log"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProc:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        cmd = [sys.executable, "-m", "spoold", "run", *map(str, self.spools), *self.args]
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            cwd=ROOT,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(lambda: "daemon.started" in self.log(), timeout, what="daemon started")

    def wait_workers(self, timeout: float = 120) -> None:
        """Until every worker has started (they start after daemon.started): for tests
        whose first job must not share the CPU with workers still importing."""
        wait_for(lambda: "workers ready" in self.log(), timeout, what="workers ready")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill_group(self, sig: int = _signal.SIGKILL) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float = 120) -> int:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self._log.close()
        return code

    def stop(self, timeout: float = 120) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.signal(_signal.SIGTERM)
        return self.wait(timeout)


@pytest.fixture
def daemon_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., DaemonProc]]:
    started: list[DaemonProc] = []

    def start(*spools: Path, args: tuple[str, ...] = ("--workers", "2"), **kw: Any) -> DaemonProc:
        d = DaemonProc(list(spools), *args, **kw).start()
        started.append(d)
        return d

    yield start
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        # The daemons' own words, in the report's teardown output: a failure seen once
        # in CI can then be read, not guessed at.
        for d in started:
            print(f"--- {d.log_path} (last 4000 bytes)")
            print(d.log_path.read_bytes()[-4000:].decode("utf-8", "replace"))
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.kill_group()
            d.proc.wait(timeout=30)
        # Workers and the forkserver share the daemon's session: leave none behind.
        for pid in session_pids(d.pid):
            try:
                os.kill(pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass


def published(spool: Path, state: str = "done") -> list[Path]:
    folder = spool / state
    return sorted(p for p in folder.iterdir() if (p / "manifest.json").exists())


def manifests(spool: Path) -> list[dict[str, Any]]:
    out = []
    for state in ("done", "failed"):
        for p in published(spool, state):
            out.append(json.loads((p / "manifest.json").read_text()))
    return out


_VALIDATOR: jsonschema.Draft202012Validator | None = None


def validate_manifest(data: dict[str, Any]) -> None:
    global _VALIDATOR
    if _VALIDATOR is None:
        schema = json.loads((ROOT / "docs" / "manifest.schema.json").read_text())
        _VALIDATOR = jsonschema.Draft202012Validator(schema)
    _VALIDATOR.validate(data)


def assert_all_manifests_valid(spool: Path) -> None:
    for state in ("done", "failed"):
        for p in (spool / state).iterdir():
            data = json.loads((p / "manifest.json").read_text())
            validate_manifest(data)
            text = (p / "manifest.json").read_text()
            assert str(spool) not in text, "absolute server path in manifest"
            assert "Traceback" not in text


def events(spool: Path) -> list[dict[str, Any]]:
    """The spool's events log: every daemon's file, merged in order."""
    return list(read_events(spool / ".spoold" / "events.ndjson"))


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the `spoold` command as a user would (with this interpreter)."""
    return subprocess.run(
        [sys.executable, "-m", "spoold", *args],
        capture_output=True,
        text=True,
        check=check,
        cwd=ROOT,
    )


def stage_file(spool: Path, name: str, content: bytes | str, sub: str = "") -> Path:
    """Write in tmp/, then rename into inbox/ (the protocol tools should use)."""
    data = content.encode() if isinstance(content, str) else content
    tmp = spool / "tmp" / f".{name}.staging"
    tmp.write_bytes(data)
    dest = spool / "inbox" / sub / name
    os.rename(tmp, dest)
    return dest


def pdftotext(path: Path) -> str:
    """The text a reader gets out of a PDF (poppler's pdftotext)."""
    return subprocess.run(
        ["pdftotext", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def pdf_image_sizes(path: Path) -> list[tuple[int, int]]:
    """(width, height) of every image `pdfimages -list` finds in the PDF."""
    out = subprocess.run(
        ["pdfimages", "-list", str(path)], check=True, capture_output=True, text=True
    ).stdout
    rows = out.splitlines()[2:]  # a header line and a rule precede the images
    return [(int(r.split()[3]), int(r.split()[4])) for r in rows if r.strip()]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item (daemon_factory reads `rep_call`)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def gateway_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """`spoold serve` processes (tests/http_support.py), stopped after the test."""
    from .http_support import GatewayProc

    started: list[GatewayProc] = []

    def start(*spools: Path, args: tuple[str, ...] = (), wait: bool = True) -> GatewayProc:
        log = spools[0].parent / f"gateway-{len(started)}.log"
        g = GatewayProc(list(spools), *args, log=log).start(wait=wait)
        started.append(g)
        return g

    yield start
    report = getattr(request.node, "rep_call", None)
    for g in started:
        if report is not None and report.failed:
            print(f"--- {g.log_path} (last 3000 bytes)")
            print(g.log_path.read_bytes()[-3000:].decode("utf-8", "replace"))
        g.stop()


# What `make check` (the fast in-process loop) leaves to `make test`:
# tests that start real processes (daemons and their workers, gateways, through these
# fixtures, or the `spoold` command, systemd-analyze, promtool, mypy...) are marked
# `processes`;
# long ones `slow`: the real-document corpus, the protocol model checks, big documents,
# shared-storage mounts, the 10,000-file flood and the crash-point matrix. `make test`
# leaves the `slow` ones to `make test-slow`; CI runs both.
PROCESS_FIXTURES = frozenset({"daemon_factory", "gateway_factory"})
PROCESS_MODULES = frozenset(
    {
        "test_cli",
        "test_cli_jobs",
        "test_docs_people",
        "test_doctor",
        "test_events_types",
        "test_http_security",
        "test_http_page",  # a real browser (Playwright, chromium-headless-shell)
        "test_layers",
        "test_ops_kit",
        "test_routes",
        "test_systemd_units",
        "test_worker_fonts",
    }
)
SLOW_MODULES = frozenset({"test_corpus", "test_dialects_corpus", "test_model"})
SLOW_TESTS = frozenset(
    {
        "test_remove_tree_handles_deep_nesting_without_recursion",
        "test_fonttools_subsetting_gives_the_same_bytes_later",
        "test_deep_documents_leave_the_recursion_limit_as_it_was",
        "test_html_without_own_styles_is_byte_identical_to_base",
        "test_flood_of_files_misses_nothing",
        "test_crash_points",
        # A minute or more each on a busy machine (durations of a CI run).
        "test_real_daemon_log_is_clean",
        "test_back_pressure_300_posts_against_max_queued_50",
        "test_sd_notify_lifecycle",
        # 13 to 24 s each in `make test` (--durations of 2026-12-07, -n 4 on 2 cores): a
        # quarter of its time in 3 % of its tests. Each starts daemons (most several, or
        # restarts one), a gateway or a browser; `make test` keeps faster tests of the
        # same behaviours, and CI runs these in `make test-slow`.
        "test_submit_to_keeps_the_name_so_cancel_by_name_works",
        "test_list_filters_and_purge_removes_old_jobs",
        "test_a_held_result_survives_a_drain",
        "test_tokens_and_users_jobs",
        "test_resume_converts_only_the_missing_target",
        "test_the_stream_resumes_after_the_gateway_restarts",
        "test_sigkill_mid_job_then_restart_completes",
        "test_with_tokens_the_field_and_signed_download_links",
        "test_status_show_events_cancel_retry",
        "test_kill_the_gateway_during_50_uploads",
        "test_each_spool_gets_its_own_memory_limit",
        "test_status_show_and_list_give_every_state_the_same_fields",
        "test_waiting_entries_say_why_and_a_paused_writer_is_converted_whole",
        "test_a_published_job_is_reported_only_once_its_group_is_durable",
        "test_retry_keeps_history_and_backoff_survives_restart",
        "test_fencing_a_frozen_host_cannot_publish",
        "test_cancel_a_long_job_and_retry_a_failed_one_with_its_error_text",
        "test_a_pool_that_cannot_be_rebuilt_makes_the_daemon_exit_70",
        "test_a_tool_on_a_skewed_host_sees_a_live_daemon_with_a_sane_heartbeat_age",
        "test_b_waits_while_the_daemon_holding_a_is_killed",
        "test_a_pool_whose_manager_died_is_rebuilt_and_its_job_retried",
        "test_without_a_daemon_the_id_works_at_once",
        "test_check_events_on_a_real_log",
        "test_sse_resume_and_openapi",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in PROCESS_MODULES or PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.processes)
        if module in SLOW_MODULES or item.originalname in SLOW_TESTS:  # type: ignore[attr-defined]
            item.add_marker(pytest.mark.slow)
