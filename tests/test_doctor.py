"""`spoold doctor` and `python -m spoold.doctor --system` on WeasyPrint's system
libraries: a library hidden from the loader is reported with what to install."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from spoold import doctor

from .conftest import ROOT


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
        [sys.executable, "-m", "spoold.doctor", "--system"],
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
    assert Path(ROOT / "Makefile").read_text().count("spoold.doctor --system") == 1
