"""allow_fetch: http(s) resources under an allow-listed prefix are fetched (no redirects,
capped, recorded); everything else stays refused and is never asked for."""

from __future__ import annotations

import http.server
import io
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import docx
import pytest
from PIL import Image

from spoold.convert import ConversionContext, ConvertOptions, get_converter, load_converters
from spoold.convert.fetcher import fetch_bytes
from spoold.errors import ConfigError
from spoold.settings import load_spool_settings

from .conftest import DaemonProc, pdf_image_sizes, pdftotext, published, wait_for

load_converters()


def png_bytes(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 200)).save(buf, format="PNG")
    return buf.getvalue()


LOGO = png_bytes(100, 50)
SECRET = png_bytes(77, 77)
FILES = {
    "/assets/logo.png": LOGO,
    "/assets/style.css": b'@import "more.css"; h1::before { content: "REMOTECSS " }'
    b' .banner { background-image: url("/private/secret.png") }',
    "/assets/more.css": b'.note::after { content: " IMPORTEDCSS" }',
    "/private/secret.png": SECRET,
}


class Server:
    """A local web server that logs every request (path and Host header)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.release = threading.Event()  # lets /slow answer (after a client gave up)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Host", "")))
                if self.path in FILES:
                    self._send(200, FILES[self.path])
                elif self.path == "/assets/redirect.png":
                    self.send_response(302)
                    self.send_header("Location", "/assets/logo.png")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == "/assets/huge.png":
                    # Declares more than the 50 MiB cap; a client that reads on is wrong.
                    self.send_response(200)
                    self.send_header("Content-Length", str(60 * 1024 * 1024))
                    self.end_headers()
                    self._write(b"\0" * 65536)
                elif self.path == "/assets/stream.bin":
                    # No Content-Length: only the bytes read can tell it is too big.
                    self.send_response(200)
                    self.end_headers()
                    self._write(b"x" * 5000)
                elif self.path == "/assets/slow.png":
                    server.release.wait(30)
                    self._send(200, LOGO)
                else:
                    self._send(404, b"not here")

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self._write(body)

            def _write(self, body: bytes) -> None:
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the client refused the rest, as it should

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("no_proxy", "*")  # a proxy in the environment must not get these
    s = Server()
    try:
        yield s
    finally:
        s.release.set()
        s.httpd.shutdown()
        s.httpd.server_close()


# --- through the daemon ---------------------------------------------------------------


def test_allow_listed_prefix_is_fetched_and_the_rest_refused(
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    server: Server,
) -> None:
    spool = make_spool(allow_fetch=[server.url("/assets/")])
    doc = f"""# Title

<link rel="stylesheet" href="{server.url("/assets/style.css")}">

![logo]({server.url("/assets/logo.png")})
![private]({server.url("/private/secret.png")})
![other host]({server.url("/assets/logo.png", host="localhost")})
![redirect]({server.url("/assets/redirect.png")})
![huge]({server.url("/assets/huge.png")})

