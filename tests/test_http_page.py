"""The jobs page of `spoold serve` (issue 20, docs/http.md "The page") in a real browser:
Playwright driving Debian's chromium-headless-shell against a real gateway and daemon.

Every test records each request the page makes and checks that none leaves the
gateway's origin, and that no dialog opened."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from .browser import CHROMIUM, launch
from .conftest import (
    PLUGIN_ENV,
    DaemonProc,
    pdf_image_sizes,
    published,
    stage_file,
    wait_for,
)
from .test_convert_resources import make_zip, png_bytes
from .test_http_security import tokens_file

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

if not CHROMIUM.exists():
    if os.environ.get("SPOOLD_REQUIRE_BROWSER"):
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium-headless-shell")
    pytest.skip("chromium-headless-shell is not installed", allow_module_level=True)

WAIT_MS = 60_000  # a deadline for a condition on a loaded machine, not a speed
expect.set_options(timeout=WAIT_MS)
MARK = "window.__spooldSamePage"
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


class Watched:
    """A page, with every request, console error and dialog it produced."""

    def __init__(self, browser: Any, url: str, **context: Any) -> None:
        self.url = url
        self.context = browser.new_context(accept_downloads=True, **context)
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on(
            "console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.first = self.page.goto(url + "/")
        self.page.evaluate(f"{MARK} = true")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def check(self) -> None:
        origin = urlsplit(self.url)[:2]
        outside = [u for u in self.requests if urlsplit(u)[:2] != origin]
        assert self.requests and not outside, outside
        assert self.dialogs == []
        assert self.page.evaluate(MARK) is True, "the page was reloaded"

    def row(self, name: str) -> Any:
        named = self.page.locator(".name").get_by_text(name, exact=True)
        return self.page.locator("li.job").filter(has=named)

    def choose(self, *files: tuple[str, bytes, str]) -> None:
        payload = [{"name": n, "buffer": b, "mimeType": t} for n, b, t in files]
        self.page.set_input_files("#files", files=payload)

    def drop(self, name: str, text: str) -> None:
        """A drop as the browser makes one: a DragEvent carrying a DataTransfer."""
        self.page.evaluate(
            """([name, text]) => {
                const dt = new DataTransfer();
                dt.items.add(new File([text], name, {type: "text/markdown"}));
                const zone = document.getElementById("drop");
                for (const type of ["dragenter", "dragover", "drop"]) {
                    zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
                }
            }""",
            [name, text],
        )


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Watched]]:
    opened: list[Watched] = []

    def open_(url: str, **context: Any) -> Watched:
        w = Watched(browser, url, **context)
        opened.append(w)
        return w

    yield open_
    for w in opened:
        w.context.close()


MD = ("report.md", b"# Report\n\nSome *text*.\n", "text/markdown")
BROKEN_PDF = b"%PDF-1.4 not really\n%%EOF\n"


def test_upload_by_input_and_by_drop_done_live_then_download_the_pdf(
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
    open_page: Callable[..., Watched],
) -> None:
    spool = make_spool(targets=["pdf"])
    gw = gateway_factory(spool)
    daemon_factory(spool)
    w = open_page(gw.url)
    csp = w.first.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    expect(w.page.locator("#auth")).to_be_hidden()  # no tokens on loopback: no field
    expect(w.page.locator("#live")).to_have_text("Live")
    expect(w.page.locator("input[name=target][value=pdf]")).to_be_checked()
    w.choose(MD, ("notes.md", b"# Notes\n\n- one\n- two\n", "text/markdown"))
    w.drop("dropped.md", "# Dropped\n\nBy a drop.\n")
    for name in ("report.md", "notes.md", "dropped.md"):
        expect(w.row(name).locator(".state")).to_have_text("succeeded")
    expect(w.page.locator("#announce")).to_contain_text("succeeded")
    # With a resources ZIP and a priority: the image reaches the PDF, the priority the job.
    w.page.get_by_text("Images and a house style (optional)").click()
    archive = make_zip([("logo.png", png_bytes(120, 60))])
    w.page.set_input_files(
        "#resources",
        files=[{"name": "images.zip", "mimeType": "application/zip", "buffer": archive}],
    )
    w.page.get_by_label("Priority (0-100)").fill("70")
    w.choose(("with-logo.md", b"# Logo\n\n![the logo](resources/logo.png)\n", "text/markdown"))
    expect(w.row("with-logo.md").locator(".state")).to_have_text("succeeded")
    folder = next((spool / "done").glob("with-logo.*"))
    assert json.loads((folder / "manifest.json").read_text())["options"]["priority"] == 70
    assert pdf_image_sizes(next(folder.glob("*.pdf"))) == [(120, 60)]
    link = w.row("dropped.md").get_by_role("link", name=re.compile(r"Download dropped\.pdf"))
    with w.page.expect_download() as info:
        link.click()
    data = Path(info.value.path()).read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    on_disk = next((spool / "done").glob("dropped.*/dropped.pdf")).read_bytes()
    assert data == on_disk
    assert w.console_errors == []
    w.check()


def test_cancel_a_long_job_and_retry_a_failed_one_with_its_error_text(
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
    open_page: Callable[..., Watched],
    tmp_path: Path,
) -> None:
    spool = make_spool(max_attempts=1)
    gw = gateway_factory(spool)
    daemon_factory(spool, args=("--workers", "1"), env=PLUGIN_ENV)
    w = open_page(gw.url)
    expect(w.page.locator("#live")).to_have_text("Live")
    # A job that converts until its gate opens (never here), dropped on the share.
    stage_file(spool, "long.gate", str(tmp_path / "never"))
    long_row = w.row("long.gate")
    expect(long_row.locator(".state")).to_have_text("running")
    expect(long_row.locator(".stage")).to_have_text("stage: layout")
    # The only worker is busy: an upload waits, and Cancel takes it out of the queue.
    w.choose(("waits.md", b"# Waits\n", "text/markdown"))
    expect(w.row("waits.md").locator(".state")).to_have_text("queued")
    w.row("waits.md").get_by_role("button", name="Cancel: waits.md", exact=True).click()
    expect(w.row("waits.md").locator(".state")).to_have_text("cancelled")
    long_row.get_by_role("button", name="Hard cancel: long.gate").click()
    expect(long_row.locator(".state")).to_have_text("cancelled")
    expect(long_row.get_by_role("button", name=re.compile("Cancel"))).to_have_count(0)
    # A PDF that is no PDF fails; its ERROR.txt is one click away; Retry runs it again.
    w.page.get_by_label("HTML", exact=True).uncheck()
    w.page.get_by_label("PDF", exact=True).check()
    w.choose(("scan.pdf", BROKEN_PDF, "application/pdf"))
    failed = w.row("scan.pdf")
    expect(failed.locator(".state")).to_have_text("failed")
    expect(failed.locator(".why")).not_to_be_empty()
    failed.get_by_text("The whole error report (ERROR.txt)").click()
    job_id = failed.locator(".meta").inner_text().split()[1]
    folder = next((spool / "failed").glob(f"*.{job_id}"))
    expected = (folder / "ERROR.txt").read_text().strip()
    expect(failed.locator("pre")).to_have_text(expected)
    failed.get_by_role("button", name="Retry: scan.pdf").click()
    expect(failed.locator(".meta")).to_contain_text("attempt 2")
    expect(failed.locator(".state")).to_have_text("failed")
    w.check()


def test_a_hostile_name_stays_text_and_runs_no_script(
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
    open_page: Callable[..., Watched],
) -> None:
    spool = make_spool()
    gw = gateway_factory(spool)
    daemon_factory(spool)
    w = open_page(gw.url)
    expect(w.page.locator("#live")).to_have_text("Live")
    w.choose((f"{HOSTILE}.md", b"# Hi\n", "text/markdown"))
    w.page.get_by_label("PDF", exact=True).check()
    w.choose((f"{HOSTILE}.pdf", BROKEN_PDF, "application/pdf"))
    expect(w.row(f"{HOSTILE}.md").locator(".state")).to_have_text("succeeded")
    bad = w.row(f"{HOSTILE}.pdf")
    expect(bad.locator(".state")).to_have_text("failed")
    bad.get_by_text("The whole error report (ERROR.txt)").click()
    expect(bad.locator("pre")).to_contain_text(f"{HOSTILE}.pdf")
    expect(w.page.locator("#announce")).to_contain_text(HOSTILE)
    assert w.page.locator("main img").count() == 0
    assert w.page.evaluate("document.querySelectorAll('[onerror]').length") == 0
    assert w.dialogs == [] and w.console_errors == []
    w.check()


def test_refusals_in_plain_words_narrow_and_dark(
    make_spool: Callable[..., Path],
    gateway_factory: Callable[..., Any],
    open_page: Callable[..., Watched],
) -> None:
    spool = make_spool(max_queued=1, max_upload_mb=0.5)  # no daemon: jobs stay queued
    gw = gateway_factory(spool)
    w = open_page(gw.url, viewport={"width": 360, "height": 740}, color_scheme="dark")
    expect(w.page.locator("#live")).to_have_text("Live")
    uploads = w.page.locator("#uploads li")
    w.choose(("notes.txt", b"plain\n", "text/plain"))
    kind = uploads.filter(has_text="notes.txt").locator(".error")
    expect(kind).to_contain_text("This kind of file cannot be converted.")
    expect(kind).to_contain_text("Send Markdown (.md), HTML (.html) or PDF (.pdf).")
    w.choose(("big.md", b"# Big\n\n" + b"word " * 120_000, "text/markdown"))
    big = uploads.filter(has_text="big.md").locator(".error")
    expect(big).to_contain_text("The file is too large.")
    expect(big).to_contain_text("at most 0.5 MB per upload")
    expect(big).to_contain_text("Send a smaller document, or ask for a higher max_upload_mb.")
    w.choose(MD)
    expect(w.row("report.md").locator(".state")).to_have_text("queued")
    w.choose(("second.md", b"# 2\n", "text/markdown"))
    full = uploads.filter(has_text="second.md").locator(".error")
    expect(full).to_contain_text("The queue is full right now.")
    expect(full).to_contain_text("Wait for Retry-After seconds")
    expect(full).to_contain_text("Try again in 5 s")
    # Readable at 360 px (nothing wider than the screen) and dark when the system is.
    assert w.page.evaluate("document.documentElement.scrollWidth") <= 360
    background = w.page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert sum(int(v) for v in re.findall(r"\d+", background)[:3]) < 150, background
    # Every control has a label a screen reader reads; every action is a <button>.
    unlabelled = w.page.evaluate(
        """Array.from(document.querySelectorAll('input, select'))
             .filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label'))
             .map((e) => e.id || e.name)"""
    )
    assert unlabelled == []
    # From the keyboard: a row's Cancel button is a <button> that Enter presses.
    cancel = w.row("report.md").get_by_role("button", name="Cancel: report.md", exact=True)
    cancel.focus()
    w.page.keyboard.press("Enter")
    expect(w.row("report.md").locator(".cancel")).to_be_visible()
    w.check()


def test_with_tokens_the_field_and_signed_download_links(
    tmp_path: Path,
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
    open_page: Callable[..., Watched],
) -> None:
    spool = make_spool(targets=["html"])
    path, tok = tokens_file(tmp_path)
    gw = gateway_factory(spool, args=("--tokens", str(path)))
    daemon_factory(spool)
    w = open_page(gw.url)
    expect(w.page.locator("#auth")).to_be_visible()
    expect(w.page.locator("#upload")).to_be_hidden()
    w.page.get_by_label("Token", exact=True).fill("not-a-token")
    w.page.get_by_role("button", name="Use this token").click()
    expect(w.page.locator("#auth-msg")).to_contain_text("not accepted")
    w.page.get_by_label("Token", exact=True).fill(tok["alice"])
    w.page.get_by_role("button", name="Use this token").click()
    expect(w.page.locator("#who")).to_contain_text("Signed in as alice (user)")
    assert w.page.evaluate("sessionStorage.getItem('spoold.token')") == tok["alice"]
    assert w.context.cookies() == []
    w.choose(MD)
    link = w.row("report.md").get_by_role("link", name=re.compile(r"Download report\.html"))
    expect(link).to_have_attribute("href", re.compile(r"\?exp=\d+&sig=[0-9a-f]{64}$"))
    with w.page.expect_download() as info:
        link.click()  # a plain link: the browser sends no bearer header with it
    assert Path(info.value.path()).read_bytes().startswith(b"<!DOCTYPE html>")
    signed = gw.url + link.get_attribute("href")
    check_signed_link(signed, spool)
    w.check()


def check_signed_link(signed: str, spool: Path) -> None:
    """Fresh: 200 without a token. Tampered or expired: 403 with the error envelope."""
    import hashlib
    import hmac

    anon = httpx.Client(timeout=60)
    assert anon.get(signed).status_code == 200
    assert anon.get(signed.split("?")[0]).status_code == 401  # the bare URL needs a token
    path, _, query = signed.partition("?")
    exp = re.search(r"exp=(\d+)", query)[1]  # type: ignore[index]
    sig = re.search(r"sig=([0-9a-f]+)", query)[1]  # type: ignore[index]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    for bad in (
        f"{path}?exp={exp}&sig={flipped}",  # a changed signature
        f"{path}?exp={int(exp) + 3600}&sig={sig}",  # a later expiry
        f"{path.replace('report.html', 'other.html')}?exp={exp}&sig={sig}",  # another file
        f"{path}?exp={exp}",  # no signature
    ):
        r = anon.get(bad)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", bad
    key_file = spool / ".spoold" / "http-signing.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = bytes.fromhex(key_file.read_text().strip())
    past = int(time.time()) - 1
    local = urlsplit(path).path
    old = hmac.new(key, f"GET\n{local}\n{past}".encode(), hashlib.sha256).hexdigest()
    expired = anon.get(f"{path}?exp={past}&sig={old}")
    assert expired.status_code == 403 and "expired" in expired.json()["error"]["message"]


def test_the_stream_resumes_after_the_gateway_restarts(
    make_spool: Callable[..., Path],
    daemon_factory: Callable[..., DaemonProc],
    gateway_factory: Callable[..., Any],
    open_page: Callable[..., Watched],
) -> None:
    from .http_support import GatewayProc

    spool = make_spool()
    gw = gateway_factory(spool)
    daemon_factory(spool)
    w = open_page(gw.url)
    expect(w.page.locator("#live")).to_have_text("Live")
    w.choose(MD)
    expect(w.row("report.md").locator(".state")).to_have_text("succeeded")
    gw.kill_group()  # the stream breaks; the page says so and keeps trying
    expect(w.page.locator("#live")).to_contain_text("Not live")
    # A job dropped on the share meanwhile: only the events log tells the page of it.
    stage_file(spool, "while-away.md", "# Away\n")
    wait_for(lambda: len(published(spool)) == 2, what="converted while no gateway ran")
    again = GatewayProc([spool], log=spool.parent / "gateway-again.log", port=gw.port).start()
    try:
        expect(w.page.locator("#live")).to_have_text("Live")
        # Resumed after the last event it saw (Last-Event-ID): no reload of the list.
        expect(w.row("while-away.md").locator(".state")).to_have_text("succeeded")
        w.check()
    finally:
        again.stop()
