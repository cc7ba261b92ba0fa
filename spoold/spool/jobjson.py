"""A job folder's job.json as one read saw it: the parsed object and the file's stamp.

The daemon reads a job folder's job.json once, when the folder is ready: admission takes
its priority, `after` and chosen `id` from it, the claim its `id` and `submitted_by`,
the intake its options. Between those steps an lstat compares the file with the stamp
of that read (inode, size, mtime, ctime: a write, a replacement or a new folder of the
same name changes one of them, and ctime cannot be set back), and only a file that
changed is read again. Just before the claim the comparison keeps the id as fresh as a
read would; just after it (the folder is the daemon's now) it makes the parse as good as
a read of the claimed folder (docs/protocol.md, "Job ids"; docs/performance.md).

Read with O_NOFOLLOW after an lstat: a symlink, FIFO, device or socket is never opened.
A job.json that is not a regular file, is over 1 MiB or is not a JSON object has no
`JobJson` here (None): the intake reads it again after the claim and fails the job,
naming the problem.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .entries import JOB_FILE

JOB_FILE_CAP = 1024 * 1024  # a bigger job.json is refused by the intake, not looked into

Stamp = tuple[int, int, int, int]  # st_ino, st_size, st_mtime_ns, st_ctime_ns


def _stamp(st: os.stat_result) -> Stamp:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class JobJson:
    """What a read of a job folder's job.json found: `data` None when there is none."""

    data: dict[str, Any] | None
    stamp: Stamp | None  # of the file read; None: no job.json

    def is_current(self, folder: Path | str) -> bool:
        """Whether the folder's job.json is still the one read (one lstat)."""
        try:
            st = os.lstat(os.path.join(folder, JOB_FILE))
        except FileNotFoundError:
            return self.stamp is None
        except OSError:
            return False
        return self.stamp is not None and _stamp(st) == self.stamp


NO_JOB_FILE = JobJson(None, None)


def read_job_json(folder: Path | str) -> JobJson | None:
    """A job folder's job.json (NO_JOB_FILE when absent); None when it cannot be used."""
    path = os.path.join(folder, JOB_FILE)
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > JOB_FILE_CAP:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return NO_JOB_FILE
    except OSError:
        return None
    try:
        st = os.fstat(fd)  # the file read (replaced since the lstat: this one's stamp)
        raw = _read_capped(fd, st.st_size) if stat.S_ISREG(st.st_mode) else None
    except OSError:
        return None
    finally:
        os.close(fd)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:  # UnicodeDecodeError included
        return None
    return JobJson(data, _stamp(st)) if isinstance(data, dict) else None


def _read_capped(fd: int, size: int) -> bytes | None:
    """The file's bytes (None past the cap): one read of its size, and more only for a
    file that grew since the fstat (its stamp then differs: it is read again later)."""
    data = os.read(fd, size + 1)
    if len(data) <= size:
        return data
    chunks = [data]
    total = len(data)
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
        total += len(chunk)
        if total > JOB_FILE_CAP:
            return None
    return b"".join(chunks)
