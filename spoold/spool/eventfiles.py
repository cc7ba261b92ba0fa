"""The events log on disk: one file per writer, read as one log.

Each daemon instance appends to a file of its own, `.spoold/events/WRITER.ndjson`
(WRITER is `HOST.TOKEN`, the token of its lease), rotated by size to
`WRITER.ndjson.1`. A file with one writer needs no atomic append from the filesystem:
on NFS and GlusterFS, O_APPEND from several hosts is not atomic (each client appends at
the size it last saw), and lines of a shared file were torn and lost. Spools written by
older versions have one shared `.spoold/events.ndjson` (and `.1`): readers read it as
one more writer's file.

Order. Each file is in its writer's order. Across files, lines are merged by
`spool_ts`, the moment on the spool's clock (the file server's, as the writer measured
it with clock.SpoolClock), so hosts whose clocks are minutes apart do not swap a job's
claim and its recovery; a line without it (an older version) is placed by its `ts`.

`read_events` merges the files (oldest first) and can leave a cursor at their ends;
`Tail` reads what was appended since a cursor (or since it began), for `follow`,
`spoold events --follow` and `api.wait`. A line not yet ended by a newline is never
read: its writer is still writing it (or a full disk cut it short; the writer writes
the rest once it can, spool/eventlog.py).
"""

from __future__ import annotations

import heapq
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

EVENTS_DIR = "events"  # in .spoold/, beside the older shared events.ndjson
LOG_SUFFIX = ".ndjson"
ROTATED = ".1"
RELIST_S = 0.25  # Tail: the longest a new writer's file can go unseen
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def writer_name(host: str, token: str) -> str:
    """A writer's file stem: its host (made safe for a file name) and its token."""
    return f"{_UNSAFE.sub('_', host)[:64] or 'host'}.{token}"


def writer_file(log: Path, writer: str) -> Path:
    """The file `writer` appends to; `log` is the spool's `.spoold/events.ndjson`."""
    return log.parent / EVENTS_DIR / f"{writer}{LOG_SUFFIX}"


def current_files(log: Path) -> list[Path]:
    """The files being appended to: the older shared log (if any), then one per writer."""
    found = [log] if os.path.exists(log) else []
    try:
        names = sorted(os.listdir(log.parent / EVENTS_DIR))
    except OSError:
        return found
    return found + [log.parent / EVENTS_DIR / n for n in names if n.endswith(LOG_SUFFIX)]


def log_files(log: Path) -> list[Path]:
    """Every file of the log, rotated ones too (each writer's `.1` before its file)."""
    out = []
    for current in current_files(log):
        rotated = rotated_file(current)
        if os.path.exists(rotated):
            out.append(rotated)
        out.append(current)
    if not out and os.path.exists(rotated_file(log)):
        out.append(rotated_file(log))
    return out


def rotated_file(current: Path) -> Path:
    return current.with_name(current.name + ROTATED)


def expired_files(log: Path, live_tokens: set[str], limit_s: float, now: float) -> list[Path]:
    """Files of writers that are gone (no lease files: not in `live_tokens`) whose last
    line is more than `limit_s` old (mtime against `now`), rotated ones with them. The
    older shared log counts as a gone writer's."""
    out: list[Path] = []
    for current in current_files(log):
        token = current.name[: -len(LOG_SUFFIX)].rpartition(".")[2]
        if current != log and token in live_tokens:
            continue
        files = [p for p in (rotated_file(current), current) if os.path.exists(p)]
        try:
            newest = max(os.stat(p).st_mtime for p in files)
        except (OSError, ValueError):
            continue
        if now - newest > limit_s:
            out += files
    return out


def order_key(event: dict[str, Any]) -> str:
    """Where a line goes in the merged log (both forms are UTC ISO, sortable as text)."""
    return str(event.get("spool_ts") or event.get("ts") or "")


