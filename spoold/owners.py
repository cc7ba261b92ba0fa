"""Who may cancel whose job on a shared folder.

A cancel marker is honoured only when its file's owner is the owner of the job's
dropped entry, root, or a member of the spool's `admin_group`. The job's owner is the
uid of the dropped entry (rename keeps it), kept in the daemon's state.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
from pathlib import Path

log = logging.getLogger(__name__)
_warned: set[str] = set()


def file_owner(path: Path) -> int:
    return os.lstat(path).st_uid


def in_group(uid: int, group: str) -> bool:
    """Whether `uid` belongs to `group` (as a listed member or by its primary group)."""
    try:
        gr = grp.getgrnam(group)
    except KeyError:
        if group not in _warned:
            _warned.add(group)
            log.warning("admin_group %r does not exist; nobody is an admin", group)
        return False
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return False
    return pw.pw_gid == gr.gr_gid or pw.pw_name in gr.gr_mem


def marker_allowed(marker_uid: int, job_owner_uid: int, admin_group: str | None) -> bool:
    if marker_uid in (job_owner_uid, 0):
        return True
    return admin_group is not None and in_group(marker_uid, admin_group)
