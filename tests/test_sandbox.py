"""The sandbox: nothing outside the job is read, nothing on the network is asked for,
and resources.zip is refused before anything is written."""

from __future__ import annotations

import base64
import http.server
import io
import os
import stat
import subprocess
import threading
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from spoold.convert import ConversionContext, ConvertOptions, get_converter, load_converters
from spoold.convert.fetcher import fetch_bytes
from spoold.convert.html import sandbox_fetcher
from spoold.convert.resources import ZipLimits, check_zip_complete, extract_resources
from spoold.errors import ErrorCode, JobError

load_converters()


class Canary:
    def __init__(self) -> None:
        self.requests: list[str] = []
        canary = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                canary.requests.append(self.path)
                body = b"body::after { content: 'NETWORKLEAK' }"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    try:
        yield c
    finally:
        c.server.shutdown()
        c.server.server_close()


def test_canary_server_is_reachable(canary: Canary) -> None:
    # The no-request assertions below mean something only if the server does answer.
    import urllib.request

    with urllib.request.urlopen(canary.url("probe")) as resp:
        assert b"NETWORKLEAK" in resp.read()
    assert canary.requests == ["/probe"]
    canary.requests.clear()


@pytest.fixture
def outside(tmp_path: Path) -> tuple[Path, str]:
    """A folder outside the job holding secrets with a unique token."""
    token = "SECRET" + uuid.uuid4().hex[:12].upper()
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text(token)
    (folder / "secret.css").write_text(f"body::before {{ content: '{token}' }}")
    (folder / "secret.svg").write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="50">'
        f'<text x="0" y="30">{token}</text></svg>'
    )
    return folder, token


def _job_with_references(tmp_path: Path, outside: Path, canary: Canary) -> Path:
    job = tmp_path / "job"
    job.mkdir()
    (job / "link.css").symlink_to(outside / "secret.css")
    (job / "link.svg").symlink_to(outside / "secret.svg")
    (job / "linkdir").symlink_to(outside)
    abs_css = (outside / "secret.css").as_uri()
    html = f"""<!DOCTYPE html><html><head><title>t</title>
<link rel="stylesheet" href="../outside/secret.css">
<link rel="stylesheet" href="{abs_css}">
<link rel="stylesheet" href="link.css">
<link rel="stylesheet" href="linkdir/secret.css">
<link rel="stylesheet" href="{canary.url("sheet.css")}">
<style>
@import url({canary.url("import.css")});
@import "{abs_css}";
@import "../outside/secret.css";
@font-face {{ font-family: X; src: url({canary.url("font.woff")}); }}
p {{ background: url({canary.url("bg.png")}); }}
</style></head><body>
<p>visible words</p>
<img src="{canary.url("x.png")}">
<img src="//127.0.0.1:{canary.port}/protocol-relative.png">
<img src="../outside/secret.svg">
<img src="{(outside / "secret.svg").as_uri()}">
<img src="/{outside.relative_to("/")}/secret.svg">
<img src="link.svg">
<img src="linkdir/secret.svg">
<object data="../outside/secret.txt">fallback</object>
<iframe src="../outside/secret.txt"></iframe>
<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">
  <image xlink:href="{canary.url("svg.png")}" width="10" height="10"/>
  <image href="../outside/secret.svg" width="10" height="10"/>
</svg>
<div style="background-image: url('{canary.url("inline.png")}')">styled</div>
</body></html>"""
    (job / "page.html").write_text(html)
    md = (
        f"# Doc\n\nvisible words\n\n![a]({canary.url('md.png')}) ![b](../outside/secret.svg)"
        f" ![c](link.svg) ![d]({(outside / 'secret.svg').as_uri()})\n\n"
        f'<link rel="stylesheet" href="../outside/secret.css">\n'
    )
    (job / "doc.md").write_text(md)
    return job


def _text_of(path: Path) -> str:
    if path.suffix == ".pdf":
        return subprocess.run(
            ["pdftotext", str(path), "-"], check=True, capture_output=True, text=True
        ).stdout
    return path.read_text(errors="replace")


@pytest.mark.parametrize(
    ("src", "target"),
    [("page.html", "pdf"), ("page.html", "html"), ("doc.md", "pdf"), ("doc.md", "html")],
)
def test_nothing_outside_the_job_is_read(
    tmp_path: Path, outside: tuple[Path, str], canary: Canary, src: str, target: str
) -> None:
    folder, token = outside
    job = _job_with_references(tmp_path, folder, canary)
    source_type = "html" if src.endswith(".html") else "md"
    ctx = ConversionContext(job_root=job)
    out = tmp_path / f"out.{target}"
    converter = get_converter(source_type, target)
    assert converter is not None
    converter.convert(job / src, out, ctx)
    assert "visible words" in _text_of(out)
    raw = out.read_bytes()
    for needle in (token, "NETWORKLEAK"):
        assert needle not in _text_of(out)
        assert needle.encode() not in raw
        assert base64.b64encode(needle.encode())[:12] not in raw
    assert canary.requests == []
    assert ctx.fetches and not any(f.allowed for f in ctx.fetches), ctx.fetches
    assert any("outside the job folder" in (f.reason or "") for f in ctx.fetches)
    assert any("not allow-listed" in (f.reason or "") for f in ctx.fetches)


