"""GlusterFS volumes on this machine: emulated hosts on a real distributed filesystem.

tests/hosts.py gives each emulated host its own FUSE mount of the spool. With bindfs
that mount is a passthrough of a local folder; here it is a GlusterFS client
(`mount -t glusterfs`) of a volume served by this machine's glusterd, as a host in a
GlusterFS cluster would mount it. A volume is either one brick (distribute) or two
bricks holding the same files (replica 2), each brick a folder under the test's base
folder served by its own brick process (glusterfsd). Killing a brick process is a
storage server failing; `gluster volume start VOL force` brings it back, and the
self-heal daemon then copies what it missed from the other brick.

What differs from bindfs, as between real hosts: flock *is* shared between the mounts
(GlusterFS's locks translator), and attributes and entries are cached by the client for
a second (FUSE's defaults), with GlusterFS's own caches (md-cache, quick-read) on top.

Needs root, /dev/fuse and Debian's glusterfs-server and glusterfs-client (glusterd,
glusterfsd, the gluster CLI, mount.glusterfs). glusterd is started when it is not
running (there is no systemd here to start it) and left running afterwards, like the
system service it is: other test processes may be using it. Volumes, their mounts and
their brick processes are removed when a test ends, however it ends.

Bricks are named by this machine's host name: glusterd refuses the literal names
`localhost` and `127.0.0.1`, and wants `force` for bricks on the root filesystem.

Used by tests/test_hosts.py; needs no pytest.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from .hosts import is_mounted, unmount, wait_until

# In CI (.ci/run) a missing GlusterFS fails the tests that need it instead of skipping.
REQUIRE_ENV = "SPOOLD_REQUIRE_GLUSTERFS"
VOLUME_PREFIX = "spoold-t"  # test volumes; stale ones (bricks gone) are removed
CLI_TIMEOUT_S = 120.0
HEAL_CRAWL_S = 10  # cluster.heal-timeout of a replica volume (see `volume`)
# glusterd serialises volume operations cluster-wide: another test process's create or
# stop makes ours fail at once with one of these, and it is worth trying again.
BUSY = ("Another transaction is in progress", "Locking failed", "locking failed")

_serial = itertools.count()


class GlusterError(RuntimeError):
    """A gluster command failed; the message holds the command and what it printed."""


def gluster(*args: str, timeout: float = CLI_TIMEOUT_S) -> str:
    """Run `gluster --mode=script ARGS` (no prompts); its stdout, or GlusterError."""
    cmd = ["gluster", "--mode=script", *args]
    deadline = time.monotonic() + timeout
    while True:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        output = res.stdout + res.stderr
        if res.returncode == 0 and "<opRet>-1</opRet>" not in res.stdout:
            return res.stdout
        if not any(b in output for b in BUSY) or time.monotonic() > deadline:
            raise GlusterError(f"{' '.join(cmd)}: exit {res.returncode}: {output.strip()}")
        time.sleep(0.5)  # a retry pace, not a wait for a condition


def gluster_xml(*args: str) -> ET.Element:
    """`gluster --xml ARGS`, parsed."""
    return ET.fromstring(gluster("--xml", *args))


# ------------------------------------------------------------------ glusterd


def glusterd_answers() -> bool:
    try:
        subprocess.run(
            ["gluster", "--mode=script", "pool", "list"],
            capture_output=True,
            timeout=30,
            check=True,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False
    return True


def ensure_glusterd() -> None:
    """Start glusterd unless it answers already; it stays running after the tests."""
    if glusterd_answers():
        return
    glusterd = shutil.which("glusterd") or "/usr/sbin/glusterd"
    subprocess.run([glusterd, "-p", "/run/glusterd.pid"], check=True, capture_output=True)
    wait_until(glusterd_answers, 60, "glusterd to answer `gluster pool list`")


def brick_host() -> str:
    """The name bricks are served under: this host, by a name glusterd accepts."""
    return socket.gethostname()


@cache
def gluster_unavailable() -> str | None:
    """Why GlusterFS volumes cannot be made and mounted here (None when they can)."""
    if os.geteuid() != 0:
        return "GlusterFS volumes need root (glusterd, brick processes, mount -t glusterfs)"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse: FUSE is not available (a container without the device?)"
    missing = [
        prog
        for prog in ("gluster", "glusterd", "glusterfsd", "mount.glusterfs")
        if shutil.which(prog, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None
    ]
    if missing:
        return (
            f"GlusterFS is not installed ({', '.join(missing)} missing): "
            "apt-get install glusterfs-server glusterfs-client"
        )
    try:
        socket.getaddrinfo(brick_host(), None)
    except OSError as exc:
        return f"this host's name {brick_host()!r} does not resolve ({exc}); glusterd needs it"
    probe = Path(f"/tmp/spoold-gluster-probe-{os.getpid()}")
    try:
        ensure_glusterd()
        remove_stale_volumes()
        with volume(probe, replica=1) as vol:
            mnt = probe / "mnt"
            vol.mount(mnt)
            (mnt / "probe").write_text("x")
    except (GlusterError, OSError, subprocess.SubprocessError, AssertionError) as exc:
        return f"cannot make and mount a GlusterFS volume here: {exc}"
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return None


def remove_stale_volumes() -> None:
    """Stop and delete test volumes whose bricks are gone (a test process killed hard)."""
    info = gluster_xml("volume", "info")
    for vol in info.iter("volume"):
        name = vol.findtext("name") or ""
        if not name.startswith(VOLUME_PREFIX):
            continue
        bricks = [(b.text or "").split(":", 1)[-1] for b in vol.iter("brick")]
        if bricks and not any(os.path.isdir(b) for b in bricks):
            _stop_and_delete(name)


def _stop_and_delete(name: str) -> None:
    try:
        gluster("volume", "stop", name, "force")
    except GlusterError:
        pass  # not started (or already stopped): delete it anyway
    gluster("volume", "delete", name)


# ------------------------------------------------------------------ volumes


class Volume:
    """A started GlusterFS volume of this machine, its bricks and its client mounts."""

    kind = "glusterfs"

    def __init__(self, name: str, bricks: list[Path], logs: Path) -> None:
        self.name = name
        self.bricks = bricks
        self.logs = logs
        self.mounts: list[Path] = []

    def __repr__(self) -> str:
        return f"Volume({self.name!r}, {len(self.bricks)} brick(s))"

    def mount(self, mountpoint: Path) -> None:
        """A GlusterFS client of the volume at `mountpoint` (its log beside the tests')."""
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.mounts.append(mountpoint)
        log = self.logs / f"client-{mountpoint.name}.log"
        source = f"{brick_host()}:/{self.name}"
        subprocess.run(
            ["mount", "-t", "glusterfs", "-o", f"log-file={log}", source, str(mountpoint)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_until(lambda: is_mounted(mountpoint), 30, f"GlusterFS mount on {mountpoint}")

    def _status(self) -> dict[str, int | None]:
        """Brick path -> pid of its running brick process (None when it is down)."""
        out: dict[str, int | None] = {}
        for node in gluster_xml("volume", "status", self.name).iter("node"):
            path = node.findtext("path") or ""
            if path in {str(b) for b in self.bricks}:
                online = node.findtext("status") == "1"
                out[path] = int(node.findtext("pid") or 0) if online else None
        return out

    def brick_pid(self, index: int) -> int | None:
        return self._status().get(str(self.bricks[index]))

    def bricks_online(self) -> bool:
        status = self._status()
        return len(status) == len(self.bricks) and all(status.values())

    def kill_brick(self, index: int, pid: int | None = None) -> float:
        """SIGKILL brick `index`'s process (`pid`, when looked up beforehand with
        brick_pid, so the kill is not delayed by the look-up): a storage server failing.
        Returns the wall time of the kill."""
        pid = pid or self.brick_pid(index)
        if pid is None:
            raise GlusterError(f"brick {self.bricks[index]} of {self.name} is not running")
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        # Gone from /proc too: glusterd takes a zombie (a brick not yet reaped by PID 1,
        # which can take a second or two in a container) for a running brick, and
        # `volume start force` would then leave it down.
        wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 60, f"brick {index} reaped")
        wait_until(lambda: self.brick_pid(index) is None, 60, f"brick {index} to be down")
        return killed_at

    def restart_bricks(self) -> None:
        """Start the bricks that are down (`gluster volume start VOL force`)."""
        gluster("volume", "start", self.name, "force")
        wait_until(self.bricks_online, 60, f"every brick of {self.name} online")

    def pending_heals(self) -> dict[str, int | None]:
        """Brick -> entries waiting to be healed (None: the brick is not connected)."""
        out: dict[str, int | None] = {}
        for brick in gluster_xml("volume", "heal", self.name, "info").iter("brick"):
            count = brick.findtext("numberOfEntries") or "-"
            connected = brick.findtext("status") == "Connected"
            out[brick.findtext("name") or ""] = (
                int(count) if connected and count.isdigit() else None
            )
        return out

    def healed(self) -> bool:
        pending = self.pending_heals()
        return len(pending) == len(self.bricks) and all(n == 0 for n in pending.values())

    def wait_healed(self, timeout: float = 300) -> float:
        """Ask for an index heal, then wait until no brick has anything left to heal.
        Returns how long that took, in seconds."""
        start = time.monotonic()
        try:
            gluster("volume", "heal", self.name)
        except GlusterError:
            pass  # refused while the self-heal daemon reconnects; it heals on its own
        wait_until(self.healed, timeout, f"self-heal of {self.name}")
        return time.monotonic() - start


def brick_tree(brick: Path, folder: str) -> dict[str, int]:
    """Files under `folder` of one brick and their sizes (read-only, beside GlusterFS)."""
    root = brick / folder
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def parked_after_heal(vol: Volume, folder: str, timeout: float = 60) -> int:
    """Wait until the killed brick (0) holds `folder` as brick 1 does; how many files
    GlusterFS's self-heal left parked instead, which are allowed.

    A job folder renamed from running/ into done/ while brick 0 was down is a directory
    rename to heal. GlusterFS 10 parks the old directory in the brick's hidden
    .glusterfs-anonymous-inode-* folder and is meant to move it to its new name; when it
    heals the new name first, it can leave the files parked while `heal info` shows
    nothing to heal (gluster/glusterfs issue 1211, "two directories with same gfid").
    The files are then on brick 0, under another name: counted, not a spoold failure.
    A file missing from brick 0 altogether raises AssertionError.
    """
    deadline = time.monotonic() + timeout
    while True:
        healed, healthy = brick_tree(vol.bricks[0], folder), brick_tree(vol.bricks[1], folder)
        differ = sorted(
            k for k in healed.keys() | healthy.keys() if healed.get(k) != healthy.get(k)
        )
        if not differ or time.monotonic() > deadline:
            break
        vol.wait_healed()  # asks for a heal again
        time.sleep(1)  # a retry pace for the self-heal daemon's crawl, not a wait
    parked = {
        (str(Path(*p.relative_to(anon).parts[1:])), p.stat().st_size)
        for anon in vol.bricks[0].glob(".glusterfs-anonymous-inode-*")
        for p in anon.rglob("*")
        if p.is_file()
    }
    lost = [
        k
        for k in differ
        if k in healthy and (str(Path(*Path(k).parts[1:])), healthy[k]) not in parked
    ]
    assert not lost, f"brick 0 lacks files after the heal: {lost}"
    assert not [k for k in differ if k not in healthy], f"brick 0 has more: {differ}"
    return len(differ)


@contextmanager
def volume(base: Path, replica: int = 1) -> Iterator[Volume]:
    """A started volume with bricks under base/bricks: one brick, or `replica` copies.

    Afterwards (also after a failure) its mounts are unmounted and the volume is
    stopped (which ends its brick processes) and deleted; the brick folders stay
    under `base` for the test's own cleanup.
    """
    ensure_glusterd()
    name = f"{VOLUME_PREFIX}{os.getpid()}-{next(_serial)}-{secrets.token_hex(2)}"
    bricks = [base / "bricks" / f"{name}-b{i}" for i in range(max(replica, 1))]
    for brick in bricks:
        brick.mkdir(parents=True)
    logs = base / "gluster-logs"
    logs.mkdir(parents=True, exist_ok=True)
    layout = ["replica", str(replica)] if replica > 1 else []
    gluster("volume", "create", name, *layout, *(f"{brick_host()}:{b}" for b in bricks), "force")
    vol = Volume(name, bricks, logs)
    try:
        if replica > 1:
            # The self-heal daemon retries what it could not heal (an entry it met while
            # the volume was busy) at its next crawl: every 600 s by default, longer than
            # a test waits for the heal.
            gluster("volume", "set", name, "cluster.heal-timeout", str(HEAL_CRAWL_S))
        gluster("volume", "start", name)
        wait_until(vol.bricks_online, 60, f"bricks of {name} online")
        yield vol
    finally:
        for mountpoint in vol.mounts:
            unmount(mountpoint)
        _stop_and_delete(name)
