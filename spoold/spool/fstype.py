"""Which filesystem holds a spool, and whether inotify can see other hosts' writes there.

inotify reports only changes made through this kernel's VFS. On network and FUSE
filesystems a file created by another client (another NFS host, another FUSE mount of
the same folder, the Samba server's other users) raises no event here, so the daemon
must poll. The answer comes from statfs(2)'s f_type (a magic number that no mount
option can disguise), with /proc/self/mountinfo's type name as the fallback where
statfs is unavailable or the magic is unknown.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# f_type magic numbers (linux/magic.h and the filesystems' own headers) of filesystems
# where writes by other clients are invisible to inotify.
REMOTE_MAGIC: dict[int, str] = {
    0x6969: "nfs",
    0x517B: "smb",
    0xFF534D42: "cifs",
    0xFE534D42: "smb2",
    0x65735546: "fuse",  # bindfs, sshfs, GlusterFS, s3fs, rclone, virtiofs
    0x00C36400: "ceph",
    0x01021997: "9p",
    0x5346414F: "afs",
    0x6B414653: "afs",  # kAFS
    0x73757245: "coda",
    0x564C: "ncp",
    0x0BD00BD0: "lustre",
    0x47504653: "gpfs",
    0x19830326: "beegfs",
    0x01161970: "gfs2",
    0x7461636F: "ocfs2",
    0x786F4256: "vboxsf",
    0x20030528: "orangefs",
}

# mountinfo type names of the same families (the part before any "." as in fuse.sshfs).
REMOTE_NAMES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "smb2",
        "fuse",
        "fuseblk",
        "ceph",
        "9p",
        "afs",
        "coda",
        "ncpfs",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "gfs2",
        "ocfs2",
        "davfs",
        "sshfs",
        "vboxsf",
        "virtiofs",
        "orangefs",
    }
)

# struct statfs is at most 120 bytes on every Linux ABI; f_type is its first field.
_STATFS_SIZE = 256
_libc: Any = None


@dataclass(frozen=True)
class FsType:
    """What spoold knows about the filesystem holding a path."""

    name: str  # "nfs", "fuse", "ext4", ... ("unknown" when neither source answers)
    magic: int | None  # statfs f_type, None where statfs failed
    remote: bool  # other hosts' writes are invisible to inotify: poll

    def describe(self) -> str:
        magic = f" (f_type 0x{self.magic:x})" if self.magic is not None else ""
        mode = "polling: inotify cannot see other clients' writes" if self.remote else "inotify"
        return f"{self.name}{magic}: {mode}"


def libc() -> Any:
    """The C library, loaded once, with errno kept (statfs, syncfs, renameat2)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return _libc


def statfs_magic(path: Path) -> int | None:
    """statfs(2)'s f_type for `path`, or None where the call is unavailable or fails."""
    buf = ctypes.create_string_buffer(_STATFS_SIZE)
    if libc().statfs(os.fsencode(path), buf) != 0:
        return None
    # f_type is a signed long (__fsword_t): read unsigned 32 bits, as the magics are.
    return ctypes.c_ulong.from_buffer(buf).value & 0xFFFFFFFF


def mountinfo_type(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str:
    """The type name of the mount holding `path` ("fuse.sshfs", "nfs4"), or "unknown"."""
    real = os.path.realpath(path)
    best, fstype = "", "unknown"
    try:
        lines = mountinfo.read_text(encoding="utf-8").splitlines()
    except OSError:
        return fstype
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount_point = fields[4].replace("\\040", " ")
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, fstype = mount_point, right.split()[0]
    return fstype


def name_is_remote(fstype: str) -> bool:
    base = fstype.split(".")[0]
    return base in REMOTE_NAMES or base.startswith("fuse")


def filesystem_of(path: Path) -> FsType:
    """The filesystem holding `path`: statfs magic first, mountinfo name second."""
    magic = statfs_magic(path)
    name = mountinfo_type(path)
    if magic is not None and magic in REMOTE_MAGIC:
        return FsType(name if name != "unknown" else REMOTE_MAGIC[magic], magic, True)
    return FsType(name, magic, name_is_remote(name))


def needs_polling(path: Path) -> bool:
    """True where inotify cannot see every write to `path` (network and FUSE mounts)."""
    return filesystem_of(path).remote
