"""The worker's stage clock (worker/stage.py), in-process: a job's stage appears for
`spoold status` once the job has run for StageReporter.DELAY, also after a run of tiny
jobs that ended before theirs, and is gone when the job ends."""

from __future__ import annotations

import time
from pathlib import Path

from spoold.worker.spec import STAGE_FILE
from spoold.worker.stage import StageReporter

from .conftest import wait_for


def job_folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


def long_job_shows_its_stage(folder: Path, stage: str) -> None:
    """A job that runs past the delay: its stage appears, and goes when it ends."""
    job = StageReporter(folder, time.monotonic())
    job.report(stage)
    wait_for(lambda: (folder / STAGE_FILE).exists(), what="the stage written")
    assert (folder / STAGE_FILE).read_text() == stage
    job.close()
    assert not (folder / STAGE_FILE).exists()


def test_a_stage_is_written_once_due_and_removed_at_the_end(tmp_path: Path) -> None:
    long_job_shows_its_stage(job_folder(tmp_path, "long"), "layout")


def test_jobs_in_a_row_each_get_their_stage(tmp_path: Path) -> None:
    # Tiny jobs end before their deadline and leave no stage; the long job after them
    # still gets its own.
    for i in range(20):
        tiny = StageReporter(job_folder(tmp_path, f"tiny{i}"), time.monotonic())
        tiny.report("parsing")
        tiny.close()
    long_job_shows_its_stage(job_folder(tmp_path, "long"), "writing")
    assert not any((tmp_path / f"tiny{i}" / STAGE_FILE).exists() for i in range(20))
