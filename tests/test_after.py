"""job.json `after`, in process: the references, and their conditions read from folders
laid out by hand (the daemons' side is tests/test_after_daemon.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from spoold.settings import JobFile
from spoold.spool.after import AfterKind, AfterRef, Found, JobPhase, OnFailure, parse_after
from spoold.spool.protocol import init_spool, job_dir_name, running_name
from spoold.spool.waits import InboxItem, SpoolIndex, evaluate
from spoold.tools.jobview import queued_record, spool_index

A_ID = "20261206T100000Z-00000000aa"
B_ID = "20261206T110000Z-00000000bb"


def test_references_are_strings_or_objects() -> None:
    refs = parse_after(["a.md", {"job": "b.md", "kind": "start_to_start", "on_failure": "run"}])
    assert refs[0] == AfterRef(job="a.md")
    assert refs[0].kind is AfterKind.FINISH_TO_START and refs[0].on_failure is OnFailure.FAIL
    assert refs[1].kind is AfterKind.START_TO_START and refs[1].on_failure is OnFailure.RUN
    assert JobFile(after=["a.md"]).after == [AfterRef(job="a.md")]


@pytest.mark.parametrize(
    ("after", "key"),
    [
        ([{"job": "a", "kind": "later"}], "after.0.kind"),
        ([{"job": "a", "on_failure": "ignore"}], "after.0.on_failure"),
        ([{"job": ""}], "after.0.job"),
        ([{"job": "a", "when": "now"}], "after.0.when"),
        (["a"] * 101, "after"),
    ],
)
def test_a_bad_reference_names_its_key(after: Any, key: str) -> None:
    with pytest.raises(ValidationError) as exc:
        JobFile(after=after)
    assert any(".".join(map(str, e["loc"])) == key for e in exc.value.errors()), exc.value


# ---------------------------------------------------------------- a spool by hand


class Spool:
    def __init__(self, root: Path) -> None:
        self.paths = init_spool(root)

    def waiting(self, name: str, after: list[Any]) -> Found:
        folder = self.paths.inbox / name
        folder.mkdir()
        (folder / f"{name}.md").write_text("# x\n")
        (folder / "job.json").write_text(json.dumps({"after": after}))
        return Found(f"inbox/{name}", None, name, "queued", JobPhase.QUEUED, False)

    def running(self, name: str, job_id: str) -> None:
        folder = self.paths.running / running_name(job_dir_name(name, job_id), 1, "0123abcd")
        (folder / "input").mkdir(parents=True)
        (folder / "input" / name).write_text("# x\n")

    def finished(self, name: str, job_id: str, status: str, finished_at: str) -> None:
        state = "done" if status == "succeeded" else "failed"
        folder = self.paths.root / state / job_dir_name(name, job_id)
        folder.mkdir()
        manifest = {
            "job_id": job_id,
            "name": name,
            "status": status,
            "finished_at": finished_at,
            "attempts": [{"number": 1, "started_at": finished_at}],
        }
        (folder / "manifest.json").write_text(json.dumps(manifest))

    def index(self) -> SpoolIndex:
        def items() -> list[InboxItem]:
            return [InboxItem(n, n, False) for n in sorted(os.listdir(self.paths.inbox))]

        index = SpoolIndex(self.paths, items)
        index.refresh()
        return index


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool")


def states(ev: Any) -> list[tuple[str, str]]:
    return [(p.ref.job, p.found.state if p.found else "missing") for p in ev.pending]


def test_finish_to_start_waits_for_a_running_job_then_holds(spool: Spool) -> None:
    me = spool.waiting("b", ["a.md"])
    spool.running("a.md", A_ID)
    ev = evaluate(spool.index(), me, parse_after(["a.md"]))
    assert states(ev) == [("a.md", "running")] and not ev.met
    for entry in spool.paths.running.iterdir():
        os.rename(entry, spool.paths.running.parent / "tmp" / entry.name)
    spool.finished("a.md", A_ID, "succeeded", "2026-12-06T10:00:01Z")
    assert evaluate(spool.index(), me, parse_after(["a.md"])).met
    assert evaluate(spool.index(), me, parse_after([A_ID])).met, "by job id too"


def test_start_to_start_and_finish_to_finish(spool: Spool) -> None:
    me = spool.waiting("b", [])
    spool.running("a.md", A_ID)
    index = spool.index()
    s2s = parse_after([{"job": "a.md", "kind": "start_to_start"}])
    f2f = parse_after([{"job": "a.md", "kind": "finish_to_finish"}])
    assert evaluate(index, me, s2s).met, "a has started"
    assert evaluate(index, me, f2f).met, "finish_to_finish does not hold the start"
    assert states(evaluate(index, me, f2f, finishing=True)) == [("a.md", "running")]


def test_a_failed_dependency_fails_or_runs(spool: Spool) -> None:
    me = spool.waiting("b", [])
    spool.finished("a.md", A_ID, "failed", "2026-12-06T10:00:01Z")
    index = spool.index()
    ev = evaluate(index, me, parse_after(["a.md"]))
    assert [(r.job, f.state) for r, f in ev.failed] == [("a.md", "failed")]
    assert evaluate(index, me, parse_after([{"job": "a.md", "on_failure": "run"}])).met


def test_a_name_means_its_unfinished_jobs_else_the_newest_finished(spool: Spool) -> None:
    me = spool.waiting("b", [])
    spool.finished("a.md", A_ID, "failed", "2026-12-06T10:00:01Z")
    spool.finished("a.md", B_ID, "succeeded", "2026-12-06T11:00:01Z")
    assert evaluate(spool.index(), me, parse_after(["a.md"])).met, "the newest succeeded"
    (spool.paths.inbox / "a.md").write_text("# again\n")
    ev = evaluate(spool.index(), me, parse_after(["a.md"]))
    assert states(ev) == [("a.md", "queued")], "the one dropped again is waited for"


def test_a_missing_reference_and_a_cycle(spool: Spool) -> None:
    x = spool.waiting("x", ["z"])
    spool.waiting("y", ["x"])
    spool.waiting("z", ["y"])
    w = spool.waiting("w", ["x", "nothing.md"])
    index = spool.index()
    ev = evaluate(index, x, parse_after(["z"]))
    assert ev.cycle == ["x", "z", "y", "x"], ev.cycle
    assert ev.cycle_jobs == ["inbox/x", "inbox/z", "inbox/y"], "each fails with it"
    ev = evaluate(index, w, parse_after(["x", "nothing.md"]))
    assert ev.cycle is None, "w waits on the cycle; it is not in it"
    assert [r.job for r in ev.missing] == ["nothing.md"]


def test_a_cycle_member_failed_by_another_daemon_still_names_the_cycle(spool: Spool) -> None:
    # Another daemon found the cycle x -> z -> y -> x first and failed x: y and z are in
    # the same cycle (input_invalid), w only waits on it (dependency_failed).
    x = spool.paths.root / "failed" / job_dir_name("x", A_ID)
    (x / "input" / "x").mkdir(parents=True)
    (x / "input" / "x" / "job.json").write_text(json.dumps({"after": ["z"]}))
    manifest = {"job_id": A_ID, "name": "x", "status": "failed", "attempts": [{"number": 1}]}
    (x / "manifest.json").write_text(json.dumps(manifest))
    y = spool.waiting("y", ["x"])
    spool.waiting("z", ["y"])
    w = spool.waiting("w", ["x"])
    index = spool.index()
    ev = evaluate(index, y, parse_after(["x"]))
    assert ev.cycle == ["y", f"x ({A_ID})", "z", "y"] and not ev.failed, ev
    ev = evaluate(index, w, parse_after(["x"]))
    assert ev.cycle is None and [f.state for _, f in ev.failed] == ["failed"]
    spool.finished("v", B_ID, "failed", "2026-12-06T10:00:01Z")  # it had started
    v = spool.paths.root / "failed" / job_dir_name("v", B_ID) / "input" / "v"
    v.mkdir(parents=True)
    (v / "job.json").write_text(json.dumps({"after": ["u"]}))
    u = spool.waiting("u", ["v"])
    ev = evaluate(spool.index(), u, parse_after(["v"]))
    assert ev.cycle is None and ev.failed, "a job that ran and failed is no cycle member"


def test_a_failed_jobs_symlinked_input_is_never_followed(spool: Spool, tmp_path: Path) -> None:
    # A symlink dropped as a job is failed without being opened; the cycle search must
    # not read a job.json through it either (nothing outside the job folder is read).
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "job.json").write_text(json.dumps({"after": ["y"]}))
    x = spool.paths.root / "failed" / job_dir_name("x", A_ID)
    (x / "input").mkdir(parents=True)
    (x / "input" / "x").symlink_to(outside)
    manifest = {"job_id": A_ID, "name": "x", "status": "failed", "attempts": [{"number": 1}]}
    (x / "manifest.json").write_text(json.dumps(manifest))
    y = spool.waiting("y", ["x"])
    ev = evaluate(spool.index(), y, parse_after(["x"]))
    assert ev.cycle is None and [f.state for _, f in ev.failed] == ["failed"]


def test_a_finish_to_finish_cycle(spool: Spool) -> None:
    # a waits for b to finish; b may not finish before a: neither ever can.
    a = spool.waiting("a", ["b"])
    spool.waiting("b", [{"job": "a", "kind": "finish_to_finish"}])
    assert evaluate(spool.index(), a, parse_after(["b"])).cycle == ["a", "b", "a"]


def test_the_job_record_shows_what_a_job_waits_for(spool: Spool) -> None:
    spool.waiting("b", [{"job": "a.md", "kind": "start_to_start"}, "gone.md"])
    spool.running("x.md", A_ID)
    (spool.paths.inbox / "a.md").write_text("# a\n")
    record = queued_record(spool.paths, "b", spool_index(spool.paths))
    assert record is not None and record.waiting is not None
    assert record.waiting["reason"] == "after" and record.waiting["until"] is None
    assert [(r["job"], r["kind"], r["state"]) for r in record.waiting["after"]] == [
        ("a.md", "start_to_start", "queued"),
        ("gone.md", "finish_to_start", "missing"),
    ]
    plain = queued_record(spool.paths, "a.md")
    assert plain is not None and plain.waiting is None


def test_submit_after_writes_the_references(tmp_path: Path) -> None:
    from .conftest import cli

    paths = init_spool(tmp_path / "spool")
    doc = tmp_path / "appendix.md"
    doc.write_text("# Appendix\n")
    cli("submit", str(paths.root), str(doc), "--after", "report.md", "--after", A_ID)
    job = json.loads((paths.inbox / "appendix.md" / "job.json").read_text())
    assert job["after"] == ["report.md", A_ID] and job["main"] == "appendix.md"
    assert JobFile(**job).after == [AfterRef(job="report.md"), AfterRef(job=A_ID)]
