"""The systemd units: `systemd-analyze verify` is clean, and the contract's facts hold.

verify reports most unit mistakes (a misspelled directive, a bad value) as a warning
line while still exiting 0, so the test fails on any output line naming our unit, not
only on the exit status. /usr/bin/spoold need not exist here: the copy under test runs
a stub executable instead, so a "not executable" line is never expected either.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import ROOT

SYSTEMD = ROOT / "systemd"
UNITS = ("spoold.service", "spoold@.service")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or (
    "/usr/bin/systemd-analyze" if os.access("/usr/bin/systemd-analyze", os.X_OK) else None
)

needs_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (a key may repeat); comments and blanks dropped."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit[section].get(key)
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


def seconds(value: str) -> float:
    """systemd time spans used here: '90', '90s', '1min 30s', '5min'."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(num) * units[unit]
    return total


@pytest.fixture
def stub_units(tmp_path: Path) -> Callable[[str], Path]:
    """Copy a unit into tmp_path with ExecStart= pointing at a stub executable."""
    stub = tmp_path / "bin" / "spoold"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()

    def copy(name: str, text: str | None = None) -> Path:
        text = (SYSTEMD / name).read_text() if text is None else text
        assert "/usr/bin/spoold " in text
        text = text.replace("/usr/bin/spoold ", f"{stub} ")
        if not os.access("/bin/kill", os.X_OK):  # a host without it; not the unit's fault
            text = text.replace("/bin/kill ", f"{stub} ")
        dest = unit_dir / name
        dest.write_text(text)
        return dest

    return copy


def verify(unit_path: Path) -> tuple[int, list[str]]:
    """Run verify on unit_path; the exit status and the output lines about our unit."""
    assert SYSTEMD_ANALYZE is not None
    cmd = [SYSTEMD_ANALYZE, "verify", "--man=no"]
    help_text = subprocess.run(
        [SYSTEMD_ANALYZE, "--help"], capture_output=True, text=True, check=False
    ).stdout
    if "--recursive-errors" in help_text:
        # Judge our unit, not whatever the host's targets and mounts look like.
        cmd.append("--recursive-errors=no")
    cmd.append(str(unit_path))
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""},
    )
    # Lines naming the file or unit under test; the template's warnings name the
    # template file (spoold@.service) even when an instance is verified.
    names = {unit_path.name, "spoold@.service", "spoold.service", "spoold-http@.service"}
    ours = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if any(name in line for name in names)
    ]
    return proc.returncode, ours


@needs_analyze
def test_spoold_service_verifies(stub_units: Callable[..., Path]) -> None:
    rc, lines = verify(stub_units("spoold.service"))
    assert rc == 0 and not lines, lines


@needs_analyze
def test_spoold_instance_verifies(stub_units: Callable[..., Path]) -> None:
    template = stub_units("spoold@.service")
    rc, lines = verify(template.with_name("spoold@demo.service"))
    assert rc == 0 and not lines, lines


@needs_analyze
@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        ("spoold.service", "NoNewPrivileges=yes", "NoNewPrivilege=yes"),
        ("spoold@.service", "Type=notify", "Type=notifyy"),
        ("spoold@.service", "KillMode=mixed", "KillMode=blended"),
    ],
)
def test_verify_catches_a_broken_unit(
    stub_units: Callable[..., Path], name: str, old: str, new: str
) -> None:
    """The check above can fail: a misspelled directive or bad value is reported."""
    text = (SYSTEMD / name).read_text()
    assert f"\n{old}\n" in text
    path = stub_units(name, text.replace(f"\n{old}\n", f"\n{new}\n"))
    if name.endswith("@.service"):
        path = path.with_name("spoold@demo.service")
    rc, lines = verify(path)
    assert rc != 0 or lines, "verify did not notice the broken directive"


@needs_analyze
def test_verify_catches_a_missing_binary(tmp_path: Path) -> None:
    text = (SYSTEMD / "spoold.service").read_text().replace("/usr/bin/spoold ", "/nonexistent/x ")
    path = tmp_path / "spoold.service"
    path.write_text(text)
    rc, lines = verify(path)
    assert rc != 0 or lines


