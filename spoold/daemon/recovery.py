"""Recovery: find the claims in running/ whose daemon is gone, and this daemon's own
claims that none of its jobs holds any more (`_forgotten`), and requeue them (or fail
them, out of attempts) through the lifecycle's Finishing; forget the lease files of
gone daemons that hold nothing any more.

Whether a daemon is gone is the PeerWatcher's (spoold/spool/leases.py): its lease has not
changed for lease_ttl_s on this daemon's monotonic clock (at once on the same host and
boot, where its flock is the truth). No wall clock is compared.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from ..errors import ErrorCode, JobError
from ..spool.clock import iso, iso_of
from ..spool.events import JobRecovered
from ..spool.job import Attempt, AttemptOutcome, JobState, JobStatus
from ..spool.protocol import INPUT_DIR, parse_running_name, requeue
from ..spool.transient import call_with_retry
from ..spool.waiting import remove_board
from .crashpoints import crash_point
from .finishing import Finishing
from .jobfolder import state_of
from .lifecycle import Lifecycle
from .parts import discard_parts
from .runtime import RunningJob, SpoolRuntime

log = logging.getLogger("spoold")


def recover(rt: SpoolRuntime, lifecycle: Lifecycle, host_id: str, token: str) -> None:
    """Requeue claims whose owner is gone, and this daemon's own forgotten claims."""
    try:
        names = call_with_retry(os.listdir, rt.paths.running)
    except OSError:
        return
    forgotten = _forgotten(rt, lifecycle, names, token)
    for name in names:
        parsed = parse_running_name(name)
        if parsed is None:
            continue
        if parsed.token == token:
            if name not in forgotten:
                continue
            owner: dict[str, object] = {"host": host_id, "pid": os.getpid()}
        elif rt.peers.is_gone(parsed.token):
            record = rt.peers.owner(parsed.token)
            owner = asdict(record) if record is not None else {}
        else:
            continue
        folder = rt.paths.running / name
        if _abandoned_before_claim(folder):
            continue
        recover_claim(lifecycle.finishing, rt, folder, parsed.jobdir, parsed.attempt, owner)
    _forget_dead_daemons(rt, names, token)


def _forgotten(rt: SpoolRuntime, lifecycle: Lifecycle, names: list[str], token: str) -> set[str]:
    """This daemon's claims that none of its jobs holds, in this round and the last.

    A requeue or publish that failed on an I/O error (a rename refused with ESTALE on
    GlusterFS while a brick comes back) leaves its folder in running/ under this
    daemon's name, which no other daemon recovers while this one lives: this one does.
    Two rounds, because a listing may still show a folder this daemon just moved (FUSE
    caches entries for a second).
    """
    held = {job.folder.name for job in lifecycle.running.values() if job.rt is rt}
    unheld = {n for n in names if n.endswith(f".{token}") and n not in held}
    forgotten, rt.forgotten = unheld & rt.forgotten, unheld
    return forgotten


def _abandoned_before_claim(folder: Path) -> bool:
    """A folder prepared for a claim whose rename never happened: remove it."""
    try:
        inputs = os.listdir(folder / INPUT_DIR)
    except FileNotFoundError:
        inputs = []
    except OSError:
        return True  # unreadable now: look again next time
    if inputs:
        return False
    # Crashed between preparing the folder and the claim rename: nothing to keep.
    shutil.rmtree(folder, ignore_errors=True)
    return True


def _forget_dead_daemons(rt: SpoolRuntime, running: list[str], token: str) -> None:
    """Remove the lease files of daemons that are gone and hold no claim any more."""
    try:
        tokens = rt.peers.tokens()
        holding = {n.rsplit(".", 1)[-1] for n in call_with_retry(os.listdir, rt.paths.running)}
    except OSError:
        return
    rt.peers.retain(tokens | holding)  # what is not seen anywhere any more
    for other in tokens - holding - {token}:
        if rt.peers.is_gone(other):
            rt.peers.forget(other)
            remove_board(rt.paths.waiting, other)  # what it waited on, for tools


def recover_claim(
    finishing: Finishing,
    rt: SpoolRuntime,
    folder: Path,
    jobdir: str,
    attempt_no: int,
    owner: dict[str, object],
) -> None:
    """Requeue (or fail, out of attempts) a claim whose daemon is gone."""
    state = state_of(folder, jobdir)
    if state is None:
        return
    last = _lost_attempt(state, folder, attempt_no, owner)
    if last is None:
        return  # recovered by another daemon in the meantime
    # A split job's work files (maybe hundreds of MB) go neither to failed/ nor back
    # to the inbox; the next attempt splits again and keeps the parts laid out.
    discard_parts(folder)
    job = RunningJob(rt, state, folder, last, JobStatus.RUNNING)
    limit = rt.settings.for_route(state.route).max_attempts
    if state.counted_attempts() >= limit:
        finishing.running[state.job_id] = job
        err = JobError(
            ErrorCode.WORKER_LOST,
            f"the job was lost {state.counted_attempts()} times "
            "(its daemon or worker died each time)",
        )
        finishing.publish(job, JobStatus.FAILED, err.info(), None)
        return
    finishing.transition(job, JobStatus.QUEUED)
    state.next_attempt_at = None
    finishing.save_requeue_state(job)  # a full disk leaves an attempt hint instead
    crash_point("before_recovery_requeue")
    try:
        dest = requeue(rt.paths, folder, state.jobdir)
    except (FileNotFoundError, FileExistsError):
        dest = None  # another daemon recovered it first
    except OSError as exc:  # an I/O error: the claim stays; the next round tries again
        log.warning("could not requeue %s from running/: %s", state.job_id, exc.strerror)
        return
    crash_point("after_recovery_requeue")
    if dest is not None:
        finishing.bus.emit(
            rt, JobRecovered(job_id=state.job_id, attempt=attempt_no, name=state.name)
        )
        finishing.on_requeued()


def _lost_attempt(
    state: JobState, folder: Path, attempt_no: int, owner: dict[str, object]
) -> Attempt | None:
    """The claim's attempt, marked lost (rebuilt from the folder and the lease when the
    claim wrote no state); None when the folder is gone."""
    last = state.last_attempt()
    if last is None or last.number < attempt_no:
        try:
            claimed = folder.stat().st_mtime
        except OSError:
            return None
        last = Attempt(
            number=attempt_no,
            host=str(owner.get("host", "unknown")),
            pid=int(str(owner.get("pid", 0))),
            claimed_at=iso_of(claimed),
        )
        state.attempts.append(last)
    if last.number == attempt_no and last.outcome is AttemptOutcome.RUNNING:
        last.outcome = AttemptOutcome.LOST
        last.finished_at = iso()
        last.error = JobError(
            ErrorCode.WORKER_LOST,
            "the daemon holding this job stopped before it finished",
            hint="Nothing to do: spoold runs the job again.",
        ).info()
    return last
