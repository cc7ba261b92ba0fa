"""What in inbox/ is a job: the kinds of entries, the names that are ignored, and the
cheap format checks that tell a complete file from one still being written (SPEC
section 2, "When an entry is complete"; docs/protocol.md)."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Incomplete:
    """Why an entry fails its format check: which file, and what is wrong with it."""

    member: str  # the file, relative to the job folder; a single file's own name
    problem: str  # what is wrong, in plain words ("does not end with %%EOF")

    def describe(self, entry: str) -> str:
        """One sentence naming the file: `report/reference.docx is not ...`."""
        where = self.member if self.member == entry else f"{entry}/{self.member}"
        return f"{where} {self.problem}"


def looks_complete(path: Path, kind: EntryKind) -> bool:
    """Cheap check that a file is not cut short: a PDF ends with %%EOF, a ZIP has its
    central directory. Other files (and folders without such members) pass."""
    return incomplete_member(path, kind) is None


def incomplete_member(path: Path, kind: EntryKind) -> Incomplete | None:
    """What fails the format check (`looks_complete`), or None when nothing does."""
    if kind is not EntryKind.DIR:
        return _file_problem(path, path.name)
    try:
        for member in _walk_files(path, limit=2000):
            if member.suffix.lower() in CHECKED_SUFFIXES:
                found = _file_problem(member, member.relative_to(path).as_posix())
                if found is not None:
                    return found
    except OSError as exc:
        return Incomplete(path.name, f"cannot be read: {exc.strerror or exc}")
    return None


def _file_problem(path: Path, member: str) -> Incomplete | None:
    suffix = path.suffix.lower()
    if suffix not in CHECKED_SUFFIXES:
        return None
    try:
        with open(path, "rb", opener=_nofollow_opener) as fh:
            size = os.fstat(fh.fileno()).st_size
            tail_len = min(size, 65536 + 22)
            fh.seek(size - tail_len)
            tail = fh.read(tail_len)
    except OSError as exc:
        return Incomplete(member, f"cannot be read: {exc.strerror or exc}")
    if suffix == ".pdf":
        if b"%%EOF" in tail[-1024:]:
            return None
        return Incomplete(member, "does not end with %%EOF: the PDF is cut short or damaged")
    if b"PK\x05\x06" in tail:  # end of central directory record
        return None
    what = "DOCX file: its ZIP" if suffix == ".docx" else "ZIP file: its"
    return Incomplete(
        member, f"is not a complete {what} central directory (at the end of the file) is missing"
    )


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


def is_requeued_folder(path: str | Path) -> bool:
    """A job folder spoold put back (retry, recovery, drain), not a person's job folder.

    Its state file says so; when a full disk kept that from being written, its name
    (STEM.JOBID) and its input/ folder still do. (Strings, not Paths: the tracker asks
    this of every folder that arrives.)
    """
    path = os.fspath(path)
    if os.path.lexists(os.path.join(path, STATE_FILE)):
        return True
    name = os.path.basename(path)
    return job_id_of(name) is not None and os.path.isdir(os.path.join(path, INPUT_DIR))


def classify(path: str | Path, st: os.stat_result) -> EntryKind:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return EntryKind.CANCEL if os.fspath(path).endswith(".cancel") else EntryKind.FILE
    if stat.S_ISDIR(mode):
        return EntryKind.REQUEUED if is_requeued_folder(path) else EntryKind.DIR
    return EntryKind.SPECIAL
