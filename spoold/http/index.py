"""Job ids to job folders, in memory, so `GET /jobs/{id}` never lists done/.

A job folder is named STEM.ID (spool/protocol.py); knowing that name, where the job is
now costs a few stats (tools/lookup.py `locate`). The index learns the names:

- at start, from one listing of done/, failed/, running/ and inbox/ (the job folders
  waiting there, the job folders that chose their id, by their job.json, and the
  files that chose it in their name, report.ID.md);
- from the events log, as it grows (`job.detected` names the entry, a terminal event
  the published folder), read by the spool's Follower;
- from this gateway's own uploads (the inbox key of each job it queued);
- on a miss: the events log is read up to now, the inbox is listed again (at most every
  INBOX_EVERY_S) and, at most every RELIST_EVERY_S, done/ and failed/ too: a job
  another gateway queued or a folder moved by hand is found, and a look-up of an id
  that does not exist cannot make the gateway list 100,000 folders per request.

The index holds hints, never the truth: every answer comes from the folders.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from ..spool.ids import is_job_id, read_requested, split_named_id
from ..spool.protocol import SpoolPaths, job_dir_name, job_id_of, parse_running_name
from ..tools.jobview import InboxView, queued_entries
from ..tools.lookup import JobLocation, locate

INBOX_EVERY_S = 0.2
RELIST_EVERY_S = 10.0
# Recent terminal events and finished jobs' owners kept: the oldest half goes past this.
KEEP_RECENT = 100_000
ENDED = frozenset({"job.succeeded", "job.failed", "job.cancelled"})


class JobIndex:
    def __init__(self, paths: SpoolPaths, view: InboxView) -> None:
        self.paths = paths
        self.view = view
        self._lock = threading.Lock()
        self.jobdirs: dict[str, str] = {}  # job id -> job folder name (STEM.ID)
        self.keys: dict[str, str] = {}  # job id -> inbox key, while unclaimed
        self.owners: dict[str, str | None] = {}  # job id -> submitted_by (finished jobs)
        self.ended: dict[str, str] = {}  # job id -> published folder, from the events
        self._inbox_at = 0.0
        self._listed_at = 0.0
        self._finished: set[str] = set()  # ids seen in done/ and failed/ at the last listing

    # ------------------------------------------------------------------ learning

    def load(self) -> None:
        """The first listing of every folder."""
        self._list_finished()
        self._list_running()
        self._list_inbox()

    def _list_finished(self) -> None:
        found: dict[str, str] = {}
        for place in (self.paths.done, self.paths.failed):
            try:
                names = os.listdir(place)
            except OSError:
                continue
            for name in names:
                job_id = job_id_of(name)
                if job_id is not None:
                    found[job_id] = name
        with self._lock:
            for gone in self._finished - found.keys():  # purged since: forget them
                self.jobdirs.pop(gone, None)
                self.owners.pop(gone, None)
            self.jobdirs.update(found)
            self._finished = set(found)
        self._listed_at = time.monotonic()

    def _list_running(self) -> None:
        try:
            names = os.listdir(self.paths.running)
        except OSError:
            return
        with self._lock:
            for name in names:
                parsed = parse_running_name(name)
                if parsed is not None:
                    self.jobdirs[parsed.job_id] = parsed.jobdir

    def _list_inbox(self) -> None:
        keys: dict[str, str] = {}
        for key, entry in queued_entries(self.paths, self.view):
            leaf = key.rpartition("/")[2]
            if not entry.is_dir(follow_symlinks=False):
                named = split_named_id(leaf)[1]  # report.ID.md (spool/ids.py)
                if named is not None:
                    keys[named] = key
                continue
            job_id = job_id_of(leaf)
            if job_id is not None:  # requeued: inbox/STEM.ID
                with self._lock:
                    self.jobdirs[job_id] = leaf
                continue
            chosen = read_requested(self.paths.inbox / key).job_id
            if chosen is not None:
                keys[chosen] = key
        with self._lock:
            self.keys.update(keys)
        self._inbox_at = time.monotonic()

    def queued(self, job_id: str, key: str) -> None:
        """This gateway just renamed a job folder with this id into inbox/KEY."""
        with self._lock:
            self.keys[job_id] = key

    def learn(self, events: list[dict[str, Any]]) -> None:
        """New lines of the events log."""
        with self._lock:
            for ev in events:
                job_id, name = ev.get("job_id"), ev.get("event")
                if not isinstance(job_id, str):
                    continue
                if name == "job.detected" and isinstance(ev.get("name"), str):
                    self.jobdirs[job_id] = job_dir_name(ev["name"], job_id)
                elif name in ENDED and isinstance(ev.get("path"), str):
                    self.jobdirs[job_id] = ev["path"].rpartition("/")[2]
                    self.ended[job_id] = ev["path"]
            _trim(self.ended)

    # ------------------------------------------------------------------ finding

    def find(self, job_id: str, catch_up: Any = None) -> JobLocation | None:
        """Where the job is now, or None. `catch_up` reads the events log up to now."""
        if not is_job_id(job_id):
            return None
        loc = self._locate(job_id)
        if loc is not None:
            return loc
        if catch_up is not None:
            catch_up()
            loc = self._locate(job_id)
        now = time.monotonic()
        if loc is None and now - self._inbox_at >= INBOX_EVERY_S:
            self._list_inbox()
            loc = self._locate(job_id)
        if loc is None and now - self._listed_at >= RELIST_EVERY_S:
            self._list_finished()
            self._list_running()
            loc = self._locate(job_id)
        return loc

    def _locate(self, job_id: str) -> JobLocation | None:
        with self._lock:
            jobdir, key = self.jobdirs.get(job_id), self.keys.get(job_id)
        loc = locate(self.paths, job_id, jobdir=jobdir, key=key)
        if loc is not None and loc.state != "queued" and key is not None:
            with self._lock:
                self.keys.pop(job_id, None)
                leaf = split_named_id(key.rpartition("/")[2])[0]
                self.jobdirs[job_id] = job_dir_name(leaf, job_id)
        return loc

    def owner(self, job_id: str, catch_up: Any = None) -> tuple[bool, str | None]:
        """(exists, submitted_by) of a job; cached once the job has finished."""
        if job_id in self.owners:
            return True, self.owners[job_id]
        loc = self.find(job_id, catch_up)
        if loc is None:
            return False, None
        if loc.state in ("done", "failed"):
            self.owners[job_id] = loc.record.submitted_by
            _trim(self.owners)
        return True, loc.record.submitted_by


def _trim(recent: dict[str, Any]) -> None:
    """Drop the oldest half of a dict of recent facts past KEEP_RECENT (insertion order)."""
    if len(recent) > KEEP_RECENT:
        for key in list(recent)[: len(recent) // 2]:
            del recent[key]