# ---------------------------------------------------------------------- unit facts


@pytest.fixture(params=UNITS)
def unit(request: pytest.FixtureRequest) -> dict[str, dict[str, list[str]]]:
    return parse_unit((SYSTEMD / request.param).read_text())


def test_service_contract(unit: dict[str, dict[str, list[str]]]) -> None:
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "KillMode": "mixed",
        "KillSignal": "SIGTERM",
        "Restart": "on-failure",
        "User": "spoold",
        "Group": "spoold",
        "UMask": "0002",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "OOMPolicy": "continue",
    }
    for key, value in expected.items():
        assert one(unit, "Service", key) == value, key
    # Longer than the default drain (drain_s = 60) so a drain is never cut short.
    assert seconds(one(unit, "Service", "TimeoutStopSec")) > 60
    assert 0 < seconds(one(unit, "Service", "WatchdogSec")) <= 60
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_hardening(unit: dict[str, dict[str, list[str]]]) -> None:
    flags = {
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "SystemCallArchitectures": "native",
        "MemoryMax": "4G",
    }
    for key, value in flags.items():
        assert one(unit, "Service", key) == value, key
    assert one(unit, "Service", "CapabilityBoundingSet") == ""
    families = set(one(unit, "Service", "RestrictAddressFamilies").split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert one(unit, "Service", "ReadWritePaths").startswith("/srv/spool")
    assert "TasksMax" in unit["Service"]


def test_exec_start_lines() -> None:
    daemon = parse_unit((SYSTEMD / "spoold.service").read_text())
    assert (
        one(daemon, "Service", "ExecStart")
        == "/usr/bin/spoold run --config /etc/spoold/spoold.toml"
    )
    template = parse_unit((SYSTEMD / "spoold@.service").read_text())
    assert one(template, "Service", "ExecStart") == "/usr/bin/spoold run /srv/spool/%i"
    # The instance may write only its own spool.
    assert one(template, "Service", "ReadWritePaths") == "/srv/spool/%i"


def test_units_start_with_a_comment_header() -> None:
    for name in UNITS:
        first = (SYSTEMD / name).read_text().splitlines()[0]
        assert first.startswith(f"# {name}"), name


# ---------------------------------------------------------------------- sysusers, tmpfiles


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or os.geteuid() != 0,
    reason="needs systemd-sysusers and root (it writes a passwd file under --root)",
)
def test_sysusers_creates_the_user(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(SYSTEMD / "sysusers.d" / "spoold.conf")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    passwd = (tmp_path / "etc" / "passwd").read_text()
    entry = next(line for line in passwd.splitlines() if line.startswith("spoold:"))
    uid = int(entry.split(":")[2])
    assert 0 < uid < 1000, "a system user"
    assert entry.endswith(":/usr/sbin/nologin") or entry.endswith(":/sbin/nologin")
    assert any(
        line.startswith("spoold:") for line in (tmp_path / "etc" / "group").read_text().splitlines()
    )


@pytest.mark.skipif(
    shutil.which("systemd-tmpfiles") is None or os.geteuid() != 0,
    reason="needs systemd-tmpfiles and root (it chowns under --root)",
)
def test_tmpfiles_creates_the_spool_root(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    # The user must exist inside --root for tmpfiles to resolve it.
    (etc / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\nspoold:x:990:990::/:/usr/sbin/nologin\n"
    )
    (etc / "group").write_text("root:x:0:\nspoold:x:990:\n")
    subprocess.run(
        [
            "systemd-tmpfiles",
            f"--root={tmp_path}",
            "--create",
            str(SYSTEMD / "tmpfiles.d" / "spoold.conf"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    st = (tmp_path / "srv" / "spool").stat()
    assert st.st_uid == 990
    assert (tmp_path / "etc" / "spoold").is_dir()
