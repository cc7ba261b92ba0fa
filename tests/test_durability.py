"""Durable publishing at a flush a step (spool/durability.py), shared by the jobs of a
pass (daemon/publisher.py GroupCommit), the worker leaving its artifact's fsync to that
step, and duplicate records that are links, not new files."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from spoold.convert import load_converters
from spoold.daemon import publisher
from spoold.daemon.publisher import GroupCommit, PendingPublish
from spoold.spool import dedup, durability
from spoold.spool.dedup import find_earlier, record_result
from spoold.spool.protocol import MANIFEST, init_spool, job_dir_name
from spoold.worker.run import run_job
from spoold.worker.spec import JobSpec


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every syncfs and fsync made, with the path (syncfs: its anchor) or fd's target."""
    seen: list[tuple[str, str]] = []
    real_fsync, real_syncfs = os.fsync, durability._syncfs

    def fsync(fd: int) -> None:
        seen.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def syncfs(anchor: Path) -> None:
        seen.append(("syncfs", str(anchor)))
        real_syncfs(anchor)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(durability, "_syncfs", syncfs)
    monkeypatch.setattr(durability, "_dirty", (float("-inf"), 0))
    return seen


def _files(folder: Path, n: int) -> list[Path]:
    folder.mkdir()
    out = []
    for i in range(n):
        (folder / f"f{i}").write_bytes(b"x" * 100)
        out.append(folder / f"f{i}")
    return out


def _capable(monkeypatch: pytest.MonkeyPatch, path: Path, value: bool) -> None:
    monkeypatch.setitem(durability._capable, os.stat(path).st_dev, value)


