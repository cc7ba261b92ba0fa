"""`spoold doctor` and `python -m spoold.ops.doctor --system` on WeasyPrint's system
libraries: a library hidden from the loader is reported with what to install."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from spoold.ops import doctor

from .conftest import ROOT
from .hosts import skew_env


def _hide(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Point the check for `name` at a library that does not exist, so the real
    find_library / CDLL path runs and finds nothing."""
    libs = tuple(
        dataclasses.replace(lib, name=f"spoold-hidden-{lib.name}") if lib.name == name else lib
        for lib in doctor.SYSTEM_LIBRARIES
    )
    monkeypatch.setattr(doctor, "SYSTEM_LIBRARIES", libs)


def test_every_library_weasyprint_needs_is_found_here() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "spoold.ops.doctor", "--system"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PASS  lib harfbuzz-subset" in res.stdout
    assert "apt-get install" not in res.stdout


def test_missing_harfbuzz_subset_warns_that_bytes_differ(
    monkeypatch: pytest.MonkeyPatch, make_spool
) -> None:
    _hide(monkeypatch, "harfbuzz-subset")
    checks = doctor.run_checks(make_spool())
    [check] = [c for c in checks if c.name == "lib spoold-hidden-harfbuzz-subset"]
    assert check.level == "warn", "PDFs still work without it"
    assert "sha256 differs" in check.detail and "libharfbuzz-subset0" in check.detail
    text = doctor.report(checks)
    assert (
        text.splitlines()[-1] == "to install what is missing: apt-get install libharfbuzz-subset0"
    )
    assert doctor.main(["--system"]) == 0, "a warning does not stop `make run`"


def test_a_missing_required_library_fails_and_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _hide(monkeypatch, "pango-1.0")
    assert doctor.main(["--system"]) == 69
    out = capsys.readouterr().out
    assert "FAIL  lib spoold-hidden-pango-1.0" in out
    assert out.rstrip().endswith("apt-get install libpango-1.0-0")


def test_packages_named_are_the_ones_ci_installs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    for lib in doctor.SYSTEM_LIBRARIES:
        assert lib.package in ci, lib.package
        assert lib.package in readme, lib.package
    assert Path(ROOT / "Makefile").read_text().count("spoold.ops.doctor --system") == 1


@pytest.mark.parametrize("tool_skew_s", [120.0, -120.0])
def test_a_tool_on_a_skewed_host_sees_a_live_daemon_with_a_sane_heartbeat_age(
    make_spool: Any, daemon_factory: Any, tool_skew_s: float
) -> None:
    """`spoold status` and `doctor` run on a host whose clock is two minutes off the
    file server's (which stamps the lease's mtime): the daemon is alive, its heartbeat
    seconds old, not two minutes old or in the future."""
    spool = make_spool(lease_ttl_s=30.0)
    daemon = daemon_factory(spool)
    daemon.wait_ready()
    env = {**os.environ, **skew_env(tool_skew_s)}

    def spoold(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "spoold", *args]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)

    status = spoold("status", str(spool), "--json")
    (lease,) = json.loads(status.stdout)["daemons"]
    assert 0.0 <= lease["heartbeat_age_s"] <= 30.0, lease
    checked = spoold("doctor", str(spool))
    assert re.search(r"^PASS\s+daemons\s+1 daemon\(s\) alive$", checked.stdout, re.M), (
        checked.stdout
    )


def test_the_skew_shim_moves_the_tools_clock() -> None:
    """The test above means something only if the tool's wall clock really is off."""
    code = "import time; print(time.time())"
    env = {**os.environ, **skew_env(120.0)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert float(out.stdout) - time.time() > 100
