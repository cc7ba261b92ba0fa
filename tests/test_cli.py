"""The `spoold` command as people and scripts use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spoold import __version__

from .conftest import ROOT, cli, published, stage_file, wait_for


def test_version_and_init(tmp_path: Path) -> None:
    assert __version__ in cli("--version").stdout
    out = cli("init", str(tmp_path / "s"))
    assert "inbox" in out.stdout
    for sub in ("inbox", "tmp", "running", "done", "failed", "out", ".spoold"):
        assert (tmp_path / "s" / sub).is_dir()


def test_submit_wait_prints_the_result_and_exit_codes(make_spool, daemon_factory, tmp_path) -> None:
    spool = make_spool()
    daemon_factory(spool)
    doc = tmp_path / "hello.md"
    doc.write_text("# Hello\n\nfrom submit\n")
    out = cli("submit", str(spool), str(doc), "--to", "html", "--wait", "--timeout", "60")
    path = Path(out.stdout.strip().splitlines()[-1])
    assert path.exists() and "from submit" in path.read_text()
    assert str(spool / "done") in str(path)
    bad = tmp_path / "bad.xyz"
    bad.write_text("nope")
    res = cli("submit", str(spool), str(bad), "--wait", "--timeout", "60", check=False)
    assert res.returncode == 65, res.stderr
    assert "input_unsupported" in res.stderr


def test_submit_refuses_with_75_when_the_inbox_is_full(make_spool, tmp_path) -> None:
    spool = make_spool(max_queued=2)
    for i in range(2):
        (spool / "inbox" / f"q{i}.md").write_text("# q\n")
    doc = tmp_path / "x.md"
    doc.write_text("# x\n")
    res = cli("submit", str(spool), str(doc), check=False)
    assert res.returncode == 75
    assert "max_queued" in res.stderr


def test_submit_wait_times_out_with_75(make_spool, tmp_path) -> None:
    spool = make_spool()  # no daemon running
    doc = tmp_path / "x.md"
    doc.write_text("# x\n")
    res = cli("submit", str(spool), str(doc), "--wait", "--timeout", "0.5", check=False)
    assert res.returncode == 75


def test_status_show_events_cancel_retry(make_spool, daemon_factory) -> None:
    spool = make_spool()
    daemon_factory(spool)
    stage_file(spool, "one.md", "# One\n")
    done = wait_for(lambda: published(spool), what="published")
    status = json.loads(cli("status", str(spool), "--json").stdout)
    assert status["done"] == 1 and status["queued"] == 0
    assert status["daemons"], "the running daemon is listed"
    job_id = json.loads((done[0] / "manifest.json").read_text())["job_id"]
    shown = json.loads(cli("show", str(spool), job_id).stdout)
    assert shown["status"] == "succeeded" and shown["name"] == "one.md"
    by_name = json.loads(cli("show", str(spool), "one.md").stdout)
    assert by_name["job_id"] == job_id
    lines = cli("events", str(spool)).stdout.splitlines()
    assert any(json.loads(line)["event"] == "job.succeeded" for line in lines)
    assert "no job" in cli("show", str(spool), "nope", check=False).stderr
    human = cli("status", str(spool)).stdout
    assert "1 done" in human


def test_invalid_settings_exit_78_naming_file_and_key(make_spool) -> None:
    spool = make_spool()
    (spool / "spool.toml").write_text('detect = "sometimes"\nsettle_ms = 5\n')
    res = cli("run", str(spool), check=False)
    assert res.returncode == 78
    assert "spool.toml" in res.stderr and "detect" in res.stderr
    assert "inotify" in res.stderr and "poll" in res.stderr, "the allowed values are named"
    (spool / "spool.toml").write_text("colour = 'blue'\n")
    res = cli("run", str(spool), check=False)
    assert res.returncode == 78 and "colour" in res.stderr and "unknown key" in res.stderr


def test_environment_and_flags_override(make_spool) -> None:
    spool = make_spool()
    env = {**os.environ, "SPOOLD_WORKERS": "0"}
    res = subprocess.run(
        [sys.executable, "-m", "spoold", "run", str(spool)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 78 and "workers" in res.stderr


def test_convert_without_a_spool(tmp_path: Path) -> None:
    src = tmp_path / "a.md"
    src.write_text("# Title\n\nplain *text*\n")
    out = tmp_path / "a.html"
    cli("convert", str(src), "-o", str(out))
    assert "<em>text</em>" in out.read_text()
    res = cli("convert", str(tmp_path / "a.md"), "-o", str(tmp_path / "a.odt"), check=False)
    assert res.returncode == 64


def test_doctor_passes_on_a_healthy_spool(make_spool) -> None:
    spool = make_spool()
    res = cli("doctor", str(spool), check=False)
    assert "PASS  layout" in res.stdout or "PASS" in res.stdout
    assert "FAIL" not in res.stdout, res.stdout
    assert res.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_doctor_and_run_refuse_a_split_spool(make_spool) -> None:
    spool = make_spool()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(spool / "done")],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {mounted.stderr.strip()}")
    try:
        res = cli("doctor", str(spool), check=False)
        assert res.returncode != 0
        assert "FAIL" in res.stdout and "split across filesystems" in res.stdout
        run = cli("run", str(spool), check=False)
        assert run.returncode == 69 and "split across filesystems" in run.stderr
    finally:
        subprocess.run(["umount", "-l", str(spool / "done")], check=False)