def test_one_syncfs_makes_every_file_and_folder_of_a_local_filesystem_durable(
    tmp_path: Path, calls: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _capable(monkeypatch, tmp_path, True)
    monkeypatch.setattr(durability, "dirty_kb", lambda: 0)
    files = _files(tmp_path / "job", 3)
    durability.make_durable(files, [tmp_path / "job", tmp_path])
    assert [kind for kind, _ in calls] == ["syncfs"], calls


@pytest.mark.parametrize(
    ("capable", "dirty_kb"),
    [
        # A syncfs would wait for somebody else's gigabytes: fsync waits for ours alone.
        (True, durability.DIRTY_LIMIT_KB),
        # FUSE (GlusterFS) and NFS: syncfs may not reach the server's disks.
        (False, 0),
    ],
)
def test_otherwise_each_file_then_each_folder_is_fsynced(
    tmp_path: Path,
    calls: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capable: bool,
    dirty_kb: int,
) -> None:
    _capable(monkeypatch, tmp_path, capable)
    monkeypatch.setattr(durability, "dirty_kb", lambda: dirty_kb)
    files = _files(tmp_path / "job", 2)
    durability.make_durable(files, [tmp_path / "job"])
    assert calls == [("fsync", str(f)) for f in files] + [("fsync", str(tmp_path / "job"))]


def test_the_real_filesystem_answers_and_a_real_syncfs_returns(tmp_path: Path) -> None:
    magic = durability.statfs_magic(tmp_path)
    assert durability.syncfs_capable(tmp_path) is (magic in durability.SYNCFS_MAGIC)
    durability._syncfs(tmp_path)  # raises OSError on failure
    assert durability.dirty_kb() >= 0


def test_dirty_memory_is_read_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 100 kB\nDirty:   1200 kB\nWriteback:  34 kB\nFoo: 9 kB\n")
    assert durability.dirty_kb(str(meminfo)) == 1234
    assert durability.dirty_kb(str(tmp_path / "missing")) >= durability.DIRTY_LIMIT_KB


def _spec(spool: Path, name: str, *, sync_artifacts: bool, targets: tuple[str, ...]) -> JobSpec:
    folder = spool / "running" / f"{name}.a1.tok"
    (folder / "input").mkdir(parents=True)
    main = folder / "input" / f"{name}.md"
    main.write_text(f"# {name}\n\nSome text.\n")
    return JobSpec(
        job_id="20261207T190000Z-0123456789",
        attempt=1,
        folder=str(folder),
        job_root=str(folder / "input"),
        main=str(main),
        source_type="md",
        targets=targets,
        stem=name,
        sync_artifacts=sync_artifacts,
        done_dir=str(spool / "done"),
    )


@pytest.mark.parametrize(
    ("sync_artifacts", "targets", "synced"),
    [
        (True, ("html",), True),  # the spool cannot sync them all at once
        (False, ("html",), False),  # the daemon's publish makes it durable
        (False, ("html", "docx"), True),  # its record could outlive it: resumed wrongly
    ],
)
def test_the_worker_fsyncs_an_artifact_only_when_the_publish_does_not(
    tmp_path: Path,
    calls: list[tuple[str, str]],
    sync_artifacts: bool,
    targets: tuple[str, ...],
    synced: bool,
) -> None:
    load_converters()
    spool = tmp_path / "spool"
    init_spool(spool)
    spec = _spec(spool, "note", sync_artifacts=sync_artifacts, targets=targets)
    result = run_job(spec)
    assert result.error is None, result.error
    html = str(Path(spec.folder) / "note.html")
    parts = [p for kind, p in calls if kind == "fsync" and p.endswith(".note.html.part")]
    assert Path(html).read_text().startswith("<!DOCTYPE html>")
    assert bool(parts) is synced, calls


def _published(spool: Path, name: str, job_id: str) -> tuple[Path, str]:
    jobdir = job_dir_name(name, job_id)
    folder = spool / "done" / jobdir
    folder.mkdir()
    manifest = {"job_id": job_id, "name": name, "status": "succeeded"}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder, jobdir


def test_a_duplicate_record_is_a_link_to_the_manifest_not_a_new_file(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    paths = init_spool(spool)
    dedup_dir = paths.state / "dedup"
    first, first_dir = _published(spool, "report.md", "20261207T190000Z-00000000aa")
    record_result(dedup_dir, "key", first, first_dir)
    record = dedup.dedup_record(dedup_dir, "key")
    assert os.stat(record).st_ino == os.stat(first / MANIFEST).st_ino
    assert find_earlier(dedup_dir, paths.done, "key") == ("20261207T190000Z-00000000aa", first)
    # A later job of the same key replaces it; nothing is left beside the record.
    second, second_dir = _published(spool, "again.md", "20261207T190001Z-00000000bb")
    record_result(dedup_dir, "key", second, second_dir)
    assert find_earlier(dedup_dir, paths.done, "key") == ("20261207T190001Z-00000000bb", second)
    assert os.listdir(dedup_dir) == [record.name]
    # Purged by retention: the record's manifest lives on, but the job is not found.
    (second / MANIFEST).unlink()
    second.rmdir()
    assert find_earlier(dedup_dir, paths.done, "key") is None


def test_where_links_are_refused_the_record_holds_the_folder_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool"
    paths = init_spool(spool)
    dedup_dir = paths.state / "dedup"
    folder, jobdir = _published(spool, "report.md", "20261207T190000Z-00000000cc")

    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    record_result(dedup_dir, "key", folder, jobdir)
    assert dedup.dedup_record(dedup_dir, "key").read_text() == jobdir  # the old format
    assert find_earlier(dedup_dir, paths.done, "key") == ("20261207T190000Z-00000000cc", folder)


def _pending(folder: Path, log: list[str]) -> PendingPublish:
    folder.mkdir()
    (folder / MANIFEST).write_text("{}")
    return PendingPublish(
        files=[folder / MANIFEST],
        folder=folder,
        rename=lambda: log.append(f"rename {folder.name}"),
        lost=lambda: log.append(f"lost {folder.name}"),
        failed=lambda exc: log.append(f"failed {folder.name}: {exc.strerror}"),
    )


def test_the_jobs_of_one_pass_share_one_sync_before_their_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[str] = []

    def make_durable(files: list[Path] = [], folders: list[Path] = []) -> None:  # noqa: B006
        log.append(f"sync {sorted(p.parent.name for p in files)} {sorted(p.name for p in folders)}")

    monkeypatch.setattr(publisher, "make_durable", make_durable)
    group = GroupCommit()
    for name in ("a", "b", "c"):
        group.pending.append(_pending(tmp_path / name, log))
    group.folders.add(tmp_path / "done")
    group.reports.append(lambda: log.append("report"))
    group.commit()
    assert log == [
        "sync ['a', 'b', 'c'] ['a', 'b', 'c']",  # every job's files, once, before any rename
        "rename a",
        "rename b",
        "rename c",
        "sync [] ['done']",  # the folders renamed into, before any report
        "report",
    ]


def test_a_file_that_cannot_be_synced_fails_its_own_job_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[str] = []

    def make_durable(files: list[Path] = [], folders: list[Path] = []) -> None:  # noqa: B006
        if any(p.parent.name == "b" for p in files):
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(publisher, "make_durable", make_durable)
    group = GroupCommit()
    for name in ("a", "b", "c"):
        group.pending.append(_pending(tmp_path / name, log))
    group.commit()
    assert log == ["rename a", "failed b: Input/output error", "rename c"]


def test_a_job_whose_folder_is_gone_is_lost_and_the_others_are_published(
    tmp_path: Path,
) -> None:
    """Another daemon recovered one claim between its files' write and the group's sync
    (seen on GlusterFS after a brick came back): that job lost its claim, and only it."""
    log: list[str] = []
    group = GroupCommit()
    for name in ("a", "b", "c"):
        group.pending.append(_pending(tmp_path / name, log))
    shutil.rmtree(tmp_path / "b")
    group.commit()  # the real sync: the shared one fails on b, then each job alone
    assert log == ["rename a", "lost b", "rename c"]
