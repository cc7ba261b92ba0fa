"""Entries that fail their format check, with a real daemon: they say why while they
wait, fail within `unchanged_fail_s` when they were already there, unchanged, when the
daemon first saw them, and a writer that pauses and goes on is converted whole.

Entries are written in place in inbox/ (no rename), as a copy over Samba or a scanner
writes, or as they are when a daemon starts on a spool that already holds them.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfWriter

from spoold.spool.clock import parse_iso

from .conftest import DaemonProc, cli, manifests, published, wait_for

pytestmark = pytest.mark.processes


def pdf_bytes(pages: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def show(spool: Path, name: str) -> dict[str, Any]:
    return json.loads(cli("show", str(spool), name).stdout)


def status(spool: Path) -> dict[str, Any]:
    return json.loads(cli("status", str(spool), "--json").stdout)


def waiting_of(spool: Path, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = show(spool, name)["waiting"]
    return found


def pdf_pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    line = next(ln for ln in info.stdout.splitlines() if ln.startswith("Pages:"))
    return int(line.split()[1])


def test_broken_entries_present_at_start_up_fail_within_the_bound_naming_the_member(
    make_spool: Callable[..., Path], daemon_factory: Callable[..., DaemonProc]
) -> None:
    spool = make_spool(unchanged_fail_s=3, incomplete_after_s=3600, targets=["html"])
    job = spool / "inbox" / "report"
    job.mkdir()
    (job / "report.md").write_text("# Report\n\nText.\n")
    (job / "reference.docx").write_bytes(b"this is not a ZIP file")
    (spool / "inbox" / "scan.pdf").write_bytes(pdf_bytes(2)[:-200])  # no %%EOF
    (spool / "inbox" / "fine.md").write_text("# Fine\n")
    daemon = daemon_factory(spool)
    daemon.wait_ready()
    wait_for(lambda: len(published(spool, "failed")) == 2, 120, "both broken entries failed")
    wait_for(lambda: published(spool, "done"), 120, "the good entry converted")
    errors = {m["name"]: m["error"] for m in manifests(spool) if m["status"] == "failed"}
    assert {name: e["code"] for name, e in errors.items()} == {
        "report": "input_invalid",
        "scan.pdf": "input_invalid",
    }
    assert errors["report"]["message"].startswith(
        "report/reference.docx is not a complete DOCX file"
    )
    assert errors["scan.pdf"]["message"].startswith("scan.pdf does not end with %%EOF")
    for error in errors.values():
        assert "has not changed for 3 s" in error["message"]
    error_txt = next((spool / "failed").glob("report.*")) / "ERROR.txt"
    assert "report/reference.docx" in error_txt.read_text()
    assert not list((spool / ".spoold" / "waiting").glob("*.json")), "nothing waits any more"


def test_waiting_entries_say_why_and_a_paused_writer_is_converted_whole(
    make_spool: Callable[..., Path], daemon_factory: Callable[..., DaemonProc]
) -> None:
    spool = make_spool(unchanged_fail_s=600, incomplete_after_s=600, targets=["pdf"])
    early, late = pdf_bytes(3), pdf_bytes(5)
    # A writer had written half of early.pdf when the daemon started, and paused.
    (spool / "inbox" / "early.pdf").write_bytes(early[: len(early) // 2])
    daemon = daemon_factory(spool)
    daemon.wait_ready()
    # Another starts writing while the daemon runs, and pauses too.
    (spool / "inbox" / "late.pdf").write_bytes(late[: len(late) // 2])

    # The writers stay paused until the daemon says it waits on both files: each pause
    # is longer than settle_ms (the files were checked) and shorter than the bound.
    wait_for(lambda: status(spool)["waiting"] == 2, 120, "two entries waiting")
    data = status(spool)
    assert data["queued"] == 0
    by_name = {job["name"]: job["waiting"] for job in data["waiting_jobs"]}
    waiting = by_name["early.pdf"]
    assert waiting["reason"] == "incomplete"
    assert waiting["member"] == "early.pdf"
    assert (
        waiting["message"] == "early.pdf does not end with %%EOF: the PDF is cut short or damaged"
    )
    assert parse_iso(waiting["until"]) - parse_iso(waiting["since"]) == pytest.approx(600)
    assert waiting_of(spool, "early.pdf") == waiting
    text = cli("status", str(spool)).stdout
    assert "0 queued, 2 waiting" in text
    assert "waiting inbox/early.pdf: early.pdf does not end with %%EOF" in text
    assert "unless it changes" in text
    listed = json.loads(cli("list", str(spool), "--state", "queued", "--json").stdout)
    assert {job["name"]: job["waiting"]["member"] for job in listed} == {
        "early.pdf": "early.pdf",
        "late.pdf": "late.pdf",
    }
    rows = cli("list", str(spool), "--state", "queued").stdout.splitlines()
    assert all("does not end with %%EOF" in row.split("\t")[5] for row in rows)

    # The writers go on and finish: both are converted whole.
    for name, data_ in (("early.pdf", early), ("late.pdf", late)):
        with open(spool / "inbox" / name, "ab") as fh:
            fh.write(data_[len(data_) // 2 :])
    wait_for(lambda: len(published(spool, "done")) == 2, 120, "both converted")
    assert published(spool, "failed") == []
    for m in manifests(spool):
        full = early if m["name"] == "early.pdf" else late
        assert m["input"]["sha256"] == hashlib.sha256(full).hexdigest()
        [artifact] = m["artifacts"]
        folder = next((spool / "done").glob(f"{Path(m['name']).stem}.*"))
        assert pdf_pages(folder / artifact["path"]) == (3 if m["name"] == "early.pdf" else 5)
    assert status(spool)["waiting"] == 0
