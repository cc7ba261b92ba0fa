"""Idempotency-Key: the same key and content answer the job already made, per spool.

A key is recorded as `.spoold/idempotency/SHA256(KEY)`, a small JSON file (the job id
and the sha256 of the content: the main document's bytes, the options and the name),
created whole with link(2) so that of two requests with one key, on any gateways, one
makes the job and the other finds it. The record lasts as long as its job's folder: a
record whose job is gone (purged) is replaced by the next request with that key, and
`sweep_keys` removes such records an hour old.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..spool.protocol import SpoolPaths, atomic_write
from .errors import ApiError

KEYS_DIR = "idempotency"
MAX_KEY = 255
STALE_AFTER_S = 3600.0


@dataclass(frozen=True)
class KeyRecord:
    job_id: str
    content: str
    created: float  # this host's wall time when it was written


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY or not key.isascii() or not key.isprintable():
        raise ApiError(400, f"Idempotency-Key must be 1-{MAX_KEY} printable ASCII characters")
    return key


def content_hash(name: str, main_sha256: str, options: dict[str, object]) -> str:
    canonical = json.dumps(options, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{name}\0{main_sha256}\0{canonical}".encode()).hexdigest()


def key_path(paths: SpoolPaths, key: str) -> Path:
    return paths.state / KEYS_DIR / hashlib.sha256(key.encode()).hexdigest()


def _encode(rec: KeyRecord) -> bytes:
    return json.dumps(
        {"job_id": rec.job_id, "content": rec.content, "created": rec.created}
    ).encode()


def read_key(path: Path) -> KeyRecord | None:
    try:
        data = json.loads(path.read_bytes())
        return KeyRecord(str(data["job_id"]), str(data["content"]), float(data["created"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def claim_key(paths: SpoolPaths, key: str, rec: KeyRecord) -> KeyRecord | None:
    """Record `key` for `rec`'s job; None when it is ours now, else the record found."""
    path = key_path(paths, key)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    tmp.write_bytes(_encode(rec))
    try:
        os.link(tmp, path)
        return None
    except FileExistsError:
        return read_key(path) or rec  # unreadable: treat as taken by a twin
    finally:
        os.unlink(tmp)


def take_over(paths: SpoolPaths, key: str, rec: KeyRecord) -> None:
    """Replace a record whose job is gone."""
    atomic_write(key_path(paths, key), _encode(rec), durable=False)


def release(paths: SpoolPaths, key: str, job_id: str) -> None:
    """Forget a key recorded for a job that was not queued after all."""
    path = key_path(paths, key)
    found = read_key(path)
    if found is not None and found.job_id == job_id:
        try:
            os.unlink(path)
        except OSError:
            pass


def sweep_keys(paths: SpoolPaths, exists: Callable[[str], bool], now: float | None = None) -> int:
    """Remove records an hour old whose job no longer exists."""
    now = time.time() if now is None else now
    folder = paths.state / KEYS_DIR
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        path = folder / name
        rec = read_key(path)
        if rec is None or now - rec.created < STALE_AFTER_S or exists(rec.job_id):
            continue
        try:
            os.unlink(path)
            removed += 1
        except OSError:
            pass
    return removed
