"""Retention: remove done/ and failed/ job folders older than keep_done_days /
keep_failed_days (SPEC section 3), with their flat out/ links.

A folder is first renamed to a hidden `.purge-NAME` in the same parent, then deleted.
The rename is atomic, so a crash mid-delete leaves a hidden leftover (finished by the
next purge), never a half job folder that looks like a result; and when two daemons
purge the same spool, exactly one wins each folder.

Age: a job folder is named STEM.JOBID and a job id starts with its UTC creation time,
so most folders are judged by name alone. A folder that looks old by its id is checked
against its manifest's `finished_at` (a job retried long after it was created finished
recently and is kept); folders without a job id are judged by their mtime.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..spool.clock import job_time, parse_iso, wall_time
from ..spool.eventfiles import expired_files
from ..spool.ids import forget_job_id
from ..spool.protocol import MANIFEST, SpoolPaths, job_id_of, rename_noreplace
from .outputs import unlink_flat_outputs

log = logging.getLogger(__name__)

PURGE_PREFIX = ".purge-"
DAY_S = 86400.0


@dataclass
class PurgeResult:
    removed_done: int = 0
    removed_failed: int = 0
    freed_bytes: int = 0
    removed_links: int = 0  # flat out/ entries removed with their jobs
    removed_event_files: int = 0  # events files of daemons long gone
    leftovers: int = 0  # `.purge-*` folders of an interrupted purge, finished now
    errors: list[str] = field(default_factory=list)


def _finished_at(folder: Path) -> float | None:
    try:
        raw = json.loads((folder / MANIFEST).read_bytes()).get("finished_at")
        return parse_iso(str(raw))
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def folder_age_s(folder: Path, now: float) -> float | None:
    """How old a published job folder is, in seconds; None if it is gone.

    Job id time first (no I/O); only an old-looking folder pays for reading its
    manifest. The mtime fallback covers folders named by hand.
    """
    jid = job_id_of(folder.name)
    created = job_time(jid) if jid else None
    if created is not None:
        return now - created
    try:
        return now - os.lstat(folder).st_mtime
    except FileNotFoundError:
        return None


def _is_expired(folder: Path, now: float, limit_s: float) -> bool:
    age = folder_age_s(folder, now)
    if age is None or age <= limit_s:
        return False
    finished = _finished_at(folder)
    return finished is None or now - finished > limit_s


def purge(
    paths: SpoolPaths,
    keep_done_days: float,
    keep_failed_days: float,
    now: float | None = None,
    out_dir_cleanup: bool = True,
) -> PurgeResult:
    """Remove expired job folders of done/ and failed/ (and their out/ links).

    Only directories with a non-hidden name are considered; stray files and hidden
    names (a person's notes, other tools' temporaries) are left alone, except
    `.purge-*` leftovers of an earlier interrupted purge, which are finished first.
    `now` (unix seconds) is for tests. Errors on one folder are logged and collected in
    `errors`; the purge goes on with the rest. Safe to run from several daemons at once.

    Caveat: blocks for as long as deleting takes (large spools: run it off the main
    loop, e.g. on the hook pool or a timer thread).
    """
    now = wall_time() if now is None else now
    result = PurgeResult()
    doomed = _leftovers(paths)  # (kind, renamed folder)
    doomed += _hide_expired("done", paths.done, keep_done_days * DAY_S, now, result)
    doomed += _hide_expired("failed", paths.failed, keep_failed_days * DAY_S, now, result)
    if out_dir_cleanup and doomed:
        files = [f for _kind, folder in doomed for f in _linked_files(folder)]
        result.removed_links = len(unlink_flat_outputs(paths.out, files))
    _remove_hidden(paths, doomed, result)
    _purge_event_files(paths, max(keep_done_days, keep_failed_days) * DAY_S, now, result)
    if result.removed_done or result.removed_failed or result.leftovers:
        log.info(
            "purged %d done and %d failed job folders (%d bytes, %d out/ links)",
            result.removed_done,
            result.removed_failed,
            result.freed_bytes,
            result.removed_links,
        )
    return result


def _purge_event_files(paths: SpoolPaths, limit_s: float, now: float, result: PurgeResult) -> None:
    """The events files of daemons that are gone, once their last line is older than
    the oldest result kept: they would only describe jobs no longer there."""
    try:
        live = {name.rpartition(".")[0] for name in os.listdir(paths.daemons)}
    except OSError:
        return  # cannot tell which daemons are alive: remove nothing
    for path in expired_files(paths.events, live, limit_s, now):
        try:
            os.unlink(path)
            result.removed_event_files += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            result.errors.append(f"{path}: {exc.strerror or exc}")


def _leftovers(paths: SpoolPaths) -> list[tuple[str, Path]]:
    """`.purge-*` folders an interrupted purge left in done/ and failed/."""
    return [
        ("leftover", parent / name)
        for parent in (paths.done, paths.failed)
        for name in _names(parent)
        if name.startswith(PURGE_PREFIX)
    ]


def _hide_expired(
    kind: str, parent: Path, limit_s: float, now: float, result: PurgeResult
) -> list[tuple[str, Path]]:
    """Rename each expired job folder of `parent` to `.purge-NAME`: from then on it is
    ours alone to delete (another daemon purging finds it gone)."""
    hidden_ones: list[tuple[str, Path]] = []
    for name in _names(parent):
        if name.startswith("."):
            continue
        folder = parent / name
        try:
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                continue
        except FileNotFoundError:
            continue
        if not _is_expired(folder, now, limit_s):
            continue
        hidden = parent / f"{PURGE_PREFIX}{name}"
        try:
            rename_noreplace(folder, hidden)
        except FileNotFoundError:
            continue  # retried, or purged by another daemon
        except OSError as exc:
            result.errors.append(f"{kind}/{name}: {exc.strerror or exc}")
            log.warning("cannot purge %s/%s: %s", kind, name, exc)
            continue
        hidden_ones.append((kind, hidden))
    return hidden_ones


def _remove_hidden(paths: SpoolPaths, doomed: list[tuple[str, Path]], result: PurgeResult) -> None:
    """Delete the renamed folders, counting each by its kind once it is wholly gone;
    a chosen id's registration (spool/ids.py) goes with its folder."""
    for kind, folder in doomed:
        freed, errors = remove_tree(folder)
        result.freed_bytes += freed
        if errors:
            result.errors.extend(errors)
            continue  # still hidden: the next purge finishes it
        job_id = job_id_of(folder.name)
        if job_id is not None:
            forget_job_id(paths, job_id)
        if kind == "done":
            result.removed_done += 1
        elif kind == "failed":
            result.removed_failed += 1
        else:
            result.leftovers += 1


