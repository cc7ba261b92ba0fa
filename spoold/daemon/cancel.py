"""Cancel markers (inbox/NAME.cancel): match them to jobs, check who dropped them.

A marker is looked up in full (running, queued, finished) once, when it arrives. Then it
waits: for a job id, up to cancel_marker_ttl_s (the job may be between folders); for an
entry name, only for entries first seen within cancel_marker_window_s of the marker
("drop, then cancel at once" races), so a leftover marker never cancels a later,
unrelated drop of that name. Each newly ready entry is matched against the waiting
markers (`match_waiting`), so waiting costs nothing per loop. The cancelling itself is
the lifecycle's.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..spool.entries import EntryKind
from ..spool.events import CancelIgnored, CancelRefused
from ..spool.ids import is_job_id
from ..spool.job import CancelMode, read_state
from ..spool.owners import marker_allowed
from ..spool.protocol import MANIFEST, job_id_of, safe_stem, unlink_quiet
from .inbox.tracker import Entry
from .jobfolder import jobdir_names
from .lifecycle import Lifecycle
from .runtime import RunningJob, SpoolRuntime

log = logging.getLogger("spoold")

REFUSED = "the marker's owner is not the job's owner, root or in admin_group"


class CancelMarkers:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self.bus = lifecycle.bus

    def handle(self, spools: list[SpoolRuntime], wall: float) -> None:
        """Apply markers that just arrived; expire waiting ones."""
        for rt in spools:
            for key, entry in list(rt.markers.items()):
                if entry.gone:
                    rt.markers.pop(key, None)
                    rt.waiting_markers.pop(key, None)
                elif key not in rt.waiting_markers:
                    self._apply(rt, key, entry)
                else:
                    self._expire_if_due(rt, key, entry, wall)

    def _expire_if_due(self, rt: SpoolRuntime, key: str, marker: Entry, wall: float) -> None:
        target = _target(marker.name)
        if wall - marker.arrived_at > rt.settings.cancel_marker_ttl_s:
            reason = "no such job before the marker expired"
        elif _is_job_id(target) or not _window_over(rt, marker, wall):
            return
        else:
            reason = "no job of that name within cancel_marker_window_s"
        self.bus.emit(rt, CancelIgnored(reason=reason, name=target))
        self._consume(rt, key)

    def match_waiting(self, rt: SpoolRuntime, entry: Entry) -> bool:
        """A new entry arrived: cancel it if a waiting marker names it."""
        for key, target in list(rt.waiting_markers.items()):
            marker = rt.markers.get(key)
            if marker is None or not _names(target, entry, marker, rt):
                continue
            if self._cancel_queued(rt, entry.key, marker):
                self._consume(rt, key)
                return True
        return False

    def _apply(self, rt: SpoolRuntime, key: str, marker: Entry) -> None:
        target = _target(marker.name)
        mode = _marker_mode(rt.paths.inbox / key)
        if mode is None:
            rt.markers.pop(key, None)
            return
        matched = False
        for job in list(self.lifecycle.running.values()):
            if job.rt is rt and target in (job.job_id, job.state.name):
                matched |= self._cancel_running(job, mode, marker)
        for cand_key in _queued_matches(rt, target):
            matched |= self._cancel_queued(rt, cand_key, marker)
        if matched:
            self._consume(rt, key)
            return
        finished = _finished_match(rt, target)
        if finished is not None:
            event = CancelIgnored(job_id=finished, reason="job already finished", name=target)
            self.bus.emit(rt, event)
            self._consume(rt, key)
            return
        rt.waiting_markers[key] = target

    def _consume(self, rt: SpoolRuntime, key: str) -> None:
        rt.markers.pop(key, None)
        rt.waiting_markers.pop(key, None)
        unlink_quiet(rt.paths.inbox / key)
        rt.tracker.drop(key)

    def _allowed(
        self, rt: SpoolRuntime, marker: Entry, owner_uid: int, job_id: str | None, name: str | None
    ) -> bool:
        """Only the job's owner, root or admin_group may cancel (shared folders).

        A fresh queued entry has no job id yet: the event names the entry instead.
        """
        if marker_allowed(marker.uid, owner_uid, rt.settings.admin_group):
            return True
        event = CancelRefused(job_id=job_id, reason=REFUSED, marker_uid=marker.uid, name=name)
        self.bus.emit(rt, event)
        return False

    def _cancel_running(self, job: RunningJob, mode: CancelMode, marker: Entry) -> bool:
        if not self._allowed(job.rt, marker, job.state.owner_uid, job.job_id, None):
            return False
        self.lifecycle.cancel_running(job, mode)
        return True

    def _cancel_queued(self, rt: SpoolRuntime, key: str, marker: Entry) -> bool:
        entry = rt.tracker.entries.get(key)
        if entry is None or entry.gone:
            return False
        owner = entry.uid
        if entry.kind is EntryKind.REQUEUED:
            state = read_state(rt.paths.inbox / key)
            owner = state.owner_uid if state is not None else entry.uid
        job_id = job_id_of(entry.name) if entry.kind is EntryKind.REQUEUED else entry.job_id
        if not self._allowed(rt, marker, owner, job_id, entry.name):
            return False
        try:
            self.lifecycle.cancel_queued(rt, entry)
        except OSError as exc:
            log.warning("could not cancel queued %s: %s", key, exc)
            return False
        return True


def _target(marker_name: str) -> str:
    return marker_name[: -len(".cancel")]


def _is_job_id(target: str) -> bool:
    return is_job_id(target)


def _in_window(entry: Entry, marker: Entry, rt: SpoolRuntime) -> bool:
    return entry.arrived_at <= marker.arrived_at + rt.settings.cancel_marker_window_s


def _names(target: str, entry: Entry, marker: Entry, rt: SpoolRuntime) -> bool:
    """Whether a waiting marker is for this newly ready entry."""
    if _is_job_id(target):
        if entry.job_id == target:  # a job folder that chose its id (job.json `id`)
            return True
        return entry.kind is EntryKind.REQUEUED and job_id_of(entry.name) == target
    return entry.name == target and _in_window(entry, marker, rt)


def _window_over(rt: SpoolRuntime, marker: Entry, wall: float) -> bool:
    """The window has passed and no entry first seen within it is still settling."""
    if wall - marker.arrived_at <= rt.settings.cancel_marker_window_s:
        return False
    target = _target(marker.name)
    return not any(
        e.name == target
        and not e.gone
        and e.kind is not EntryKind.CANCEL
        and _in_window(e, marker, rt)
        for e in rt.tracker.entries.values()
    )


def _marker_mode(path: Path) -> CancelMode | None:
    try:
        return CancelMode.of_marker(path.read_text(errors="replace")[:64])
    except OSError:
        return None


def _queued_matches(rt: SpoolRuntime, target: str) -> list[str]:
    out = []
    for key, entry in rt.tracker.entries.items():
        if entry.kind is EntryKind.CANCEL or entry.gone:
            continue
        if (
            entry.name == target
            or entry.job_id == target
            or (
                entry.kind is EntryKind.REQUEUED
                and (
                    entry.name.endswith("." + target) or jobdir_names(rt.paths.inbox / key, target)
                )
            )
        ):
            out.append(key)
    return out


def _finished_match(rt: SpoolRuntime, target: str) -> str | None:
    """The id of a finished job named by a marker (by job id or entry name)."""
    prefix = safe_stem(target) + "."
    for folder in (rt.paths.done, rt.paths.failed):
        try:
            with os.scandir(folder) as it:
                for de in it:
                    if de.name.endswith("." + target):
                        return target
                    if de.name.startswith(prefix):
                        try:
                            m = json.loads((Path(de.path) / MANIFEST).read_bytes())
                        except (OSError, ValueError):
                            continue
                        if m.get("name") == target:
                            return str(m.get("job_id"))
        except OSError:
            continue
    return None
