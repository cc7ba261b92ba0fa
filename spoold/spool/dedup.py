"""Duplicates: the idempotency key of a job's bytes and options, the index from keys to
earlier results (.spoold/dedup/), and reusing an earlier job's artifacts."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from .entries import JOB_FILE
from .protocol import MANIFEST, NO_HARD_LINKS, atomic_write, job_dir_name, unlink_quiet
from .records import Artifact


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# Options that change the output; priority, timeouts and attempts do not.
KEY_OPTIONS = (
    "targets",
    "theme",
    "page_size",
    "margins",
    "metadata",
    "reference_docx",
    "allow_fetch",
)


def content_key(job_root: Path, main: Path, options: dict[str, Any]) -> tuple[str, str]:
    """(idempotency key, sha256 of the main document) from the job's bytes and options.

    Every regular file below the job root counts (the document, resources, the
    reference DOCX), except job.json, whose output-relevant options are hashed instead.
    Symbolic links are not followed.
    """
    h = hashlib.sha256()
    main_sha = ""
    for dirpath, dirnames, filenames in os.walk(job_root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(job_root).as_posix()
            if rel == JOB_FILE or path.is_symlink() or not path.is_file():
                continue
            digest = sha256_file(path)
            if path == main:
                # The main document counts by its bytes, not its name: the same report
                # dropped twice under two names is a duplicate.
                main_sha = digest
                rel = "\0main"
            h.update(f"{rel}\0{digest}\n".encode())
    picked = {k: options.get(k) for k in KEY_OPTIONS if k != "reference_docx"}
    h.update(json.dumps(picked, sort_keys=True, default=str).encode())
    return h.hexdigest(), main_sha


def dedup_record(dedup_dir: Path, key: str) -> Path:
    return dedup_dir / hashlib.sha256(key.encode()).hexdigest()


def record_result(dedup_dir: Path, key: str, folder: Path, jobdir: str) -> None:
    """Point `key` at the published job `folder` (named `jobdir`), for later duplicates.

    The record is a hard link to the job's manifest: a name, no new file (a create costs
    an inode, which on a busy ext4 takes longer than the rest of the record). Where the
    filesystem refuses links, it is a small file holding `jobdir`, as records were before.
    Either replaces an earlier record of the key with one rename.
    """
    record = dedup_record(dedup_dir, key)
    tmp = record.with_name(f".{record.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        os.link(folder / MANIFEST, tmp)
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS and exc.errno != errno.EMLINK:
            raise
        atomic_write(record, jobdir.encode(), durable=False)
        return
    try:
        os.rename(tmp, record)
    except BaseException:
        unlink_quiet(tmp)
        raise


def find_earlier(dedup_dir: Path, done_dir: Path, key: str) -> tuple[str, Path] | None:
    """The earlier successful job with this key, if its folder is still in done/."""
    try:
        text = dedup_record(dedup_dir, key).read_bytes()
    except OSError:
        return None
    if text.startswith(b"{"):  # a link to the job's manifest
        try:
            linked = json.loads(text)
            jobdir = job_dir_name(linked["name"], linked["job_id"])
        except (ValueError, KeyError, TypeError):
            return None
    else:  # a file holding the job folder's name
        jobdir = text.decode("utf-8", "replace").strip()
    folder = done_dir / jobdir
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None  # purged since, or never finished writing
    return str(manifest["job_id"]), folder


def reuse(
    earlier: Path, folder: Path, names: dict[str, str], attempt: int
) -> list[Artifact] | None:
    """Hard-link (or copy) the earlier job's artifacts, as `names` (target -> file name)
    says; None if one is missing."""
    manifest = json.loads((earlier / "manifest.json").read_text())
    by_target = {a["target"]: a for a in manifest.get("artifacts", [])}
    if any(t not in by_target for t in names):
        return None
    out = []
    for target, name in names.items():
        old = by_target[target]
        try:
            os.link(earlier / old["path"], folder / name)
        except FileExistsError:
            pass
        except OSError:
            shutil.copyfile(earlier / old["path"], folder / name)
        out.append(Artifact(**{**old, "name": name, "path": name, "attempt": attempt}))
    return out
