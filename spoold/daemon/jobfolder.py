"""Reading and saving a job folder's state (.spoold-state.json) and its attempt hints."""

from __future__ import annotations

import os
from pathlib import Path

from ..spool.clock import age_s, iso, parse_iso, wall_time
from ..spool.ids import input_requested
from ..spool.job import JobState, read_state
from ..spool.protocol import INPUT_DIR, STATE_FILE, atomic_write_json
from ..worker.spec import STAGE_FILE

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
        submitted_by=input_requested(folder, inputs[0]).submitted_by,
    )


def save_state(folder: Path, state: JobState, *, durable: bool) -> None:
    atomic_write_json(folder / STATE_FILE, state.to_json(), durable=durable)


def seconds_since(stamp: str) -> float:
    try:
        then = parse_iso(stamp)
    except ValueError:
        return 0.0
    return age_s(then, wall_time())


def jobdir_names(folder: Path, target: str) -> bool:
    """Whether a requeued job folder's state names `target` (job id or entry name)."""
    state = read_state(folder)
    return state is not None and target in (state.job_id, state.name)


def write_stage(folder: Path, stage: str) -> None:
    """The stage `spoold status` shows for a job whose worker is done (the daemon's own)."""
    try:
        (folder / STAGE_FILE).write_text(stage)
    except OSError:
        pass  # only a display: the folder may be gone (claim lost)
