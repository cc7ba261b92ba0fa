"""What people on a shared folder see of a finished job (SPEC sections 4 and 8).

- `apply_output_permissions`: the spool's `output_mode` / `output_group` on published
  files and folders, so the people sharing the spool can read and delete results.
- `link_flat_output` / `unlink_flat_outputs`: the flat out/ view (`flat_output = true`),
  one hard link per artifact, named STEM.EXT with a numeric suffix on collision.
- `error_text`: ERROR.txt, a few plain sentences for a failed or cancelled job.

None of these ever fails a job: permissions and the flat view are conveniences, so
their problems are logged as warnings and the caller carries on.
"""

from __future__ import annotations

import errno
import grp
import logging
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from ..errors import ErrorCode
from ..spool.protocol import rename_noreplace

log = logging.getLogger(__name__)
_warned: set[str] = set()


def _warn_once(key: str, msg: str, *args: object) -> None:
    # One warning per problem, not one per file of every job.
    if key not in _warned:
        _warned.add(key)
        log.warning(msg, *args)


# --------------------------------------------------------------------------- permissions


def parse_mode(mode: str) -> int:
    """An octal mode string ("0664", "664", "0o664") as an int; ValueError if invalid."""
    value = int(mode.removeprefix("0o"), 8)
    if not 0 <= value <= 0o777:
        raise ValueError(f"mode {mode!r} is outside 0000-0777")
    return value


def dir_mode(file_mode: int) -> int:
    """A folder's mode for a file mode: the same bits, plus x wherever r is set
    (0664 -> 0775, 0640 -> 0750, 0600 -> 0700), so readable folders can be entered."""
    return file_mode | ((file_mode & 0o444) >> 2)


def resolve_group(group: str) -> int | None:
    """The gid of `group` (a name, or a number); None (warned once) when unknown."""
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        pass
    if group.isdigit():
        return int(group)
    _warn_once(f"group:{group}", "output_group %r does not exist; group left unchanged", group)
    return None


def apply_output_permissions(
    paths: Iterable[Path], mode: str | None, group: str | None, *, recursive: bool = False
) -> int:
    """Give published files and folders the spool's mode and group.

    `mode` applies to files; folders get `dir_mode(mode)`. `group` is set with
    chown(-1, gid). With `recursive`, everything below each given folder too.
    Symlinks are never followed or changed (a job cannot hold one, but a person could
    add one to a published folder).

    Returns how many paths could not be fully updated. A PermissionError (a daemon
    that is not root may only chgrp to its own groups, and only its own files) or a
    vanished path is logged, never raised.
    """
    if mode is None and group is None:
        return 0
    fmode = parse_mode(mode) if mode is not None else None
    gid = resolve_group(group) if group is not None else None
    failures = 0
    for top in paths:
        for path in _walk(top) if recursive else [top]:
            if not _apply_one(path, fmode, gid, group):
                failures += 1
    return failures


def _walk(top: Path) -> list[Path]:
    """`top` and, if it is a real folder, everything below it (no symlink followed)."""
    out = [top]
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    out.append(Path(entry.path))
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
        except NotADirectoryError:
            continue
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot list %s to set permissions: %s", folder, exc.strerror)
    return out


def _apply_one(path: Path, fmode: int | None, gid: int | None, group: str | None) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        return True
    ok = True
    if gid is not None and st.st_gid != gid:
        try:
            os.chown(path, -1, gid, follow_symlinks=False)
        except PermissionError:
            ok = False
            _warn_once(
                f"chgrp:{group}",
                "cannot give results to group %r (the daemon's user must own the files "
                "and belong to the group); left unchanged",
                group,
            )
        except OSError as exc:
            ok = False
            log.warning("cannot change the group of %s: %s", path, exc.strerror)
    if fmode is not None:
        want = dir_mode(fmode) if stat.S_ISDIR(st.st_mode) else fmode
        # Keep setuid/setgid/sticky bits off results; only the permission bits count.
        if stat.S_IMODE(st.st_mode) != want:
            try:
                os.chmod(path, want)
            except PermissionError:
                ok = False
                _warn_once("chmod", "cannot set output_mode on results the daemon does not own")
            except OSError as exc:
                ok = False
                log.warning("cannot set the mode of %s: %s", path, exc.strerror)
    return ok


