"""Uploads streamed into the spool's tmp/, under limits, into a job folder ready for the
one rename into inbox/ (tools/staging.py `enqueue`).

- The whole body is bounded by `max_upload_mb` (413 from Content-Length at once, or as
  soon as the bytes streamed pass it; the connection is then closed without reading
  the rest), the main document by `max_input_mb`, the form by 8 parts and 64 KB of
  `options`.
- A body that stalls for BODY_TIMEOUT_S, or arrives slower than MIN_RATE_BPS after
  RATE_GRACE_S, is cut off (408).
- Each request stages in its own folder `tmp/.spoold-http.HOST.BOOT.PID.RANDOM/`, the
  job folder itself (renamed whole into inbox/); a raw body (no form) as one file
  `tmp/.spoold-http.HOST.BOOT.PID.RANDOM.EXT`, which becomes a folder only when the job
  needs a job.json (submit.py). Either is removed at once when the request ends early
  (client gone, a limit, a full disk: 507); a starting gateway removes the ones a dead
  gateway of this host left, and any older than an hour (`sweep_staging`).
  `spoold submit` stages as `tmp/.submit-*`: not touched.
- Names become inbox names safely (`safe_name`).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import os
import secrets
import shutil
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from starlette.requests import ClientDisconnect, Request

from ..spool.formats import SUFFIX_TYPES
from ..spool.leases import boot_id
from ..spool.protocol import NAME_MAX, SpoolPaths, truncate_utf8
from .errors import ApiError
from .multipart import FormReader, Part

STAGING_PREFIX = ".spoold-http."
STALE_AFTER_S = 3600.0
BODY_TIMEOUT_S = 30.0
MIN_RATE_BPS = 16 * 1024
RATE_GRACE_S = 10.0
MAX_NAME_BYTES = 200
# Content types of a raw body (and of a file part without a known suffix).
TYPE_SUFFIX = {"text/markdown": ".md", "text/x-markdown": ".md", "text/html": ".html"}
TYPE_SUFFIX["application/pdf"] = ".pdf"
WRITE_BUFFER = 256 * 1024


def safe_name(name: str | None, content_type: str) -> str:
    """An upload's name as an inbox entry name: no `/` or `\\`, no NUL or control
    characters, no leading dot, at most 200 bytes cut on a UTF-8 boundary keeping the
    suffix; `upload.EXT` (from the content type) when nothing is left. 415 when neither
    the name's suffix nor the content type is a format spoold takes."""
    base = (name or "").replace("\\", "/").rpartition("/")[2]
    base = "".join(c for c in base if ord(c) >= 32 and ord(c) != 0x7F).strip().lstrip(".")
    stem, dot, ext = base.rpartition(".")
    suffix = f".{ext}".lower() if dot and stem else ""
    if suffix not in SUFFIX_TYPES:
        from_type = TYPE_SUFFIX.get(content_type)
        if from_type is None:
            raise ApiError(
                415,
                f"{base or 'the upload'!r} is not Markdown, HTML or PDF "
                f"(by its name, or its content type {content_type or 'none'!r})",
            )
        stem, suffix = (base or "upload"), from_type
    elif not stem:
        stem = "upload"
    keep = MAX_NAME_BYTES - len(suffix.encode())
    stem = truncate_utf8(stem, keep).rstrip() or "upload"
    return f"{stem}{suffix}"[:NAME_MAX]


@functools.cache
def _host_and_boot() -> tuple[str, str]:
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())
    return host[:40], boot_id()[:8]


def staging_path(paths: SpoolPaths, suffix: str = "") -> Path:
    """A new name for this request's staging entry in tmp/ (`sweep_staging` knows it)."""
    host, boot = _host_and_boot()
    return paths.tmp / f"{STAGING_PREFIX}{host}.{boot}.{os.getpid()}.{secrets.token_hex(6)}{suffix}"


def staging_dir(paths: SpoolPaths) -> Path:
    folder = staging_path(paths)
    folder.mkdir()
    return folder


