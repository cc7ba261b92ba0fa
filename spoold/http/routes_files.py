"""A job's files: its artifacts (ETag = sha256, Range, If-None-Match), manifest.json and
ERROR.txt. Only names the job's manifest lists are served, from inside its folder."""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from ..spool.clock import iso_of
from ..tools.jobview import Place
from ..tools.lookup import JobLocation
from .auth import Caller, caller_of
from .errors import ApiError, SafeJSONResponse, escape_json_text, escape_text
from .records import job_url
from .routes_jobs import JobId, Who, served, visible
from .signing import LINK_TTL_S

router = APIRouter(prefix="/v1/spools/{spool}/jobs/{job_id}", tags=["files"])
CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _artifact(manifest: dict[str, Any] | None, file: str) -> dict[str, Any] | None:
    for art in (manifest or {}).get("artifacts") or []:
        if isinstance(art, dict) and file in (art.get("path"), art.get("name")):
            return art
    return None


def _regular_inside(folder: Path, rel: str) -> tuple[Path, os.stat_result]:
    """The file `rel` of a job folder: a plain name, a regular file, no symlink."""
    if "/" in rel or "\\" in rel or "\0" in rel or rel in ("", ".", ".."):
        raise ApiError(404, "no such file in this job")
    path = folder / rel
    try:
        st = os.lstat(path)
    except OSError:
        raise ApiError(404, "the file is gone (purged?)") from None
    if not stat.S_ISREG(st.st_mode):
        raise ApiError(404, "no such file in this job")
    return path, st


def content_disposition(name: str) -> str:
    ascii_name = "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "_" for c in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single `bytes=` range; None for the whole file; 416 if none fits."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if m is None or (not m[1] and not m[2]):
        return None  # several ranges or another unit: the whole file (RFC 9110 allows it)
    if not m[1]:
        first, last = max(0, size - int(m[2])), size - 1
    else:
        first = int(m[1])
        last = min(int(m[2]), size - 1) if m[2] else size - 1
    if first >= size or first > last:
        raise ApiError(
            416,
            f"range not satisfiable (size {size})",
            code="invalid_request",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return first, last


async def _read(path: Path, first: int, length: int) -> AsyncIterator[bytes]:
    fh = await run_in_threadpool(open, path, "rb")
    try:
        await run_in_threadpool(fh.seek, first)
        while length > 0:
            chunk = await run_in_threadpool(fh.read, min(CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)
            yield chunk
    finally:
        fh.close()


async def token_or_signature(request: Request, spool: str) -> Caller:
    """A bearer token, or a signed link's `exp` and `sig` (signing.py) for this path."""
    query = request.query_params
    if "sig" not in query and "exp" not in query:
        return await caller_of(request)
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    path = bytes(raw).decode("latin-1").partition("?")[0]
    who = served(request, spool).signer.check(
        request.method, path, query.get("exp"), query.get("sig")
    )
    request.state.caller = who
    return who


def _done(loc: JobLocation, job_id: str) -> None:
    if loc.state == Place.FAILED:
        raise ApiError(409, f"job {job_id} {loc.record.status}: it has no artifacts")
    if loc.state != Place.DONE:
        raise ApiError(
            404, f"job {job_id} is {loc.record.status}; its artifacts come when it is done"
        )


@router.get("/artifacts/{file}", summary="An artifact's bytes (Range, If-None-Match)")
async def get_artifact(
    request: Request,
    spool: str,
    job_id: JobId,
    file: Annotated[str, PathParam(description="the artifact's name, as in the record")],
    caller: Annotated[Caller, Depends(token_or_signature)],
) -> Response:
    sp = served(request, spool)
    loc = await visible(sp, job_id, caller)
    _done(loc, job_id)
    art = _artifact(loc.manifest, file)
    if art is None:
        raise ApiError(404, f"job {job_id} has no artifact {file!r}")
    path, st = _regular_inside(loc.path, str(art.get("path")))
    etag = f'"{art.get("sha256", "")}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(str(art.get("name") or path.name)),
        "Cache-Control": "private, max-age=0, must-revalidate",
    }
    match = request.headers.get("if-none-match")
    if match is not None and (
        match.strip() == "*" or etag in [m.strip() for m in match.split(",")]
    ):
        return Response(status_code=304, headers=headers)
    media = str(art.get("media_type") or "application/octet-stream")
    span = _byte_range(request.headers.get("range"), st.st_size)
    if span is None:
        headers["Content-Length"] = str(st.st_size)
        return StreamingResponse(_read(path, 0, st.st_size), media_type=media, headers=headers)
    first, last = span
    headers["Content-Range"] = f"bytes {first}-{last}/{st.st_size}"
    headers["Content-Length"] = str(last - first + 1)
    body = _read(path, first, last - first + 1)
    return StreamingResponse(body, status_code=206, media_type=media, headers=headers)


@router.get(
    "/download-links",
    summary="Signed artifact URLs: plain links that work without a token until `expires`",
)
async def download_links(request: Request, spool: str, job_id: JobId, caller: Who) -> Response:
    sp = served(request, spool)
    loc = await visible(sp, job_id, caller)
    _done(loc, job_id)
    base = job_url(sp.name, job_id)
    expires = int(time.time()) + LINK_TTL_S
    links = []
    for art in (loc.manifest or {}).get("artifacts") or []:
        if not isinstance(art, dict) or not isinstance(art.get("path"), str):
            continue
        url = sp.signer.sign(f"{base}/artifacts/{quote(art['path'], safe='')}", expires)
        links.append({"name": art.get("name"), "path": art["path"], "url": url})
    return SafeJSONResponse(
        {"expires": expires, "expires_at": iso_of(float(expires)), "artifacts": links}
    )


@router.get("/manifest", summary="manifest.json of a finished job")
async def get_manifest(request: Request, spool: str, job_id: JobId, caller: Who) -> Response:
    sp = served(request, spool)
    loc = await visible(sp, job_id, caller)
    if loc.state not in (Place.DONE, Place.FAILED):
        raise ApiError(404, f"job {job_id} is {loc.record.status}; its manifest comes when it ends")
    path, _ = _regular_inside(loc.path, "manifest.json")
    text = await run_in_threadpool(path.read_text, "utf-8")
    return Response(escape_json_text(text), media_type="application/json")


@router.get("/error", summary="ERROR.txt of a failed or cancelled job (text/plain)")
async def get_error(request: Request, spool: str, job_id: JobId, caller: Who) -> Response:
    sp = served(request, spool)
    loc = await visible(sp, job_id, caller)
    if loc.state != Place.FAILED:
        raise ApiError(404, f"job {job_id} is {loc.record.status}; only failed jobs have ERROR.txt")
    path, _ = _regular_inside(loc.path, "ERROR.txt")
    text = await run_in_threadpool(path.read_text, "utf-8", "replace")
    return Response(escape_text(text), media_type="text/plain; charset=utf-8")