# --------------------------------------------------------------------------- flat out/


def _split_name(name: str) -> tuple[str, str]:
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    return name[:dot], name[dot:]


def _candidates(name: str, taken: set[str]) -> Iterable[str]:
    """STEM-1.EXT, STEM-2.EXT ... skipping names known to be taken."""
    stem, ext = _split_name(name)
    n = 1
    while True:
        cand = f"{stem}-{n}{ext}"
        if cand not in taken:
            yield cand
        n += 1


def _same_file(a: os.stat_result, b: Path) -> bool:
    try:
        st = os.lstat(b)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (a.st_dev, a.st_ino)


def link_flat_output(out_dir: Path, artifact_paths: list[Path]) -> list[Path]:
    """Hard-link each artifact into `out_dir` as STEM.EXT (STEM-1.EXT, STEM-2.EXT ... when
    taken) and return the out/ paths, in the order of `artifact_paths`.

    Names are claimed with link(2) / rename-noreplace, which fail atomically when the
    name exists, so two daemons never overwrite each other's (or a person's) files.
    Calling it again for the same artifacts finds the existing links (same inode) and
    makes no new ones. Where hard links are refused (EXDEV, EPERM, EMLINK, ENOTSUP),
    the artifact is copied (temporary name, then rename): such copies are not found
    again by `unlink_flat_outputs`. An artifact that cannot be placed at all is logged
    and left out of the result; it never raises for a single artifact.
    Cost: one link(2) when the name is free; on a collision, one listing of out/.
    """
    created: list[Path] = []
    for src in artifact_paths:
        try:
            src_st = os.stat(src)
            dest = _link_one(src, src_st, out_dir)
        except OSError as exc:
            log.warning("flat output: cannot place %s in %s: %s", src.name, out_dir, exc)
            continue
        created.append(dest)
    return created


def _link_one(src: Path, src_st: os.stat_result, out_dir: Path) -> Path:
    name = src.name
    dest = out_dir / name
    try:
        _place(src, dest)
        return dest
    except FileExistsError:
        if _same_file(src_st, dest):
            return dest  # linked by an earlier call
    taken = _list_names(out_dir)
    stem, ext = _split_name(name)
    numbered = re.compile(rf"{re.escape(stem)}-[1-9][0-9]*{re.escape(ext)}")
    for other in taken:
        if numbered.fullmatch(other) and _same_file(src_st, out_dir / other):
            return out_dir / other
    for cand in _candidates(name, taken):
        dest = out_dir / cand
        try:
            _place(src, dest)
            return dest
        except FileExistsError:
            continue  # taken since we listed: try the next number
    raise AssertionError("unreachable")


