"""The one sandboxed fetcher every converter reads resources through.

Allowed: `data:` URLs and regular files inside the job folder (relative references, or
`file:` URLs that resolve inside it). An http(s) URL is fetched only when it falls under
an entry of ConvertOptions.allow_fetch (spool.toml `allow_fetch`), compared part by part
(scheme, host, port, then path segments), never as a raw string prefix. No redirects
are followed, reads are capped in bytes and time, and every request lands in
ctx.fetches with allowed/refused and bytes read.
"""

from __future__ import annotations

import base64
import http.client
import os
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .. import __version__
from ..spool.allow_fetch import DEFAULT_PORTS, parse_prefix, split_http
from .base import ConversionContext, Fetch


class FetchRefused(Exception):
    """A resource the sandbox does not allow (the reason is the message)."""

    def __init__(self, reason: str, read: int = 0) -> None:
        super().__init__(reason)
        self.read = read  # bytes already read when a network fetch was cut off


def decode_data_url(url: str, cap: int) -> tuple[bytes, str]:
    """Decode a data: URL into (bytes, media type); refuse it over `cap` bytes.

    Reads nothing, so callers may use it without recording a fetch.
    """
    if url[:5].lower() != "data:":
        raise FetchRefused("not a data: URL")
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise FetchRefused("malformed data: URL")
    # Cheap guard before decoding: no encoding of `cap` bytes is longer than 3 * cap.
    if len(payload) > 3 * cap + 16:
        raise FetchRefused(f"larger than the {cap}-byte cap")
    params = [p.strip() for p in header.split(";")]
    mime = params[0].lower() if params and params[0] else "text/plain"
    try:
        if any(p.lower() == "base64" for p in params[1:]):
            data = base64.b64decode(urllib.parse.unquote(payload), validate=False)
        else:
            data = urllib.parse.unquote_to_bytes(payload)
    except ValueError as exc:
        raise FetchRefused("malformed data: URL") from exc
    if len(data) > cap:
        raise FetchRefused(f"larger than the {cap}-byte cap")
    return data, mime


def _read_data_url(url: str, cap: int) -> bytes:
    return decode_data_url(url, cap)[0]


