"""Signed download links: a plain URL that works without a bearer header for a while.

With tokens, a page cannot put `Authorization` on a link a person opens, saves or
copies. The API hands out `PATH?exp=UNIX_SECONDS&sig=HEX`: HMAC-SHA256 over
`GET\\nPATH\\nEXP` with the spool's signing key, `.spoold/http-signing.key` (32 random
bytes, mode 0600, made whole with link(2) by the first gateway that needs it, so every
gateway of the spool signs and checks with the same key). A link grants that one path
(the percent-encoded path as sent) until EXP; a token revoked meanwhile does not end
its links (they are short: LINK_TTL_S). Removing the key file ends every link at once
(the gateways read it again within a second of it changing).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from pathlib import Path

from ..spool.protocol import SpoolPaths, unlink_quiet
from .auth import Caller
from .errors import ApiError

KEY_FILE = "http-signing.key"
LINK_TTL_S = 900
KEY_BYTES = 32
# Who a request with a valid signature acts as: it may read exactly the signed path.
# The parentheses keep it apart from any token's name (letters, digits, ._@+-).
LINK = Caller("(signed link)", "admin")


def key_file(paths: SpoolPaths) -> Path:
    return paths.state / KEY_FILE


def _create(path: Path) -> None:
    """A new key, complete before it has its name: of two gateways one wins."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES).hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another gateway made it first: use theirs
    finally:
        unlink_quiet(tmp)


class Signer:
    """The spool's key, read once and again when the file changes (checked each second)."""

    CHECK_EVERY_S = 1.0

    def __init__(self, paths: SpoolPaths) -> None:
        self.path = key_file(paths)
        self._lock = threading.Lock()
        self._key: bytes | None = None
        self._sig: tuple[int, int, int] | None = None
        self._checked = 0.0

    def key(self) -> bytes:
        now = time.monotonic()
        if self._key is not None and now - self._checked < self.CHECK_EVERY_S:
            return self._key
        with self._lock:
            self._checked = now
            try:
                return self._load()
            except OSError as exc:
                raise ApiError(
                    503,
                    f"the spool's signing key {self.path} cannot be used: {exc.strerror or exc}",
                    code="unavailable",
                ) from None

    def _load(self) -> bytes:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            _create(self.path)
            st = os.stat(self.path)
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._key is None or sig != self._sig:
            text = self.path.read_text().strip()
            if len(text) < 2 * KEY_BYTES:
                raise OSError(f"{self.path}: expected {2 * KEY_BYTES} hex digits")
            self._key = bytes.fromhex(text)
            self._sig = sig
        return self._key

    def signature(self, path: str, exp: int) -> str:
        message = f"GET\n{path}\n{exp}".encode()
        return hmac.new(self.key(), message, hashlib.sha256).hexdigest()

    def sign(self, path: str, exp: int) -> str:
        """The signed URL of `path`, good until `exp` (Unix seconds)."""
        return f"{path}?exp={exp}&sig={self.signature(path, exp)}"

    def check(self, method: str, path: str, exp_text: str | None, sig: str | None) -> Caller:
        """LINK for a valid, unexpired signature of this path; 403 otherwise."""
        if method not in ("GET", "HEAD") or not exp_text or not sig:
            raise ApiError(403, "a signed link needs both exp and sig", hint=_HINT)
        if not exp_text.isdigit() or len(exp_text) > 12:
            raise ApiError(403, "the link's exp is not a time", hint=_HINT)
        if not hmac.compare_digest(self.signature(path, int(exp_text)), sig.lower()):
            raise ApiError(403, "the link's signature does not match its path", hint=_HINT)
        if int(exp_text) < time.time():
            raise ApiError(403, "the link has expired", hint=_HINT)
        return LINK


_HINT = "Ask for a fresh link: reload the page, or GET the job's download-links."