def _list_names(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def _place(src: Path, dest: Path) -> None:
    """link(2) `src` as `dest`, falling back to a copy; FileExistsError if `dest` exists."""
    try:
        os.link(src, dest, follow_symlinks=False)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
    if os.path.lexists(dest):
        raise FileExistsError(errno.EEXIST, "exists", str(dest))
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
    try:
        shutil.copyfile(src, tmp)
        shutil.copymode(src, tmp)
        rename_noreplace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def unlink_flat_outputs(out_dir: Path, artifact_paths: Iterable[Path]) -> list[Path]:
    """Remove the out/ entries that are hard links of the given artifacts (same inode),
    before those artifacts are deleted (retention). Returns the removed paths.

    An inode still linked from somewhere else (a later job that reused this result by
    hard link, so its own out/ link is the same inode) is left alone: its out/ entries
    go when the last job folder holding it is removed. Only the top level of out/ is
    looked at, and copies made where links were refused are not recognised.
    Pass all the artifacts of a purge at once: out/ is listed once per call.
    """
    inodes: dict[tuple[int, int], tuple[int, set[str]]] = {}
    for p in artifact_paths:
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        key = (st.st_dev, st.st_ino)
        _nlink, seen = inodes.setdefault(key, (st.st_nlink, set()))
        seen.add(os.path.abspath(p))
    if not inodes:
        return []
    matches: dict[tuple[int, int], list[Path]] = {}
    try:
        with os.scandir(out_dir) as it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key in inodes and stat.S_ISREG(st.st_mode):
                    matches.setdefault(key, []).append(Path(entry.path))
    except FileNotFoundError:
        return []
    removed: list[Path] = []
    for key, outs in matches.items():
        nlink, seen = inodes[key]
        if nlink > len(seen) + len(outs):
            continue  # still part of another job's result
        for path in outs:
            try:
                os.unlink(path)
                removed.append(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot remove %s: %s", path, exc.strerror)
    return removed


# --------------------------------------------------------------------------- ERROR.txt

# What went wrong, in words for someone who only dropped a file on a share.
PLAIN_WORDS: dict[ErrorCode, str] = {
    ErrorCode.INPUT_UNSUPPORTED: "This kind of file cannot be converted here.",
    ErrorCode.INPUT_INVALID: "What was dropped is not in a form that can be used: "
    "a file or a setting in it is wrong.",
    ErrorCode.INPUT_TOO_LARGE: "The document is larger than this folder accepts.",
    ErrorCode.RESOURCE_INVALID: "The images, styles or fonts that came with the document "
    "(resources/ or resources.zip) could not be used safely.",
    ErrorCode.DUPLICATE: "This exact document was converted before, and this folder is "
    "set to refuse repeats.",
    ErrorCode.CONVERSION_FAILED: "The converter could not turn the document into the "
    "requested format.",
    ErrorCode.TIMEOUT: "The conversion took longer than the time allowed and was stopped.",
    ErrorCode.CANCELLED: "The job was cancelled on request before it finished.",
    ErrorCode.WORKER_LOST: "The program converting the document stopped unexpectedly, "
    "more times than allowed.",
    ErrorCode.RESOURCE_LIMIT: "The conversion needed more memory, processor time or "
    "output space than one job may use.",
    ErrorCode.IO_ERROR: "A disk or network error got in the way of reading or writing the files.",
    ErrorCode.DISK_FULL: "The disk holding this folder ran out of space.",
    ErrorCode.INTERNAL_ERROR: "Something went wrong inside the conversion service itself; "
    "this is not necessarily a problem with your document.",
    ErrorCode.DEPENDENCY_FAILED: "This job was to run after another job, and that job "
    "failed or was cancelled.",
}

_MAX_NAME = 200
_MAX_MESSAGE = 2000


def _plain(text: str, limit: int, *, newlines: bool) -> str:
    """Printable text only: a hostile entry name must not forge lines in ERROR.txt."""
    keep = "\n\t" if newlines else ""
    out = "".join(c if (c.isprintable() or c in keep) else "?" for c in text).strip()
    return out if len(out) <= limit else out[: limit - 1] + "…"


def _sentence(text: str) -> str:
    return text if not text or text[-1] in ".!?…)" else text + "."


def error_text(status: str, name: str, code: str, message: str, hint: str) -> str:
    """ERROR.txt for a failed or cancelled job: what went wrong in plain words, the
    message, what to do, then "(error code: X; details in manifest.json)".

    `status` is "failed" or "cancelled" (a JobStatus works too); an unknown `code` gets
    a generic sentence. Control characters in `name` and `message` are replaced.
    """
    shown = _plain(name, _MAX_NAME, newlines=False) or "The job"
    cancelled = str(status) == "cancelled"
    head = f"{shown} was cancelled." if cancelled else f"{shown} could not be converted."
    try:
        plain = PLAIN_WORDS[ErrorCode(code)]
    except ValueError:
        plain = "The job did not finish."
    lines = [f"{head} {plain}", ""]
    msg = _plain(message, _MAX_MESSAGE, newlines=True)
    if msg:
        lines += [f"What happened: {_sentence(msg)}", ""]
    todo = _plain(hint, _MAX_MESSAGE, newlines=True)
    if todo:
        lines += [f"What to do: {_sentence(todo)}", ""]
    lines.append(f"(error code: {_plain(code, 64, newlines=False)}; details in manifest.json)")
    return "\n".join(lines) + "\n"