def _names(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def _linked_files(folder: Path) -> list[Path]:
    """Regular files below `folder` with other hard links (only those can be in out/)."""
    out: list[Path] = []
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                        elif entry.stat(follow_symlinks=False).st_nlink > 1 and entry.is_file(
                            follow_symlinks=False
                        ):
                            out.append(Path(entry.path))
                    except OSError:
                        continue
        except OSError:
            continue
    return out


def remove_tree(top: Path) -> tuple[int, list[str]]:
    """Delete `top` and everything in it, without following symlinks or recursing in
    Python (a hostile job may nest deeply).

    Returns (bytes freed, errors). Bytes count regular files whose last link went;
    folders a result's output_mode left without owner write permission are made
    writable first. Things that vanish meanwhile (another daemon purging) are fine.
    """
    freed = 0
    errors: list[str] = []
    # Depth-first: each folder is visited, its files removed and its subfolders
    # stacked; after all of those are gone it is removed on the second visit.
    stack: list[tuple[Path, bool]] = [(top, False)]
    while stack:
        folder, emptied = stack.pop()
        if emptied:
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                pass
            except OSError as exc:
                errors.append(f"{folder}: {exc.strerror or exc}")
            continue
        try:
            st = os.lstat(folder)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            freed += _unlink(folder, st, errors)
            continue
        if st.st_mode & 0o700 != 0o700:
            try:
                os.chmod(folder, stat.S_IMODE(st.st_mode) | 0o700)
            except OSError:
                pass  # not ours; try anyway
        stack.append((folder, True))
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except FileNotFoundError:
            continue
        except OSError as exc:
            errors.append(f"{folder}: {exc.strerror or exc}")
            continue
        for entry in entries:
            try:
                est = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(est.st_mode):
                stack.append((Path(entry.path), False))
            else:
                freed += _unlink(Path(entry.path), est, errors)
    return freed, errors


def _unlink(path: Path, st: os.stat_result, errors: list[str]) -> int:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        errors.append(f"{path}: {exc.strerror or exc}")
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 else 0
