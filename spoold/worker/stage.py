"""A worker's current stage in .spoold-stage of the running folder, for `spoold status`."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from .spec import STAGE_FILE


def _write_stage(folder: Path, stage: str) -> None:
    try:
        (folder / STAGE_FILE).write_text(stage)
    except OSError:
        pass


class _StageClock:
    """One thread per worker that writes the running job's stage once it is due.

    Starting a threading.Timer per job cost about 12 % of a tiny job's time in the
    worker; this thread starts once (lazily, after the fork) and sleeps on a condition.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.reporter: StageReporter | None = None
        self.deadline = 0.0
        self.thread: threading.Thread | None = None

    def arm(self, reporter: StageReporter, deadline: float) -> None:
        with self.cond:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="spoold-stage", daemon=True)
                self.thread.start()
            self.reporter, self.deadline = reporter, deadline
            self.cond.notify()

    def disarm(self, reporter: StageReporter) -> None:
        with self.cond:
            if self.reporter is reporter:
                self.reporter = None

    def _run(self) -> None:
        with self.cond:
            while True:
                if self.reporter is None:
                    self.cond.wait()
                    continue
                delay = self.deadline - time.monotonic()
                if delay > 0:
                    self.cond.wait(delay)
                    continue
                due, self.reporter = self.reporter, None
                self.cond.release()
                try:
                    due.flush()
                finally:
                    self.cond.acquire()


_STAGE_CLOCK = _StageClock()


class StageReporter:
    """Writes the job's current stage for `spoold status`, but not for tiny jobs:
    a stage is written only once the job has run for 0.1 s (the worker's stage clock
    catches a stage reported earlier that is still current then)."""

    DELAY = 0.1

    def __init__(self, folder: Path, t0: float) -> None:
        self.folder = folder
        self.t0 = t0
        self.current: str | None = None
        self.written = False
        self.lock = threading.Lock()
        _STAGE_CLOCK.arm(self, t0 + self.DELAY)

    def report(self, stage: str) -> None:
        with self.lock:
            self.current = stage
            if time.monotonic() - self.t0 >= self.DELAY:
                self._write()

    def flush(self) -> None:
        with self.lock:
            if self.current is not None:
                self._write()

    def _write(self) -> None:
        if self.current is not None:
            _write_stage(self.folder, self.current)
            self.written = True

    def close(self) -> None:
        _STAGE_CLOCK.disarm(self)
        with self.lock:
            self.current = None
            if self.written:
                try:
                    os.unlink(self.folder / STAGE_FILE)
                except OSError:
                    pass
