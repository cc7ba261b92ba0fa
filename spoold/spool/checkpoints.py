"""Finished parts of a big PDF, kept across attempts of the same job (SPEC section 3,
"Resume"; docs/conversion.md "Big documents").

A part laid out to PDF is moved into the job folder's PARTS_KEPT_DIR with a record: the
part's key (a hash of what its layout depends on: the part's HTML bytes, its index and
kind, the page options, its base URL relative to the job folder, spoold's and
WeasyPrint's versions), the PDF's sha256, and what the merge needs from it (pages,
bookmarks, anchors, links). The folder moves with the job (requeue, recovery, retry
after a backoff), so the next attempt's split finds it: a part whose key and checksum
match is not laid out again. A part of another plan (other options, other bytes) has
another key and is removed. The folder goes when the job is published.

Standard library only: the daemon writes the records, the worker reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .parts import Anchor, Bookmark, PartResult, PartTask

PARTS_KEPT_DIR = ".spoold-parts-kept"  # in the job folder, beside PARTS_DIR
_RECORD_VERSION = 1


def part_key(task: PartTask, folder: Path, versions: str) -> str:
    """What a part's PDF depends on, hashed; its paths are taken relative to `folder`
    (the job folder moves between attempts: running/NAME.aN.TOKEN/)."""
    digest = hashlib.sha256()
    digest.update(Path(task.html_path).read_bytes())
    base = task.base_url.replace(folder.resolve().as_uri(), "JOB", 1)
    fields = [_RECORD_VERSION, versions, task.index, task.kind, asdict(task.page), base]
    digest.update(json.dumps(fields).encode())
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def keep_part(folder: Path, task: PartTask, result: PartResult) -> PartResult:
    """Move a laid-out part into the kept folder with its record; the result as kept.

    Only parts with a key (the document's parts, not the stamp). Any failure (a full
    disk, the folder gone with a lost claim) keeps the part where it is: the attempt
    goes on, only a later attempt would lay it out again.
    """
    if not task.key or result.error is not None:
        return result
    kept = folder / PARTS_KEPT_DIR
    pdf = kept / f"part-{task.index:04d}.pdf"
    try:
        kept.mkdir(exist_ok=True)
        checksum = _sha256(Path(result.output_path))
        os.replace(result.output_path, pdf)
        _remove(Path(result.output_path + ".pid"))  # the worker's mark: this part runs
        moved = replace(result, output_path=str(pdf))
        record = {"key": task.key, "sha256": checksum, "result": _result_json(moved)}
        tmp = kept / f".part-{task.index:04d}.json.tmp"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, kept / f"part-{task.index:04d}.json")
    except OSError:
        return (
            result if os.path.exists(result.output_path) else replace(result, output_path=str(pdf))
        )
    return moved


def _result_json(result: PartResult) -> dict[str, Any]:
    data = asdict(result)
    data["output_path"] = Path(result.output_path).name
    for cost in ("peak_rss_mb", "cpu_s", "wall_s", "error"):
        data.pop(cost, None)
    return data


def _result_of(data: dict[str, Any], pdf: Path) -> PartResult:
    return PartResult(
        index=int(data["index"]),
        output_path=str(pdf),
        pages=int(data["pages"]),
        bookmarks=tuple(Bookmark(**b) for b in data["bookmarks"]),
        anchors=tuple(Anchor(**a) for a in data["anchors"]),
        links_across=tuple(int(p) for p in data["links_across"]),
        warnings=tuple(str(w) for w in data["warnings"]),
    )


def kept_parts(folder: Path, tasks: tuple[PartTask, ...]) -> tuple[PartResult, ...]:
    """The parts of `tasks` an earlier attempt laid out (key and checksum match), as
    results in the kept folder; every other kept file is removed."""
    kept = folder / PARTS_KEPT_DIR
    if not kept.is_dir():
        return ()
    wanted = {f"part-{t.index:04d}": t for t in tasks if t.key}
    found: list[PartResult] = []
    for record_path in sorted(kept.glob("part-*.json")):
        stem = record_path.stem
        task = wanted.get(stem)
        pdf = kept / f"{stem}.pdf"
        try:
            record = json.loads(record_path.read_text())
            if task is not None and record["key"] == task.key and record["sha256"] == _sha256(pdf):
                found.append(_result_of(record["result"], pdf))
                continue
        except (OSError, ValueError, KeyError, TypeError):
            pass
        for stale in (record_path, pdf):  # another plan's part, or a damaged one
            try:
                os.unlink(stale)
            except OSError:
                pass
    keep = {f"part-{r.index:04d}{ext}" for r in found for ext in (".pdf", ".json")}
    for leftover in kept.iterdir():
        if leftover.name not in keep:
            _remove(leftover)
    return tuple(found)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def discard_kept(folder: Path) -> None:
    """The job is published: its kept parts go (as its work folder did)."""
    shutil.rmtree(folder / PARTS_KEPT_DIR, ignore_errors=True)
