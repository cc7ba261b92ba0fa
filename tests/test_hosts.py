"""Several hosts on one spool, each daemon through its own FUSE mount (tests/hosts.py).

Each scenario checks what a user of the spool sees: every job published exactly once,
nothing left behind, no claim taken from a host that was alive, no daemon stuck in an
error loop. The scenarios run on two kinds of shared storage: a local folder each host
sees through bindfs, and a GlusterFS volume each host mounts with its own GlusterFS
client (tests/gluster.py). A last test runs two hosts on a replica-2 GlusterFS volume
and kills one of its two brick processes mid-run.

Without bindfs or GlusterFS here, the tests that need them are skipped with the reason;
in CI (.ci/run sets SPOOLD_REQUIRE_GLUSTERFS) a missing GlusterFS fails them instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import select
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from spoold.spool.clock import new_job_id
from spoold.spool.eventfiles import log_files, read_events
from spoold.spool.fstype import filesystem_of

from . import gluster
from .hosts import BindfsFolder, Host, SharedStorage, cluster, fuse_unavailable, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.mounts]

MOUNT_KINDS = ["bindfs", "glusterfs"]


def require_glusterfs() -> None:
    """Skip without GlusterFS here; fail instead where SPOOLD_REQUIRE_GLUSTERFS is set."""
    reason = gluster.gluster_unavailable()
    if reason is None:
        return
    if os.environ.get(gluster.REQUIRE_ENV):
        pytest.fail(f"GlusterFS is required here ({gluster.REQUIRE_ENV} is set): {reason}")
    pytest.skip(f"{reason} (CI runs these: {gluster.REQUIRE_ENV}=1)")


@pytest.fixture(params=MOUNT_KINDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharedStorage]:
    """The spool's shared storage: a bindfs-mounted folder or a GlusterFS volume."""
    if request.param == "bindfs":
        reason = fuse_unavailable()
        if reason is not None:
            pytest.skip(reason)
        yield BindfsFolder(tmp_path / "shared")
    else:
        require_glusterfs()
        with gluster.volume(tmp_path) as vol:
            yield vol


LEASE_TTL_S = 3.0
SETTINGS: dict[str, Any] = {
    "settle_ms": 200,
    "poll_interval_ms": 100,
    "scan_interval_s": 1.0,
    "lease_ttl_s": LEASE_TTL_S,
    "backoff_initial_s": 0.2,
    "backoff_max_s": 1.0,
    "targets": ["html"],
    "drain_s": 10,
    "min_free_mb": 0,
    "max_attempts": 5,
}


def events(spool: Path) -> list[dict[str, Any]]:
    """Every host's events, merged (each daemon writes a file of its own)."""
    return list(read_events(spool / ".spoold" / "events.ndjson"))


def of(spool: Path, event: str, host: str | None = None) -> list[dict[str, Any]]:
    return [e for e in events(spool) if e["event"] == event and (host is None or e["host"] == host)]


def submit(spool: Path, name: str, content: str) -> None:
    """Stage in tmp/, rename into inbox/: the protocol tools use."""
    tmp = spool / "tmp" / f".{name}.part"
    tmp.write_text(content)
    tmp.rename(spool / "inbox" / name)


def published_inputs(spool: Path) -> Counter[str]:
    """How many times each input name was published into done/ or failed/."""
    names: Counter[str] = Counter()
    for state in ("done", "failed"):
        for folder in (spool / state).iterdir():
            manifest = folder / "manifest.json"
            if manifest.exists():
                names[json.loads(manifest.read_text())["input"]["name"]] += 1
    return names


def all_published(spool: Path, names: list[str]) -> bool:
    try:
        return set(published_inputs(spool)) >= set(names)
    except OSError as exc:
        # GlusterFS: a job folder renamed into done/ while this mount held a cached
        # lookup of a file in it (the daemon on this mount read it) gives ESTALE once.
        if exc.errno != errno.ESTALE:
            raise
        return False


