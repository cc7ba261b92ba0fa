"""`GET /` and `GET /page/{file}`: the jobs page for people who are not on the share.

Plain HTML, CSS and JavaScript shipped as package data (spoold/http/page/), no build
step and nothing from the internet. The files hold no data, so they are served without
a token; everything the page shows it asks the API for, with the token pasted into it
(a bearer header: no cookies, so no cross-site request forgery). Their
Content-Security-Policy allows only this origin's own files: no inline script or
handler, no other host, no framing.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from fastapi import APIRouter, Request
from starlette.responses import Response

from .errors import ApiError

router = APIRouter(include_in_schema=False)
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
MEDIA = {
    "index.html": "text/html; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
    "page.js": "text/javascript; charset=utf-8",
    "rows.js": "text/javascript; charset=utf-8",
    "upload.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


class PageFiles:
    """The page's files, read once from the package (they change with the package only)."""

    def __init__(self) -> None:
        folder = resources.files(__package__ or "spoold.http") / "page"
        self.files: dict[str, tuple[bytes, str]] = {}
        for name in MEDIA:
            body = (folder / name).read_bytes()
            self.files[name] = (body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')

    def response(self, name: str, request: Request) -> Response:
        found = self.files.get(name)
        if found is None:
            raise ApiError(404, "no such file of the page")
        body, etag = found
        headers = {
            "ETag": etag,
            "Cache-Control": "no-cache",  # revalidated: a new version shows at once
            "Content-Security-Policy": PAGE_CSP,
        }
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=MEDIA[name], headers=headers)


_FILES: PageFiles | None = None


def page_files() -> PageFiles:
    global _FILES
    if _FILES is None:
        _FILES = PageFiles()
    return _FILES


@router.get("/")
async def index(request: Request) -> Response:
    return page_files().response("index.html", request)


@router.get("/page/{name}")
async def page_file(request: Request, name: str) -> Response:
    return page_files().response(name, request)
