"""What people on a shared folder and tools around it see: hooks, modes, out/, ERROR.txt,
`list`, `purge` and `check-events` (SPEC sections 3, 4, 7), with a real daemon."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from .conftest import cli, events, manifests, published, stage_file, wait_for

HOOK = """\
import json, os, sys, pathlib
out = pathlib.Path(sys.argv[1]).parent.parent / "hook-{tag}.json"
env = {{k: v for k, v in os.environ.items() if k.startswith("SPOOLD_")}}
out.write_text(json.dumps({{"argv": sys.argv[1:], "env": env}}))
"""


def _hook(tmp_path: Path, tag: str, body: str | None = None) -> list[str]:
    script = tmp_path / f"hook_{tag}.py"
    script.write_text(body if body is not None else HOOK.format(tag=tag))
    return [sys.executable, str(script)]


def test_hooks_run_after_publishing_with_the_job_folder_and_env(
    make_spool, daemon_factory, tmp_path: Path
) -> None:
    spool = make_spool(
        on_success=_hook(tmp_path, "ok"),
        on_failure=_hook(tmp_path, "bad"),
    )
    d = daemon_factory(spool)
    stage_file(spool, "good.md", "# Good\n")
    stage_file(spool, "bad.xyz", "no converter for this")
    ok = wait_for(lambda: (spool / "hook-ok.json").exists(), what="on_success hook")
    wait_for(lambda: (spool / "hook-bad.json").exists(), what="on_failure hook")
    assert ok
    good = json.loads((spool / "hook-ok.json").read_text())
    done = published(spool)[0]
    assert good["argv"] == [str(done)]
    assert good["env"]["SPOOLD_STATUS"] == "succeeded"
    assert good["env"]["SPOOLD_ERROR_CODE"] == ""
    assert good["env"]["SPOOLD_JOB_DIR"] == str(done)
    assert good["env"]["SPOOLD_JOB_ID"] in done.name
    # The hook ran after publishing: the folder it was given holds the manifest.
    assert (done / "manifest.json").exists()
    bad = json.loads((spool / "hook-bad.json").read_text())
    assert bad["env"]["SPOOLD_STATUS"] == "failed"
    assert bad["env"]["SPOOLD_ERROR_CODE"] == "input_unsupported"
    assert d.stop() == 0


def test_a_failing_or_hanging_hook_never_changes_the_outcome_or_blocks_jobs(
    make_spool, daemon_factory, tmp_path: Path
) -> None:
    hang = _hook(
        tmp_path, "hang", "import time, sys\nprint('stuck', flush=True)\ntime.sleep(3600)\n"
    )
    fail = _hook(tmp_path, "fail", "import sys\nprint('boom')\nsys.exit(3)\n")
    spool = make_spool(
        on_success=hang,
        hook_timeout_s=1,
        routes={"loud": {"on_success": fail}},
    )
    d = daemon_factory(spool)
    (spool / "inbox" / "loud").mkdir(exist_ok=True)
    for i in range(4):
        stage_file(spool, f"doc{i}.md", f"# Doc {i}\n")
    stage_file(spool, "routed.md", "# Routed\n", sub="loud")
    # Four hanging hooks on two hook threads: jobs still all finish.
    wait_for(lambda: len(published(spool)) == 5, what="every job published")
    assert all(m["status"] == "succeeded" for m in manifests(spool))
    wait_for(
        lambda: sum(e["event"] == "hook.failed" for e in events(spool)) >= 5,
        timeout=60,
        what="every hook recorded",
    )
    failed = [e for e in events(spool) if e["event"] == "hook.failed"]
    by_exit = [e for e in failed if e.get("exit_code") == 3]
    assert len(by_exit) == 1 and "boom" in by_exit[0]["output"]
    timed_out = [e for e in failed if e.get("timed_out")]
    assert len(timed_out) == 4 and all("stuck" in e["output"] for e in timed_out)
    assert published(spool, "failed") == []
    assert d.stop() == 0


def test_published_files_carry_output_mode_and_flat_output_links(
    make_spool, daemon_factory
) -> None:
    spool = make_spool(output_mode="0640", flat_output=True, targets=["html", "pdf"])
    d = daemon_factory(spool)
    stage_file(spool, "report.md", "# Report\n\nText.\n")
    stage_file(spool, "again.report.md", "# Another\n")
    wait_for(lambda: len(published(spool)) == 2, what="both published")
    # Same name, other content: a numeric suffix, never an overwrite.
    stage_file(spool, "report.md", "# Report, second edition\n")
    wait_for(lambda: len(published(spool)) == 3, what="the second report published")
    for folder in published(spool):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o750
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                assert stat.S_IMODE(os.stat(path).st_mode) == 0o640, path
    # out/ links are made once a job has landed: wait for them.
    wait_for(lambda: len(list((spool / "out").iterdir())) == 6, what="the out/ links")
    flat = sorted(p.name for p in (spool / "out").iterdir())
    assert flat == [
        "again.report.html",
        "again.report.pdf",
        "report-1.html",
        "report-1.pdf",
        "report.html",
        "report.pdf",
    ]
    reports = [p for p in published(spool) if p.name.startswith("report.")]
    second = next(p for p in reports if "second" in (p / "input" / "report.md").read_text())
    first = next(p for p in reports if p != second)
    assert os.path.samefile(spool / "out" / "report.pdf", first / "report.pdf")
    assert os.path.samefile(spool / "out" / "report-1.pdf", second / "report.pdf")
    assert d.stop() == 0


def test_failed_job_has_plain_error_txt(make_spool, daemon_factory) -> None:
    spool = make_spool()
    d = daemon_factory(spool)
    stage_file(spool, "photo.xyz", "??")
    folder = wait_for(lambda: published(spool, "failed"), what="failed")[0]
    text = (folder / "ERROR.txt").read_text()
    assert text.startswith("photo.xyz could not be converted.")
    assert "What to do:" in text and "(error code: input_unsupported" in text
    assert d.stop() == 0


def _old_job(spool: Path, state: str, name: str, finished: str) -> Path:
    folder = spool / state / f"{name}.20200101T000000Z-0123456789"
    folder.mkdir()
    (folder / f"{name}.html").write_text("<p>old</p>")
    (folder / "manifest.json").write_text(json.dumps({"finished_at": finished}))
    return folder


def test_list_filters_and_purge_removes_old_jobs(make_spool, daemon_factory) -> None:
    spool = make_spool(keep_done_days=7, keep_failed_days=30)
    d = daemon_factory(spool)
    stage_file(spool, "fresh.md", "# Fresh\n")
    stage_file(spool, "broken.xyz", "?")
    wait_for(lambda: published(spool) and published(spool, "failed"), what="both finished")
    assert d.stop() == 0
    old_done = _old_job(spool, "done", "ancient", "2020-01-01T00:00:00Z")
    old_failed = _old_job(spool, "failed", "oldfail", "2020-01-02T00:00:00Z")
    # An old job retried last minute finished recently: kept.
    recent = _old_job(spool, "done", "retried", "2099-01-01T00:00:00Z")

    rows = json.loads(cli("list", str(spool), "--json").stdout)
    assert {r["folder"].split("/")[1].split(".")[0] for r in rows} == {
        "fresh",
        "broken",
        "ancient",
        "oldfail",
        "retried",
    }
    failed = json.loads(cli("list", str(spool), "--state", "failed", "--json").stdout)
    assert {r.get("code") for r in failed if r["job_id"] and "broken" in r["folder"]} == {
        "input_unsupported"
    }
    by_code = json.loads(cli("list", str(spool), "--code", "input_unsupported", "--json").stdout)
    assert [r["folder"].split("/")[1].split(".")[0] for r in by_code] == ["broken"]
    by_name = json.loads(cli("list", str(spool), "--name", "fresh.md", "--json").stdout)
    assert [r["state"] for r in by_name] == ["done"]
    young = json.loads(cli("list", str(spool), "--max-age", "24", "--json").stdout)
    assert {r["folder"].split("/")[1].split(".")[0] for r in young} == {"fresh", "broken"}
    stage_file(spool, "waiting.md", "# Waiting\n")
    queued = json.loads(cli("list", str(spool), "--state", "queued", "--json").stdout)
    assert [r["name"] for r in queued] == ["waiting.md"]
    plain = cli("list", str(spool)).stdout.splitlines()
    assert len(plain) == 5 and all(len(line.split("\t")) == 5 for line in plain)

    result = json.loads(cli("purge", str(spool), "--json").stdout)
    assert (result["removed_done"], result["removed_failed"]) == (1, 1)
    assert not old_done.exists() and not old_failed.exists() and recent.exists()
    assert len(published(spool)) == 2  # fresh and retried
    # Nothing half-deleted is left for readers, and list never shows it.
    assert not [p for p in (spool / "done").iterdir() if p.name.startswith(".purge-")]


def test_check_events_on_a_real_log(make_spool, daemon_factory) -> None:
    spool = make_spool()
    d = daemon_factory(spool)
    for i in range(3):
        stage_file(spool, f"e{i}.md", f"# {i}\n")
    stage_file(spool, "x.xyz", "?")
    wait_for(lambda: len(published(spool)) == 3 and published(spool, "failed"), what="done")
    assert d.stop() == 0
    out = cli("check-events", str(spool))
    assert out.returncode == 0 and out.stdout.strip().endswith("ok")
    # A forged second terminal event for one job is caught.
    first = next(e for e in events(spool) if e["event"] == "job.succeeded")
    with (spool / ".spoold" / "events.ndjson").open("a") as fh:
        fh.write(json.dumps(first) + "\n")
    bad = cli("check-events", str(spool), check=False)
    assert bad.returncode == 65 and "problem" in bad.stdout
