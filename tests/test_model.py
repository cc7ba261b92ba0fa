"""Model-based tests: the job state machine and the folder protocol against simple models.

(a) `spoold.spool.job.check_transition` must accept exactly the transitions of a hand-written
    model of the lifecycle (SPEC section 3) and refuse every other one.
(b) The functions of `spoold.spool.protocol` (claim, requeue, publish, leases) driven by two
    daemons on a real spool, with crashes, recovery and stale (fenced-off) holders,
    against a model of where each job is.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from spoold.spool.clock import new_job_id
from spoold.spool.job import TERMINAL, TRANSITIONS, InvalidTransition, JobStatus, check_transition
from spoold.spool.leases import OwnLease, PeerWatcher
from spoold.spool.protocol import (
    INPUT_DIR,
    MANIFEST,
    STATE_FILE,
    atomic_write_json,
    claim_entry,
    claim_requeued,
    init_spool,
    job_dir_name,
    new_token,
    parse_running_name,
    publish,
    rename_noreplace,
    requeue,
)

SETTINGS = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

Q, R, S, F, C = (
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)

# The lifecycle of SPEC section 3, written out by hand (not derived from TRANSITIONS).
MODEL_LEGAL: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {
        (Q, R),  # claim
        (Q, C),  # cancel of a queued job
        (Q, F),  # bad input found before it ran
        (R, Q),  # requeue: retry after backoff, recovery, drain
        (R, S),  # finish
        (R, F),
        (R, C),  # cancel of a running job
        (F, Q),  # `spoold retry`
        (C, Q),
    }
)


# ----------------------------------------------------------------------------- (a)


def accepted(old: JobStatus, new: JobStatus) -> bool:
    try:
        check_transition("model", old, new)
    except InvalidTransition:
        return False
    return True


class JobStateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[JobStatus] = []

    def _step(self, data: st.DataObject, new: JobStatus) -> None:
        """Ask for `new` on some job: accepted exactly when the model allows it."""
        i = data.draw(st.integers(0, len(self.jobs) - 1), label="job")
        old = self.jobs[i]
        legal = (old, new) in MODEL_LEGAL
        assert accepted(old, new) == legal, f"{old} -> {new}: model says {legal}"
        if legal:
            self.jobs[i] = new

    @initialize()
    def first_job(self) -> None:
        self.submit()

    @rule()
    def submit(self) -> None:
        self.jobs.append(Q)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        self._step(data, R)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), ok=st.booleans())
    def finish(self, data: st.DataObject, ok: bool) -> None:
        self._step(data, S if ok else F)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self._step(data, C)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def retry_or_requeue(self, data: st.DataObject) -> None:
        self._step(data, Q)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), new=st.sampled_from(list(JobStatus)))
    def any_transition(self, data: st.DataObject, new: JobStatus) -> None:
        self._step(data, new)

    @rule(old=st.sampled_from(list(JobStatus)), new=st.sampled_from(list(JobStatus)))
    def random_pair(self, old: JobStatus, new: JobStatus) -> None:
        assert accepted(old, new) == ((old, new) in MODEL_LEGAL), f"{old} -> {new}"

    @invariant()
    def terminal_states(self) -> None:
        assert {S, F, C} == TERMINAL
        assert TRANSITIONS[S] == frozenset(), "a success is final"


JobStateMachine.TestCase.settings = SETTINGS
test_job_state_machine = JobStateMachine.TestCase


def test_transition_table_matches_the_model_exhaustively() -> None:
    for old, new in itertools.product(JobStatus, JobStatus):
        assert accepted(old, new) == ((old, new) in MODEL_LEGAL), f"{old} -> {new}"


# ----------------------------------------------------------------------------- (b)

HOST = "model-host"
LEASE_TTL_S = 3600.0  # same host, same boot: the flock decides, never the lease


@dataclass
class Daemon:
    name: str
    token: str
    lease: OwnLease
    holdings: dict[str, Path] = field(default_factory=dict)  # entry name -> running folder


@dataclass
class Job:
    name: str  # the input entry's name
    place: str  # "inbox" (dropped), "queued" (inbox/JOBDIR), "running", "done", "failed"
    job_id: str | None = None
    jobdir: str | None = None
    attempt: int = 0  # the last claimed attempt
    holder: str | None = None  # daemon name
    folder: Path | None = None  # where the job folder is (None while a plain entry)


@dataclass
class Stale:
    """A claim held by a daemon that crashed (or froze) and lost it."""

    name: str
    folder: Path
    jobdir: str


def read_attempts(folder: Path) -> list[int]:
    try:
        data = json.loads((folder / STATE_FILE).read_text())
    except FileNotFoundError:
        return []
    return [int(n) for n in data["attempts"]]


def write_attempts(folder: Path, attempts: list[int]) -> None:
    atomic_write_json(folder / STATE_FILE, {"attempts": attempts}, durable=False)


def snapshot(root: Path) -> list[tuple[str, int]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".spoold"]
        for n in dirnames + filenames:
            p = Path(dirpath, n)
            out.append((str(p.relative_to(root)), p.lstat().st_size if p.is_file() else -1))
    return sorted(out)


class ProtocolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="spoold-model-"))
        self.paths = init_spool(self.root / "spool")
        self.daemons = {n: self._start_daemon(n) for n in ("A", "B")}
        self.jobs: dict[str, Job] = {}
        self.stale: list[Stale] = []
        self.max_attempt: dict[str, int] = {}  # job id -> highest attempt ever claimed
        self.successes: Counter[str] = Counter()  # job id -> publishes into done/
        self.counter = 0

    def teardown(self) -> None:
        for d in self.daemons.values():
            d.lease.release()
        shutil.rmtree(self.root, ignore_errors=True)

    def _start_daemon(self, name: str) -> Daemon:
        token = new_token()
        lease = OwnLease(self.paths.daemons, HOST, token)
        lease.acquire()
        return Daemon(name, token, lease)

    # -------------------------------------------------------------- helpers

    def _pick(self, data: st.DataObject, places: tuple[str, ...]) -> Job:
        names = sorted(n for n, j in self.jobs.items() if self._ready(j, places))
        return self.jobs[data.draw(st.sampled_from(names), label="job")]

    def _has(self, *places: str) -> bool:
        return any(self._ready(j, places) for j in self.jobs.values())

    @staticmethod
    def _ready(job: Job, places: tuple[str, ...]) -> bool:
        # A running job whose daemon crashed has no holder to act on it until recovery.
        return job.place in places and (job.place != "running" or job.holder is not None)

    def _claimed(self, job: Job, daemon: Daemon, folder: Path, attempt: int) -> None:
        assert job.job_id is not None
        parsed = parse_running_name(folder.name)
        assert parsed is not None and parsed.attempt == attempt and parsed.token == daemon.token
        assert attempt > self.max_attempt.get(job.job_id, 0), "attempt numbers must only grow"
        self.max_attempt[job.job_id] = attempt
        job.place, job.attempt, job.holder, job.folder = "running", attempt, daemon.name, folder
        daemon.holdings[job.name] = folder

    # -------------------------------------------------------------- rules

    @initialize()
    def first_job(self) -> None:
        self.submit()

    @rule()
    def submit(self) -> None:
        self.counter += 1
        name = f"doc{self.counter}.md"
        staged = self.paths.tmp / f".{name}.part"
        staged.write_text(f"# {name}\n")
        os.rename(staged, self.paths.inbox / name)
        self.jobs[name] = Job(name, "inbox")

    @precondition(lambda self: self._has("inbox", "queued"))
    @rule(data=st.data(), who=st.sampled_from("AB"), contested=st.booleans())
    def claim(self, data: st.DataObject, who: str, contested: bool) -> None:
        job = self._pick(data, ("inbox", "queued"))
        daemon = self.daemons[who]
        rival = self.daemons["B" if who == "A" else "A"]
        if job.place == "inbox":
            job.job_id = new_job_id()
            job.jobdir = job_dir_name(job.name, job.job_id)
            folder = claim_entry(self.paths, job.name, job.name, job.jobdir, 1, daemon.token)
            assert folder is not None
            assert (folder / INPUT_DIR / job.name).is_file()
            attempt = 1
            if contested:  # the rival saw the same entry: it loses, and leaves nothing
                rival_id = new_job_id()
                rival_dir = job_dir_name(job.name, rival_id)
                lost = claim_entry(self.paths, job.name, job.name, rival_dir, 1, rival.token)
                assert lost is None
                assert not [n for n in os.listdir(self.paths.running) if rival_id in n]
        else:
            assert job.jobdir is not None
            attempt = max(read_attempts(self.paths.inbox / job.jobdir), default=0) + 1
            folder = claim_requeued(self.paths, job.jobdir, attempt, daemon.token)
            assert folder is not None
            if contested:
                assert claim_requeued(self.paths, job.jobdir, attempt, rival.token) is None
        self._claimed(job, daemon, folder, attempt)

    @precondition(lambda self: self._has("running"))
    @rule(data=st.data(), ok=st.booleans())
    def publish_result(self, data: st.DataObject, ok: bool) -> None:
        job = self._pick(data, ("running",))
        assert job.folder is not None and job.jobdir is not None and job.job_id is not None
        daemon = self.daemons[job.holder or ""]
        attempts = [*read_attempts(job.folder), job.attempt]
        manifest = {"job_id": job.job_id, "status": "succeeded" if ok else "failed"}
        atomic_write_json(job.folder / MANIFEST, {**manifest, "attempts": attempts}, durable=False)
        write_attempts(job.folder, attempts)
        dest_dir = self.paths.done if ok else self.paths.failed
        dest = publish(job.folder, dest_dir, job.jobdir, durable=False)
        assert dest == dest_dir / job.jobdir
        if ok:
            self.successes[job.job_id] += 1
        del daemon.holdings[job.name]
        job.place, job.holder, job.folder = ("done" if ok else "failed"), None, dest

    @precondition(lambda self: self._has("running"))
    @rule(data=st.data())
    def requeue_for_retry(self, data: st.DataObject) -> None:
        """A retryable failure: the holder records the attempt and puts the job back."""
        job = self._pick(data, ("running",))
        assert job.folder is not None and job.jobdir is not None
        write_attempts(job.folder, [*read_attempts(job.folder), job.attempt])
        dest = requeue(self.paths, job.folder, job.jobdir)
        assert dest == self.paths.inbox / job.jobdir
        del self.daemons[job.holder or ""].holdings[job.name]
        job.place, job.holder, job.folder = "queued", None, dest

    @precondition(lambda self: self._has("failed"))
    @rule(data=st.data())
    def spoold_retry(self, data: st.DataObject) -> None:
        """`spoold retry`: a failed job goes back to the inbox as a new attempt."""
        job = self._pick(data, ("failed",))
        assert job.folder is not None and job.jobdir is not None
        attempts = json.loads((job.folder / MANIFEST).read_text())["attempts"]
        write_attempts(job.folder, attempts)
        os.unlink(job.folder / MANIFEST)
        dest = self.paths.inbox / job.jobdir
        rename_noreplace(job.folder, dest)
        job.place, job.folder = "queued", dest

    @rule(who=st.sampled_from("AB"))
    def crash(self, who: str) -> None:
        """The daemon dies (its flock goes with it) and starts again as a new instance."""
        old = self.daemons[who]
        assert old.lease._lock_fd is not None
        os.close(old.lease._lock_fd)  # what the kernel does when the process dies
        old.lease._lock_fd = None
        for name, folder in old.holdings.items():
            assert self.jobs[name].jobdir is not None
            self.stale.append(Stale(name, folder, self.jobs[name].jobdir or ""))
            self.jobs[name].holder = None
        self.daemons[who] = self._start_daemon(who)

    @rule(who=st.sampled_from("AB"))
    def recover(self, who: str) -> None:
        """Like Daemon.recover/_recover_one: requeue the claims whose owner is gone."""
        me = self.daemons[who]
        for name in sorted(os.listdir(self.paths.running)):
            parsed = parse_running_name(name)
            assert parsed is not None, f"unexpected entry in running/: {name}"
            if parsed.token == me.token:
                continue
            if not PeerWatcher(self.paths.daemons, HOST, LEASE_TTL_S).is_gone(parsed.token):
                # A live daemon's claim: never taken from it.
                assert any(d.token == parsed.token for d in self.daemons.values())
                continue
            assert all(d.token != parsed.token for d in self.daemons.values()), (
                f"the claim {name} of a live daemon looks gone"
            )
            folder = self.paths.running / name
            assert os.listdir(folder / INPUT_DIR)
            attempts = read_attempts(folder)
            if parsed.attempt not in attempts:
                attempts.append(parsed.attempt)
            write_attempts(folder, attempts)
            dest = requeue(self.paths, folder, parsed.jobdir)
            assert dest is not None
            job = next(j for j in self.jobs.values() if j.job_id == parsed.job_id)
            assert job.place == "running" and job.folder == folder and job.holder is None
            job.place, job.folder = "queued", dest
            event("recovered a lost claim")

    @precondition(lambda self: any(not s.folder.exists() for s in self.stale))
    @rule(data=st.data(), ok=st.booleans())
    def stale_holder_acts(self, data: st.DataObject, ok: bool) -> None:
        """A fenced-off holder (its claim recovered) tries to publish or requeue: refused."""
        stale = data.draw(st.sampled_from([s for s in self.stale if not s.folder.exists()]))
        before = snapshot(self.paths.root)
        with pytest.raises(FileNotFoundError):
            atomic_write_json(stale.folder / MANIFEST, {"stale": True}, durable=False)
        dest_dir = self.paths.done if ok else self.paths.failed
        assert publish(stale.folder, dest_dir, stale.jobdir, durable=False) is None
        assert requeue(self.paths, stale.folder, stale.jobdir) is None
        assert snapshot(self.paths.root) == before, "a fenced-off holder changed the spool"
        event("a fenced-off holder was refused")

    # -------------------------------------------------------------- invariants

    @invariant()
    def each_input_in_exactly_one_place(self) -> None:
        places: dict[str, list[str]] = {}
        for entry in os.listdir(self.paths.inbox):
            path = self.paths.inbox / entry
            if path.is_dir():
                for n in os.listdir(path / INPUT_DIR):
                    places.setdefault(n, []).append("queued")
            else:
                places.setdefault(entry, []).append("inbox")
        for state in ("running", "done", "failed"):
            for folder in os.listdir(self.paths.root / state):
                for n in os.listdir(self.paths.root / state / folder / INPUT_DIR):
                    places.setdefault(n, []).append(state)
        expected = {name: [job.place] for name, job in self.jobs.items()}
        assert places == expected
        assert os.listdir(self.paths.tmp) == []

    @invariant()
    def folders_where_the_model_says(self) -> None:
        for job in self.jobs.values():
            if job.place == "inbox":
                assert (self.paths.inbox / job.name).is_file()
            else:
                assert job.folder is not None and job.folder.is_dir(), job

    @invariant()
    def nothing_published_twice(self) -> None:
        ids: Counter[str] = Counter()
        for state in ("done", "failed"):
            for folder in os.listdir(self.paths.root / state):
                ids[folder.rsplit(".", 1)[1]] += 1
                assert (self.paths.root / state / folder / MANIFEST).is_file(), folder
        assert all(n == 1 for n in ids.values()), f"a job published twice: {ids}"
        # A success is final: at most one publish into done/ per job.
        assert all(n <= 1 for n in self.successes.values()), self.successes

    @invariant()
    def running_names_and_attempts(self) -> None:
        seen: Counter[str] = Counter()
        for name in os.listdir(self.paths.running):
            parsed = parse_running_name(name)
            assert parsed is not None, name
            seen[parsed.job_id] += 1
            assert parsed.attempt == self.max_attempt[parsed.job_id], (
                f"{name}: a running folder must carry the job's newest attempt"
            )
        assert all(n == 1 for n in seen.values()), f"a job running twice: {seen}"


ProtocolMachine.TestCase.settings = SETTINGS
test_folder_protocol = ProtocolMachine.TestCase


# Regression: rename_noreplace's fallback (NFS, FUSE: no renameat2) used to check the
# destination before the source, so a fenced-off holder got FileExistsError.
def test_fenced_off_holder_on_a_mount_without_renameat2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import spoold.spool.protocol

    monkeypatch.setattr(spoold.spool.protocol, "libc", object)  # no renameat2: the fallback
    paths = init_spool(tmp_path / "spool")
    (paths.inbox / "a.md").write_text("# a\n")
    job_id = new_job_id()
    jobdir = job_dir_name("a.md", job_id)
    held = claim_entry(paths, "a.md", "a.md", jobdir, 1, "aaaaaaaa")
    assert held is not None
    # Daemon A froze past its lease; B recovered the claim into inbox/JOBDIR.
    assert requeue(paths, held, jobdir) == paths.inbox / jobdir
    before = snapshot(paths.root)
    # A wakes up and gives its attempt back (a retryable failure): fenced off, so None.
    assert requeue(paths, held, jobdir) is None
    assert snapshot(paths.root) == before


def test_attempt_numbers_grow_when_the_state_could_not_be_saved(tmp_path: Path) -> None:
    """On a full disk the requeue leaves only an empty hint file; the next claim must
    still number its attempt above every earlier one."""
    from spoold.daemon import ATTEMPT_HINT, state_of
    from spoold.spool.job import Attempt, JobState

    paths = init_spool(tmp_path / "spool")
    jobdir = job_dir_name("a.md", new_job_id())
    folder = paths.inbox / jobdir
    (folder / "input").mkdir(parents=True)
    (folder / "input" / "a.md").write_text("# a\n")
    # No state file at all (it could never be written): the hint alone counts.
    (folder / f"{ATTEMPT_HINT}3").touch()
    state = state_of(folder, jobdir)
    assert state is not None and state.next_attempt_number == 4
    # A stale state from attempt 1 plus the hint of attempt 2: the next one is 3.
    (folder / f"{ATTEMPT_HINT}3").unlink()
    (folder / f"{ATTEMPT_HINT}2").touch()
    stale = JobState(
        job_id=jobdir.rsplit(".", 1)[1],
        name="a.md",
        jobdir=jobdir,
        kind="file",
        owner_uid=os.getuid(),
        arrived_at="2026-11-27T00:00:00.000000Z",
        attempts=[Attempt(number=1, host="h", pid=1, claimed_at="2026-11-27T00:00:00.000000Z")],
    )
    (folder / ".spoold-state.json").write_text(stale.model_dump_json())
    state = state_of(folder, jobdir)
    assert state is not None and state.next_attempt_number == 3
