"""The lifecycle driven in-process: claim -> start -> finish -> publish with a fake
executor (as dramatiq's StubBroker or huey's immediate mode), on real spool folders.

The real-process tests (test_engine, test_job_control, test_chaos) run the same code
behind the pebble pool; these reach the races and outcomes a process test cannot aim at.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spoold.daemon.executor import Completed, Execution, Outcome, TimedOut
from spoold.daemon.guard import ErrorGuard
from spoold.daemon.inbox.tracker import Entry
from spoold.daemon.lifecycle import Lifecycle
from spoold.daemon.listeners import Listener, ListenerBus, Published
from spoold.daemon.runtime import SpoolRuntime
from spoold.daemon.setup import open_runtime
from spoold.errors import ErrorCode, ErrorInfo
from spoold.spool.formats import artifact_name
from spoold.spool.job import InvalidTransition, JobStatus
from spoold.spool.protocol import init_spool
from spoold.spool.records import Artifact
from spoold.worker.spec import JobSpec, WorkerResult

from .conftest import FAST, events, stage_file


class FakeExecution:
    def __init__(self, outcome: Outcome) -> None:
        self._outcome = outcome
        self.cancelled = False

    def done(self) -> bool:
        return True

    def cancel(self) -> None:
        self.cancelled = True

    def outcome(self) -> Outcome:
        return self._outcome


class FakeExecutor:
    """Runs a job at once, in this process: `behaviour` says how it ends."""

    workers = 1
    ready_workers = 1

    def __init__(self, behaviour: Callable[[JobSpec], Outcome] | None = None) -> None:
        self.behaviour = behaviour or convert_to_html
        self.specs: list[JobSpec] = []

    def start(self) -> None:
        pass

    def batch(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()  # one by one: each ends as it is submitted

    def submit(self, spec: JobSpec, timeout_s: float, on_done: Callable[[], None]) -> Execution:
        self.specs.append(spec)
        execution = FakeExecution(self.behaviour(spec))
        on_done()
        return execution

    def stop(self) -> None:
        pass


def convert_to_html(spec: JobSpec) -> Outcome:
    name = artifact_name(spec.stem, "html")
    data = b"<p>converted</p>"
    (Path(spec.folder) / name).write_bytes(data)
    artifact = Artifact(
        name=name,
        path=name,
        target="html",
        media_type="text/html",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        attempt=spec.attempt,
    )
    return Completed(WorkerResult(artifacts=[artifact]))


def retryable_failure(spec: JobSpec) -> Outcome:
    error = ErrorInfo(ErrorCode.IO_ERROR, "EBUSY while converting", "Try again.", True)
    return Completed(WorkerResult(error=error))


class Recorder(Listener):
    def __init__(self) -> None:
        self.published: list[Published] = []

    def after_publish(self, published: Published) -> None:
        self.published.append(published)


class Broken(Listener):
    def after_publish(self, published: Published) -> None:
        raise RuntimeError("listener bug")


class Harness:
    def __init__(self, root: Path, executor: FakeExecutor, listeners: list[Listener]) -> None:
        self.rt: SpoolRuntime = open_runtime(root, {}, "testhost", "0badc0de")
        self.done_ids: list[str] = []
        self.lifecycle = Lifecycle(
            "testhost", "0badc0de", executor, ListenerBus(listeners), self.done_ids.append
        )

    def ready_entries(self) -> list[Entry]:
        return self.rt.tracker.scan(time.monotonic() + 3600)

    def run_all(self) -> None:
        for entry in self.ready_entries():
            self.lifecycle.run(self.rt, entry, 50)

    def finish_all(self) -> None:
        for job_id in list(self.done_ids):
            self.done_ids.remove(job_id)
            self.lifecycle.finish(job_id)


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    root = tmp_path / "spool"
    init_spool(root)
    settings = {**FAST, "settle_ms": 0, "max_attempts": 3}
    lines = [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    (root / "spool.toml").write_text("\n".join(lines) + "\n")
    return root


def event_names(spool: Path) -> list[str]:
    return [e["event"] for e in events(spool)]


def test_claim_start_finish_publish_in_process(spool: Path) -> None:
    recorder = Recorder()
    h = Harness(spool, FakeExecutor(), [recorder])
    staged = stage_file(spool, "report.md", "# Report\n")
    ino = staged.stat().st_ino
    h.run_all()
    h.finish_all()
    (folder,) = list((spool / "done").iterdir())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "succeeded"
    assert manifest["input"]["name"] == "report.md"
    assert [a["target"] for a in manifest["artifacts"]] == ["html"]
    assert event_names(spool) == ["job.detected", "job.claimed", "job.started", "job.succeeded"]
    assert events(spool)[0]["ino"] == ino
    assert [p.status for p in recorder.published] == [JobStatus.SUCCEEDED]
    assert h.lifecycle.running == {}


def test_a_failing_listener_neither_stops_publishing_nor_the_listeners_after_it(
    spool: Path,
) -> None:
    recorder = Recorder()
    h = Harness(spool, FakeExecutor(), [Broken(), recorder])
    stage_file(spool, "a.md", "# A\n")
    stage_file(spool, "b.md", "# B\n")
    h.run_all()
    h.finish_all()
    assert len(list((spool / "done").iterdir())) == 2
    assert len(recorder.published) == 2


def test_a_requeue_that_lost_the_race_is_recorded_not_raised(spool: Path) -> None:
    # Another daemon already put the job back into inbox/ (it recovered the claim
    # while this one was frozen, say): the rename finds inbox/JOBDIR there.
    h = Harness(spool, FakeExecutor(retryable_failure), [])
    stage_file(spool, "race.md", "# Race\n")
    h.run_all()
    (job,) = h.lifecycle.running.values()
    (spool / "inbox" / job.state.jobdir).mkdir()
    h.finish_all()  # must not raise FileExistsError
    (discarded,) = [e for e in events(spool) if e["event"] == "job.discarded"]
    assert discarded["reason"] == "already requeued by another daemon"
    assert h.lifecycle.running == {}


def test_a_result_whose_claim_was_lost_is_discarded(spool: Path) -> None:
    h = Harness(spool, FakeExecutor(), [])
    stage_file(spool, "fenced.md", "# Fenced\n")
    h.run_all()
    (job,) = h.lifecycle.running.values()
    os.rename(job.folder, spool / "inbox" / job.state.jobdir)  # recovered by another daemon
    h.finish_all()
    assert list((spool / "done").iterdir()) == []
    (discarded,) = [e for e in events(spool) if e["event"] == "job.discarded"]
    assert discarded["reason"] == "claim lost"


def test_a_queued_job_cancelled_before_it_starts_is_detected_with_its_inode(
    spool: Path,
) -> None:
    executor = FakeExecutor()
    h = Harness(spool, executor, [])
    staged = stage_file(spool, "never.md", "# Never\n")
    ino = staged.stat().st_ino
    (entry,) = h.ready_entries()
    h.lifecycle.cancel_queued(h.rt, entry)
    assert executor.specs == []
    (folder,) = list((spool / "failed").iterdir())
    assert json.loads((folder / "manifest.json").read_text())["status"] == "cancelled"
    detected = events(spool)[0]
    assert detected["event"] == "job.detected" and detected["ino"] == ino
    assert event_names(spool)[-1] == "job.cancelled"


def test_a_timed_out_attempt_records_its_wall_time(spool: Path) -> None:
    (spool / "spool.toml").write_text(
        (spool / "spool.toml").read_text().replace("max_attempts = 3", "max_attempts = 1")
    )
    h = Harness(spool, FakeExecutor(lambda spec: TimedOut()), [])
    stage_file(spool, "slow.md", "# Slow\n")
    h.run_all()
    h.finish_all()
    (folder,) = list((spool / "failed").iterdir())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["error"]["code"] == ErrorCode.TIMEOUT.value
    usage = manifest["attempts"][-1]["usage"]
    assert usage["wall_s"] >= 0 and "cpu_s" not in usage


def test_input_names_the_main_document_of_a_job_folder(spool: Path) -> None:
    h = Harness(spool, FakeExecutor(), [])
    staging = spool / "tmp" / "brochure"
    staging.mkdir()
    (staging / "main.md").write_text("# Brochure\n")
    os.rename(staging, spool / "inbox" / "brochure")
    h.run_all()
    h.finish_all()
    (folder,) = list((spool / "done").iterdir())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["name"] == "brochure"
    assert manifest["input"]["name"] == "main.md"
    assert manifest["input"]["media_type"] == "text/markdown"


def test_transitions_are_checked_from_the_real_state(spool: Path) -> None:
    h = Harness(spool, FakeExecutor(), [])
    stage_file(spool, "t.md", "# T\n")
    h.run_all()
    (job,) = h.lifecycle.running.values()
    assert job.status is JobStatus.RUNNING
    h.finish_all()
    assert job.status is JobStatus.SUCCEEDED
    with pytest.raises(InvalidTransition):
        h.lifecycle.transition(job, JobStatus.QUEUED)
    assert job.status is JobStatus.SUCCEEDED


def test_the_same_error_twenty_times_in_a_row_gives_up() -> None:
    guard = ErrorGuard(limit=20)

    def fail(exc: Exception) -> bool:
        try:
            raise exc
        except Exception as caught:
            return guard.failed(caught)

    assert not any(fail(OSError("once")) for _ in range(19))
    guard.ok()  # a good pass in between starts the count again
    assert not any(fail(OSError("again")) for _ in range(19))
    assert fail(OSError("twentieth"))


def test_a_transient_rename_error_is_tried_again(tmp_path: Path, monkeypatch: Any) -> None:
    import errno

    from spoold.spool import protocol

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_text("x")
    real_rename = os.rename
    failures = iter([OSError(errno.EBUSY, "busy"), OSError(errno.EBUSY, "busy")])

    def flaky(a: Any, b: Any) -> None:
        exc = next(failures, None)
        if exc is not None:
            raise exc
        real_rename(a, b)

    monkeypatch.setattr(protocol.os, "rename", flaky)
    protocol.rename(src, dst)
    assert dst.read_text() == "x" and not src.exists()


def test_a_lasting_rename_error_is_raised(tmp_path: Path, monkeypatch: Any) -> None:
    import errno

    from spoold.spool import protocol
    from spoold.spool.transient import ATTEMPTS

    calls = []

    def busy(a: Any, b: Any) -> None:
        calls.append(a)
        raise OSError(errno.EBUSY, "busy")

    monkeypatch.setattr(protocol.os, "rename", busy)
    with pytest.raises(OSError):
        protocol.rename(tmp_path / "a", tmp_path / "b")
    assert len(calls) == 1 + ATTEMPTS  # the first try, then transient.py's bounded policy


def test_a_loop_failing_the_same_way_twenty_times_exits_70(spool: Path) -> None:
    import signal

    from spoold.daemon import Daemon
    from spoold.settings import DaemonSettings

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        daemon = Daemon([spool], DaemonSettings(workers=1), executor=FakeExecutor())
        daemon.error_pause_s = 0.0
        passes = []

        def broken_pass() -> bool:
            passes.append(1)
            raise OSError("the same bug every time")

        daemon._iterate = broken_pass  # type: ignore[method-assign]
        assert daemon._loop() == 70
        assert len(passes) == 20
        (failed,) = [e for e in events(spool) if e["event"] == "daemon.failed"]
        assert "the same bug every time" in failed["error"]
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_a_claim_lost_to_another_daemon_is_recorded(spool: Path) -> None:
    executor = FakeExecutor()
    h = Harness(spool, executor, [])
    stage_file(spool, "taken.md", "# Taken\n")
    (entry,) = h.ready_entries()
    os.rename(spool / "inbox" / "taken.md", spool / "tmp" / "elsewhere.md")  # the other won
    h.lifecycle.run(h.rt, entry, 50)
    assert executor.specs == [] and h.lifecycle.running == {}
    assert os.listdir(spool / "running") == []
    (lost,) = events(spool)
    assert lost["event"] == "claim.lost" and lost["name"] == "taken.md"


def test_recovery_requeues_a_dead_daemons_claim_once(spool: Path) -> None:
    from spoold.daemon.recovery import recover
    from spoold.spool.clock import new_job_id
    from spoold.spool.leases import PeerWatcher
    from spoold.spool.protocol import SpoolPaths, claim_entry, job_dir_name

    h = Harness(spool, FakeExecutor(), [])
    stage_file(spool, "orphan.md", "# Orphan\n")
    jobdir = job_dir_name("orphan.md", new_job_id())
    # Claimed by daemon "deadbeef", which has no lease files: it is gone.
    claim_entry(SpoolPaths(spool), "orphan.md", "orphan.md", jobdir, 1, "deadbeef")
    now = [1000.0]
    h.rt.peers = PeerWatcher(h.rt.paths.daemons, "testhost", 30.0, monotonic=lambda: now[0])
    recover(h.rt, h.lifecycle, "testhost", "0badc0de")  # first look: "just seen"
    assert os.listdir(spool / "running") != []
    now[0] += 30.0  # a lease on this daemon's monotonic clock without a change
    recover(h.rt, h.lifecycle, "testhost", "0badc0de")
    recover(h.rt, h.lifecycle, "testhost", "0badc0de")  # nothing left: no second event
    assert os.listdir(spool / "running") == []
    state = json.loads((spool / "inbox" / jobdir / ".spoold-state.json").read_text())
    assert [a["outcome"] for a in state["attempts"]] == ["lost"]
    assert event_names(spool) == ["job.recovered"]
    (entry,) = h.ready_entries()  # the next claim is attempt 2
    h.lifecycle.run(h.rt, entry, 50)
    h.finish_all()
    (folder,) = list((spool / "done").iterdir())
    attempts = json.loads((folder / "manifest.json").read_text())["attempts"]
    assert [(a["number"], a["outcome"]) for a in attempts] == [(1, "lost"), (2, "succeeded")]


def test_a_claim_this_daemon_could_not_requeue_is_requeued_by_its_recovery(
    spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The requeue rename fails on an I/O error (ESTALE on GlusterFS while a brick comes
    back): the claim stays in running/ under this daemon's name, and its own recovery
    requeues it two rounds later. A claim it still holds is never touched."""
    import errno

    from spoold.daemon import finishing
    from spoold.daemon.recovery import recover

    real_requeue = finishing.requeue
    refused: list[str] = []

    def stale_once(paths: Any, folder: Path, jobdir: str) -> Path | None:
        if not refused:
            refused.append(folder.name)
            raise OSError(errno.ESTALE, "Stale file handle", str(folder))
        return real_requeue(paths, folder, jobdir)

    monkeypatch.setattr(finishing, "requeue", stale_once)
    h = Harness(spool, FakeExecutor(retryable_failure), [])
    stage_file(spool, "stale.md", "# Stale\n")
    h.run_all()
    h.finish_all()  # a retryable failure: back to the inbox, which fails
    assert h.lifecycle.running == {}
    assert os.listdir(spool / "running") == refused
    h.lifecycle.executor = FakeExecutor(lambda spec: TimedOut())  # never ends: held
    stage_file(spool, "held.md", "# Held\n")
    h.run_all()
    (held,) = [n for n in os.listdir(spool / "running") if n.startswith("held.")]
    recover(h.rt, h.lifecycle, "testhost", "0badc0de")  # first look: maybe a stale listing
    assert sorted(os.listdir(spool / "running")) == sorted([*refused, held])
    recover(h.rt, h.lifecycle, "testhost", "0badc0de")
    assert os.listdir(spool / "running") == [held]
    assert event_names(spool)[-1] == "job.recovered"
    state = json.loads(next((spool / "inbox").glob("stale.*/.spoold-state.json")).read_text())
    assert [a["outcome"] for a in state["attempts"]] == ["retry"]


