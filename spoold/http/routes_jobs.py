"""/v1/spools/{spool}/jobs: submit, look up (and wait), list, cancel, retry."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from .. import api
from ..errors import SpooldError
from ..spool.ids import JOB_ID_RE
from ..tools.jobview import STATES, Place
from ..tools.lookup import JobLocation
from .auth import Caller, caller_of
from .errors import ApiError, SafeJSONResponse
from .records import Filters, full_record, job_url, list_page
from .spools import ServedSpool
from .submit import submit_upload

router = APIRouter(prefix="/v1/spools/{spool}", tags=["jobs"])
JobId = Annotated[str, Path(description="the job id (from the 202 answer, or a list)")]
Who = Annotated[Caller, Depends(caller_of)]
MAX_WAIT_S = 60.0
TERMINAL = (Place.DONE, Place.FAILED)

FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "the main document",
                        },
                        "resources": {
                            "type": "string",
                            "format": "binary",
                            "description": "resources.zip",
                        },
                        "reference": {
                            "type": "string",
                            "format": "binary",
                            "description": "a reference DOCX",
                        },
                        "options": {"type": "string", "description": "JSON: the keys of job.json"},
                    },
                }
            },
            "text/markdown": {"schema": {"type": "string", "format": "binary"}},
            "text/html": {"schema": {"type": "string", "format": "binary"}},
            "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def served(request: Request, spool: str) -> ServedSpool:
    found: ServedSpool | None = request.app.state.spools.get(spool)
    if found is None:
        raise ApiError(404, f"no spool {spool!r} is served here")
    return found


async def visible(
    sp: ServedSpool, job_id: str, caller: Caller, acting: bool = False
) -> JobLocation:
    """The job, if the caller may see it: 404 otherwise (403 to act on another's job).

    Looked up on the event loop, not in a thread: a look-up is a few stats and one small
    read (index.py), and a thread hop per request costs more than that on a busy host."""
    loc = sp.find(job_id) if JOB_ID_RE.match(job_id) else None
    if loc is None:
        raise ApiError(404, f"no job {job_id!r} in spool {sp.name!r}")
    if not caller.may_see(loc.record.submitted_by):
        if acting:
            raise ApiError(403, f"job {job_id} was submitted by another user")
        raise ApiError(404, f"no job {job_id!r} in spool {sp.name!r}")
    return loc


@router.post(
    "/jobs",
    status_code=202,
    summary="Submit a job (multipart form, or the document as the raw body)",
    openapi_extra=FORM_BODY,
    responses={200: {"description": "the job this Idempotency-Key made already"}},
)
async def submit_job(
    request: Request,
    spool: str,
    caller: Who,
    name: Annotated[str | None, Query(description="the document's name (report.md)")] = None,
    targets: Annotated[str | None, Query(description="pdf,docx,html")] = None,
    priority: Annotated[int | None, Query(ge=0, le=100)] = None,
    route: Annotated[str | None, Query(description="a route of the spool")] = None,
) -> SafeJSONResponse:
    return await submitted(request, spool, caller, name, targets, priority, route)


async def submitted(
    request: Request,
    spool: str,
    caller: Caller,
    name: str | None,
    targets: str | None,
    priority: int | None,
    route: str | None,
) -> SafeJSONResponse:
    """The answer to a job submitted (this route's, and hotpath.py's for the same POST)."""
    sp = served(request, spool)
    status, loc = await submit_upload(request, sp, caller, name, targets, priority, route)
    url = job_url(sp.name, loc.job_id or "")
    return SafeJSONResponse(full_record(sp, loc), status_code=status, headers={"Location": url})


@router.get("/jobs/{job_id}", summary="A job's record; ?wait=N holds it until the job ends")
async def get_job(
    request: Request,
    spool: str,
    job_id: JobId,
    caller: Who,
    wait: Annotated[float | None, Query(ge=0, description="seconds (at most 60)")] = None,
) -> SafeJSONResponse:
    sp = served(request, spool)
    loc = await visible(sp, job_id, caller)
    if wait and loc.state not in TERMINAL:
        loc = await wait_until_ended(sp, job_id, loc, wait)
    return SafeJSONResponse(full_record(sp, loc))


async def wait_until_ended(
    sp: ServedSpool, job_id: str, loc: JobLocation, seconds: float
) -> JobLocation:
    """Until the job is published (the events log says so) or `seconds` pass (at most
    MAX_WAIT_S)."""
    deadline = time.monotonic() + min(seconds, MAX_WAIT_S)
    while loc.state not in TERMINAL:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        event = sp.waiter()
        try:
            if job_id not in sp.index.ended:
                try:
                    await asyncio.wait_for(event.wait(), min(left, 1.0))
                except TimeoutError:
                    pass
        finally:
            sp.done_waiting(event)
        if job_id in sp.index.ended or time.monotonic() >= deadline or not event.is_set():
            loc = sp.find(job_id) or loc
    return loc


@router.get("/jobs", summary="Jobs, newest first, filtered; `next` is the cursor of the next page")
async def list_jobs(
    request: Request,
    spool: str,
    caller: Who,
    state: Annotated[list[str] | None, Query(description="queued, running, done, failed")] = None,
    name: Annotated[str | None, Query(description="a glob on the job's name")] = None,
    code: Annotated[str | None, Query(description="an error code")] = None,
    owner: Annotated[str | None, Query(description="submitted_by")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="`next` of the page before")] = None,
) -> SafeJSONResponse:
    sp = served(request, spool)
    states = tuple(s for item in state or [] for s in item.split(",") if s) or STATES
    unknown = [s for s in states if s not in STATES]
    if unknown:
        raise ApiError(422, f"state: unknown {unknown[0]!r}; allowed: {', '.join(STATES)}")
    filters = Filters(states, name, code, owner, limit)
    page = await run_in_threadpool(list_page, sp, caller, filters, cursor)
    return SafeJSONResponse(page)


@router.delete("/jobs/{job_id}", status_code=202, summary="Cancel (graceful, or ?mode=hard)")
async def cancel_job(
    request: Request,
    spool: str,
    job_id: JobId,
    caller: Who,
    mode: Annotated[str, Query(pattern="^(graceful|hard)$")] = "graceful",
) -> SafeJSONResponse:
    sp = served(request, spool)
    loc = await visible(sp, job_id, caller, acting=True)
    if loc.state in TERMINAL:
        raise ApiError(409, f"job {job_id} has ended ({loc.record.status}); nothing to cancel")
    await run_in_threadpool(api.cancel, sp.root, job_id, mode == "hard")
    found = await run_in_threadpool(sp.find, job_id)
    return SafeJSONResponse(full_record(sp, found or loc), status_code=202)


@router.post("/jobs/{job_id}/retry", status_code=202, summary="Retry a failed or cancelled job")
async def retry_job(request: Request, spool: str, job_id: JobId, caller: Who) -> SafeJSONResponse:
    sp = served(request, spool)
    loc = await visible(sp, job_id, caller, acting=True)
    if loc.state != Place.FAILED:
        raise ApiError(
            409,
            f"job {job_id} is {loc.record.status}; only failed or cancelled jobs can be retried",
        )
    try:
        await run_in_threadpool(api.retry, sp.root, loc)
    except (OSError, SpooldError) as exc:
        raise ApiError(409, f"job {job_id} could not be requeued: {exc}") from None
    sp.index.jobdirs[job_id] = loc.path.name
    found = await run_in_threadpool(sp.find, job_id)
    return SafeJSONResponse(full_record(sp, found or loc), status_code=202)
