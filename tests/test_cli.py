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


def test_usage_errors_exit_64_and_name_the_flag(make_spool, tmp_path: Path) -> None:
    spool = make_spool()
    res = cli("run", str(spool), "--workers", "0", check=False)
    assert res.returncode == 64 and "'--workers'" in res.stderr, res.stderr
    assert "defaults" not in res.stderr
    assert cli("no-such-command", check=False).returncode == 64
    assert cli("status", check=False).returncode == 64, "a missing argument"
    assert cli("status", str(tmp_path / "x"), "--bogus", check=False).returncode == 64
    src = tmp_path / "a.md"
    src.write_text("# A\n")
    res = cli("convert", str(src), "-o", str(tmp_path / "a.pdf"), "--page-size", "A9", check=False)
    assert res.returncode == 64
    assert "'--page-size'" in res.stderr and "Letter" in res.stderr, "the allowed values"
    res = cli("convert", str(src), "-o", str(tmp_path / "a.pdf"), "--theme", "fancy", check=False)
    assert res.returncode == 64 and "handout" in res.stderr
    assert not (tmp_path / "a.pdf").exists()


def test_bad_values_name_where_they_came_from(make_spool, tmp_path: Path) -> None:
    spool = make_spool()
    daemon_file = tmp_path / "spoold.toml"
    daemon_file.write_text("workers = 0\n")
    res = cli("run", str(spool), "--config", str(daemon_file), check=False)
    assert res.returncode == 78
    assert f"{daemon_file}: key 'workers'" in res.stderr, res.stderr
    daemon_file.write_text('theme = "fancy"\n')  # a spool default in the daemon file
    res = cli("run", str(spool), "--config", str(daemon_file), check=False)
    assert res.returncode == 78 and f"{daemon_file}: key 'theme'" in res.stderr, res.stderr
    env = {**os.environ, "SPOOLD_PAGE_SIZE": "A9"}
    res = subprocess.run(
        [sys.executable, "-m", "spoold", "run", str(spool)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 78
    assert "environment variable SPOOLD_PAGE_SIZE" in res.stderr and "Ledger" in res.stderr
    (spool / "spool.toml").write_text('page_size = "A4 sideways"\n[routes.big]\ntheme = "x"\n')
    res = cli("run", str(spool), check=False)
    assert res.returncode == 78
    assert f"{spool / 'spool.toml'}: key 'page_size'" in res.stderr
    assert "key 'routes.big.theme'" in res.stderr and "default, handout" in res.stderr


def test_max_queued_counts_jobs_not_route_folders(make_spool, tmp_path: Path) -> None:
    routes = {name: {"targets": ["docx"]} for name in ("a", "b", "c")}
    spool = make_spool(max_queued=2, routes=routes)
    for name in routes:
        (spool / "inbox" / name).mkdir()
    doc = tmp_path / "x.md"
    doc.write_text("# x\n")
    assert cli("submit", str(spool), str(doc)).returncode == 0
    assert cli("submit", str(spool), str(doc), "--route", "a").returncode == 0
    res = cli("submit", str(spool), str(doc), check=False)
    assert res.returncode == 75 and "holds 2 entries" in res.stderr


def test_a_bad_job_json_value_fails_the_job_naming_key_values_and_the_page(
    make_spool, daemon_factory
) -> None:
    spool = make_spool()
    daemon_factory(spool)
    folder = spool / "tmp" / "letter"
    folder.mkdir()
    (folder / "letter.md").write_text("# Letter\n")
    (folder / "job.json").write_text(json.dumps({"page_size": "Foolscap"}))
    os.rename(folder, spool / "inbox" / "letter")
    failed = wait_for(lambda: published(spool, "failed"), what="the job failed")[0]
    error = json.loads((failed / "manifest.json").read_text())["error"]
    assert error["code"] == "input_invalid"
    assert "job.json: key 'page_size'" in error["message"] and "Letter" in error["message"]
    assert "docs/configuration.md" in error["hint"]


def test_editor_backups_and_desktop_ini_are_ignored(make_spool, daemon_factory) -> None:
    spool = make_spool()
    daemon_factory(spool)
    stage_file(spool, "desktop.ini", "[.ShellClassInfo]\n")
    stage_file(spool, "report.md~", "# old\n")
    stage_file(spool, "report.md", "# Report\n")
    wait_for(lambda: published(spool), what="the report converted")
    # Entries seen in the same scan as report.md, before it was claimed: still there.
    assert (spool / "inbox" / "desktop.ini").exists() and (spool / "inbox" / "report.md~").exists()
    assert published(spool, "failed") == []
    # Not jobs for the command either.
    assert json.loads(cli("list", str(spool), "--state", "queued", "--json").stdout) == []
    assert json.loads(cli("status", str(spool), "--json").stdout)["queued"] == 0