def remove_staged(path: Path) -> None:
    """A staging entry, file or folder; gone already is fine."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:  # a folder (EISDIR; EPERM elsewhere)
        shutil.rmtree(path, ignore_errors=True)


def sweep_staging(paths: SpoolPaths, now: float | None = None) -> int:
    """Remove staging entries (folders, raw bodies' files) of dead gateways of this host,
    and any over an hour old.

    Returns how many were removed. Other tools' files in tmp/ are never touched.
    """
    now = time.time() if now is None else now
    host, boot = _host_and_boot()
    removed = 0
    try:
        names = os.listdir(paths.tmp)
    except OSError:
        return 0
    for name in names:
        if not name.startswith(STAGING_PREFIX):
            continue
        parts = name[len(STAGING_PREFIX) :].split(".")
        path = paths.tmp / name
        try:
            old = now - os.lstat(path).st_mtime > STALE_AFTER_S
        except OSError:
            continue
        mine = len(parts) in (4, 5) and parts[0] == host  # 5: a raw body's file, .EXT
        dead = mine and (parts[1] != boot or not _alive(parts[2]))
        if old or dead:
            remove_staged(path)
            removed += 1
    return removed


def _alive(pid_text: str) -> bool:
    try:
        os.kill(int(pid_text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Upload:
    """A finished upload: the job folder (or the lone document) staged in tmp/."""

    entry: Path  # the request's own entry in tmp/, renamed as a whole into inbox/
    name: str
    main_sha256: str | None
    options_text: bytes | None
    parts: list[str] = field(default_factory=list)
    folder: bool = True  # False: a raw body staged as one file (no job folder yet)

    def as_folder(self, paths: SpoolPaths) -> None:
        """Make the staged file a job folder holding it (the job needs a job.json)."""
        folder = staging_dir(paths)
        try:
            os.rename(self.entry, folder / self.name)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.entry, self.folder = folder, True

    def discard(self) -> None:
        """Remove what is left in tmp/: nothing once the job went into inbox/."""
        remove_staged(self.entry)


class _Sink:
    """A part written to a file in 256 KiB writes, hashed when asked, counted."""

    def __init__(self, path: Path, hashed: bool) -> None:
        self.fh: BinaryIO = open(path, "xb", buffering=WRITE_BUFFER)  # noqa: SIM115
        self.hash = hashlib.sha256() if hashed else None
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.hash is not None:
            self.hash.update(data)
        return self.fh.write(data)


@dataclass
class Limits:
    upload_bytes: int
    input_bytes: int


async def _chunks(request: Request, limits: Limits) -> AsyncIterator[bytes]:
    """The body, bounded: 413 past the limit, 408 when it stalls or crawls."""
    total, started = 0, time.monotonic()
    stream = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):  # no task per chunk, unlike wait_for
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ApiError(408, f"no body bytes for {BODY_TIMEOUT_S:g} s", headers=CLOSE) from None
        total += len(chunk)
        if total > limits.upload_bytes:
            raise ApiError(
                413, f"the request is larger than {_mb(limits.upload_bytes)}", headers=CLOSE
            )
        elapsed = time.monotonic() - started
        if elapsed > RATE_GRACE_S and total / elapsed < MIN_RATE_BPS:
            raise ApiError(408, "the body arrives too slowly", headers=CLOSE)
        if chunk:
            yield chunk


CLOSE = {"Connection": "close"}


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:g} MB (max_upload_mb)"


def check_length(request: Request, limits: Limits) -> None:
    """413 from Content-Length alone, before a byte of the body is read."""
    raw = request.headers.get("content-length")
    if raw is not None and raw.isdigit() and int(raw) > limits.upload_bytes:
        raise ApiError(413, f"the request is larger than {_mb(limits.upload_bytes)}", headers=CLOSE)


async def receive_upload(
    request: Request, paths: SpoolPaths, limits: Limits, name: str | None, hashed: bool
) -> Upload:
    """Stream the body into a new staging entry: a folder (the job folder to be) for a
    form, one file for a raw body; on any error it is removed."""
    ctype, _, params = request.headers.get("content-type", "").partition(";")
    ctype = ctype.strip().lower()
    form = ctype == "multipart/form-data"
    entry_name = None if form else safe_name(name, ctype)  # 415 before anything is made
    staging = (
        staging_dir(paths) if form else staging_path(paths, os.path.splitext(entry_name or "")[1])
    )
    try:
        if form:
            return await _receive_form(request, staging, limits, name, params, hashed)
        return await _receive_raw(request, staging, limits, entry_name or "", hashed)
    except ClientDisconnect:
        remove_staged(staging)
        raise
    except OSError as exc:
        remove_staged(staging)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ApiError(507, "the spool's disk is full; nothing was queued") from None
        raise
    except BaseException:
        remove_staged(staging)
        raise


async def _receive_raw(
    request: Request, staged: Path, limits: Limits, entry_name: str, hashed: bool
) -> Upload:
    sink = _Sink(staged, hashed)
    with sink.fh:
        async for chunk in _chunks(request, limits):
            sink.write(chunk)
            _check_input(sink.size, limits)
    digest = sink.hash.hexdigest() if sink.hash else None
    return Upload(staged, entry_name, digest, None, ["file"], folder=False)


def _check_input(size: int, limits: Limits) -> None:
    if size > limits.input_bytes:
        raise ApiError(
            413,
            f"the document is larger than {limits.input_bytes / 1024 / 1024:g} MB (max_input_mb)",
            code="too_large",
            headers=CLOSE,
        )


async def _receive_form(
    request: Request, staging: Path, limits: Limits, name: str | None, params: str, hashed: bool
) -> Upload:
    boundary = ""
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        raise ApiError(400, "multipart/form-data without a boundary")
    sinks: dict[str, _Sink] = {}
    names: dict[str, str] = {}

    def open_sink(part: Part) -> BinaryIO:
        target = staging / _part_name(part, name, names)
        sink = sinks[part.field] = _Sink(target, hashed and part.field == "file")
        return sink  # type: ignore[return-value]

    reader = FormReader(boundary.encode("latin-1"), open_sink)
    try:
        async for chunk in _chunks(request, limits):
            reader.feed(chunk)
            if "file" in sinks:
                _check_input(sinks["file"].size, limits)
        reader.finish()
    finally:
        for sink in sinks.values():
            sink.fh.close()
    if "file" not in reader.parts:
        raise ApiError(422, "the form has no 'file' part (the main document)")
    options = bytes(reader.parts["options"].text) if "options" in reader.parts else None
    digest = sinks["file"].hash.hexdigest() if sinks["file"].hash else None
    return Upload(staging, names["file"], digest, options, list(reader.parts))


def _part_name(part: Part, name: str | None, names: dict[str, str]) -> str:
    """A file part's name in the job folder; the document's is checked (415) before
    any of its bytes is written."""
    if part.field == "file":
        names["file"] = safe_name(name or part.filename, part.content_type)
    else:
        names[part.field] = "resources.zip" if part.field == "resources" else "reference.docx"
    return names[part.field]
