"""Job ids chosen before the claim (job.json `id`, docs/protocol.md "Job ids"), with
real daemons: the id is the job's from the first look to the manifest; a bad or used
id fails the job naming the key; `submitted_by` reaches the manifest."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spoold.spool import ids as idreg
from spoold.spool.clock import new_job_id
from spoold.spool.ids import find_holder, registered_folder, reserve_job_id
from spoold.spool.protocol import init_spool

from .conftest import PLUGIN_ENV, DaemonProc, cli, events, stage_file, validate_manifest, wait_for


def drop_folder(spool: Path, name: str, job: dict[str, Any], text: str = "# Hi\n") -> Path:
    """A job folder staged in tmp/ and renamed into inbox/ (the protocol's way)."""
    staged = spool / "tmp" / f".{name}.{os.getpid()}"
    staged.mkdir()
    (staged / name).write_text(text)
    (staged / "job.json").write_text(json.dumps({"main": name, **job}))
    dest = spool / "inbox" / name
    os.rename(staged, dest)
    return dest


def finished(spool: Path, job_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for state in ("done", "failed"):
            for p in (spool / state).glob(f"*.{job_id}"):
                if (p / "manifest.json").exists():
                    return dict(json.loads((p / "manifest.json").read_text()))
        return None

    found: dict[str, Any] = wait_for(find, what=f"job {job_id} published")
    return found


def first_job_done(
    make_spool: Callable[..., Path], daemon_factory: Callable[..., DaemonProc]
) -> tuple[Path, str]:
    """A spool with a daemon and one finished job, `first.md`, that chose its id."""
    spool = make_spool()
    job_id = new_job_id()
    daemon_factory(spool)
    drop_folder(spool, "first.md", {"id": job_id})
    assert finished(spool, job_id)["status"] == "succeeded"
    return spool, job_id


def terminal_ids(spool: Path) -> list[str]:
    ends = ("job.succeeded", "job.failed", "job.cancelled")
    return [e["job_id"] for e in events(spool) if e["event"] in ends]


def test_a_chosen_id_is_the_job_id_everywhere(
    make_spool: Callable[..., Path], daemon_factory: Callable[..., DaemonProc]
) -> None:
    spool = make_spool()
    job_id = new_job_id()
    drop_folder(spool, "note.md", {"id": job_id, "submitted_by": "ci-bot"})
    # Before any daemon: the job is known by its id already.
    shown = json.loads(cli("show", str(spool), job_id).stdout)
    assert (shown["job_id"], shown["state"], shown["submitted_by"]) == (job_id, "queued", "ci-bot")
    listed = json.loads(cli("list", str(spool), "--state", "queued", "--json").stdout)
    assert [r["job_id"] for r in listed] == [job_id]

    daemon_factory(spool)
    manifest = finished(spool, job_id)
    assert manifest["status"] == "succeeded" and manifest["submitted_by"] == "ci-bot"
    validate_manifest(manifest)
    detected = [e for e in events(spool) if e["event"] == "job.detected"]
    assert [e["job_id"] for e in detected] == [job_id]
    # Registered as a hard link to the spool's anchor: a name, no file of its own.
    ids = spool / ".spoold" / "ids"
    assert (ids / job_id).stat().st_ino == (ids / ".anchor").stat().st_ino
    shown = json.loads(cli("show", str(spool), job_id).stdout)
    assert shown["state"] == "done" and shown["submitted_by"] == "ci-bot"


def drop_named(spool: Path, name: str, job_id: str, text: str = "# Hi\n") -> Path:
    """A lone document whose file name chooses its id: NAME as STEM.ID.EXT."""
    stem, ext = os.path.splitext(name)
    staged = spool / "tmp" / f".{name}.{os.getpid()}"
    staged.write_text(text)
    dest = spool / "inbox" / f"{stem}.{job_id}{ext}"
    os.rename(staged, dest)
    return dest


def test_a_file_named_with_its_id_is_that_job(
    make_spool: Callable[..., Path], daemon_factory: Callable[..., DaemonProc]
) -> None:
    spool = make_spool()
    job_id, later = new_job_id(), new_job_id()
    drop_named(spool, "my.notes.md", job_id)
    drop_named(spool, "later.md", later)
    # Before any daemon: known by its id and by its name without the id.
    shown = json.loads(cli("show", str(spool), job_id).stdout)
    assert (shown["job_id"], shown["state"], shown["name"]) == (job_id, "queued", "my.notes.md")
    assert json.loads(cli("show", str(spool), "my.notes.md").stdout)["job_id"] == job_id
    listed = json.loads(cli("list", str(spool), "--state", "queued", "--json").stdout)
    assert sorted(r["job_id"] for r in listed) == sorted([job_id, later])
    cli("cancel", str(spool), later)  # ID.cancel names the queued file by its id

    daemon_factory(spool)
    manifest = finished(spool, job_id)
    assert manifest["status"] == "succeeded" and manifest["name"] == "my.notes.md"
    validate_manifest(manifest)
    folder = spool / "done" / f"my.notes.{job_id}"
    assert (folder / "input" / "my.notes.md").read_text() == "# Hi\n"
    detected = {e["job_id"]: e["name"] for e in events(spool) if e["event"] == "job.detected"}
    assert detected == {job_id: "my.notes.md", later: "later.md"}
    assert finished(spool, later)["status"] == "cancelled"
    # The same name and id dropped again: the id is taken, so that job fails, naming it.
    drop_named(spool, "my.notes.md", job_id, text="# Again\n")
    wait_for(lambda: len(terminal_ids(spool)) == 3, what="the copy ended")
    copy = finished(spool, terminal_ids(spool)[-1])
    assert copy["status"] == "failed" and copy["error"]["code"] == "input_invalid"
    assert (
        f"the file name's id: {job_id} is already the id of another job"
        in (copy["error"]["message"])
    )
    assert len(list((spool / "done").glob(f"*.{job_id}"))) == 1


def test_cancel_by_chosen_id_before_the_claim(
    make_spool: Callable[..., Path], daemon_factory: Callable[..., DaemonProc]
) -> None:
    spool = make_spool()
    job_id = new_job_id()
    drop_folder(spool, "later.md", {"id": job_id})
    cli("cancel", str(spool), job_id)
    assert (spool / "inbox" / f"{job_id}.cancel").exists()
    daemon_factory(spool)
    manifest = finished(spool, job_id)
    assert manifest["status"] == "cancelled"
    assert manifest["job_id"] == job_id
    wait_for(lambda: not (spool / "inbox" / f"{job_id}.cancel").exists(), what="marker used")


def test_a_malformed_id_fails_the_job_naming_the_key(
    make_spool: Callable[..., Path], daemon_factory: Callable[..., DaemonProc]
) -> None:
    spool = make_spool()
    drop_folder(spool, "bad.md", {"id": "../../etc"})
    daemon_factory(spool)
    ended = wait_for(lambda: terminal_ids(spool), what="the job ended")
    manifest = finished(spool, ended[0])
    assert manifest["status"] == "failed"
    assert manifest["error"]["code"] == "input_invalid"
    assert "key 'id'" in manifest["error"]["message"]
    assert not (spool / ".spoold" / "ids").exists() or not os.listdir(spool / ".spoold" / "ids")


def test_a_used_id_fails_the_second_job_and_retry_keeps_ids(
    make_spool: Callable[..., Path], daemon_factory: Callable[..., DaemonProc]
) -> None:
    spool, job_id = first_job_done(make_spool, daemon_factory)
    # The same job folder dropped again, under another name: its id is taken.
    drop_folder(spool, "second.md", {"id": job_id}, text="# Other\n")
    ended = wait_for(lambda: [i for i in terminal_ids(spool) if i != job_id], what="2nd job")
    second = finished(spool, ended[0])
    assert second["status"] == "failed" and second["error"]["code"] == "input_invalid"
    assert (
        f"{job_id} is already the id of another job (done/first.{job_id})"
        in (second["error"]["message"])
    )
    # And a copy under the same name, too.
    drop_folder(spool, "first.md", {"id": job_id}, text="# Again\n")
    wait_for(lambda: len(terminal_ids(spool)) == 3, what="3rd job")
    third = finished(spool, terminal_ids(spool)[-1])
    assert third["error"]["code"] == "input_invalid" and third["job_id"] != job_id
    assert len(list((spool / "done").glob(f"*.{job_id}"))) == 1
    # `spoold retry` requeues the folder with its state: the job keeps its own id.
    cli("retry", str(spool), second["job_id"])
    wait_for(lambda: terminal_ids(spool).count(second["job_id"]) == 2, what="retried")
    again = finished(spool, second["job_id"])
    assert again["error"]["code"] == "input_invalid" and len(again["attempts"]) == 2


def test_a_job_json_replaced_while_the_job_waits_is_read_again_at_the_claim(
    make_spool: Callable[..., Path], daemon_factory: Callable[..., DaemonProc], tmp_path: Path
) -> None:
    """The daemon reads job.json once, when the folder arrives, and keeps what it read;
    a job.json replaced before the claim (same size, another file) is what counts: its
    id names the job, its options are the job's (docs/protocol.md "Job ids")."""
    spool = make_spool()
    gate = tmp_path / "gate"
    daemon_factory(spool, env=PLUGIN_ENV, args=("--workers", "1"))
    stage_file(spool, "first.gate", str(gate))
    old_id, new_id = new_job_id(), new_job_id()
    assert len(old_id) == len(new_id)
    folder = drop_folder(
        spool, "later.md", {"id": old_id, "after": ["first.gate"], "metadata": {"v": "1"}}
    )
    # job.waiting says the daemon has read the folder's job.json (its `after`).
    wait_for(
        lambda: any(e["event"] == "job.waiting" and e["name"] == "later.md" for e in events(spool)),
        what="later.md waits for first.gate",
    )
    before = (folder / "job.json").stat()
    replaced = {"main": "later.md", "id": new_id, "after": ["first.gate"], "metadata": {"v": "2"}}
    (folder / ".job.json.new").write_text(json.dumps(replaced))
    os.rename(folder / ".job.json.new", folder / "job.json")
    assert (folder / "job.json").stat().st_size == before.st_size
    gate.touch()
    manifest = finished(spool, new_id)
    assert manifest["status"] == "succeeded", manifest.get("error")
    assert manifest["options"]["metadata"] == {"v": "2"}
    assert old_id not in {e.get("job_id") for e in events(spool)}
    assert not (spool / ".spoold" / "ids" / old_id).exists()


def test_an_id_whose_folder_was_deleted_by_hand_can_be_chosen_again(
    make_spool: Callable[..., Path], daemon_factory: Callable[..., DaemonProc]
) -> None:
    # The registration is a link that names no folder: the claim looks for a holder by
    # name, finds none, and takes the registration over.
    spool, job_id = first_job_done(make_spool, daemon_factory)
    shutil.rmtree(spool / "done" / f"first.{job_id}")
    drop_folder(spool, "other.md", {"id": job_id}, text="# Other\n")
    again = finished(spool, job_id)
    assert again["status"] == "succeeded" and again["name"] == "other.md"


def test_a_registration_is_refused_twice_and_names_its_holder(tmp_path: Path) -> None:
    paths = init_spool(tmp_path / "spool")
    job_id = new_job_id()
    assert reserve_job_id(paths, job_id, f"a.{job_id}") is None
    assert registered_folder(paths, job_id) is None  # a link names no folder
    (paths.done / f"a.{job_id}").mkdir()
    assert reserve_job_id(paths, job_id, f"b.{job_id}") == f"done/a.{job_id}"
    assert find_holder(paths, job_id) == f"done/a.{job_id}"
    (paths.done / f"a.{job_id}").rmdir()
    assert reserve_job_id(paths, job_id, f"b.{job_id}") is None  # stale: taken over


@pytest.mark.parametrize("refusal", [errno.EPERM, errno.EOPNOTSUPP])
def test_without_hard_links_a_registration_is_a_file_naming_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: int
) -> None:
    paths = init_spool(tmp_path / "spool")
    job_id = new_job_id()

    def no_links(src: object, dst: object) -> None:
        raise OSError(refusal, os.strerror(refusal))

    monkeypatch.setattr(os, "link", no_links)
    assert reserve_job_id(paths, job_id, f"a.{job_id}") is None
    assert registered_folder(paths, job_id) == f"a.{job_id}"
    (paths.done / f"a.{job_id}").mkdir()
    assert reserve_job_id(paths, job_id, f"b.{job_id}") == f"done/a.{job_id}"


def test_a_full_anchor_is_set_aside_and_a_new_one_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ext4 allows 65,000 links to one file: past that, the next registration makes a new
    # anchor, and the old one's registrations stay.
    paths = init_spool(tmp_path / "spool")
    first, second = new_job_id(), new_job_id()
    assert reserve_job_id(paths, first, f"a.{first}") is None
    real_link, calls = os.link, []

    def full_once(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == 1:
            raise OSError(errno.EMLINK, "Too many links")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", full_once)
    assert reserve_job_id(paths, second, f"b.{second}") is None
    ids = paths.state / idreg.IDS_DIR
    retired = [p for p in ids.iterdir() if p.name.startswith(idreg.ANCHOR + ".")]
    assert len(retired) == 1 and retired[0].stat().st_ino == (ids / first).stat().st_ino
    assert (ids / second).stat().st_ino == (ids / idreg.ANCHOR).stat().st_ino
    assert reserve_job_id(paths, first, f"c.{first}") is None  # no folder: stale, reusable


def test_two_daemons_racing_for_chosen_ids_give_each_id_to_one_job(
    make_spool: Callable[..., Path], daemon_factory: Callable[..., DaemonProc]
) -> None:
    # The registration (a link to one anchor) is the arbiter: with two daemons claiming
    # at once, an id chosen by two files under different names goes to one of them; the
    # other gets an id of its own and fails naming the holder. Nothing is lost.
    spool = make_spool()
    daemons = [daemon_factory(spool), daemon_factory(spool)]
    for d in daemons:
        d.wait_ready()
    ids = [new_job_id() for _ in range(40)]
    staged = []
    for i, job_id in enumerate(ids):
        names = [f"n{i}.{job_id}.md"] + ([f"dup{i}.{job_id}.md"] if i % 4 == 0 else [])
        for name in names:
            path = spool / "tmp" / f".{name}"
            path.write_text(f"# {name}\n")
            staged.append((path, spool / "inbox" / name))
    for path, dest in staged:  # all at once: both daemons see them together
        os.rename(path, dest)
    wait_for(lambda: len(terminal_ids(spool)) == len(staged), timeout=180, what="all ended")
    manifests = [
        json.loads((p / "manifest.json").read_text())
        for state in ("done", "failed")
        for p in (spool / state).iterdir()
    ]
    assert len(manifests) == len(staged) and not list((spool / "inbox").iterdir())
    for i, job_id in enumerate(ids):
        holders = [m for m in manifests if m["job_id"] == job_id]
        assert len(holders) == 1 and holders[0]["status"] == "succeeded", holders
        if i % 4 == 0:
            refused = [m for m in manifests if job_id in (m.get("error") or {}).get("message", "")]
            assert len(refused) == 1 and refused[0]["error"]["code"] == "input_invalid"
            holder = holders[0]["name"].rpartition(".")[0]  # running/ or done/ then
            assert "is already the id of another job (" in refused[0]["error"]["message"]
            assert f"/{holder}.{job_id}" in refused[0]["error"]["message"]
