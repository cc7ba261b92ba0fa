"""resources.zip through the daemon: checked, extracted once per job, used by the
converters; bad archives fail with resource_invalid and nothing is written. Also the
image pixel cap, which refuses an image (a warning) instead of decoding it."""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docx
import pytest
from PIL import Image

from spoold.errors import ErrorCode, JobError
from spoold.worker.resources import RESOURCES_MARK, RESOURCES_STAGING, prepare_resources

from .conftest import (
    PLUGIN_ENV,
    DaemonProc,
    assert_all_manifests_valid,
    pdf_image_sizes,
    pdftotext,
    published,
    stage_file,
    wait_for,
)

MakeSpool = Callable[..., Path]
DaemonFactory = Callable[..., DaemonProc]


def png_bytes(width: int, height: int, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with a token of image data.

    Far too large to decode in a test (or a worker): only the header should be read.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


def make_zip(members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return buf.getvalue()


def symlink_member(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the mode bits below are read
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def drop_folder(spool: Path, name: str, files: dict[str, bytes | str]) -> None:
    """Build a job folder in tmp/, then rename it into inbox/ (complete at once)."""
    folder = spool / "tmp" / name
    folder.mkdir()
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    os.rename(folder, spool / "inbox" / name)


def by_name(spool: Path, state: str) -> dict[str, tuple[Path, dict[str, Any]]]:
    out = {}
    for folder in published(spool, state):
        m = json.loads((folder / "manifest.json").read_text())
        out[m["name"]] = (folder, m)
    return out


def artifact(folder: Path, manifest: dict[str, Any], target: str) -> Path:
    (art,) = [a for a in manifest["artifacts"] if a["target"] == target]
    return folder / art["path"]


# --- through the daemon ---------------------------------------------------------------


def test_resources_zip_images_and_css_reach_the_outputs(
    make_spool: MakeSpool, daemon_factory: DaemonFactory
) -> None:
    spool = make_spool()
    logo = png_bytes(120, 60)
    archive = make_zip(
        [
            ("logo.png", logo),
            # Applied on top of the theme: one rule adds text to the PDF, one removes some.
            ("style.css", 'h1::before { content: "ZIPSTYLED " } .drop-me { display: none }'),
            ("img/", b""),
        ]
    )
    doc = (
        "# Report\n\n![the logo](resources/logo.png)\n\n"
        '<p class="drop-me">HIDDENBYCSS</p>\n\nBody text.\n'
    )
    drop_folder(
        spool,
        "report",
        {
            "report.md": doc,
            "resources.zip": archive,
            "job.json": json.dumps({"targets": ["pdf", "html"]}),
        },
    )
    d = daemon_factory(spool)
    wait_for(lambda: published(spool), what="report published")
    assert_all_manifests_valid(spool)
    folder, m = by_name(spool, "done")["report"]
    assert m["status"] == "succeeded"
    assert not any("not loaded" in w for w in m["warnings"]), m["warnings"]

    pdf = artifact(folder, m, "pdf")
    assert pdf_image_sizes(pdf) == [(120, 60)]
    text = pdftotext(pdf)
    assert "ZIPSTYLED Report" in text
    assert "Body text." in text and "HIDDENBYCSS" not in text
    html = artifact(folder, m, "html").read_text()
    assert "ZIPSTYLED" in html and "data:image/png;base64," in html

    fetched = {f["url"]: f for f in m["fetches"]}
    assert fetched["resources/logo.png"]["allowed"] is True
    assert fetched["resources/logo.png"]["bytes"] == len(logo)
    # The input is kept as dropped, next to what was extracted from it.
    job = folder / "input" / "report"
    assert (job / "resources.zip").read_bytes() == archive
    assert (job / "resources" / "logo.png").read_bytes() == logo
    assert not list(folder.glob(RESOURCES_STAGING + "*"))
    assert d.stop() == 0


def test_extraction_survives_a_retry_of_the_same_job(
    make_spool: MakeSpool, daemon_factory: DaemonFactory
) -> None:
    """A retried attempt finds resources/ it extracted itself, not a second copy."""
    spool = make_spool()
    drop_folder(
        spool,
        "flaky",
        {
            "doc.flaky": "1",  # fails once with a retryable error, then succeeds
            "resources.zip": make_zip([("a.css", "p {}")]),
        },
    )
    daemon_factory(spool, env=PLUGIN_ENV)
    wait_for(lambda: published(spool) or published(spool, "failed"), what="flaky published")
    assert published(spool, "failed") == []
    folder, m = by_name(spool, "done")["flaky"]
    assert [a["outcome"] for a in m["attempts"]] == ["retry", "succeeded"]
    assert (folder / "input" / "flaky" / "resources" / "a.css").read_text() == "p {}"


BAD_ARCHIVES: dict[str, tuple[list[tuple[zipfile.ZipInfo | str, bytes]], str]] = {
    "dotdot": ([("ok.png", b"x"), ("../evil.txt", b"EVIL")], "'../evil.txt': path leaves"),
    "symlink": ([("ok.png", b"x"), symlink_member("evil.txt", "/etc/passwd")], "symbolic link"),
    # 20 MiB of zeros packs to about 20 KiB: far over the 100:1 ratio cap.
    "bomb": ([("evil.bin", b"\0" * (20 * 1024 * 1024))], "'evil.bin': compression ratio"),
    "members": ([(f"f{i}.txt", b"x") for i in range(1001)], "1001 members; at most 1000"),
}


def test_bad_archives_fail_with_resource_invalid_and_write_nothing(
    make_spool: MakeSpool, daemon_factory: DaemonFactory
) -> None:
    spool = make_spool()
    d = daemon_factory(spool)
    for name, (members, _) in BAD_ARCHIVES.items():
        drop_folder(spool, name, {"doc.md": "# Doc\n", "resources.zip": make_zip(members)})
    wait_for(
        lambda: len(published(spool, "failed")) == len(BAD_ARCHIVES), what="bad archives failed"
    )
    assert_all_manifests_valid(spool)
    failed = by_name(spool, "failed")
    for name, (_, needle) in BAD_ARCHIVES.items():
        folder, m = failed[name]
        assert m["error"]["code"] == ErrorCode.RESOURCE_INVALID.value
        assert needle in m["error"]["message"], m["error"]["message"]
        assert m["artifacts"] == []
        assert not (folder / "input" / name / "resources").exists()
        assert not (folder / RESOURCES_MARK).exists()
        assert not list(folder.glob(RESOURCES_STAGING + "*"))
        assert "resources.zip" in (folder / "ERROR.txt").read_text()
    assert not [p for p in spool.parent.rglob("evil*")], "a member was written somewhere"

    # The daemon is still serving the spool.
    assert d.proc is not None and d.proc.poll() is None
    stage_file(spool, "after.md", "# After\n")
    wait_for(lambda: "after.md" in by_name(spool, "done"), what="a good job after the bad ones")
    assert d.stop() == 0


def test_resources_folder_and_zip_together_are_refused(
    make_spool: MakeSpool, daemon_factory: DaemonFactory
) -> None:
    spool = make_spool()
    drop_folder(
        spool,
        "both",
        {
            "doc.md": "# Doc\n",
            "resources/a.css": "p {}",
            "resources.zip": make_zip([("b.css", "p {}")]),
        },
    )
    daemon_factory(spool)
    wait_for(lambda: published(spool, "failed"), what="job failed")
    folder, m = by_name(spool, "failed")["both"]
    assert m["error"]["code"] == ErrorCode.INPUT_INVALID.value
    assert "resources/" in m["error"]["message"] and "resources.zip" in m["error"]["message"]
    # What was dropped is kept as it was: nothing extracted over it.
    assert sorted(p.name for p in (folder / "input" / "both" / "resources").iterdir()) == ["a.css"]


def test_image_over_the_pixel_cap_is_a_warning_not_a_crash(
    make_spool: MakeSpool, daemon_factory: DaemonFactory
) -> None:
    """Default cap (50 million pixels): one image just over it, one Pillow calls a
    decompression bomb, and one small image that must still be placed."""
    spool = make_spool()
    over = io.BytesIO()
    Image.new("L", (9000, 6000)).save(over, format="PNG")  # 54 Mpx, about 60 KB
    drop_folder(
        spool,
        "pixels",
        {
            "doc.md": (
                "# Pixels\n\n![over](over.png) ![bomb](bomb.png) ![small](small.png)\n\n"
                "Text after the images.\n"
            ),
            "over.png": over.getvalue(),
            "bomb.png": png_header_only(40000, 40000),  # 1.6 Gpx
            "small.png": png_bytes(30, 20),
            "job.json": json.dumps({"targets": ["pdf", "docx", "html"]}),
        },
    )
    d = daemon_factory(spool)
    wait_for(lambda: published(spool) or published(spool, "failed"), what="pixels published")
    assert published(spool, "failed") == []
    folder, m = by_name(spool, "done")["pixels"]
    for name in ("over.png", "bomb.png"):
        assert any(name in w and "pixel cap" in w for w in m["warnings"]), (name, m["warnings"])
    assert not any("small.png" in w for w in m["warnings"])

    pdf = artifact(folder, m, "pdf")
    assert "Text after the images." in pdftotext(pdf)
    assert pdf_image_sizes(pdf) == [(30, 20)]
    document = docx.Document(str(artifact(folder, m, "docx")))
    assert len(document.inline_shapes) == 1
    assert "Text after the images." in "\n".join(p.text for p in document.paragraphs)
    assert d.proc is not None and d.proc.poll() is None


# --- prepare_resources, the worker's step, on its own -----------------------------------


@pytest.fixture
def running(tmp_path: Path) -> tuple[Path, Path]:
    """A running folder and the job folder inside it, with a resources.zip."""
    folder = tmp_path / "running" / "job.a1.0000abcd"
    job = folder / "input" / "job"
    job.mkdir(parents=True)
    (job / "doc.md").write_text("# Doc\n")
    (job / "resources.zip").write_bytes(make_zip([("a.css", "p {}"), ("img/b.png", b"png")]))
    return folder, job


def test_prepare_resources_is_idempotent(running: tuple[Path, Path]) -> None:
    folder, job = running
    prepare_resources(job, folder)
    (job / "resources" / "a.css").write_text("changed by attempt 1")
    prepare_resources(job, folder)  # attempt 2: keeps what attempt 1 extracted
    assert (job / "resources" / "a.css").read_text() == "changed by attempt 1"
    assert (job / "resources" / "img" / "b.png").read_bytes() == b"png"
    assert sorted(p.name for p in job.iterdir()) == ["doc.md", "resources", "resources.zip"]


def test_prepare_resources_recovers_from_a_killed_extraction(
    running: tuple[Path, Path],
) -> None:
    folder, job = running
    # Killed after the mark and half the members, before the rename into place.
    (folder / RESOURCES_MARK).write_text("")
    stale = folder / (RESOURCES_STAGING + "x1y2")
    stale.mkdir()
    (stale / "a.css").write_text("half")
    prepare_resources(job, folder)
    assert (job / "resources" / "a.css").read_text() == "p {}"
    assert not stale.exists()


def test_prepare_resources_without_a_zip_does_nothing(running: tuple[Path, Path]) -> None:
    folder, job = running
    (job / "resources.zip").unlink()
    (job / "resources").mkdir()
    prepare_resources(job, folder)
    assert not (folder / RESOURCES_MARK).exists()


def test_prepare_resources_refuses_a_zip_that_is_not_a_file(
    running: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, job = running
    real = tmp_path / "elsewhere.zip"
    os.rename(job / "resources.zip", real)
    (job / "resources.zip").symlink_to(real)
    with pytest.raises(JobError) as info:
        prepare_resources(job, folder)
    assert info.value.code is ErrorCode.RESOURCE_INVALID
    assert not (job / "resources").exists()
    assert not (folder / RESOURCES_MARK).exists()
