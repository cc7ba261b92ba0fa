"""systemd/spoold-http@.service: verified like the daemon's units, and as hardened."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .test_systemd_units import SYSTEMD, needs_analyze, one, parse_unit, stub_units, verify

__all__ = ["stub_units"]  # the fixture, used by name below

UNIT = "spoold-http@.service"


@needs_analyze
def test_gateway_instance_verifies(stub_units: Callable[..., Path]) -> None:
    template = stub_units(UNIT)
    rc, lines = verify(template.with_name("spoold-http@demo.service"))
    assert rc == 0 and not lines, lines


@needs_analyze
def test_verify_catches_a_broken_gateway_unit(stub_units: Callable[..., Path]) -> None:
    text = (SYSTEMD / UNIT).read_text().replace("\nType=notify\n", "\nType=notifyy\n")
    path = stub_units(UNIT, text).with_name("spoold-http@demo.service")
    rc, lines = verify(path)
    assert rc != 0 or lines


def test_gateway_unit_is_hardened_like_the_daemons() -> None:
    gateway = parse_unit((SYSTEMD / UNIT).read_text())
    daemon = parse_unit((SYSTEMD / "spoold@.service").read_text())
    same = [
        "ProtectSystem",
        "ReadWritePaths",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "NoNewPrivileges",
        "CapabilityBoundingSet",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "RestrictAddressFamilies",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "LockPersonality",
        "MemoryDenyWriteExecute",
        "SystemCallArchitectures",
        "SystemCallFilter",
        "SystemCallErrorNumber",
        "User",
        "Group",
        "UMask",
        "Type",
        "NotifyAccess",
        "Restart",
        "KillMode",
    ]
    for key in same:
        assert one(gateway, "Service", key) == one(daemon, "Service", key), key
    assert one(gateway, "Service", "ExecStart") == (
        "/usr/bin/spoold serve /srv/spool/%i --listen unix:/run/spoold-http-%i/http.sock"
    )
    assert one(gateway, "Service", "RuntimeDirectory") == "spoold-http-%i"
    assert (SYSTEMD / UNIT).read_text().startswith(f"# {UNIT}")
