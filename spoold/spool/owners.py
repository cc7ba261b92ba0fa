"""Who may cancel whose job on a shared folder (SPEC section 3).

A cancel marker is honoured only when its file's owner is the owner of the job's
dropped entry, root, or a member of the spool's `admin_group`. The job's owner is the
uid of the dropped entry (rename keeps it), kept in the daemon's state.

Caveat: on filesystems that squash or map owners (NFS root_squash / all_squash, SMB
mounts with a fixed uid=), every file may look like one user's; then the check cannot
tell people apart, and `spoold doctor` is the place to warn about it.
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
    """The uid owning `path` itself (lstat: a symlink's own owner, never its target's)."""
    return os.lstat(path).st_uid


def _group_gid(group: str) -> int | None:
    """The gid of a group given by name (or, failing that, by number); None if unknown."""
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        pass
    if group.isdigit():
        try:
            return grp.getgrgid(int(group)).gr_gid
        except (KeyError, OverflowError):
            pass
    if group not in _warned:
        _warned.add(group)
        log.warning("admin_group %r does not exist; nobody is an admin", group)
    return None


def in_group(uid: int, group: str) -> bool:
    """Whether `uid` belongs to `group`: its primary group, a listed member, or any
    supplementary group the system's user database (NSS: files, LDAP, sssd) reports.

    An unknown group or an unknown uid is never a member (the former logged once).
    """
    gid = _group_gid(group)
    if gid is None:
        return False
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return False
    if pw.pw_gid == gid:
        return True
    try:
        if pw.pw_name in grp.getgrgid(gid).gr_mem:
            return True
    except KeyError:
        pass
    try:
        # Directory services often leave gr_mem empty unless enumeration is on.
        return gid in os.getgrouplist(pw.pw_name, pw.pw_gid)
    except OSError:
        return False


def marker_allowed(marker_uid: int, job_owner_uid: int, admin_group: str | None) -> bool:
    """Whether a cancel marker owned by `marker_uid` may cancel a job owned by
    `job_owner_uid`: the same user, root (uid 0), or a member of `admin_group`.

    Looks the group up on every call (so membership changes apply without a restart);
    that is a few NSS lookups per marker, and only for markers from someone else.
    """
    if marker_uid in (job_owner_uid, 0):
        return True
    return bool(admin_group) and in_group(marker_uid, admin_group or "")
