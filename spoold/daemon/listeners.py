"""The effects of a transition, outside the lifecycle: a small listener bus.

The lifecycle changes a job's state and then tells the bus. The events log is written
first (it is the record every tool reads), then each listener runs in order: metrics,
out/ links and modes, hooks. A listener that raises is logged (with its traceback the
first time, briefly after) and never stops the lifecycle or the listeners after it:
the job is published already. Modelled on dramatiq's middleware and `emit_after`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import ErrorInfo
from ..share.hooks import HookResult, HookRunner, hook_env
from ..share.outputs import apply_output_permissions, link_flat_output
from ..spool.events import Event, HookFailed
from ..spool.job import JobStatus
from ..spool.manifest import Manifest
from .runtime import SpoolRuntime

log = logging.getLogger("spoold")


@dataclass(frozen=True)
class Published:
    """A job has landed in done/ or failed/."""

    rt: SpoolRuntime
    job_id: str
    attempt: int
    route: str | None
    status: JobStatus
    error: ErrorInfo | None
    dest: Path
    manifest: Manifest
    wall_s: float  # the attempt's duration (from its usage, else since claim/start)
    modes_applied: bool = False  # output_mode/group set before the rename already


class Listener:
    """Override what you need; every hook is a no-op by default."""

    def after_event(self, rt: SpoolRuntime, event: Event) -> None:
        pass

    def after_publish(self, published: Published) -> None:
        pass

    def after_worker_restart(self, rt: SpoolRuntime, cause: str) -> None:
        pass


class ListenerBus:
    def __init__(self, listeners: Sequence[Listener] = ()) -> None:
        self.listeners = list(listeners)
        self._failed: set[tuple[str, str]] = set()
        self._on_event = self._event_listeners()

    def add(self, listener: Listener, *, first: bool = False) -> None:
        if first:
            self.listeners.insert(0, listener)
        else:
            self.listeners.append(listener)
        self._on_event = self._event_listeners()

    def _event_listeners(self) -> list[Listener]:
        # Only those that want events: four events a job, each to every listener, add up.
        return [x for x in self.listeners if type(x).after_event is not Listener.after_event]

    def emit(self, rt: SpoolRuntime, event: Event) -> None:
        rt.events.emit(event)  # never raises: a full disk is logged by the log itself
        for listener in self._on_event:
            try:
                listener.after_event(rt, event)
            except Exception as exc:
                self._failed_once(listener, "after_event", exc)

    def published(self, published: Published) -> None:
        for listener in self.listeners:
            try:
                listener.after_publish(published)
            except Exception as exc:
                self._failed_once(listener, "after_publish", exc)

    def worker_restarted(self, rt: SpoolRuntime, cause: str) -> None:
        """A worker process was stopped during one of rt's jobs (the pool replaces it)."""
        for listener in self.listeners:
            try:
                listener.after_worker_restart(rt, cause)
            except Exception as exc:
                self._failed_once(listener, "after_worker_restart", exc)

    def _failed_once(self, listener: Listener, hook: str, exc: Exception) -> None:
        """Log a listener's failure: with its traceback the first time, briefly after."""
        key = (type(listener).__name__, type(exc).__name__)
        if key in self._failed:
            log.debug("listener %s.%s failed again: %s", key[0], hook, exc)
            return
        self._failed.add(key)
        log.error("listener %s.%s failed (the job is not affected)", key[0], hook, exc_info=exc)


class MetricsSink(Protocol):
    def job_finished(
        self, spool: str, outcome: str, error_code: str | None, duration_s: float
    ) -> None: ...

    def conversion_finished(self, spool: str, target: str, seconds: float) -> None: ...

    def worker_restarted(self, spool: str, cause: str) -> None: ...


class MetricsListener(Listener):
    def __init__(self, metrics: MetricsSink) -> None:
        self.metrics = metrics

    def after_publish(self, published: Published) -> None:
        spool = published.rt.name
        code = published.error.code if published.error else None
        self.metrics.job_finished(spool, published.status.value, code, published.wall_s)
        # The worker times each target it converted in this attempt; an artifact kept
        # from an earlier attempt has no timing here and is not counted twice.
        timings = published.manifest.timings
        for target in dict.fromkeys(a.target for a in published.manifest.artifacts):
            if target in timings:
                self.metrics.conversion_finished(spool, target, timings[target])

    def after_worker_restart(self, rt: SpoolRuntime, cause: str) -> None:
        self.metrics.worker_restarted(rt.name, cause)


class OutputsListener(Listener):
    """What people browsing the share see: output modes and group, out/ links."""

    def after_publish(self, published: Published) -> None:
        settings = published.rt.settings
        mode, group = settings.output_mode, settings.output_group
        if (mode is not None or group is not None) and not published.modes_applied:
            apply_output_permissions([published.dest], mode, group, recursive=True)
        artifacts = published.manifest.artifacts
        if settings.flat_output and published.status is JobStatus.SUCCEEDED and artifacts:
            paths = [published.dest / a.path for a in artifacts]
            links = link_flat_output(published.rt.paths.out, paths)
            if links and (mode is not None or group is not None):
                apply_output_permissions(links, mode, group)


class HooksListener(Listener):
    """on_success / on_failure commands, on their own threads; a failure is an event.

    `deliver` hands a finished hook back to the main loop (the loop owns the log).
    """

    def __init__(
        self,
        runner: HookRunner,
        bus: ListenerBus,
        deliver: Callable[[Callable[[], None]], None],
    ) -> None:
        self.runner = runner
        self.bus = bus  # where hook.failed goes (this listener is one of its listeners)
        self.deliver = deliver

    def after_publish(self, published: Published) -> None:
        rt = published.rt
        defaults = rt.settings.for_route(published.route)
        ok = published.status is JobStatus.SUCCEEDED
        argv = defaults.on_success if ok else defaults.on_failure
        if not argv:
            return
        code = published.error.code if published.error else None
        env = hook_env(
            published.job_id,
            published.status.value,
            code,
            published.dest,
            spool=rt.name,
            name=published.manifest.name,
        )

        def on_done(result: HookResult) -> None:
            self.deliver(lambda: self._finished(published, argv[0], result))

        self.runner.submit(argv, published.dest, env, rt.settings.hook_timeout_s, on_done)

    def _finished(self, published: Published, command: str, result: HookResult) -> None:
        if result.ok:
            return
        event = HookFailed(
            job_id=published.job_id,
            attempt=published.attempt,
            command=command,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            error=result.error or f"exited with status {result.exit_code}",
            output=result.output[:2000],  # the start says what went wrong; the cap is 64 KiB
        )
        self.bus.emit(published.rt, event)
