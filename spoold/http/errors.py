"""One error shape for every answer: `{"error": {code, message, hint, retryable}}`.

The codes are errors.py's job error codes plus the HTTP ones below (docs/http.md has
the table). A job that fails is not an HTTP error: its record says so. JSON answers
escape `<`, `>` and `&` (as \\u003c...), so a name like `<img src=x onerror=...>` can
never run as markup in a page that shows an answer without escaping it.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

# HTTP status -> (code, retryable, hint) for the gateway's own errors.
HTTP_CODES: dict[int, tuple[str, bool, str]] = {
    400: ("invalid_request", False, "Fix the request as the message says."),
    401: ("unauthorized", False, "Send 'Authorization: Bearer TOKEN' with a valid token."),
    403: ("forbidden", False, "Only the job's submitter or an admin token may do this."),
    404: ("not_found", False, "Check the spool name and the job id (GET /v1/spools lists spools)."),
    405: ("invalid_request", False, "See /docs for the methods of this path."),
    408: ("request_timeout", True, "Send the request body faster, or without pauses."),
    409: (
        "conflict",
        False,
        "The job is not in a state that allows this; GET it to see its state.",
    ),
    413: ("too_large", False, "Send a smaller document, or ask for a higher max_upload_mb."),
    415: ("unsupported_media_type", False, "Send Markdown (.md), HTML (.html) or PDF (.pdf)."),
    422: ("invalid_request", False, "Fix the option or parameter named in the message."),
    429: ("queue_full", True, "Wait for Retry-After seconds, then send it again."),
    503: ("unavailable", True, "Try again later; /readyz says what is missing."),
    507: ("disk_full", True, "Free disk space on the spool, then send it again."),
}


class ApiError(Exception):
    """An error answer: its HTTP status and the envelope's fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        hint: str | None = None,
        retryable: bool | None = None,
        headers: dict[str, str] | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message)
        default_code, default_retry, default_hint = HTTP_CODES.get(status, HTTP_CODES[400])
        self.status = status
        self.code = code or default_code
        self.message = message
        self.hint = default_hint if hint is None else hint
        self.retryable = default_retry if retryable is None else retryable
        self.headers = headers or {}
        self.detail = detail

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "retryable": self.retryable,
        }
        if self.detail is not None:
            body["detail"] = self.detail
        return {"error": body}


def safe_json(data: Any) -> bytes:
    """JSON with <, > and & escaped: safe to embed, never markup."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return escape_json_text(text).encode()


def escape_json_text(text: str) -> str:
    """Escape <, > and & in JSON text (they only occur inside strings)."""
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def escape_text(text: str) -> str:
    """A plain-text answer with <, > and & as entities (ERROR.txt over HTTP)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SafeJSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return safe_json(content)


def error_response(err: ApiError) -> Response:
    return SafeJSONResponse(err.envelope(), status_code=err.status, headers=err.headers)


def install_handlers(app: FastAPI) -> None:
    """Every error, ours, FastAPI's validation or Starlette's routing, as the envelope."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path"))
            problems.append(f"{where or 'request'}: {err.get('msg')}")
        return error_response(ApiError(422, "; ".join(problems) or "invalid request"))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code if exc.status_code in HTTP_CODES else 400
        message = {404: "no such path", 405: "method not allowed here"}.get(status, str(exc.detail))
        return error_response(ApiError(status, message, headers=dict(exc.headers or {})))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
