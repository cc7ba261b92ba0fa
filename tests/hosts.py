"""Several emulated hosts on one machine, each seeing the spool through its own FUSE mount.

Each host is a real `spoold run` process with its own --host-id, looking at the spool
through its own bindfs mount of one folder. Between two FUSE mounts, as between two NFS
clients of one export:

- inotify on one mount sees nothing written through another (the daemon must poll:
  it picks polling by itself, statfs says "fuse", so no --detect flag is given);
- renameat2(RENAME_NOREPLACE) fails with EINVAL (spoold falls back to check + rename);
- flock is not shared (a lock taken through one mount is free through the other);
- attributes and lookups are cached for a second (FUSE's entry and attr timeouts),
  and the page cache is dropped on open: close-to-open consistency, as on NFS.

A host's wall clock is moved by tests/skewclock/sitecustomize.py: time.time(),
time.time_ns() and datetime.now() of the daemon, its forkserver and its workers are
shifted, time.monotonic() and file times are not (as on a host without NTP against its
file server). That reaches every wall-clock read, not only spoold.spool.clock.wall_time()
(whose own test seam, SPOOLD_TEST_CLOCK_SKEW_S, is for in-process tests). libfaketime
was tried first: it makes Python's time.sleep fail with EINVAL (or hang, with the
monotonic clock faked too).

The shared storage is a local folder each host sees through bindfs (BindfsFolder), or a
GlusterFS volume each host mounts with its own GlusterFS client (tests/gluster.py).

Used by tests/test_hosts.py and bench/bench_hosts_soak.py; needs no pytest.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from spoold.settings import spool_toml
from spoold.spool.protocol import init_spool

from .conftest import session_pids, wait_for

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_ENV = {
    "PYTHONPATH": str(ROOT / "tests" / "plugins"),
    "SPOOLD_PLUGINS": "spoold_test_plugins",
}
SKEW_SHIM = ROOT / "tests" / "skewclock"
HARNESS_SKEW_ENV = "SPOOLD_HARNESS_CLOCK_SKEW_S"


def wait_until(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `cond` until truthy; AssertionError after `timeout` s (a hang bound only)."""
    return wait_for(cond, timeout, what)


# ------------------------------------------------------------------ FUSE mounts


def is_mounted(mountpoint: Path) -> bool:
    target = os.path.realpath(mountpoint)
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        return any(line.split()[1] == target for line in fh)


def bindfs_mount(source: Path, mountpoint: Path) -> None:
    mountpoint.mkdir(parents=True, exist_ok=True)
    # --no-allow-other: only root (us) uses it; multithreaded as an NFS client would be.
    subprocess.run(
        ["bindfs", "--no-allow-other", str(source), str(mountpoint)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    wait_until(lambda: is_mounted(mountpoint), 30, f"bindfs mount on {mountpoint}")


def unmount(mountpoint: Path) -> None:
    """Unmount, lazily if something still holds the mount; never raises."""
    if not is_mounted(mountpoint):
        return
    candidates = (["fusermount", "-u", "-q"], ["fusermount3", "-u", "-q"], ["umount"])
    for cmd in (*candidates, ["umount", "-l"]):
        if shutil.which(cmd[0]) is None:
            continue
        subprocess.run([*cmd, str(mountpoint)], capture_output=True, timeout=30)
        if not is_mounted(mountpoint):
            return


@cache
def fuse_unavailable() -> str | None:
    """Why emulated hosts cannot run here (None when they can)."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse: FUSE is not available (a container without the device?)"
    if shutil.which("bindfs") is None:
        return "bindfs is not installed (apt-get install bindfs)"
    probe = Path(f"/tmp/spoold-fuse-probe-{os.getpid()}")
    (probe / "src").mkdir(parents=True, exist_ok=True)
    try:
        bindfs_mount(probe / "src", probe / "mnt")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return f"bindfs cannot mount here: {detail.decode(errors='replace').strip() or exc}"
    finally:
        unmount(probe / "mnt")
    shutil.rmtree(probe, ignore_errors=True)
    return None


class SharedStorage(Protocol):
    """Where the spool lives; each host mounts it at a mount point of its own."""

    kind: str  # "bindfs", "glusterfs"

    def mount(self, mountpoint: Path) -> None: ...


class BindfsFolder:
    """A local folder, seen by each host through its own bindfs mount."""

    kind = "bindfs"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __repr__(self) -> str:
        return f"BindfsFolder({str(self.folder)!r})"

    def mount(self, mountpoint: Path) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        bindfs_mount(self.folder, mountpoint)


def skew_env(skew_s: float) -> dict[str, str]:
    """Environment that runs a Python process with its wall clock `skew_s` seconds off."""
    path = [str(SKEW_SHIM), PLUGIN_ENV["PYTHONPATH"]]
    return {"PYTHONPATH": os.pathsep.join(path), HARNESS_SKEW_ENV: str(skew_s)}


# ------------------------------------------------------------------ hosts


class Host:
    """One emulated host: a FUSE mount of the shared storage and a daemon using it."""

    def __init__(
        self, name: str, storage: SharedStorage, mountpoint: Path, logs: Path, workers: int = 2
    ) -> None:
        self.name = name
        self.storage = storage
        self.mountpoint = mountpoint
        self.logs = logs
        self.workers = workers
        self.skew_s = 0.0
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.log_path = logs / f"{name}-0.log"

    @property
    def spool(self) -> Path:
        """The spool as this host sees it (through its own mount)."""
        return self.mountpoint

    def mount(self) -> None:
        self.storage.mount(self.mountpoint)

    def start(self) -> Host:
        self.runs += 1
        self.log_path = self.logs / f"{self.name}-{self.runs}.log"
        env = {**os.environ, **PLUGIN_ENV, **skew_env(self.skew_s)}
        cmd = [sys.executable, "-m", "spoold", "run", str(self.spool)]
        cmd += ["--workers", str(self.workers), "--host-id", self.name]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.logs.glob(f"{self.name}-*.log"))
        )

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(
            lambda: "daemon.started" in self.log_path.read_text(errors="replace"),
            timeout,
            f"{self.name} started",
        )

    def _signal_all(self, sig: int) -> None:
        # The daemon, its forkserver and its workers: a host freezes or dies as a whole.
        for pid in session_pids(self.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        if self.proc is None:
            return
        self._signal_all(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def freeze(self) -> None:
        self._signal_all(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_all(signal.SIGCONT)

    def stop(self, timeout: float = 60) -> int | None:
        if not self.alive():
            return self.proc.returncode if self.proc else None
        assert self.proc is not None
        self.thaw()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


@contextmanager
def cluster(
    base: Path,
    count: int,
    settings: dict[str, Any],
    workers: int = 2,
    storage: SharedStorage | None = None,
) -> Iterator[list[Host]]:
    """`count` hosts sharing one spool, each mounting `storage` (default: base/shared
    through bindfs) at base/hostN; the spool is made through host1's mount. Daemons are
    killed and mounts removed afterwards."""
    storage = storage or BindfsFolder(base / "shared")
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    hosts = [
        Host(f"host{i}", storage, base / f"host{i}", logs, workers) for i in range(1, count + 1)
    ]
    try:
        for host in hosts:
            host.mount()
        init_spool(hosts[0].spool)
        (hosts[0].spool / "spool.toml").write_text(spool_toml(settings))
        yield hosts
    finally:
        for host in hosts:
            if host.proc is not None:
                host.thaw()
                host.kill()
        for host in hosts:
            unmount(host.mountpoint)