@dataclass
class EventsCursor:
    """A place in the log: per file (by its name in .spoold/), its inode and the offset
    after its last complete line read. Files not named in it came later."""

    positions: dict[str, tuple[int, int]] = field(default_factory=dict)

    @staticmethod
    def at_end(log: Path) -> EventsCursor:
        """The end of every file now: what is appended from here on."""
        cursor = EventsCursor()
        for current in current_files(log):
            try:
                with current.open("rb") as fh:
                    cursor.positions[file_key(log, current)] = _after_last_line(fh)
            except FileNotFoundError:
                continue
        return cursor


def _after_last_line(fh: BinaryIO) -> tuple[int, int]:
    """(inode, offset after the file's last newline): a line still being written is
    read whole later, not from its middle."""
    size = fh.seek(0, os.SEEK_END)
    back = min(size, 64 * 1024)
    fh.seek(size - back)
    tail = fh.read(back)
    cut = tail.rfind(b"\n")
    end = size - back + cut + 1  # (no newline in the window: its start)
    return os.fstat(fh.fileno()).st_ino, end


def file_key(log: Path, current: Path) -> str:
    """A file's name in cursors: its path below .spoold/ ("events/HOST.TOKEN.ndjson")."""
    return current.relative_to(log.parent).as_posix()


def read_events(log: Path, cursor: EventsCursor | None = None) -> Iterator[dict[str, Any]]:
    """Every event of the log in order; a torn or unreadable line is skipped.

    With `cursor`, each file's end (after its last complete line) is recorded in it as
    that file is read to its end: `Tail(log, cursor)` goes on from there.
    """
    streams = [_file_events(log, current, cursor) for current in current_files(log)]
    if not streams and os.path.exists(rotated_file(log)):
        streams = [_read_from(rotated_file(log), 0)]
    return heapq.merge(*streams, key=order_key)


def _file_events(log: Path, current: Path, cursor: EventsCursor | None) -> Iterator[dict[str, Any]]:
    rotated = rotated_file(current)
    if os.path.exists(rotated):
        yield from _read_from(rotated, 0)
    positions = cursor.positions if cursor is not None else {}
    yield from _read_from(current, 0, positions, file_key(log, current))


