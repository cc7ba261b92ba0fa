"""What in inbox/ is a job: the kinds of entries, the names that are ignored, and the
cheap format checks that tell a complete file from one still being written (SPEC
section 2, "When an entry is complete"; docs/protocol.md)."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

from .protocol import INPUT_DIR, STATE_FILE, job_id_of


class EntryKind(StrEnum):
    FILE = "file"  # a single document
    DIR = "dir"  # a job folder a person or tool dropped
    REQUEUED = "requeued"  # a job folder spoold put back (retry, recovery, drain)
    CANCEL = "cancel"  # NAME.cancel: a cancel marker
    SPECIAL = "special"  # symlink, FIFO, socket, device: never opened, never followed


JOB_FILE = "job.json"  # a job folder's own options
REFERENCE_DOCX = "reference.docx"  # a job folder's DOCX style template

# Members whose end is checked: a PDF ends with %%EOF, a ZIP (and DOCX) has its
# central directory.
CHECKED_SUFFIXES = (".pdf", ".zip", ".docx")


def looks_complete(path: Path, kind: EntryKind) -> bool:
    """Cheap check that a file is not cut short: a PDF ends with %%EOF, a ZIP has its
    central directory. Other files (and folders without such members) pass."""
    try:
        if kind is EntryKind.DIR:
            for member in _walk_files(path, limit=2000):
                if member.suffix.lower() in CHECKED_SUFFIXES and not _file_complete(member):
                    return False
            return True
        return _file_complete(path)
    except OSError:
        return False


def _file_complete(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix not in CHECKED_SUFFIXES:
        return True
    with open(path, "rb", opener=_nofollow_opener) as fh:
        size = os.fstat(fh.fileno()).st_size
        tail_len = min(size, 65536 + 22)
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
    if suffix == ".pdf":
        return b"%%EOF" in tail[-1024:]
    return b"PK\x05\x06" in tail  # end of central directory record


def _nofollow_opener(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)


def _walk_files(root: Path, limit: int) -> Iterable[Path]:
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            count += 1
            if count > limit:
                return
            yield Path(dirpath) / name


def compile_ignore(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """The ignore patterns (fnmatch, case-sensitive) as one regular expression."""
    parts = [f"(?:{fnmatch.translate(p)})" for p in patterns]
    return re.compile("|".join(parts)) if parts else None


def is_ignored(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def is_requeued_folder(path: Path) -> bool:
    """A job folder spoold put back (retry, recovery, drain), not a person's job folder.

    Its state file says so; when a full disk kept that from being written, its name
    (STEM.JOBID) and its input/ folder still do.
    """
    if os.path.lexists(path / STATE_FILE):
        return True
    return job_id_of(path.name) is not None and os.path.isdir(path / INPUT_DIR)


def classify(path: str | Path, st: os.stat_result) -> EntryKind:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return EntryKind.CANCEL if os.fspath(path).endswith(".cancel") else EntryKind.FILE
    if stat.S_ISDIR(mode):
        return EntryKind.REQUEUED if is_requeued_folder(Path(path)) else EntryKind.DIR
    return EntryKind.SPECIAL