def test_weasyprint_fetcher_refuses_on_its_own(
    tmp_path: Path, outside: tuple[Path, str], canary: Canary
) -> None:
    """Second layer: even a URL the sanitiser missed cannot leave through WeasyPrint."""
    folder, _ = outside
    job = tmp_path / "job"
    job.mkdir()
    ctx = ConversionContext(job_root=job)
    fetcher = sandbox_fetcher(ctx, job)
    for url in (canary.url("direct.png"), (folder / "secret.txt").as_uri(), "ftp://x/y"):
        with pytest.raises(Exception, match="refused"):
            fetcher.fetch(url)
    assert canary.requests == []
    Image.new("RGB", (2, 2)).save(job / "ok.png")
    assert fetcher.fetch((job / "ok.png").as_uri()).read().startswith(b"\x89PNG")


def test_fetcher_rules(tmp_path: Path, outside: tuple[Path, str]) -> None:
    _, token = outside
    job = tmp_path / "job"
    (job / "sub").mkdir(parents=True)
    (job / "sub" / "a.txt").write_text("inside")
    os.mkfifo(job / "fifo")
    ctx = ConversionContext(job_root=job, options=ConvertOptions(max_fetch_bytes=10))
    assert fetch_bytes(ctx, "a.txt", job / "sub") == b"inside"
    assert fetch_bytes(ctx, "/sub/a.txt", job / "sub") == b"inside"  # "/" is the job root
    assert fetch_bytes(ctx, "fifo", job) is None  # never opened for reading, never blocks
    assert fetch_bytes(ctx, "../../outside/secret.txt", job / "sub") is None
    assert fetch_bytes(ctx, "file://otherhost/etc/passwd", job) is None
    assert fetch_bytes(ctx, "data:text/plain,hello", job) == b"hello"
    assert fetch_bytes(ctx, "data:text/plain;base64,aGVsbG8=", job) == b"hello"
    assert fetch_bytes(ctx, "data:text/plain," + "x" * 11, job) is None  # over the cap
    (job / "big.txt").write_text("y" * 11)
    assert fetch_bytes(ctx, "big.txt", job) is None
    assert [f.allowed for f in ctx.fetches] == [
        True,
        True,
        False,
        False,
        False,
        True,
        True,
        False,
        False,
    ]
    assert all(token not in w for w in ctx.warnings)


# --- resources.zip --------------------------------------------------------------------


def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("members", "needle"),
    [
        ([("ok.png", b"x"), ("../evil.txt", b"evil")], "../evil.txt"),
        ([("ok.png", b"x"), ("a/../../evil.txt", b"evil")], "a/../../evil.txt"),
        ([("/etc/evil.txt", b"evil")], "/etc/evil.txt"),
        ([("C:/evil.txt", b"evil")], "C:/evil.txt"),
        ([("ok.png", b"x"), (_symlink_info("link"), b"/etc/passwd")], "link"),
        ([("NUL.txt", b"x")], "NUL.txt"),
        ([("bomb.bin", b"\0" * (20 * 1024 * 1024))], "bomb.bin"),
        ([("a.txt", b"1"), ("a.txt", b"2")], "a.txt"),
    ],
)
def test_bad_zip_is_refused_before_anything_is_written(
    tmp_path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]], needle: str
) -> None:
    import warnings

    job = tmp_path / "job"
    job.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        zpath = _zip(job / "resources.zip", members)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(JobError) as info:
        extract_resources(zpath, job / "resources")
    assert info.value.code == ErrorCode.RESOURCE_INVALID
    assert needle in info.value.message
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert not (tmp_path / "evil.txt").exists()


def test_zip_caps(tmp_path: Path) -> None:
    zpath = _zip(tmp_path / "r.zip", [(f"f{i}.txt", b"x") for i in range(5)])
    with pytest.raises(JobError, match="5 members"):
        extract_resources(zpath, tmp_path / "out", ZipLimits(max_members=4))
    with pytest.raises(JobError, match=r"f2\.txt"):
        extract_resources(zpath, tmp_path / "out", ZipLimits(max_total_bytes=2))
    big = _zip(tmp_path / "big.zip", [("big.bin", os.urandom(2048))])
    with pytest.raises(JobError, match=r"big\.bin"):
        extract_resources(big, tmp_path / "out", ZipLimits(max_member_bytes=1024))
    assert not (tmp_path / "out").exists()


def test_good_zip_extracts(tmp_path: Path) -> None:
    png = io.BytesIO()
    Image.new("RGB", (3, 3)).save(png, format="PNG")
    zpath = _zip(
        tmp_path / "r.zip",
        [("img/a.png", png.getvalue()), ("style.css", b"p{}"), ("img/", b"")],
    )
    assert check_zip_complete(zpath)
    extract_resources(zpath, tmp_path / "resources")
    assert (tmp_path / "resources" / "img" / "a.png").read_bytes() == png.getvalue()
    assert (tmp_path / "resources" / "style.css").read_bytes() == b"p{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.zip", "resources"]


def test_check_zip_complete(tmp_path: Path) -> None:
    zpath = _zip(tmp_path / "r.zip", [("a.txt", b"hello" * 100)])
    data = zpath.read_bytes()
    partial = tmp_path / "partial.zip"
    partial.write_bytes(data[: len(data) // 2])  # still being copied: no central directory
    assert check_zip_complete(zpath)
    assert not check_zip_complete(partial)
    assert not check_zip_complete(tmp_path / "missing.zip")
