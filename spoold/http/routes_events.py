"""GET /v1/spools/{spool}/events: the events log as Server-Sent Events.

Each line of `.spoold/events.ndjson` is one event: `event:` its name, `data:` its JSON
line, `id:` its position (the log file's inode and the offset after the line, opaque to
clients). `Last-Event-ID` resumes after that position, also across a rotation (the rest
of events.ndjson.1 first). Without it the stream starts at new events; `?job=ID` starts
at that job's first event instead and ends after its terminal one. A user token sees
only its own jobs' events; an admin every event.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from ..spool.ids import JOB_ID_RE
from .auth import Caller
from .errors import ApiError, escape_json_text
from .index import ENDED
from .routes_jobs import Who, served, visible
from .spools import ServedSpool

router = APIRouter(prefix="/v1/spools/{spool}", tags=["events"])
KEEPALIVE_S = 15.0
LOOKBACK_BYTES = 16 * 1024 * 1024
_BLOCK = 256 * 1024


def encode_position(ino: int, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{ino}:{offset}".encode()).decode().rstrip("=")


def decode_position(text: str) -> tuple[int, int] | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        ino, offset = raw.split(":")
        return int(ino), int(offset)
    except (ValueError, UnicodeDecodeError):
        return None


class LogReader:
    """Reads the log from a position on: across one rotation, line by line."""

    def __init__(self, path: Path, ino: int | None, offset: int) -> None:
        self.path = path
        self.ino, self.offset = ino, offset
        self.buf = b""

    def read(self) -> list[tuple[bytes, str]]:
        """(line, position after it) of the complete lines written since."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        out: list[tuple[bytes, str]] = []
        if self.ino != st.st_ino:
            rotated = self.path.with_name(self.path.name + ".1")
            if self.ino is not None and _ino(rotated) == self.ino:
                out += self._chunk(rotated)
            self.ino, self.offset, self.buf = st.st_ino, 0, b""
        return out + self._chunk(self.path)

    def _chunk(self, path: Path) -> list[tuple[bytes, str]]:
        try:
            with open(path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read(4 * 1024 * 1024)
        except FileNotFoundError:
            return []
        out = []
        pos = self.offset - len(self.buf)
        *lines, self.buf = (self.buf + data).split(b"\n")
        for line in lines:
            pos += len(line) + 1
            if line.strip():
                out.append((line, encode_position(self.ino or 0, pos)))
        self.offset += len(data)
        return out


def _ino(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def first_event_of(path: Path, job_id: str) -> tuple[int, int] | None:
    """(inode, offset) of the job's first line, from the last LOOKBACK_BYTES of the log."""
    needle = f'"job_id":"{job_id}"'.encode()
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    found: int | None = None
    with fh:
        ino = os.fstat(fh.fileno()).st_ino
        end = fh.seek(0, os.SEEK_END)
        start = max(0, end - LOOKBACK_BYTES)
        fh.seek(start)
        data = fh.read(end - start)
    at = data.find(needle)
    if at >= 0:
        found = start + data.rfind(b"\n", 0, at) + 1
    return None if found is None else (ino, found)


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
    start: tuple[int, int] | None = None
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
        try:
            st = os.stat(path)
            start = (st.st_ino, st.st_size)
        except FileNotFoundError:
            start = (0, 0)
    reader = LogReader(path, start[0] or None, start[1])
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    body = _stream(sp, reader, caller, job, request)
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)
