"""GET /v1/spools/{spool}/events: the events log as Server-Sent Events.

Each line of the log (a file per daemon, merged in order: spool/eventfiles.py) is one
event: `event:` its name, `data:` its JSON line, `id:` its position (for every file of
the log, its inode and the offset after its last line sent; opaque to clients).
`Last-Event-ID` resumes after that position, also across a rotation (the rest of the
rotated `.1` file first); a file the position does not name (a daemon started since)
is read from its start. Without it the stream starts at new events; `?job=ID` starts at
that job's first event in each file instead and ends after its terminal one. A user
token sees only its own jobs' events; an admin every event.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from ..spool.eventfiles import EventsCursor, current_files, file_key, order_key, rotated_file
from ..spool.ids import JOB_ID_RE
from .auth import Caller
from .errors import ApiError, escape_json_text
from .index import ENDED
from .routes_jobs import Who, served, visible
from .spools import ServedSpool

router = APIRouter(prefix="/v1/spools/{spool}", tags=["events"])
KEEPALIVE_S = 15.0
LOOKBACK_BYTES = 16 * 1024 * 1024
READ_MAX = 4 * 1024 * 1024  # per file and read: a long backlog comes in several reads
Positions = dict[str, tuple[int, int]]


def encode_position(positions: Positions) -> str:
    text = ";".join(f"{key}={ino}:{off}" for key, (ino, off) in sorted(positions.items()))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_position(text: str) -> Positions | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        out: Positions = {}
        for part in filter(None, raw.split(";")):
            key, _, place = part.rpartition("=")
            ino, off = place.split(":")
            if not key or "/" in key.replace("events/", "", 1) or ".." in key:
                return None
            out[key] = (int(ino), int(off))
        return out
    except (ValueError, UnicodeDecodeError):
        return None


class LogReader:
    """Reads every file of the log from a position on, merged in order, line by line,
    with the position after each line (so a client resumes exactly after it)."""

    def __init__(self, log: Path, positions: Positions) -> None:
        self.log = log
        self.positions = dict(positions)

    def read(self) -> list[tuple[bytes, str]]:
        """(line, position after it) of the complete lines written since."""
        per_file = []
        for current in current_files(self.log):
            key = file_key(self.log, current)
            try:
                ino = os.stat(current).st_ino
            except FileNotFoundError:
                continue
            found: list[tuple[str, bytes, str, int, int]] = []
            known = self.positions.get(key)
            if known is not None and known[0] != ino:  # rotated: the old file's rest first
                found += _lines(rotated_file(current), key, known, expect_ino=True)
                known = None
            found += _lines(current, key, known or (ino, 0), expect_ino=False)
            if found:
                per_file.append(found)
        out = []
        for _, line, key, ino, offset in heapq.merge(*per_file, key=lambda t: t[0]):
            self.positions[key] = (ino, offset)
            out.append((line, encode_position(self.positions)))
        return out


def _lines(
    path: Path, key: str, start: tuple[int, int], expect_ino: bool
) -> list[tuple[str, bytes, str, int, int]]:
    """(order, line, key, inode, offset after it) of the complete lines from start."""
    try:
        with open(path, "rb") as fh:
            ino = os.fstat(fh.fileno()).st_ino
            if expect_ino and ino != start[0]:
                return []  # rotated twice since: that part is gone
            offset = start[1] if ino == start[0] else 0
            fh.seek(offset)
            data = fh.read(READ_MAX)
    except FileNotFoundError:
        return []
    out = []
    for line in data.split(b"\n")[:-1]:  # the last piece has no newline yet
        offset += len(line) + 1
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        out.append((order_key(ev) if isinstance(ev, dict) else "", line, key, ino, offset))
    return out


def first_event_of(log: Path, job_id: str) -> Positions | None:
    """Where the job's first line is in each file (its last LOOKBACK_BYTES), or that
    file's end; None when no file has it."""
    needle = f'"job_id":"{job_id}"'.encode()
    positions: Positions = {}
    found = False
    for current in current_files(log):
        try:
            fh = open(current, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            continue
        with fh:
            ino = os.fstat(fh.fileno()).st_ino
            end = fh.seek(0, os.SEEK_END)
            start = max(0, end - LOOKBACK_BYTES)
            fh.seek(start)
            data = fh.read(end - start)
        at = data.find(needle)
        if at >= 0:
            found = True
            positions[file_key(log, current)] = (ino, start + data.rfind(b"\n", 0, at) + 1)
        else:
            positions[file_key(log, current)] = (ino, start + data.rfind(b"\n") + 1)
    return positions if found else None


def _frame(line: bytes, position: str) -> tuple[str | None, str | None, bytes]:
    try:
        ev = json.loads(line)
    except ValueError:
        return None, None, b""
    name = str(ev.get("event") or "message")
    text = escape_json_text(line.decode("utf-8", "replace"))
    frame = f"id: {position}\nevent: {name}\ndata: {text}\n\n".encode()
    job_id = ev.get("job_id") if isinstance(ev.get("job_id"), str) else None
    return name, job_id, frame


async def _stream(
    sp: ServedSpool, reader: LogReader, caller: Caller, job: str | None, request: Request
) -> AsyncIterator[bytes]:
    yield b": spoold events\n\n"
    while True:
        event = sp.waiter()
        try:
            for line, position in await run_in_threadpool(reader.read):
                name, job_id, frame = _frame(line, position)
                if name is None or (job is not None and job_id != job):
                    continue
                if not caller.admin and not await _owns(sp, caller, job_id):
                    continue
                yield frame
                if job is not None and name in ENDED:
                    return
            if await request.is_disconnected():
                return
            try:
                await asyncio.wait_for(event.wait(), KEEPALIVE_S)
            except TimeoutError:
                yield b": keepalive\n\n"
        finally:
            sp.done_waiting(event)


async def _owns(sp: ServedSpool, caller: Caller, job_id: str | None) -> bool:
    if job_id is None:
        return False  # daemon-wide events: admins only
    _, owner = await run_in_threadpool(sp.index.owner, job_id, sp.follower.catch_up)
    return caller.may_see(owner)


@router.get(
    "/events",
    summary="Server-Sent Events from the events log (Last-Event-ID resumes; ?job=ID)",
    response_class=StreamingResponse,
)
async def events(
    request: Request,
    spool: str,
    caller: Who,
    job: Annotated[str | None, Query(description="one job's events, then the stream ends")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    sp = served(request, spool)
    path = sp.paths.events
    start: Positions | None = None
    if last_event_id:
        start = decode_position(last_event_id)
        if start is None:
            raise ApiError(422, "Last-Event-ID: not an id this gateway gave out")
    if job is not None:
        if not JOB_ID_RE.match(job):
            raise ApiError(404, f"no job {job!r} in spool {sp.name!r}")
        await visible(sp, job, caller)
        start = start or await run_in_threadpool(first_event_of, path, job)
    if start is None:
        start = (await run_in_threadpool(EventsCursor.at_end, path)).positions
    reader = LogReader(path, start)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    body = _stream(sp, reader, caller, job, request)
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)
