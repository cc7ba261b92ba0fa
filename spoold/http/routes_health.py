"""/healthz, /readyz, /v1/spools and /metrics: the gateway and its spools, for people,
load balancers and Prometheus."""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ..api import queued_count
from ..spool.clock import spool_now
from ..spool.leases import heartbeat_ages
from ..spool.protocol import free_disk_mb
from .errors import ApiError, SafeJSONResponse
from .routes_jobs import Who
from .spools import ServedSpool

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The gateway process answers (no token needed)")
async def healthz() -> SafeJSONResponse:
    return SafeJSONResponse({"status": "ok"})


def _daemons(sp: ServedSpool) -> list[dict[str, Any]]:
    """Live daemons of the spool: a heartbeat at most lease_ttl_s old (spool's clock)."""
    ttl = sp.settings.lease_ttl_s
    out = []
    for info, age in heartbeat_ages(sp.paths.daemons, spool_now(sp.paths.clock_probe)).items():
        if age > ttl:
            continue
        try:
            data = json.loads(info.read_text())
        except (OSError, ValueError):
            continue
        out.append(
            {"host": data.get("host"), "pid": data.get("pid"), "heartbeat_age_s": round(age, 1)}
        )
    return out


def readiness(sp: ServedSpool) -> dict[str, Any]:
    """One spool's checks: reachable, writable, a live daemon, free space."""
    checks: dict[str, Any] = {"spool": sp.name, "problems": []}
    problems: list[str] = checks["problems"]
    try:
        probe = sp.paths.tmp / f".spoold-http-ready.{os.getpid()}"
        probe.write_bytes(b"ok\n")
        probe.unlink()
    except OSError as exc:
        problems.append(f"tmp/ is not writable: {exc.strerror or exc}")
    try:
        free = free_disk_mb(sp.root)
        checks["free_disk_mb"] = round(free)
        if free < sp.settings.min_free_mb:
            problems.append(
                f"free disk {free:.0f} MB is below min_free_mb {sp.settings.min_free_mb}"
            )
    except OSError as exc:
        problems.append(f"the spool is not reachable: {exc.strerror or exc}")
    daemons = _daemons(sp)
    checks["daemons"] = len(daemons)
    if not daemons:
        problems.append("no daemon holds a live lease on this spool (queued jobs wait)")
    checks["ready"] = not problems
    return checks


@router.get(
    "/readyz", summary="Every spool reachable, writable, served by a live daemon, with free space"
)
async def readyz(request: Request, caller: Who) -> SafeJSONResponse:
    spools: dict[str, ServedSpool] = request.app.state.spools
    detail = [await run_in_threadpool(readiness, sp) for sp in spools.values()]
    if all(d["ready"] for d in detail):
        return SafeJSONResponse({"status": "ready", "spools": detail})
    bad = [d["spool"] for d in detail if not d["ready"]]
    raise ApiError(503, f"not ready: {', '.join(bad)}", detail=detail)


def spool_figures(sp: ServedSpool) -> dict[str, Any]:
    s = sp.settings
    try:
        running = sum(1 for n in os.listdir(sp.paths.running) if not n.startswith("."))
    except OSError:
        running = 0
    return {
        "name": sp.name,
        "url": f"/v1/spools/{sp.name}/jobs",
        "queued": queued_count(sp.paths, sp.view),
        "running": running,
        "done": sp.counts["done"].count(),
        "failed": sp.counts["failed"].count(),
        "free_disk_mb": round(free_disk_mb(sp.root)),
        "daemons": len(_daemons(sp)),
        "targets": list(s.targets),
        "routes": {name: list(s.for_route(name).targets) for name in sorted(s.routes)},
        "max_queued": s.max_queued,
        "max_upload_mb": s.max_upload_mb,
        "max_input_mb": s.max_input_mb,
    }


@router.get("/v1/spools", summary="The spools served, with their queue figures and targets")
async def list_spools(request: Request, caller: Who) -> SafeJSONResponse:
    spools: dict[str, ServedSpool] = request.app.state.spools
    figures = [await run_in_threadpool(spool_figures, sp) for sp in spools.values()]
    tokens = request.app.state.tokens.enabled
    who = {"name": caller.name, "role": caller.role, "tokens": tokens}
    return SafeJSONResponse({"spools": figures, "caller": who})


@router.get("/metrics", summary="Prometheus metrics of this gateway (any valid token)")
async def metrics(request: Request, caller: Who) -> Response:
    body = request.app.state.metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
