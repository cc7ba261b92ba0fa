"""Dependencies read from the folders: the jobs a reference names, whether a job's
`after` holds, and cycles (docs/protocol.md "Dependencies").

Nothing here is one daemon's memory: every daemon (and `spoold show`) reads the same
folders, so a condition holds or not for all of them alike, across hosts and restarts.

    inbox/ENTRY                 queued (a dropped entry; its job.json may have `after`)
    inbox/JOBDIR/               queued again; started if an attempt started
    running/JOBDIR.aN.TOKEN/    started
    done/JOBDIR/, failed/JOBDIR/  finished: the manifest says how

A reference by job id finds that job. A reference by name finds every *unfinished* job
dropped with that name (other than the job itself), and the condition must hold for all
of them; when none is unfinished, the most recently finished job of that name. The cost
grows with the inbox and running/ (listed once per `refresh`), and with done/ and
failed/ only when a reference is not found unfinished (listed again only when their
mtime changed, manifests read once per job folder).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .after import AfterKind, AfterRef, Found, JobPhase, Verdict, read_after, verdict
from .job import read_state
from .protocol import INPUT_DIR, MANIFEST, SpoolPaths, job_dir_name, job_id_of, parse_running_name

JOB_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{10}$")
_SAMPLE_ID = "00000000T000000Z-0000000000"
MAX_CYCLE_SEARCH = 500  # job states looked at when searching for a cycle


class InboxItem(NamedTuple):
    """An inbox entry as the caller knows it (the daemon's tracker, or a listing); a
    tuple: one is made per queued entry per round."""

    key: str  # below inbox/
    name: str  # the entry's name (a requeued folder's: its JOBDIR)
    requeued: bool


InboxSource = Callable[[], Iterable[InboxItem]]


def _input_name(folder: Path) -> str | None:
    try:
        names = [n for n in os.listdir(folder / INPUT_DIR) if not n.startswith(".")]
    except OSError:
        return None
    return names[0] if len(names) == 1 else None


def _real_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


class SpoolIndex:
    """The spool's jobs by id and by name, as the folders say at the last `refresh`."""

    def __init__(self, paths: SpoolPaths, inbox: InboxSource) -> None:
        self.paths = paths
        self.inbox = inbox
        self._by_name: dict[str, list[Found]] = {}
        self._by_id: dict[str, Found] = {}
        self._paths: dict[str, Path] = {}  # Found.folder -> the job folder holding input
        self._dropped: dict[str, list[str]] = {}
        self._names: dict[str, tuple[str, bool] | None] = {}  # folder -> (name, started)
        self._after: dict[str, tuple[int, tuple[AfterRef, ...]]] = {}
        self._listing: dict[str, tuple[int, dict[str, list[str]], dict[str, str]]] = {}
        self._manifests: dict[str, tuple[int, tuple[Found, str]]] = {}

    # ------------------------------------------------------------------ reading

    def refresh(self) -> None:
        """Look at inbox/ (through the source) and running/ again.

        Dropped entries are only grouped by name here (no path, no record: a long inbox
        costs one dict append per entry); a record is made for the few a reference names.
        """
        self._by_name, self._by_id, self._paths = {}, {}, {}
        self._dropped = {}  # name -> keys of unclaimed entries
        for item in self.inbox():
            if item.requeued:
                self._add_requeued(item)
            else:
                self._dropped.setdefault(item.name, []).append(item.key)
        try:
            names = os.listdir(self.paths.running)
        except OSError:
            names = []
        live = set()
        for name in names:
            parsed = parse_running_name(name)
            if parsed is None:
                continue
            folder = self.paths.running / name
            live.add(f"running/{name}")
            known = self._names.get(f"running/{name}")
            if known is None:
                entry = _input_name(folder)
                if entry is None:
                    continue  # being claimed this instant: seen at the next refresh
                known = self._names[f"running/{name}"] = (entry, True)
            self._add(
                Found(
                    f"running/{name}", parsed.job_id, known[0], "running", JobPhase.STARTED, True
                ),
                folder / INPUT_DIR / known[0],
            )
        self._names = {
            k: v for k, v in self._names.items() if not k.startswith("running/") or k in live
        }

    def _add_requeued(self, item: InboxItem) -> None:
        path = self.paths.inbox / item.key
        folder = f"inbox/{item.key}"
        known = self._names.get(folder)
        if known is None:
            state = read_state(path)
            if state is None:
                return
            started = any(a.started_at for a in state.attempts)
            known = self._names[folder] = (state.name, started)
        phase = JobPhase.STARTED if known[1] else JobPhase.QUEUED
        job_id = job_id_of(item.name)
        self._add(
            Found(folder, job_id, known[0], "queued", phase, known[1]), path / INPUT_DIR / known[0]
        )

    def _add(self, found: Found, entry: Path) -> None:
        self._by_name.setdefault(found.name, []).append(found)
        if found.job_id:
            self._by_id[found.job_id] = found
        self._paths[found.folder] = entry

    def _unfinished(self, name: str) -> list[Found]:
        found = list(self._by_name.get(name, ()))
        for key in self._dropped.get(name, ()):
            job = Found(f"inbox/{key}", None, name, "queued", JobPhase.QUEUED, False)
            self._paths.setdefault(job.folder, self.paths.inbox / key)
            found.append(job)
        return found

    def find(self, ref: str, exclude: str | None = None) -> list[Found]:
        """The jobs `ref` names (see the module's docstring); [] when there is none."""
        if JOB_ID_RE.match(ref):
            hit = self._by_id.get(ref)
            if hit is not None:
                return [hit] if hit.folder != exclude else []
            done = self._finished_by_id(ref)
            return [done] if done is not None else []
        unfinished = [f for f in self._unfinished(ref) if f.folder != exclude]
        if unfinished:
            return unfinished
        newest = self._finished_by_name(ref)
        return [newest] if newest is not None else []

    def after_of(self, found: Found) -> tuple[AfterRef, ...]:
        """An unfinished job's own references (from its job.json; cached by mtime)."""
        entry = self._paths.get(found.folder)
        if entry is None and found.job_id is None and found.folder.startswith("inbox/"):
            entry = self.paths.inbox / found.folder[len("inbox/") :]  # `me`, dropped
        elif entry is None and found.phase is JobPhase.FAILED:
            folder = self.paths.root / found.folder  # failed before it started
            name = _input_name(folder)
            entry = folder / INPUT_DIR / name if name else None
            if entry is not None and not _real_folder(entry):
                entry = None  # a file has no job.json; a symlink is never followed
        if entry is None:
            return ()
        try:
            mtime = os.stat(entry / "job.json").st_mtime_ns
        except OSError:
            return ()
        cached = self._after.get(found.folder)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        refs = read_after(entry)
        _bounded(self._after)[found.folder] = (mtime, refs)
        return refs

    # ------------------------------------------------------------------ finished jobs

    def _finished_lists(self) -> list[tuple[str, dict[str, list[str]], dict[str, str]]]:
        out = []
        for state in ("done", "failed"):
            folder = self.paths.root / state
            try:
                mtime = os.stat(folder).st_mtime_ns
            except OSError:
                continue
            cached = self._listing.get(state)
            if cached is None or cached[0] != mtime:
                by_stem: dict[str, list[str]] = {}
                by_id: dict[str, str] = {}
                for name in os.listdir(folder):
                    job_id = job_id_of(name)
                    if job_id is None:
                        continue
                    by_stem.setdefault(name[: -len(job_id) - 1], []).append(name)
                    by_id[job_id] = name
                cached = self._listing[state] = (mtime, by_stem, by_id)
            out.append((state, cached[1], cached[2]))
        return out

    def _finished(self, state: str, jobdir: str) -> tuple[Found, str] | None:
        """A published job and its finish time; cached while its manifest is unchanged
        (`spoold retry` publishes the same folder again)."""
        folder = self.paths.root / state / jobdir
        try:
            mtime = os.stat(folder / MANIFEST).st_mtime_ns
        except OSError:
            return None
        key = f"{state}/{jobdir}"
        cached = self._manifests.get(key)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        found = _read_finished(state, folder)
        if found is not None:
            _bounded(self._manifests)[key] = (mtime, found)
        return found  # None: maybe still being written; looked at again next time

    def _finished_by_id(self, job_id: str) -> Found | None:
        for state, _, by_id in self._finished_lists():
            jobdir = by_id.get(job_id)
            hit = self._finished(state, jobdir) if jobdir else None
            if hit is not None:
                return hit[0]
        return None

    def _finished_by_name(self, name: str) -> Found | None:
        stem = job_dir_name(name, _SAMPLE_ID)[: -len(_SAMPLE_ID) - 1]
        best: tuple[str, str, Found] | None = None
        for state, by_stem, _ in self._finished_lists():
            for jobdir in by_stem.get(stem, ()):
                hit = self._finished(state, jobdir)
                if hit is None or hit[0].name != name:
                    continue
                rank = (hit[1], hit[0].job_id or "")
                if best is None or rank > best[:2]:
                    best = (rank[0], rank[1], hit[0])
        return best[2] if best is not None else None


CACHE_MAX = 10_000  # entries per cache: a long-lived daemon's caches stay bounded


def _bounded(cache: dict[str, Any]) -> dict[str, Any]:
    if len(cache) >= CACHE_MAX:
        cache.clear()
    return cache


def _read_finished(state: str, folder: Path) -> tuple[Found, str] | None:
    """A published job and its finish time, from its manifest."""
    try:
        m: dict[str, Any] = json.loads((folder / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict):
        return None
    status = str(m.get("status") or ("succeeded" if state == "done" else "failed"))
    attempts = [a for a in m.get("attempts") or [] if isinstance(a, dict)]
    found = Found(
        folder=f"{state}/{folder.name}",
        job_id=m.get("job_id") or job_id_of(folder.name),
        name=str(m.get("name") or folder.name),
        state=status,
        phase=JobPhase.SUCCEEDED if status == "succeeded" else JobPhase.FAILED,
        started=any(a.get("started_at") for a in attempts),
    )
    return found, str(m.get("finished_at") or "")


# ------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class Pending:
    """An unmet reference: the job it waits for, or None while no such job exists."""

    ref: AfterRef
    found: Found | None

    def as_json(self) -> dict[str, Any]:
        return {
            **self.ref.as_json(),
            "job_id": self.found.job_id if self.found else None,
            "state": self.found.state if self.found else "missing",
        }


@dataclass
class Evaluation:
    """What a job's `after` says now."""

    pending: list[Pending] = field(default_factory=list)
    failed: list[tuple[AfterRef, Found]] = field(default_factory=list)
    cycle: list[str] | None = None  # the names around a cycle through the job
    cycle_jobs: list[str] = field(default_factory=list)  # the folders of its jobs

    @property
    def met(self) -> bool:
        return not self.pending and not self.failed and self.cycle is None

    @property
    def missing(self) -> list[AfterRef]:
        return [p.ref for p in self.pending if p.found is None]


def evaluate(
    index: SpoolIndex,
    me: Found,
    refs: Iterable[AfterRef],
    *,
    finishing: bool = False,
) -> Evaluation:
    """`me`'s references against the folders as `index` saw them at its last refresh.

    `finishing`: whether `me` may be published now (finish_to_finish), rather than
    whether it may start.
    """
    ev = Evaluation()
    for ref in refs:
        found = index.find(ref.job, exclude=me.folder)
        if not found:
            ev.pending.append(Pending(ref, None))
        for f in found:
            v = verdict(ref, f, finishing=finishing)
            if v is Verdict.FAILED:
                ev.failed.append((ref, f))
            elif v is Verdict.WAIT:
                ev.pending.append(Pending(ref, f))
    # A dependency that failed before it started may have failed as a member of a cycle
    # through `me` (another daemon found it first): `me` is then in it too, not a job
    # whose dependency failed.
    through_failed = any(not f.started for _, f in ev.failed)
    if (ev.pending and not ev.failed) or through_failed:
        cycle = find_cycle(index, me, finishing, through_failed=through_failed)
        if cycle is not None:
            ev.cycle, ev.cycle_jobs = cycle
            ev.failed = []
    return ev


_Node = tuple[str, bool]  # (job folder, its finish rather than its start)


def find_cycle(
    index: SpoolIndex, me: Found, finishing: bool, *, through_failed: bool = False
) -> tuple[list[str], list[str]] | None:
    """(names, job folders) around a cycle of unmet conditions through `me`, or None.

    A job's start waits for its finish_to_start references' finish and its
    start_to_start references' start; its finish waits for its own start and its
    finish_to_finish references' finish. A cycle among these can never resolve.
    `through_failed`: a job that failed before it started counts as still waiting (the
    cycle it was failed for is still one), so every member is told the same.
    """
    jobs: dict[str, Found] = {me.folder: me}
    start: _Node = (me.folder, finishing)

    def out_of(job: Found, finish: bool) -> list[_Node]:
        return _edges(index, job, finish, jobs, through_failed)

    stack: list[list[_Node]] = [out_of(me, finishing)]
    path: list[_Node] = [start]
    seen = {start}
    while stack and len(seen) < MAX_CYCLE_SEARCH:
        edges = stack[-1]
        if not edges:
            stack.pop()
            path.pop()
            continue
        nxt = edges.pop()
        if nxt[0] == me.folder:
            return _cycle_names(jobs, [*path, nxt])
        if nxt in seen:
            continue
        seen.add(nxt)
        path.append(nxt)
        stack.append(out_of(jobs[nxt[0]], nxt[1]))
    return None


def _edges(
    index: SpoolIndex, job: Found, finish: bool, jobs: dict[str, Found], through_failed: bool
) -> list[_Node]:
    def waits(found: Found) -> bool:  # still waiting to start, for this search
        return found.phase is JobPhase.QUEUED or (
            through_failed and found.phase is JobPhase.FAILED and not found.started
        )

    if not waits(job) and (job.phase is not JobPhase.STARTED or not finish):
        return []
    out: list[_Node] = [(job.folder, False)] if finish and waits(job) else []
    for ref in index.after_of(job):
        if (ref.kind is AfterKind.FINISH_TO_FINISH) != finish:
            continue
        for other in index.find(ref.job, exclude=job.folder):
            v = verdict(ref, other, finishing=finish)
            if v is Verdict.WAIT or (v is Verdict.FAILED and waits(other)):
                jobs.setdefault(other.folder, other)
                out.append((other.folder, ref.kind is not AfterKind.START_TO_START))
    return out


def _cycle_names(jobs: dict[str, Found], nodes: list[_Node]) -> tuple[list[str], list[str]]:
    names: list[str] = []
    folders: list[str] = []
    for folder, _ in nodes:
        if folders and folders[-1] == folder:
            continue  # a job's start, then its finish: one job
        found = jobs[folder]
        folders.append(folder)
        names.append(found.name if found.job_id is None else f"{found.name} ({found.job_id})")
    return names, folders[:-1]