def where_jobs_are(spool: Path, names: list[str]) -> dict[str, list[str]]:
    """Each name not yet published, and the spool folders holding an entry of it."""
    missing = set(names) - set(published_inputs(spool))
    found: dict[str, list[str]] = {n: [] for n in sorted(missing)}
    for state in ("inbox", "running", "done", "failed"):
        for entry in (spool / state).iterdir():
            for name in missing:
                if name in entry.name or (entry / name).exists():
                    found[name].append(f"{state}/{entry.name}")
    return found


def wait_published(spool: Path, names: list[str], hosts: list[Host], timeout: float) -> None:
    """Wait until every name is published; on timeout say where the rest are."""
    try:
        wait_until(lambda: all_published(spool, names), timeout, "every job published")
    except AssertionError:
        logs = "\n".join(f"--- {h.name}\n{h.log()[-6000:]}" for h in hosts)
        raise AssertionError(
            f"not published: {where_jobs_are(spool, names)}\n"
            f"last events: {events(spool)[-30:]}\n"
            f"{logs}"
        ) from None


def assert_each_published_once(spool: Path, names: list[str]) -> None:
    counts = published_inputs(spool)
    assert {n: counts[n] for n in names} == dict.fromkeys(names, 1)
    assert not list((spool / "running").iterdir()), "claims left in running/"
    assert not [p for p in (spool / "inbox").iterdir() if not p.name.startswith(".")]
    assert not [p for p in (spool / "failed").iterdir()], "a job failed"


def assert_no_error_loop(host: Host) -> None:
    log = host.log()
    assert log.count("internal error") < 3, f"{host.name} repeats an internal error:\n{log}"


def started_by(spool: Path, host: str) -> set[str]:
    return {e["job_id"] for e in of(spool, "job.started", host)}


def inotify_names(fd: int) -> list[str]:
    """Names in the inotify events queued on `fd` (struct inotify_event records)."""
    data, names = os.read(fd, 65536), []
    while data:
        _wd, _mask, _cookie, size = struct.unpack_from("iIII", data)
        names.append(data[16 : 16 + size].rstrip(b"\0").decode())
        data = data[16 + size :]
    return names


# Whether a flock taken through one mount holds through another: bindfs keeps locks in
# each mount's kernel, GlusterFS shares them through its servers (as NFS does with
# its default locking). spoold relies on neither across hosts.
FLOCK_SHARED = {"bindfs": False, "glusterfs": True}