def resolve_in_job(url: str, base: Path, job_root: Path) -> Path:
    """Map a relative or file: URL to a path inside job_root, or refuse."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise FetchRefused("file: URL with a host")
        target = Path(urllib.parse.unquote(parsed.path))
    elif parsed.scheme == "" and not parsed.netloc:
        rel = urllib.parse.unquote(parsed.path)
        if not rel:
            raise FetchRefused("empty reference")
        target = Path(rel) if rel.startswith("/") else base / rel
        if rel.startswith("/"):
            # An absolute path in a document means the job folder's root, never the server's.
            target = job_root / rel.lstrip("/")
    else:
        raise FetchRefused(f"{parsed.scheme or 'network'} URLs are not allowed")
    root = job_root.resolve()
    # resolve() follows symlinks: a link pointing out of the job is caught here.
    real = Path(os.path.realpath(target))
    if real != root and root not in real.parents:
        raise FetchRefused("outside the job folder")
    return real


def _read_file(path: Path, cap: int) -> bytes:
    # O_NOFOLLOW + fstat: never open a FIFO/device, never follow a last-moment symlink.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FetchRefused("not a regular file")
        if st.st_size > cap:
            raise FetchRefused(f"larger than the {cap}-byte cap")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            total += len(chunk)
            if total > cap:
                raise FetchRefused(f"larger than the {cap}-byte cap")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


# --- network (allow_fetch) -----------------------------------------------------------


def is_network_url(url: str) -> bool:
    return urllib.parse.urlsplit(url.strip()).scheme.lower() in DEFAULT_PORTS


def _check_allowed(ctx: ConversionContext, url: str) -> None:
    """Raise FetchRefused unless an allow_fetch entry covers the http(s) `url`."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if not ctx.options.allow_fetch:
        raise FetchRefused(f"{scheme} URL not allow-listed (allow_fetch is empty)")
    try:
        parts = split_http(url)
    except ValueError as exc:
        raise FetchRefused(str(exc)) from exc
    for entry in ctx.options.allow_fetch:
        try:
            if parse_prefix(entry).covers(parts):
                return
        except ValueError:
            continue  # settings validation refuses these; never widen on a bad entry
    raise FetchRefused(f"{scheme} URL not allow-listed: no allow_fetch entry covers it")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # Returning None makes urllib raise HTTPError for the 3xx instead of following it.
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def _opener() -> urllib.request.OpenerDirector:
    # Only the handlers http(s) needs: no file:, ftp: or data: handler to fall back on.
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),  # the standard *_proxy / no_proxy variables
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        _NoRedirect(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _read_network(url: str, cap: int, timeout: float) -> bytes:
    """GET an allow-listed URL: no redirects, at most `cap` bytes, `timeout` seconds."""
    request = urllib.request.Request(
        urllib.parse.urldefrag(url.strip())[0],
        headers={"User-Agent": f"spoold/{__version__}", "Accept-Encoding": "identity"},
    )
    deadline = time.monotonic() + timeout
    try:
        resp = _opener().open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if 300 <= exc.code < 400:
            where = exc.headers.get("Location", "") if exc.headers else ""
            shown = f" to {display_url(where)!r}" if where else ""
            raise FetchRefused(f"redirect (HTTP {exc.code}{shown}) not followed") from None
        raise FetchRefused(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise FetchRefused(f"no answer within {timeout:g} s") from None
        raise FetchRefused(f"network error: {reason}") from None
    with resp:
        length = resp.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > cap:
            raise FetchRefused(f"larger than the {cap}-byte cap ({int(length)} bytes)")
        chunks: list[bytes] = []
        total = 0
        try:
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                total += len(chunk)
                if total > cap:
                    raise FetchRefused(f"larger than the {cap}-byte cap", read=total)
                if time.monotonic() > deadline:
                    # A server dripping bytes defeats the per-read timeout; this does not.
                    raise FetchRefused(f"took longer than {timeout:g} s", read=total)
                chunks.append(chunk)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise FetchRefused(f"network error while reading: {exc}", read=total) from None
    return b"".join(chunks)


# --- the fetcher ------------------------------------------------------------------------


def display_url(url: str) -> str:
    """A URL as it may appear in manifests and warnings: as the document wrote it, short,
    without credentials.

    A relative reference is shown decoded: markdown-it percent-encodes what people write
    (`bilder/größe.png` becomes `bilder/gr%C3%B6%C3%9Fe.png`).
    """
    if url[:5].lower() == "data:":
        return url[:40] + ("..." if len(url) > 40 else "")
    parsed = urllib.parse.urlsplit(url)
    if not parsed.scheme and not parsed.netloc:
        decoded = urllib.parse.unquote(url)
        if decoded.isprintable():
            url = decoded
    if parsed.netloc and "@" in parsed.netloc:
        netloc = "***@" + parsed.netloc.rsplit("@", 1)[1]
        url = urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
    return url if len(url) <= 500 else url[:497] + "..."


def _reason(exc: Exception) -> str:
    """Why a resource was not loaded, in words a person acts on."""
    if isinstance(exc, FetchRefused):
        return str(exc)
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return "not found"
    if isinstance(exc, PermissionError):
        return "not readable (permission denied)"
    if isinstance(exc, OSError):
        return f"not readable ({exc.strerror or type(exc).__name__})"
    return "not a valid file name"  # ValueError: a NUL byte in the path


def resolve_url(url: str, base: Path | str) -> str:
    """`url` made absolute when `base` is a network URL (a remote stylesheet's own)."""
    if isinstance(base, str) and url[:5].lower() != "data:":
        return urllib.parse.urljoin(base, url.strip())
    return url


def fetch_bytes(ctx: ConversionContext, url: str, base: Path | str) -> bytes | None:
    """Return the bytes of `url` or None when refused.

    `base` is the folder a relative reference is resolved in, or the URL of an
    allow-listed remote stylesheet whose own references are being resolved. A refusal
    is recorded in ctx.fetches and as a warning; it never raises.
    """
    cap = ctx.options.max_fetch_bytes
    url = resolve_url(url, base)
    record = Fetch(url=display_url(url), allowed=False)
    ctx.fetches.append(record)
    try:
        if url[:5].lower() == "data:":
            data = _read_data_url(url, cap)
        elif is_network_url(url):
            _check_allowed(ctx, url)
            data = _read_network(url, cap, ctx.options.fetch_timeout_s)
        elif isinstance(base, str):
            # A remote stylesheet may refer to allow-listed URLs only, never to local files.
            raise FetchRefused("a remote resource may only refer to http(s) URLs")
        else:
            data = _read_file(resolve_in_job(url, base, ctx.job_root), cap)
    except (FetchRefused, OSError, ValueError) as exc:
        reason = _reason(exc)
        record.reason = reason
        record.bytes = exc.read if isinstance(exc, FetchRefused) else 0
        ctx.warn(f"resource {display_url(url)!r} not loaded: {reason}")
        return None
    record.allowed = True
    record.bytes = len(data)
    return data
