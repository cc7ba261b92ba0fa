"""Inbox entries a daemon waits on, published for tools: .spoold/waiting/TOKEN.json.

An entry that has settled but fails its format check (a PDF without %%EOF, a DOCX
without its ZIP central directory; spool/entries.py) is not claimed: the daemon waits
for it to change, and fails it once it has stayed unchanged for a bound (SPEC 2, "When
an entry is complete"; docs/protocol.md). Only the daemon knows since when it has
watched the entry unchanged and which bound applies, and `spoold show` cannot ask it, so
each daemon instance writes what it waits on into one file of its own, named by its
token (as its lease in .spoold/daemons/):

    {"host": "print1", "token": "5c1e2f3a", "entries": [
      {"key": "report", "ino": 1234, "reason": "incomplete", "member": "reference.docx",
       "message": "report/reference.docx is not a complete DOCX file: ...",
       "since": "2026-01-30T10:15:00.000000Z", "until": "2026-01-30T10:17:00.000000Z"}]}

`key` is the entry's path below inbox/, `ino` its inode (a later entry of the same name
is another entry), `since` when it was last seen to change (or first seen), `until` when
it will be failed unless it changes (both the daemon's clock). The file is written whole
(temporary name, rename) when the set changes and removed when it is empty, so a spool
where nothing waits has none. A stopping daemon removes its own; a dead one's is removed
with its lease files by the daemon that finds it gone, and readers skip a file whose
daemon has no lease files left.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .protocol import atomic_write, unlink_quiet

# The `reason` of a job record's `waiting` object for an entry that fails its check.
INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class WaitingEntry:
    key: str  # below inbox/: "report.pdf", "docx/report"
    ino: int
    member: str  # the file that fails the check, relative to the entry
    message: str  # what is wrong, in plain words, naming the file
    since: str  # ISO 8601 UTC: unchanged since (the daemon's clock)
    until: str | None  # ISO 8601 UTC: failed then unless it changes
    reason: str = INCOMPLETE

    def waiting(self) -> dict[str, Any]:
        """The job record's `waiting` object (docs/cli.md)."""
        return {
            "reason": self.reason,
            "since": self.since,
            "until": self.until,
            "member": self.member,
            "message": self.message,
        }


def board_path(folder: Path, token: str) -> Path:
    return folder / f"{token}.json"


def write_board(folder: Path, token: str, host: str, entries: list[WaitingEntry]) -> None:
    """Publish what this daemon waits on (nothing: no file). OSError is the caller's."""
    path = board_path(folder, token)
    if not entries:
        unlink_quiet(path)
        return
    folder.mkdir(exist_ok=True)
    body = {"host": host, "token": token, "entries": [asdict(e) for e in entries]}
    atomic_write(path, json.dumps(body, ensure_ascii=False).encode(), durable=False)


def remove_board(folder: Path, token: str) -> None:
    unlink_quiet(board_path(folder, token))


def read_boards(folder: Path, daemons: Path) -> dict[str, WaitingEntry]:
    """Every live daemon's waiting entries by key; where two daemons wait on one entry,
    the one that fails it first. Cheap: one listing, and a file per daemon that waits."""
    try:
        names = [n for n in os.listdir(folder) if n.endswith(".json") and n[0] != "."]
    except OSError:
        return {}
    found: dict[str, WaitingEntry] = {}
    for name in names:
        token = name[: -len(".json")]
        if not _has_lease(daemons, token):
            continue  # a dead daemon's leftover
        for entry in _read_board(folder / name):
            known = found.get(entry.key)
            if known is None or (entry.until or "~") < (known.until or "~"):
                found[entry.key] = entry
    return found


def _has_lease(daemons: Path, token: str) -> bool:
    return any(os.path.lexists(daemons / f"{token}{ext}") for ext in (".json", ".lock"))


def _read_board(path: Path) -> list[WaitingEntry]:
    try:
        data = json.loads(path.read_bytes())
        return [WaitingEntry(**item) for item in data["entries"]]
    except (OSError, ValueError, TypeError, KeyError):
        return []  # removed meanwhile, or from another version