def test_each_mount_behaves_like_a_separate_nfs_client(
    tmp_path: Path, storage: SharedStorage
) -> None:
    """What the scenarios rely on: the emulation is as blind as real hosts are."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    with cluster(tmp_path, 2, SETTINGS, storage=storage) as (h1, h2):
        fs = filesystem_of(h1.spool)
        assert fs.remote  # the daemon polls without --detect
        assert fs.name == {"bindfs": "fuse", "glusterfs": "fuse.glusterfs"}[storage.kind]
        src, dst = os.fsencode(h1.spool / "tmp" / "a"), os.fsencode(h1.spool / "tmp" / "b")
        (h1.spool / "tmp" / "a").write_text("x")
        assert libc.renameat2(-100, src, -100, dst, 1) == -1  # RENAME_NOREPLACE
        assert ctypes.get_errno() == errno.EINVAL
        with open(h1.spool / "tmp" / "a", "rb") as held, open(h2.spool / "tmp" / "a", "rb") as seen:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                fcntl.flock(seen, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shared = False
            except BlockingIOError:
                shared = True
            assert shared is FLOCK_SHARED[storage.kind]
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            assert libc.inotify_add_watch(fd, os.fsencode(h2.spool / "inbox"), 0x100) >= 0
            (h1.spool / "inbox" / "from-host1").write_text("x")  # IN_CREATE elsewhere
            (h2.spool / "inbox" / "from-host2").write_text("x")  # and through this mount
            select.select([fd], [], [], 30)
            assert inotify_names(fd) == ["from-host2"]
        finally:
            os.close(fd)


def test_a_dead_hosts_claims_are_run_again_by_another_host(
    tmp_path: Path, storage: SharedStorage
) -> None:
    with cluster(tmp_path, 2, SETTINGS, storage=storage) as (h1, h2):
        h1.start().wait_ready()
        names = [f"doc{i}.slow" for i in range(4)]
        for name in names[:2]:
            submit(h1.spool, name, "5")  # long enough to be held when the host dies
        wait_until(lambda: len(started_by(h1.spool, "host1")) == 2, 60, "host1 converting")
        h1.kill()
        h2.start().wait_ready()
        for name in names[2:]:
            submit(h2.spool, name, "0.2")
        wait_until(lambda: all_published(h2.spool, names), 120, "every job published")
        recovered = of(h2.spool, "job.recovered", "host2")
        assert {e["job_id"] for e in recovered} == started_by(h2.spool, "host1")
        assert_each_published_once(h2.spool, names)
        assert_no_error_loop(h2)


def test_files_named_with_their_id_across_hosts(tmp_path: Path, storage: SharedStorage) -> None:
    """report.ID.md (protocol.md "Job ids") dropped through both mounts, with two hosts
    claiming: each job keeps the id its name chose; a copy of one, dropped through the
    other mount, is refused by the id registry on the shared volume."""
    with cluster(tmp_path, 2, SETTINGS, storage=storage) as (h1, h2):
        h1.start().wait_ready()
        h2.start().wait_ready()
        ids = {f"doc{i}.md": new_job_id() for i in range(8)}
        for n, (name, job_id) in enumerate(ids.items()):
            host = h1 if n % 2 else h2
            submit(host.spool, f"{name[:-3]}.{job_id}.md", f"# {name}\n")
        wait_until(lambda: all_published(h1.spool, list(ids)), 120, "every job published")
        assert_each_published_once(h1.spool, list(ids))
        for name, job_id in ids.items():
            folder = h2.spool / "done" / f"{name[:-3]}.{job_id}"
            assert json.loads((folder / "manifest.json").read_text())["name"] == name
        copy_id = ids["doc0.md"]
        submit(h2.spool, f"again.{copy_id}.md", "# again\n")
        wait_until(lambda: all_published(h1.spool, ["again.md"]), 120, "the copy ended")
        failed = [
            json.loads((f / "manifest.json").read_text()) for f in (h1.spool / "failed").iterdir()
        ]
        assert [(m["name"], m["error"]["code"]) for m in failed] == [("again.md", "input_invalid")]
        assert failed[0]["job_id"] != copy_id
        assert f"the file name's id: {copy_id} is already" in failed[0]["error"]["message"]
        assert_no_error_loop(h1)
        assert_no_error_loop(h2)


def test_a_frozen_host_is_fenced_then_recovers_on_its_own(
    tmp_path: Path, storage: SharedStorage
) -> None:
    with cluster(tmp_path, 2, SETTINGS, storage=storage) as (h1, h2):
        h1.start().wait_ready()
        names = [f"held{i}.gate" for i in range(2)]
        gate = tmp_path / "gate"  # the jobs convert until the test opens it
        for name in names:
            submit(h1.spool, name, str(gate))
        wait_until(lambda: len(started_by(h1.spool, "host1")) == 2, 60, "host1 converting")
        h2.start().wait_ready()
        h1.freeze()
        frozen_jobs = started_by(h1.spool, "host1")
        wait_until(
            lambda: {e["job_id"] for e in of(h2.spool, "job.recovered", "host2")} >= frozen_jobs,
            120,
            "host2 to recover the frozen host's claims",
        )
        gate.touch()
        wait_until(lambda: all_published(h2.spool, names), 120, "host2 to publish them")
        h1.thaw()
        # The thawed host's late results are fenced; it says so and re-registers.
        wait_until(lambda: of(h1.spool, "daemon.lease_lost", "host1"), 60, "lease_lost event")
        h2.stop()
        later = [f"after{i}.slow" for i in range(2)]
        for name in later:
            submit(h1.spool, name, "0.2")
        wait_until(lambda: all_published(h1.spool, names + later), 120, "host1 working again")
        assert_each_published_once(h1.spool, names + later)
        assert len(of(h1.spool, "daemon.lease_lost", "host1")) == 1
        assert_no_error_loop(h1)


def test_hosts_with_skewed_clocks_take_no_claims_from_each_other(
    tmp_path: Path, storage: SharedStorage
) -> None:
    with cluster(tmp_path, 2, SETTINGS, storage=storage) as (h1, h2):
        h1.skew_s, h2.skew_s = 120.0, -120.0
        h1.start().wait_ready()
        h2.start().wait_ready()
        names = [f"skew{i}.slow" for i in range(8)]
        for i, name in enumerate(names):
            # A lease and more: each claim is held across several recovery passes.
            submit((h1, h2)[i % 2].spool, name, str(LEASE_TTL_S * 1.5))
        wait_until(lambda: all_published(h1.spool, names), 180, "every job published")
        assert of(h1.spool, "job.recovered") == [], "a claim was taken from a live host"
        assert_each_published_once(h1.spool, names)
        assert_no_error_loop(h1)
        assert_no_error_loop(h2)


def test_a_dead_skewed_hosts_events_merge_before_their_recovery(
    tmp_path: Path, storage: SharedStorage
) -> None:
    """Each host writes its own events file; readers merge them by the spool's clock,
    so a recovery comes after the claim it recovers even when the recovering host's
    clock is four minutes behind the dead one's."""
    with cluster(tmp_path, 2, SETTINGS, storage=storage) as (h1, h2):
        h1.skew_s, h2.skew_s = 120.0, -120.0
        h1.start().wait_ready()
        names = [f"held{i}.slow" for i in range(2)]
        for name in names:
            submit(h1.spool, name, "5")
        wait_until(lambda: len(started_by(h1.spool, "host1")) == 2, 60, "host1 converting")
        h1.kill()
        h2.start().wait_ready()
        wait_until(lambda: all_published(h2.spool, names), 120, "every job published")
        assert h2.stop() == 0
        log = events(h2.spool)
        claims = {e["job_id"]: e for e in log if e["event"] == "job.claimed" and e["attempt"] == 1}
        recoveries = [e for e in log if e["event"] == "job.recovered"]
        assert {e["job_id"] for e in recoveries} == set(claims) and len(claims) == 2
        for rec in recoveries:
            claim = claims[rec["job_id"]]
            assert rec["ts"] < claim["ts"], "on the hosts' own clocks it looks the other way"
            assert log.index(claim) < log.index(rec)
        check = subprocess.run(
            [sys.executable, "-m", "spoold", "check-events", "--strict", str(h2.spool)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr


# ------------------------------------------------------------------ a brick failure

REPLICA_JOBS = 200


def done_count(spool: Path) -> int:
    """Job folders published into done/ (each appears there by one rename)."""
    return sum(1 for p in (spool / "done").iterdir() if not p.name.startswith("."))


def wall(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def done_manifests(spool: Path) -> list[dict[str, Any]]:
    return [json.loads((f / "manifest.json").read_text()) for f in (spool / "done").iterdir()]


def torn_lines(spool: Path) -> int:
    """Lines of the events log's files that are not one whole JSON object."""
    torn = 0
    for path in log_files(spool / ".spoold" / "events.ndjson"):
        for line in path.read_bytes().splitlines():
            try:
                json.loads(line)
            except ValueError:
                torn += 1
    return torn


def error_lines(host: Host) -> list[str]:
    return [ln for ln in host.log().splitlines() if " ERROR " in ln or "Traceback" in ln]


def document(i: int) -> str:
    return f"# Document {i}\n\nA paragraph of *text* for document {i}.\n"


@pytest.mark.timeout(480)  # a hang shows where the jobs are (wait_published) first
def test_a_replica_2_volume_loses_no_job_when_a_brick_dies_mid_run(tmp_path: Path) -> None:
    """Two hosts on a replica-2 volume. One brick process is killed once a third of the
    jobs are done; the last third is submitted while it is down; it is restarted once
    two thirds are done, and healed. Every job ends exactly once."""
    require_glusterfs()
    names = [f"doc{i:03d}.md" for i in range(REPLICA_JOBS)]
    split = 2 * REPLICA_JOBS // 3
    with (
        gluster.volume(tmp_path, replica=2) as vol,
        cluster(tmp_path, 2, SETTINGS, storage=vol) as hosts,
    ):
        spool = hosts[0].spool
        for host in hosts:
            host.start()
        for host in hosts:
            host.wait_ready()
        for i, name in enumerate(names[:split]):
            submit(hosts[i % 2].spool, name, document(i))
        brick_pid = vol.brick_pid(0)
        wait_until(lambda: done_count(spool) >= REPLICA_JOBS // 3, 300, "a third of the jobs")
        killed_at = vol.kill_brick(0, brick_pid)
        for i, name in enumerate(names[split:], start=split):  # onto one brick only
            submit(hosts[i % 2].spool, name, document(i))
        wait_until(lambda: done_count(spool) >= split, 300, "two thirds done on one brick")
        vol.restart_bricks()
        restarted_at = time.time()
        wait_published(spool, names, hosts, 240)
        heal_s = vol.wait_healed()
        for host in hosts:
            assert host.stop() == 0, f"{host.name} did not stop cleanly:\n{host.log()}"
        vol.wait_healed()  # the daemons' last writes too

        assert_each_published_once(spool, names)
        for host in hosts:
            assert error_lines(host) == [], f"{host.name} logged errors:\n{host.log()}"
        # No job has two outcomes or a result from a fenced attempt, and no line is
        # missing: each host writes a file of its own (spool/eventfiles.py).
        check = subprocess.run(
            [sys.executable, "-m", "spoold", "check-events", "--strict", str(spool)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        manifests = done_manifests(spool)
        torn = torn_lines(spool)
        # The brick that was down holds every result again, as the other one does.
        parked = gluster.parked_after_heal(vol, "done")

    finished = sorted(wall(m["attempts"][-1]["finished_at"]) for m in manifests)
    after_kill = [t for t in finished if t > killed_at]
    figures = {
        "jobs": REPLICA_JOBS,
        "brick kills": 1,
        "jobs done before the kill": len(finished) - len(after_kill),
        "jobs retried": sum(1 for m in manifests if len(m["attempts"]) > 1),
        "brick death to the next job done": f"{after_kill[0] - killed_at:.2f} s",
        "brick down": f"{restarted_at - killed_at:.1f} s",
        "brick restart to the last job done": f"{finished[-1] - restarted_at:.1f} s",
        "then self-heal": f"{heal_s:.1f} s",
        "result files GlusterFS's heal left parked": parked,
        "torn lines in the events log": torn,
        "check-events": check.stdout.splitlines()[0],
    }
    print(
        "\nreplica 2, 2 hosts, a brick killed:", "; ".join(f"{k} {v}" for k, v in figures.items())
    )


# ------------------------------------------------------------------ the events log

# Each writer is an EventLog as a daemon has one (spoold/spool/eventlog.py). O_APPEND is
# not atomic between GlusterFS clients (each FUSE client appends at the file size it
# last saw), so the writers must not share a file: each writes its own, readers merge.
APPENDER = """
import sys
from pathlib import Path
from spoold.spool.eventlog import EventLog
from spoold.spool.events import JobDetected
spool, host, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
sys.stdin.read(1)  # both writers start together
log = EventLog(spool / ".spoold" / "events.ndjson", host)
for i in range(count):
    log.emit(JobDetected(job_id=f"{host}-{i}", name=f"{host}-{i}.md", route=None, ino=i))
log.close()
"""
APPENDS = 2000


def test_two_glusterfs_clients_append_events_without_losing_lines(tmp_path: Path) -> None:
    require_glusterfs()
    with gluster.volume(tmp_path) as vol:
        mounts = [tmp_path / "host1", tmp_path / "host2"]
        for mountpoint in mounts:
            vol.mount(mountpoint)
        (mounts[0] / ".spoold").mkdir()
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", APPENDER, str(m), m.name, str(APPENDS)],
                stdin=subprocess.PIPE,
            )
            for m in mounts
        ]
        for writer in writers:
            assert writer.stdin is not None
            writer.stdin.write(b"g")
            writer.stdin.close()
        for writer in writers:
            assert writer.wait(timeout=120) == 0
        # Read through the other host's mount: every line of both writers, whole, each
        # writer's in its own order.
        torn = torn_lines(mounts[1])
        seen = events(mounts[1])
        assert (len(seen), torn) == (2 * APPENDS, 0), f"{torn} of {len(seen)} lines torn"
        for host in ("host1", "host2"):
            ids = [e["job_id"] for e in seen if e["host"] == host]
            assert ids == [f"{host}-{i}" for i in range(APPENDS)]