<p class="note">A note</p>
<div class="banner">banner</div>
"""
    folder = spool / "tmp" / "web"
    folder.mkdir()
    (folder / "doc.md").write_text(doc)
    (folder / "job.json").write_text(json.dumps({"targets": ["pdf", "docx"]}))
    os.rename(folder, spool / "inbox" / "web")
    d = daemon_factory(spool, env={"no_proxy": "*"})
    wait_for(lambda: published(spool) or published(spool, "failed"), what="job published")
    (done,) = published(spool)
    m = json.loads((done / "manifest.json").read_text())
    assert m["status"] == "succeeded"

    # The allowed image and stylesheets (and its relative @import) took effect.
    arts = {a["target"]: done / a["path"] for a in m["artifacts"]}
    assert pdf_image_sizes(arts["pdf"]) == [(100, 50)]
    text = pdftotext(arts["pdf"])
    assert "REMOTECSS Title" in text and "A note IMPORTEDCSS" in text
    assert len(docx.Document(str(arts["docx"])).inline_shapes) == 1

    # The server saw only allow-listed requests, and no redirect was followed:
    # logo.png once per target, never for the redirect.
    paths = server.paths()
    assert "/private/secret.png" not in paths
    assert not [h for _, h in server.requests if h.startswith("localhost")]
    assert paths.count("/assets/logo.png") == 2
    assert "/assets/redirect.png" in paths and "/assets/huge.png" in paths

    fetches: dict[str, list[dict[str, object]]] = {}
    for f in m["fetches"]:
        fetches.setdefault(str(f["url"]), []).append(f)

    def only(path: str, host: str = "127.0.0.1") -> dict[str, object]:
        records = fetches[server.url(path, host)]
        assert len({json.dumps(r, sort_keys=True) for r in records}) == 1, records
        return records[0]

    assert only("/assets/logo.png") == {
        "url": server.url("/assets/logo.png"),
        "allowed": True,
        "bytes": len(LOGO),
    }
    assert only("/assets/style.css")["allowed"] is True
    assert only("/assets/more.css")["allowed"] is True  # relative to the remote sheet
    for path, host, reason in [
        ("/private/secret.png", "127.0.0.1", "no allow_fetch entry covers it"),
        ("/assets/logo.png", "localhost", "no allow_fetch entry covers it"),
        ("/assets/redirect.png", "127.0.0.1", "redirect (HTTP 302 to '/assets/logo.png')"),
        ("/assets/huge.png", "127.0.0.1", "larger than the 52428800-byte cap"),
    ]:
        record = only(path, host)
        assert record["allowed"] is False
        assert reason in str(record["reason"])
        assert any(server.url(path, host) in w and reason in w for w in m["warnings"])
    assert d.stop() == 0


# --- the fetcher on its own -----------------------------------------------------------


def ctx_for(tmp_path: Path, *allow: str, **options: object) -> ConversionContext:
    return ConversionContext(
        job_root=tmp_path,
        options=ConvertOptions(allow_fetch=allow, **options),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("allow", "url", "reason"),
    [
        # The host must be the same host, not a name that starts with it.
        ("https://cdn.example.com", "https://cdn.example.com.evil.org/a.png", "covers"),
        ("https://cdn.example.com", "https://cdn.example.com@evil.org/a.png", "passwords"),
        ("https://cdn.example.com", "http://cdn.example.com/a.png", "covers"),
        ("https://cdn.example.com", "https://cdn.example.com:8443/a.png", "covers"),
        ("https://cdn.example.com", "https://evil.org/https://cdn.example.com/a", "covers"),
        ("https://cdn.example.com", "ftp://cdn.example.com/a.png", "ftp URLs are not"),
        ("https://cdn.example.com", "//cdn.example.com/a.png", "network URLs are not"),
        # The path prefix is whole segments, with no way back up.
        ("https://cdn.example.com/assets", "https://cdn.example.com/assets-x/a.png", "covers"),
        ("https://cdn.example.com/assets/", "https://cdn.example.com/assets/../s.png", "'..'"),
        ("https://cdn.example.com/assets/", "https://cdn.example.com/assets/%2e%2e/s", "'..'"),
        ("https://cdn.example.com/assets/", "https://cdn.example.com/assets%2f..%2fs", "encoded"),
        ("", "https://cdn.example.com/a.png", "allow_fetch is empty"),
    ],
)
def test_urls_outside_the_allow_list_are_refused_without_a_request(
    tmp_path: Path, allow: str, url: str, reason: str
) -> None:
    # No network is reachable for these names: a reason other than the expected
    # refusal (a DNS error, say) would mean a request was attempted.
    ctx = ctx_for(tmp_path, *filter(None, [allow]))
    assert fetch_bytes(ctx, url, tmp_path) is None
    (record,) = ctx.fetches
    assert not record.allowed and record.bytes == 0
    assert reason in (record.reason or ""), record.reason


def test_credentials_never_reach_the_manifest(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, "https://cdn.example.com/")
    assert fetch_bytes(ctx, "https://me:hunter2@cdn.example.com/a.png", tmp_path) is None
    assert ctx.fetches[0].url == "https://***@cdn.example.com/a.png"
    assert not any("hunter2" in w for w in ctx.warnings)


def test_prefix_matches_by_parts(tmp_path: Path, server: Server) -> None:
    ctx = ctx_for(tmp_path, server.url("/assets"))  # no trailing slash: /assets and below
    assert fetch_bytes(ctx, server.url("/assets/logo.png"), tmp_path) == LOGO
    upper = f"HTTP://127.0.0.1:{server.port}/assets/logo.png#top"  # scheme case, fragment
    assert fetch_bytes(ctx, upper, tmp_path) == LOGO
    assert fetch_bytes(ctx, server.url("/assets/nothing.png"), tmp_path) is None
    assert "HTTP 404" in (ctx.fetches[-1].reason or "")
    assert server.paths() == ["/assets/logo.png", "/assets/logo.png", "/assets/nothing.png"]


def test_body_over_the_cap_is_refused_while_reading(tmp_path: Path, server: Server) -> None:
    ctx = ctx_for(tmp_path, server.url("/assets/"), max_fetch_bytes=1000)
    assert fetch_bytes(ctx, server.url("/assets/stream.bin"), tmp_path) is None
    (record,) = ctx.fetches
    assert "larger than the 1000-byte cap" in (record.reason or "")
    assert 1000 < record.bytes <= 5000  # what was read before giving up


def test_silent_server_is_given_up_on(tmp_path: Path, server: Server) -> None:
    ctx = ctx_for(tmp_path, server.url("/assets/"), fetch_timeout_s=0.5)
    assert fetch_bytes(ctx, server.url("/assets/slow.png"), tmp_path) is None
    assert "no answer within 0.5 s" in (ctx.fetches[0].reason or "")


def test_remote_stylesheet_refs_resolve_on_its_server(tmp_path: Path, server: Server) -> None:
    """url("/private/secret.png") in a remote sheet means that server's /private, which
    is not allow-listed, and never a file of the job or of this machine."""
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "secret.png").write_bytes(SECRET)
    src = tmp_path / "page.html"
    src.write_text(
        f'<html><head><link rel="stylesheet" href="{server.url("/assets/style.css")}">'
        '</head><body><h1>Hi</h1><div class="banner">b</div></body></html>'
    )
    ctx = ctx_for(tmp_path, server.url("/assets/"))
    converter = get_converter("html", "pdf")
    assert converter is not None
    converter.convert(src, tmp_path / "out.pdf", ctx)
    assert "REMOTECSS Hi" in pdftotext(tmp_path / "out.pdf")
    assert pdf_image_sizes(tmp_path / "out.pdf") == []
    refused = [f for f in ctx.fetches if not f.allowed]
    assert [f.url for f in refused] == [server.url("/private/secret.png")]
    assert "/private/secret.png" not in server.paths()


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ("ftp://files.example.com/", "only http:// and https://"),
        ("cdn.example.com", "only http:// and https://"),
        ("https://", "no host"),
        ("https://user:secret@cdn.example.com/", "user names and passwords"),
        ("https://cdn.example.com/a?x=1", "scheme, host, optional port and path only"),
        ("https://cdn.example.com/a/../b", "'..'"),
        ("https://cdn.example.com:99999/", "allow_fetch"),
    ],
)
def test_allow_fetch_entries_are_validated(tmp_path: Path, entry: str, needle: str) -> None:
    (tmp_path / "spool.toml").write_text(f"allow_fetch = [{json.dumps(entry)}]\n")
    with pytest.raises(ConfigError) as info:
        load_spool_settings(tmp_path, env={})
    message = str(info.value)
    assert "spool.toml: key 'allow_fetch'" in message and needle in message
