"""The two requests with figures to meet, answered before FastAPI routes them.

- `GET /v1/spools/{spool}/jobs/{id}`, also with `?wait=N`: the one a busy client repeats
  (polling a job); 1,000 requests/s, p99 <= 20 ms, and the end of the 5 ms added
  latency (docs/http.md). FastAPI's routing and dependency solving cost several times
  the look-up itself (a few stats, one read).
- `POST /v1/spools/{spool}/jobs` with plain query parameters: jobs through HTTP at 0.8x
  the folder route's rate, and 5 ms added latency at most. Routing, the dependency and
  query validation cost about a third of the gateway's CPU for a tiny upload.

The answers are the same in every way (the FastAPI routes stay, for the requests
this path declines and for the OpenAPI description): the same token check,
visibility rule, upload code (routes_jobs.submitted), record and errors. A POST whose
query FastAPI would reject, or that repeats a parameter, is left to FastAPI, which
answers it with its own validation error; nothing of the body is read before that. So
is a look-up with any other query than one plain `wait=N`.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from ..spool.ids import JOB_ID_RE
from . import routes_jobs
from .auth import Tokens
from .errors import ApiError, SafeJSONResponse, error_response
from .records import full_record
from .spools import ServedSpool

PREFIX = "/v1/spools/"
ROUTE = "/v1/spools/{spool}/jobs/{job_id}"
SUBMIT_ROUTE = "/v1/spools/{spool}/jobs"
SUBMIT_QUERY = ("name", "targets", "priority", "route")
# `?wait=N` as the route's validation takes it without a word (a number >= 0).
_WAIT_RE = re.compile(rb"^wait=([0-9]{1,6}(?:\.[0-9]{1,6})?)$")
# `priority` as the route's validation takes it without a word (an int, 0 to 100).
_PRIORITY_RE = re.compile(r"^(?:0|[1-9][0-9]?|100)$")


def match(scope: Scope) -> tuple[str, str, float | None] | None:
    """(spool, job id, ?wait seconds) of a job look-up, or None for everything else."""
    if scope["method"] != "GET":
        return None
    query: bytes = scope.get("query_string", b"")
    wait = _WAIT_RE.match(query) if query else None
    if query and wait is None:
        return None
    path: str = scope["path"]
    if not path.startswith(PREFIX):
        return None
    parts = path[len(PREFIX) :].split("/")
    if len(parts) != 3 or parts[1] != "jobs" or not JOB_ID_RE.match(parts[2]):
        return None
    return parts[0], parts[2], None if wait is None else float(wait[1])


def _authorization(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


async def answer(
    app: Any, scope: Scope, receive: Receive, send: Send, hit: tuple[str, str, float | None]
) -> None:
    spool, job_id, wait = hit
    tokens: Tokens = app.state.tokens
    response: Response
    try:
        caller = tokens.caller(_authorization(scope))
        scope.setdefault("state", {})["caller"] = caller
        sp: ServedSpool | None = app.state.spools.get(spool)
        if sp is None:
            raise ApiError(404, f"no spool {spool!r} is served here")
        loc = sp.find(job_id)
        if loc is None or not caller.may_see(loc.record.submitted_by):
            raise ApiError(404, f"no job {job_id!r} in spool {sp.name!r}")
        if wait and loc.state not in routes_jobs.TERMINAL:
            loc = await routes_jobs.wait_until_ended(sp, job_id, loc, wait)
        response = SafeJSONResponse(full_record(sp, loc))
    except ApiError as err:
        response = error_response(err)
    await response(scope, receive, send)


def match_submit(scope: Scope) -> str | None:
    """The spool of a job submission (POST /v1/spools/{spool}/jobs), or None."""
    if scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if not path.startswith(PREFIX) or not path.endswith("/jobs"):
        return None
    spool = path[len(PREFIX) : -len("/jobs")]
    return spool if spool and "/" not in spool else None


def submit_query(scope: Scope) -> dict[str, str] | None:
    """The route's query parameters, parsed as FastAPI does (starlette's QueryParams);
    None when one is repeated or `priority` is not a plain 0-100 (FastAPI answers)."""
    params = QueryParams(scope.get("query_string", b""))
    query: dict[str, str] = {}
    for key in SUBMIT_QUERY:
        values = params.getlist(key)
        if len(values) > 1:
            return None
        if values:
            query[key] = values[0]
    if "priority" in query and not _PRIORITY_RE.match(query["priority"]):
        return None
    return query


@functools.cache
def _submit_route() -> BaseRoute | None:
    """FastAPI's route of the submission: scope["route"] names it in metrics and logs."""
    for route in routes_jobs.router.routes:
        if getattr(route, "path", None) == SUBMIT_ROUTE and "POST" in getattr(route, "methods", ()):
            return route
    return None


async def submit(app: Any, scope: Scope, receive: Receive, send: Send, spool: str) -> bool:
    """Answer a job submission; False when it is left to FastAPI (nothing was read)."""
    query = submit_query(scope)
    if query is None:
        return False
    request = Request(scope, receive)
    response: Response
    try:
        tokens: Tokens = app.state.tokens
        caller = tokens.caller(request.headers.get("authorization"))
        request.state.caller = caller
        priority = query.get("priority")
        response = await routes_jobs.submitted(
            request,
            spool,
            caller,
            query.get("name"),
            query.get("targets"),
            None if priority is None else int(priority),
            query.get("route"),
        )
    except ApiError as err:
        response = error_response(err)
    scope["route"] = _submit_route()
    await response(scope, receive, send)
    return True