def test_a_stale_handle_while_publishing_is_retried_without_an_error(
    spool: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ESTALE: another client changed the folder on the file server; the requeue finds
    out whether it is still this daemon's, so nothing is logged as an error."""
    import errno

    from spoold.daemon import finishing

    def stale(spec: Any, manifest: Any) -> Any:
        raise OSError(errno.ESTALE, "Stale file handle", str(spec.folder))

    monkeypatch.setattr(finishing, "write_outcome", stale)
    h = Harness(spool, FakeExecutor(), [])
    stage_file(spool, "stale.md", "# Stale\n")
    with caplog.at_level("WARNING", logger="spoold"):
        h.run_all()
        h.finish_all()
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "could not publish" in caplog.records[0].getMessage()
    assert event_names(spool)[-1] == "job.retry_scheduled"
    assert [p.name.split(".")[0] for p in (spool / "inbox").iterdir()] == ["stale"]


def test_a_sighup_held_back_by_the_launcher_becomes_a_reload(spool: Path) -> None:
    # `spoold run` may block SIGHUP/SIGTERM from its first line until the daemon's
    # handlers exist; the daemon then takes what is pending as wake-ups.
    import signal

    from spoold.daemon import Daemon
    from spoold.settings import DaemonSettings

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        # At the main thread, which blocks it: a signal sent to the process could go to
        # any other thread (pytest-xdist has some) and end the process.
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGHUP)
        daemon = Daemon([spool], DaemonSettings(workers=1), executor=FakeExecutor())
        assert [w.kind for w in daemon.wakeups.pop_all()] == ["reload"]
        assert signal.SIGHUP not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_listeners_hear_events_after_the_log_has_them(spool: Path) -> None:
    heard: list[tuple[str, int]] = []

    class Counter(Listener):
        def after_event(self, rt: SpoolRuntime, event: Any) -> None:
            heard.append((event.NAME, len(events(spool))))

    h = Harness(spool, FakeExecutor(), [Counter()])
    stage_file(spool, "heard.md", "# Heard\n")
    h.run_all()
    h.finish_all()
    names = ["job.detected", "job.claimed", "job.started", "job.succeeded"]
    assert heard == [(name, i + 1) for i, name in enumerate(names)]


