"""on_success / on_failure hooks (SPEC section 3): real processes, no shell, no sleeps."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from spoold.share.hooks import HookResult, HookRunner, hook_env, run_hook

from .conftest import pid_alive, wait_for


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    d = tmp_path / "done" / "report.20240101T000000Z-0123456789"
    d.mkdir(parents=True)
    return d


def test_env_and_argv_reach_the_hook(tmp_path: Path, job_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("SPOOLD_SECRET_SETTING", "must-not-leak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "must-not-leak")
    dump = tmp_path / "dump"
    hook = _script(
        tmp_path / "hook.sh",
        f'env > "{dump}.env"\nfor a in "$@"; do echo "$a"; done > "{dump}.argv"\npwd > "{dump}.cwd"\n',
    )
    extra = hook_env("20240101T000000Z-0123456789", "failed", "timeout", job_dir, spool="s1")
    res = run_hook([str(hook), "--flag", "two words"], job_dir, extra, timeout_s=30)
    assert res.ok, res
    assert res.exit_code == 0 and not res.timed_out and res.error is None
    env = dict(
        line.split("=", 1) for line in Path(f"{dump}.env").read_text().splitlines() if "=" in line
    )
    assert env["SPOOLD_JOB_ID"] == "20240101T000000Z-0123456789"
    assert env["SPOOLD_STATUS"] == "failed"
    assert env["SPOOLD_ERROR_CODE"] == "timeout"
    assert env["SPOOLD_JOB_DIR"] == str(job_dir)
    assert env["SPOOLD_SPOOL"] == "s1"
    assert "PATH" in env
    assert "SPOOLD_SECRET_SETTING" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    # No shell: arguments arrive as given, the job folder last.
    argv = Path(f"{dump}.argv").read_text().splitlines()
    assert argv == ["--flag", "two words", str(job_dir)]
    assert Path(f"{dump}.cwd").read_text().strip() == str(job_dir)


def test_succeeded_job_has_empty_error_code(job_dir: Path) -> None:
    extra = hook_env("id", "succeeded", None, job_dir)
    assert extra["SPOOLD_ERROR_CODE"] == ""


def test_failing_hook_reports_exit_code_and_output(tmp_path: Path, job_dir: Path) -> None:
    hook = _script(tmp_path / "fail.sh", "echo out; echo err >&2; exit 3\n")
    res = run_hook([str(hook)], job_dir, {}, timeout_s=30)
    assert not res.ok
    assert res.exit_code == 3
    assert not res.timed_out
    assert res.error == "exited with status 3"
    assert "out" in res.output and "err" in res.output


def test_hanging_hook_and_its_child_are_killed(tmp_path: Path, job_dir: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    # The child ignores SIGTERM: only the group SIGKILL after the grace gets it.
    hook = _script(
        tmp_path / "hang.sh",
        f"(trap '' TERM; exec sleep 1000) &\necho $! > \"{child_pid_file}\"\nsleep 1000\n",
    )
    res = run_hook([str(hook)], job_dir, {}, timeout_s=1, term_grace_s=0.5)
    assert res.timed_out
    assert not res.ok
    assert res.error is not None and "timed out" in res.error
    child = int(child_pid_file.read_text())
    wait_for(lambda: not pid_alive(child), timeout=30, what="the hook's child to die")


def test_leftover_background_process_is_killed_when_hook_exits(
    tmp_path: Path, job_dir: Path
) -> None:
    pid_file = tmp_path / "bg.pid"
    hook = _script(
        tmp_path / "bg.sh", f'sleep 1000 >/dev/null 2>&1 &\necho $! > "{pid_file}"\nexit 0\n'
    )
    res = run_hook([str(hook)], job_dir, {}, timeout_s=30)
    assert res.ok and not res.timed_out
    bg = int(pid_file.read_text())
    wait_for(lambda: not pid_alive(bg), timeout=30, what="the leftover to die")


def test_hook_that_closes_stdout_early_still_runs_to_completion(
    tmp_path: Path, job_dir: Path
) -> None:
    marker = tmp_path / "finished"
    hook = _script(
        tmp_path / "quiet.sh",
        f'exec >/dev/null 2>&1\ni=0\nwhile [ $i -lt 20000 ]; do i=$((i+1)); done\ntouch "{marker}"\n',
    )
    res = run_hook([str(hook)], job_dir, {}, timeout_s=60)
    assert res.ok, res
    assert marker.exists(), "EOF on the pipe must not be taken for the hook's exit"


def test_output_is_capped_without_deadlock(tmp_path: Path, job_dir: Path) -> None:
    # 1 MiB through a 64 KiB pipe: the hook would block forever if we stopped reading.
    hook = _script(tmp_path / "chatty.sh", "head -c 1048576 /dev/zero | tr '\\0' x\n")
    res = run_hook([str(hook)], job_dir, {}, timeout_s=60, output_cap=1000)
    assert res.ok, res
    assert len(res.output) == 1000
    assert res.truncated
    assert set(res.output) == {"x"}


def test_undecodable_output_is_replaced(tmp_path: Path, job_dir: Path) -> None:
    hook = _script(tmp_path / "bin.sh", "printf 'ok \\377\\376'\n")
    res = run_hook([str(hook)], job_dir, {}, timeout_s=30)
    assert res.ok
    assert res.output.startswith("ok ") and "\ufffd" in res.output


def test_missing_command(job_dir: Path) -> None:
    res = run_hook(["/no/such/hook-xyz"], job_dir, {}, timeout_s=5)
    assert not res.ok
    assert res.exit_code is None
    assert res.error == "command not found: /no/such/hook-xyz"
    res = run_hook(["no-such-hook-command-xyz"], job_dir, {}, timeout_s=5)
    assert res.error == "command not found: no-such-hook-command-xyz"


def test_not_executable(tmp_path: Path, job_dir: Path) -> None:
    # Even root cannot exec a file without any x bit.
    f = tmp_path / "plain.sh"
    f.write_text("#!/bin/sh\n")
    res = run_hook([str(f)], job_dir, {}, timeout_s=5)
    assert res.error is not None and "not executable" in res.error


def test_empty_command(job_dir: Path) -> None:
    res = run_hook([], job_dir, {}, timeout_s=5)
    assert not res.ok and res.error == "empty hook command"


def test_runner_does_not_block_the_caller(tmp_path: Path, job_dir: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    # The hook blocks until the test opens the FIFO for writing: submit() must return
    # while it is still blocked.
    hook = _script(tmp_path / "wait.sh", f'read line < "{gate}"\necho "got $line"\n')
    runner = HookRunner()
    results: list[HookResult] = []
    done = threading.Event()

    def on_done(r: HookResult) -> None:
        results.append(r)
        done.set()

    try:
        runner.submit([str(hook)], job_dir, {}, 60, on_done)
        assert not done.is_set()
        assert runner.pending == 1
        with open(gate, "w") as fh:
            fh.write("go\n")
        assert done.wait(60)
        assert results[0].ok and "got go" in results[0].output
    finally:
        assert runner.shutdown(10)


def test_runner_shutdown_kills_running_hooks_and_skips_queued(
    tmp_path: Path, job_dir: Path
) -> None:
    runner = HookRunner(max_workers=1)
    results: list[HookResult] = []
    lock = threading.Lock()

    def on_done(r: HookResult) -> None:
        with lock:
            results.append(r)

    pid_file = tmp_path / "pid"
    hook = _script(tmp_path / "hang.sh", f'echo $$ > "{pid_file}"\nexec sleep 1000\n')
    runner.submit([str(hook)], job_dir, {}, 1000, on_done)
    runner.submit([str(hook)], job_dir, {}, 1000, on_done)
    wait_for(pid_file.exists, timeout=30, what="the first hook to start")
    assert runner.shutdown(0) is False
    assert len(results) == 2
    errors = sorted(r.error or "" for r in results)
    assert any("not run" in e for e in errors)
    assert any("killed by signal" in e for e in errors)
    wait_for(lambda: not pid_alive(int(pid_file.read_text())), timeout=30, what="hook to die")
    # After shutdown, submit reports at once instead of queueing.
    runner.submit([str(hook)], job_dir, {}, 1, on_done)
    assert "not run" in (results[-1].error or "")
