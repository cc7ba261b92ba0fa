"""`spoold status`, `show`, `list`, `submit` and `cancel` on jobs in every state, with a
real daemon (docs/cli.md): the same record fields everywhere, names as dropped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import PLUGIN_ENV, cli, published, stage_file, wait_for

RECORD_KEYS = {
    "job_id",
    "name",
    "state",
    "status",
    "attempt",
    "stage",
    "route",
    "folder",
    "created_at",
    "started_at",
    "finished_at",
    "code",
    "waiting",  # null unless the job waits (format check, job.json `after`)
    "submitted_by",
}


def _json(*args: str) -> Any:
    return json.loads(cli(*args).stdout)


def _running(spool: Path) -> list[dict[str, Any]]:
    """Running jobs whose worker has reported a stage (so the attempt has started)."""
    data = _json("status", str(spool), "--json")
    return [r for r in data["running"] if r["stage"] == "layout"]


def test_status_show_and_list_give_every_state_the_same_fields(make_spool, daemon_factory) -> None:
    spool = make_spool(routes={"docx": {"targets": ["docx"]}})
    daemon_factory(spool, args=("--workers", "1"), env=PLUGIN_ENV)
    stage_file(spool, "first.md", "# First\n")
    wait_for(lambda: published(spool), what="the first job done")
    stage_file(spool, "broken.xyz", "?")
    wait_for(lambda: published(spool, "failed"), what="the broken one failed")
    stage_file(spool, "busy.slow", "60")
    running = wait_for(lambda: _running(spool), what="the slow job running")[0]
    stage_file(spool, "waiting.md", "# Waiting\n")

    # status: a running job has its name, attempt, stage and start time.
    status = _json("status", str(spool), "--json")
    assert set(running) == RECORD_KEYS
    assert running["name"] == "busy.slow" and running["attempt"] == 1
    assert running["state"] == running["status"] == "running"
    assert running["started_at"] and running["created_at"] and running["finished_at"] is None
    assert running["folder"].startswith("running/busy.")
    assert status["queued"] == 1, "the route folder is not a queued job"
    [failure] = status["recent_failures"]
    assert set(failure) == RECORD_KEYS
    assert (failure["name"], failure["code"]) == ("broken.xyz", "input_unsupported")

    # show finds the running and the queued job by name, and the running one by id.
    shown = _json("show", str(spool), "busy.slow")
    assert shown["job_id"] == running["job_id"] and shown["stage"] == "layout"
    assert _json("show", str(spool), running["job_id"])["name"] == "busy.slow"
    queued = _json("show", str(spool), "waiting.md")
    assert (queued["state"], queued["job_id"], queued["attempt"]) == ("queued", None, 0)
    done = _json("show", str(spool), "first.md")
    assert done["status"] == "succeeded" and done["artifacts"], "the manifest is included"
    assert set(done) >= RECORD_KEYS

    # list: every state, every field, newest first.
    rows = _json("list", str(spool), "--json", *[f"--state={s}" for s in _STATES])
    assert all(set(r) == RECORD_KEYS for r in rows)
    assert [r["name"] for r in rows] == ["waiting.md", "busy.slow", "broken.xyz", "first.md"]
    assert [r["status"] for r in rows] == ["queued", "running", "failed", "succeeded"]
    assert all(r["started_at"] for r in rows[1:]), "every job that ran has a start time"
    assert all(r["finished_at"] for r in rows[2:])
    named = _json("list", str(spool), "--json", "--name", "first.*")
    assert [r["name"] for r in named] == ["first.md"]


_STATES = ("queued", "running", "done", "failed")


def test_submit_to_keeps_the_name_so_cancel_by_name_works(
    make_spool, daemon_factory, tmp_path: Path
) -> None:
    spool = make_spool()
    daemon_factory(spool, args=("--workers", "1"), env=PLUGIN_ENV)
    stage_file(spool, "busy.slow", "60")
    wait_for(lambda: _running(spool), what="the only worker busy")
    doc = tmp_path / "x.md"
    doc.write_text("# X\n")
    out = cli("submit", str(spool), str(doc), "--to", "docx")
    assert out.stdout.strip() == "submitted x.md"
    assert (spool / "inbox" / "x.md" / "job.json").is_file()
    assert _json("show", str(spool), "x.md")["state"] == "queued"

    cli("cancel", str(spool), "x.md")
    folder = wait_for(lambda: published(spool, "failed"), what="the job cancelled")[0]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["name"], manifest["status"]) == ("x.md", "cancelled")
    assert "JOB`" not in manifest["error"]["hint"], "no placeholder left in the hint"
    assert _json("show", str(spool), "x.md")["status"] == "cancelled"

    # Retried while the worker is still busy: queued again, the same job, its history kept.
    assert cli("retry", str(spool), "x.md").stdout.strip() == f"requeued {manifest['job_id']}"
    again = _json("show", str(spool), "x.md")
    assert (again["state"], again["job_id"]) == ("queued", manifest["job_id"])
    assert (again["attempt"], again["code"]) == (1, "cancelled")
    assert [a["outcome"] for a in again["attempts"]] == ["cancelled"]
    assert again["created_at"] == manifest["created_at"]
    assert _json("show", str(spool), manifest["job_id"])["folder"] == again["folder"]


def test_a_job_hint_names_the_real_job_id() -> None:
    from spoold.errors import DEFAULT_HINTS, ErrorCode, job_hint

    hint = job_hint(ErrorCode.CANCELLED, DEFAULT_HINTS[ErrorCode.CANCELLED], "20260101T000000Z-ab")
    assert "20260101T000000Z-ab" in hint and "JOB" not in hint
    custom = "Copy the file again, completely."
    assert job_hint(ErrorCode.CANCELLED, custom, "x") == custom, "a specific hint is kept"
    assert not [h for h in DEFAULT_HINTS.values() if "JOB`" in h], "no placeholder left"