def test_a_job_already_published_elsewhere_is_not_published_twice(spool: Path) -> None:
    h = Harness(spool, FakeExecutor(), [])
    stage_file(spool, "twice.md", "# Twice\n")
    h.run_all()
    (job,) = h.lifecycle.running.values()
    (spool / "done" / job.state.jobdir).mkdir()  # another daemon's copy landed first
    h.finish_all()
    (discarded,) = [e for e in events(spool) if e["event"] == "job.discarded"]
    assert discarded["reason"] == "already published"
    assert job.folder.exists(), "nothing of this attempt's is lost"
    assert "job.succeeded" not in event_names(spool)


def test_a_retry_whose_claim_was_lost_is_discarded(spool: Path) -> None:
    h = Harness(spool, FakeExecutor(retryable_failure), [])
    stage_file(spool, "gone.md", "# Gone\n")
    h.run_all()
    (job,) = h.lifecycle.running.values()
    os.rename(job.folder, spool / "failed" / job.state.jobdir)  # a person moved it
    h.finish_all()
    (discarded,) = [e for e in events(spool) if e["event"] == "job.discarded"]
    assert discarded["reason"] == "claim lost"
    assert "job.retry_scheduled" not in event_names(spool)


def test_a_job_the_executor_cannot_start_goes_back_uncounted(spool: Path) -> None:
    def broken(spec: JobSpec) -> Outcome:
        raise RuntimeError("the pool is not running")

    h = Harness(spool, FakeExecutor(broken), [])
    stage_file(spool, "later.md", "# Later\n")
    (entry,) = h.ready_entries()
    with pytest.raises(RuntimeError):
        h.lifecycle.run(h.rt, entry, 50)
    assert h.lifecycle.running == {}
    (requeued,) = list((spool / "inbox").iterdir())
    state = json.loads((requeued / ".spoold-state.json").read_text())
    assert [a["outcome"] for a in state["attempts"]] == ["interrupted"]
