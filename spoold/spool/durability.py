"""Making several writes durable at once: one syncfs(2) where that is honest and cheap,
an fsync(2) of each file and folder otherwise.

A published job needs its artifacts, ERROR.txt, manifest and its folder's entries on
disk before the publish rename, and done/ and running/ after it (docs/protocol.md,
"How a step is made durable"). One fsync each costs a device flush; on a 2-core VM's disk that is
0.2-0.9 ms, three to five of them a tiny job. syncfs writes every dirty page and inode of
the filesystem and then flushes once, so the same guarantee costs one flush per step.

Caveats, which decide when syncfs is used:

- It syncs the whole filesystem: somebody else's 2 GB of unwritten data is written too
  before it returns. So it is used only while the kernel holds little dirty data in all
  (`DIRTY_LIMIT_KB`, from /proc/meminfo); above that each path is fsynced, which waits
  for those paths alone.
- Only local filesystems whose sync_fs writes and flushes everything (ext2/3/4, XFS,
  Btrfs, F2FS; tmpfs has nothing to flush). A FUSE mount (GlusterFS) passes syncfs to
  its server only if that server implements it, and NFS has no sync_fs of its own: there
  each path is fsynced, as before.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Iterable
from pathlib import Path

from .fstype import libc, statfs_magic

# statfs f_type of filesystems whose syncfs writes back every inode and flushes the device.
SYNCFS_MAGIC = {
    0xEF53: "ext2/3/4",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0xF2F52010: "f2fs",
    0x01021994: "tmpfs",
}
# Dirty plus under-writeback memory above which a syncfs could wait on other writers;
# read again at most every DIRTY_EVERY_S (the kernel builds /proc/meminfo whole: 50 us).
# 32 MB was too low: a run of 2,000 tiny jobs and the deletions after it leave 25-35 MB
# for half a minute (the kernel writes back after 30 s), and the fsyncs of each path
# then halved the rate (docs/performance.md). 128 MB takes a syncfs about a second on a
# 100 MB/s disk, once: about what the fsyncs of a pass of jobs cost there.
DIRTY_LIMIT_KB = 128 * 1024
DIRTY_EVERY_S = 0.1

_capable: dict[int, bool] = {}  # st_dev -> syncfs is honest there
_dirty: tuple[float, int] = (float("-inf"), 0)  # (monotonic time, kB) of the last reading


def syncfs_capable(path: Path | str) -> bool:
    """Whether one syncfs makes writes under `path` durable (the filesystem's type)."""
    return _capable_dev(os.stat(path).st_dev, path)


def _capable_dev(dev: int, path: Path | str) -> bool:
    known = _capable.get(dev)
    if known is None:
        known = _capable[dev] = statfs_magic(Path(path)) in SYNCFS_MAGIC
    return known


def dirty_kb(meminfo: str = "/proc/meminfo") -> int:
    """Kilobytes of the page cache waiting to be written (Dirty + Writeback); a large
    number where /proc is unreadable, so that the caller fsyncs."""
    try:
        with open(meminfo, "rb") as fh:
            text = fh.read()
    except OSError:
        return 1 << 40
    total = 0
    for line in text.splitlines():
        if line.startswith((b"Dirty:", b"Writeback:")):
            total += int(line.split()[1])
    return total


def _recent_dirty_kb() -> int:
    global _dirty
    now = time.monotonic()
    if now - _dirty[0] >= DIRTY_EVERY_S:
        _dirty = (now, dirty_kb())
    return _dirty[1]


def make_durable(files: Iterable[Path] = (), folders: Iterable[Path] = ()) -> None:
    """Return once what was written to `files` and to the entries of `folders` is on
    stable storage. OSError (an I/O error) is raised."""
    files, folders = list(files), list(folders)
    devices: dict[int, Path] = {}
    for path in folders + files:
        devices.setdefault(os.stat(path).st_dev, path)
    if not devices:
        return
    capable = all(_capable_dev(dev, path) for dev, path in devices.items())
    if capable and _recent_dirty_kb() < DIRTY_LIMIT_KB:
        for anchor in devices.values():
            _syncfs(anchor)
        return
    for path in files:
        fsync_file(path)
    for path in folders:
        fsync_dir(path)


def _syncfs(anchor: Path) -> None:
    fd = os.open(anchor, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc().syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(anchor))
    finally:
        os.close(fd)


def fsync_file(path: Path | str) -> None:
    _fsync(path, os.O_RDONLY)


def fsync_dir(path: Path | str) -> None:
    _fsync(path, os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: Path | str, flags: int) -> None:
    fd = os.open(path, flags | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
