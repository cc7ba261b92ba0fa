"""Bearer tokens: a TOML file of names, sha256 hashes and roles (`spoold token add`).

```toml
[[token]]
name = "ci"
sha256 = "9f86d08..."   # of the token; the token itself is never stored
role = "user"           # user: its own jobs; admin: every job
```

The file is read again when it changes (checked at most once a second), so adding or
revoking a token needs no restart. Without a tokens file the gateway listens only on
loopback or a unix socket, and every caller acts as an admin without a name.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import Request

from ..errors import ConfigError
from ..spool.ids import SUBMITTER_RE
from ..spool.protocol import atomic_write
from .errors import ApiError

Role = Literal["user", "admin"]


@dataclass(frozen=True)
class Caller:
    """Who sends a request: a token's name and role (name None: no tokens, local)."""

    name: str | None
    role: Role

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def may_see(self, submitted_by: str | None) -> bool:
        return self.admin or (submitted_by is not None and submitted_by == self.name)


LOCAL = Caller(None, "admin")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_tokens(path: Path) -> dict[str, Caller]:
    """sha256 -> caller; ConfigError naming the file and the entry when it is wrong."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    entries = data.get("token", [])
    if not isinstance(entries, list) or set(data) - {"token"}:
        raise ConfigError(f"{path}: expected only [[token]] tables (name, sha256, role)")
    out: dict[str, Caller] = {}
    names: set[str] = set()
    for i, entry in enumerate(entries, 1):
        where = f"{path}: token {i}"
        if not isinstance(entry, dict) or set(entry) != {"name", "sha256", "role"}:
            raise ConfigError(f"{where}: needs exactly the keys name, sha256 and role")
        name, digest, role = entry["name"], entry["sha256"], entry["role"]
        if not isinstance(name, str) or not SUBMITTER_RE.match(name):
            raise ConfigError(f"{where}: name must be 1-64 letters, digits or ._@+-")
        if name in names:
            raise ConfigError(f"{where}: the name {name!r} is used twice")
        if not isinstance(digest, str) or len(digest) != 64 or not _hex(digest):
            raise ConfigError(f"{where}: sha256 must be 64 hex digits")
        if role not in ("user", "admin"):
            raise ConfigError(f"{where}: role must be 'user' or 'admin'")
        names.add(name)
        out[digest.lower()] = Caller(name, role)
    return out


def _hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def add_token(path: Path, name: str, role: Role) -> str:
    """Append a new random token for `name` to the file (made 0600); return the token."""
    if not SUBMITTER_RE.match(name):
        raise ConfigError(f"token name {name!r}: must be 1-64 letters, digits or ._@+-")
    existing = parse_tokens(path) if path.exists() else {}
    if any(c.name == name for c in existing.values()):
        raise ConfigError(f"{path}: a token named {name!r} exists already")
    token = secrets.token_urlsafe(32)
    text = path.read_text() if path.exists() else "# spoold serve --tokens: see docs/http.md\n"
    if text and not text.endswith("\n"):
        text += "\n"
    text += f'\n[[token]]\nname = "{name}"\nsha256 = "{token_hash(token)}"\nrole = "{role}"\n'
    atomic_write(path, text.encode(), mode=0o600)
    return token


class Tokens:
    """The tokens file, read again when its mtime or size changes."""

    CHECK_EVERY_S = 1.0

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._by_hash: dict[str, Caller] = {}
        self._sig: tuple[int, int] | None = None
        self._checked = 0.0
        if path is not None:
            self._load()

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def _load(self) -> None:
        assert self.path is not None
        st = os.stat(self.path)
        self._by_hash = parse_tokens(self.path)
        self._sig = (st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        now = time.monotonic()
        if self.path is None or now - self._checked < self.CHECK_EVERY_S:
            return
        with self._lock:
            self._checked = now
            try:
                st = os.stat(self.path)
                if (st.st_mtime_ns, st.st_size) != self._sig:
                    self._load()
            except (OSError, ConfigError):
                pass  # a broken edit keeps the tokens in force; the next good one wins

    def caller(self, authorization: str | None) -> Caller:
        if self.path is None:
            return LOCAL
        self._refresh()
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "this gateway needs a bearer token", headers=_CHALLENGE)
        found = self._by_hash.get(token_hash(token.strip()))
        if found is None:
            raise ApiError(401, "unknown or revoked token", headers=_CHALLENGE)
        return found


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="spoold"'}


async def caller_of(request: Request) -> Caller:
    """FastAPI dependency: the caller, or 401 (async: no thread hop per request)."""
    tokens: Tokens = request.app.state.tokens
    who = tokens.caller(request.headers.get("authorization"))
    request.state.caller = who
    return who
