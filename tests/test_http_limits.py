"""Slow clients and a full disk: the gateway bounds what a client can hold, and a disk
that fills while an upload is staged leaves nothing half-written."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spoold.spool.protocol import init_spool

from .conftest import FAST, write_spool_toml


def test_headers_that_never_end_are_cut_off(
    make_spool: Callable[..., Path], gateway_factory: Callable[..., Any]
) -> None:
    spool = make_spool()
    gw = gateway_factory(spool)
    s = socket.create_connection(("127.0.0.1", gw.port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and nothing more
    s.settimeout(60)
    started = time.monotonic()
    assert s.recv(1024) == b""  # closed by the gateway, without an answer
    assert time.monotonic() - started < 55
    s.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_while_staging_is_507_and_leaves_nothing(
    small_disk: Path, gateway_factory: Callable[..., Any]
) -> None:
    spool = small_disk / "spool"
    init_spool(spool)
    write_spool_toml(spool, {**FAST, "max_upload_mb": 50, "max_input_mb": 50})
    gw = gateway_factory(spool)
    with gw.client() as c:
        r = c.post(
            "/v1/spools/spool/jobs",
            params={"name": "big.md"},
            content=b"x" * (8 << 20),
            headers={"Content-Type": "text/markdown"},
        )
        assert r.status_code == 507, r.text
        err = r.json()["error"]
        assert err["code"] == "disk_full" and err["retryable"] is True
        assert os.listdir(spool / "inbox") == [] and os.listdir(spool / "tmp") == []
        small = c.post(
            "/v1/spools/spool/jobs",
            params={"name": "ok.md"},
            content=b"# ok\n",
            headers={"Content-Type": "text/markdown"},
        )
        assert small.status_code == 202  # the space came back: the next upload goes in
