"""The gateway's composition: the FastAPI application, its routes, its error handlers, and
the one middleware every request passes (security headers, metrics, the access log)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..ops.logs import log_request
from ..ops.metrics import Metrics
from . import (
    docs_page,
    hotpath,
    idempotency,
    routes_events,
    routes_files,
    routes_health,
    routes_jobs,
    routes_page,
)
from .auth import Tokens
from .errors import SafeJSONResponse, install_handlers
from .routes_jobs import Who
from .spools import ServedSpool
from .uploads import sweep_staging

log = logging.getLogger("spoold.http")
DESCRIPTION = (
    "spoold's HTTP gateway: submit documents to a spool, watch, download, cancel and retry "
    'jobs. Every error is {"error": {code, message, hint, retryable}}. See docs/http.md.'
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


class Middleware:
    """Security headers on every answer; then, when it is sent, metrics and a log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics, api: FastAPI) -> None:
        self.app = app
        self.metrics = metrics
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                if b"content-security-policy" not in names:
                    headers.append(API_CSP)
                message["headers"] = headers
            await send(message)

        hit = hotpath.match(scope)
        spool = hotpath.match_submit(scope) if hit is None else None
        try:
            if hit is not None:
                await hotpath.answer(self.api, scope, receive, sending, hit)
            elif spool is None or not await hotpath.submit(
                self.api, scope, receive, sending, spool
            ):
                await self.app(scope, receive, sending)
        finally:
            took = time.perf_counter() - started
            route = hotpath.ROUTE if hit else getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request_finished(route, scope["method"], status, took)
            caller = getattr(scope.get("state", {}).get("caller"), "name", None)
            client = scope.get("client") or ("unix", 0)
            raw = scope.get("raw_path") or scope["path"].encode()
            path = raw.decode("latin-1")
            if scope.get("query_string"):
                path += "?" + scope["query_string"].decode("latin-1")
            log_request(scope["method"], path, status, took, str(client[0]), caller)


def create_app(roots: list[Path], tokens_file: Path | None) -> FastAPI:
    """The application serving these spools (each by its folder's name)."""
    spools = {sp.name: sp for sp in (ServedSpool(root) for root in roots)}
    if len(spools) != len(roots):
        raise ValueError("two spools have the same folder name; each is addressed by it")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import asyncio

        loop = asyncio.get_running_loop()
        for sp in spools.values():
            removed = sweep_staging(sp.paths)
            if removed:
                log.info("%s: removed %d staging folder(s) of stopped gateways", sp.name, removed)
            sp.start(loop)
            idempotency.sweep_keys(sp.paths, sp.has_job)
        yield
        for sp in spools.values():
            sp.stop()

    app = FastAPI(
        title="spoold",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind the token like everything but /healthz
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry hooks: off. The gateway's figures are in its
        # Prometheus output (ops/metrics.py); left on, the hooks check the tracer, meter
        # and logger providers on every request (2 % of a tiny POST's CPU), and an
        # installed OpenTelemetry SDK with FASTAPI_OTEL_AUTO_CONFIGURE would export.
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    app.state.spools = spools
    app.state.tokens = Tokens(tokens_file)
    app.state.metrics = metrics = Metrics(spools, gateway=True)
    install_handlers(app)
    for module in (routes_jobs, routes_files, routes_events, routes_health, routes_page):
        app.include_router(module.router)
    _add_docs(app)
    app.add_middleware(Middleware, metrics=metrics, api=app)
    return app


def _add_docs(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            app.openapi_schema["security"] = [{"bearer": []}, {}]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_json(caller: Who) -> SafeJSONResponse:
        return SafeJSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs(caller: Who) -> Response:
        page = docs_page.render(app.openapi())
        return HTMLResponse(page, headers={"Content-Security-Policy": docs_page.CSP})
