"""The one sandboxed fetcher every converter reads resources through.

Allowed: `data:` URLs and regular files inside the job folder (relative references, or
`file:` URLs that resolve inside it). Everything else is refused unless its URL starts
with a prefix in ConvertOptions.allow_fetch. No redirects are followed, reads are capped,
and every request lands in ctx.fetches with allowed/refused and bytes read.
"""

from __future__ import annotations

import base64
import os
import stat
import urllib.parse
from pathlib import Path

from .base import ConversionContext, Fetch


class FetchRefused(Exception):
    """A resource the sandbox does not allow (the reason is the message)."""


def _read_data_url(url: str, cap: int) -> bytes:
    header, _, payload = url[5:].partition(",")
    if header.endswith(";base64"):
        data = base64.b64decode(payload, validate=False)
    else:
        data = urllib.parse.unquote_to_bytes(payload)
    if len(data) > cap:
        raise FetchRefused(f"larger than the {cap}-byte cap")
    return data


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


def _display(url: str) -> str:
    # Keep manifests readable and free of huge inline payloads.
    return url if not url.startswith("data:") else url[:40] + ("..." if len(url) > 40 else "")


def fetch_bytes(ctx: ConversionContext, url: str, base: Path) -> bytes | None:
    """Return the bytes of `url` (relative to the folder `base`) or None when refused.

    A refusal is recorded in ctx.fetches and as a warning; it never raises.
    """
    cap = ctx.options.max_fetch_bytes
    record = Fetch(url=_display(url), allowed=False)
    ctx.fetches.append(record)
    try:
        if url.startswith("data:"):
            data = _read_data_url(url, cap)
        elif any(url.startswith(prefix) for prefix in ctx.options.allow_fetch):
            raise FetchRefused("allow-listed network fetches are not supported in this build")
        else:
            data = _read_file(resolve_in_job(url, base, ctx.job_root), cap)
    except (FetchRefused, OSError, ValueError) as exc:
        reason = str(exc) if isinstance(exc, FetchRefused) else "not found or unreadable"
        record.reason = reason
        ctx.warn(f"resource {_display(url)!r} not loaded: {reason}")
        return None
    record.allowed = True
    record.bytes = len(data)
    return data
