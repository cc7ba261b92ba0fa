"""Filesystem detection: where inotify cannot see other hosts' writes, poll."""

from __future__ import annotations

from pathlib import Path

import pytest

from spoold.spool.fstype import (
    REMOTE_MAGIC,
    filesystem_of,
    mountinfo_type,
    name_is_remote,
    statfs_magic,
)

from .hosts import bindfs_mount, fuse_unavailable, unmount

MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 22 0:35 / /srv/spool rw,relatime - nfs4 server:/export rw,vers=4.2
41 40 0:36 / /srv/spool/scans rw - fuse.sshfs me@host:/scans rw
42 22 0:37 / /mnt/my\\040share rw - cifs //nas/share rw
43 22 0:38 / /srv/spoolx rw - tmpfs tmpfs rw
"""


@pytest.fixture
def mountinfo(tmp_path: Path) -> Path:
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTINFO)
    return path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/srv/spool/inbox", "nfs4"),
        ("/srv/spool/scans/inbox", "fuse.sshfs"),  # the longest mount point wins
        ("/mnt/my share/x", "cifs"),
        ("/srv/spoolx/inbox", "tmpfs"),  # a prefix of the name is not a parent
        ("/home/me", "ext4"),
    ],
)
def test_mountinfo_names_the_mount_holding_a_path(
    mountinfo: Path, path: str, expected: str
) -> None:
    assert mountinfo_type(Path(path), mountinfo) == expected


@pytest.mark.parametrize(
    ("name", "remote"),
    [
        ("nfs4", True),
        ("cifs", True),
        ("smb3", True),
        ("ceph", True),
        ("fuse.sshfs", True),
        ("fuse.glusterfs", True),
        ("9p", True),
        ("ext4", False),
        ("xfs", False),
        ("tmpfs", False),
        ("overlay", False),
    ],
)
def test_network_and_fuse_types_need_polling(name: str, remote: bool) -> None:
    assert name_is_remote(name) is remote


def test_a_local_folder_uses_inotify(tmp_path: Path) -> None:
    fs = filesystem_of(tmp_path)
    assert fs.magic is not None and fs.magic not in REMOTE_MAGIC
    assert not fs.remote
    assert "inotify" in fs.describe()


@pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))
def test_a_fuse_mount_is_recognised_by_its_statfs_magic(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    try:
        bindfs_mount(tmp_path / "src", tmp_path / "mnt")
        assert statfs_magic(tmp_path / "mnt") == 0x65735546
        fs = filesystem_of(tmp_path / "mnt")
        assert fs.remote and fs.name.startswith("fuse")
        assert "polling" in fs.describe()
    finally:
        unmount(tmp_path / "mnt")
