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


def test_a_queue_filled_by_others_since_the_last_count_is_still_refused(
    make_spool: Callable[..., Path], gateway_factory: Callable[..., Any]
) -> None:
    # The check before the body may use this gateway's last count (under a second old);
    # the check before the rename lists the inbox, so jobs dropped meanwhile count.
    spool = make_spool(max_queued=3)
    gw = gateway_factory(spool)

    def post(name: str) -> Any:
        return c.post(
            "/v1/spools/spool/jobs",
            params={"name": name},
            content=b"# doc\n",
            headers={"Content-Type": "text/markdown"},
        )

    with gw.client() as c:
        assert post("first.md").status_code == 202  # counted: 1 queued
        for i in range(2):  # another tool fills the queue: no daemon runs
            staged = spool / "tmp" / f".drop{i}"
            staged.write_text("# dropped\n")
            os.rename(staged, spool / "inbox" / f"drop{i}.md")
        refused = post("late.md")
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "queue_full"
        inbox = os.listdir(spool / "inbox")
        assert len(inbox) == 3 and {"drop0.md", "drop1.md"} < set(inbox)
        assert not [n for n in os.listdir(spool / "tmp") if n.startswith(".spoold-http")]