def _read_from(
    path: Path, start: int, ends: dict[str, tuple[int, int]] | None = None, key: str = ""
) -> Iterator[dict[str, Any]]:
    """The events of one file from byte `start`; at its end, `ends[key]` is set to the
    file's (inode, offset after its last complete line)."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        ino, offset = os.fstat(fh.fileno()).st_ino, start
        fh.seek(start)
        for line in fh:
            if not line.endswith(b"\n"):
                break  # still being written
            offset += len(line)
            parsed = _parse(line)
            if parsed is not None:
                yield parsed
    if ends is not None:
        ends[key] = (ino, offset)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


# ------------------------------------------------------------------ following


@dataclass
class _Open:
    fh: BinaryIO
    ino: int
    offset: int  # after the last complete line read
    buf: bytes = b""


class Tail:
    """What is appended to the log from a cursor on (or from now, or from the start).

    `poll()` returns the complete lines appended to every file since the last poll,
    merged in order; a file whose writer rotated it is read to its end first, then the
    new file from its start; a file that appears (a daemon that starts) is read from its
    start. A poll costs a stat of the events folder and one per file; the folder is
    listed again when it changed, and at least every RELIST_S, because a filesystem
    with coarse timestamps can add a file within the tick of the last change.
    """

    def __init__(
        self, log: Path, cursor: EventsCursor | None = None, *, from_start: bool = False
    ) -> None:
        self.log = log
        self._from_start = from_start and cursor is None
        self._cursor = (
            cursor
            if cursor is not None
            else (EventsCursor() if from_start else EventsCursor.at_end(log))
        )
        self._files: dict[str, _Open] = {}
        self._listed: tuple[tuple[Any, ...], float, list[tuple[Path, str]]] | None = None

    def _current(self) -> list[tuple[Path, str]]:
        """`current_files` with their keys, listed again only when needed (see above)."""
        try:
            st = os.stat(self.log.parent / EVENTS_DIR)
            sig: tuple[Any, ...] = (st.st_ino, st.st_mtime_ns, os.path.exists(self.log))
        except OSError:
            sig = (None, None, os.path.exists(self.log))
        now = time.monotonic()
        if self._listed is None or self._listed[0] != sig or now - self._listed[1] > RELIST_S:
            files = [(f, file_key(self.log, f)) for f in current_files(self.log)]
            self._listed = (sig, now, files)
        return self._listed[2]

    def cursor(self) -> EventsCursor:
        """Where the next poll goes on from."""
        out = EventsCursor(dict(self._cursor.positions))
        for key, f in self._files.items():
            out.positions[key] = (f.ino, f.offset)
        return out

    def poll(self, *, known_only: bool = False) -> list[dict[str, Any]]:
        """`known_only`: read on in the files already open, with no stat and no listing,
        for a caller that knows no file was created or renamed since the last poll
        (inotify saw only writes: http/follower.py)."""
        if known_only and self._listed is not None:
            known = [lines for f in self._files.values() if (lines := self._read(f))]
            return list(heapq.merge(*known, key=order_key))
        per_file: list[list[dict[str, Any]]] = []
        for current, key in self._current():
            try:
                ino = os.stat(current).st_ino
            except FileNotFoundError:
                gone = self._files.pop(key, None)  # removed (a gone writer's, purged)
                if gone is not None:
                    gone.fh.close()
                continue
            got: list[dict[str, Any]] = []
            f = self._files.get(key)
            if f is not None and f.ino != ino:  # rotated: the rest of the old one first
                got += self._read(f)
                f.fh.close()
                del self._files[key]
                f = self._open(key, current, 0)
            elif f is None:
                f = self._start(key, current, ino, got)
            if f is not None:
                got += self._read(f)
            if got:
                per_file.append(got)
        # Merged, not sorted: each file keeps its writer's order.
        return list(heapq.merge(*per_file, key=order_key))

    def close(self) -> None:
        for f in self._files.values():
            f.fh.close()
        self._files.clear()

    def _start(
        self, key: str, current: Path, ino: int, batch: list[dict[str, Any]]
    ) -> _Open | None:
        known = self._cursor.positions.get(key)
        start = 0
        rotated = rotated_file(current)
        if known is not None and known[0] == ino:
            start = known[1]
        elif known is not None or self._from_start:
            # Rotated since the cursor was taken (the rest of the old file is in .1),
            # or read from the very start.
            try:
                old_ino = os.stat(rotated).st_ino
            except FileNotFoundError:
                old_ino = None
            if self._from_start or (known is not None and old_ino == known[0]):
                batch += list(_read_from(rotated, known[1] if known is not None else 0))
        return self._open(key, current, start)

    def _open(self, key: str, current: Path, start: int) -> _Open | None:
        try:
            fh = current.open("rb")
        except FileNotFoundError:
            return None
        size = os.fstat(fh.fileno()).st_size
        start = start if start <= size else 0  # shorter than the cursor: a new file
        fh.seek(start)
        f = self._files[key] = _Open(fh, os.fstat(fh.fileno()).st_ino, start)
        return f

    @staticmethod
    def _read(f: _Open) -> list[dict[str, Any]]:
        chunk = f.fh.read()
        if not chunk:
            return []
        *lines, f.buf = (f.buf + chunk).split(b"\n")
        out = []
        for line in lines:
            f.offset += len(line) + 1
            parsed = _parse(line)
            if parsed is not None:
                out.append(parsed)
        return out


def follow(
    log: Path,
    poll_s: float = 0.2,
    from_start: bool = False,
    cursor: EventsCursor | None = None,
    deadline: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Tail the log: every writer's file, across rotations and new writers.

    Starts at the end of the log, at its start (`from_start`), or at `cursor` (taken
    earlier with `EventsCursor.at_end` or `read_events`). With a `deadline`
    (time.monotonic()) it returns once that has passed, so a caller that waits for an
    event needs no thread; while idle it looks again every `poll_s`.
    """
    tail = Tail(log, cursor, from_start=from_start)
    try:
        while deadline is None or time.monotonic() < deadline:
            batch = tail.poll()
            if batch:
                yield from batch
                continue
            left = poll_s if deadline is None else min(poll_s, deadline - time.monotonic())
            if left > 0:
                time.sleep(left)
    finally:
        tail.close()
