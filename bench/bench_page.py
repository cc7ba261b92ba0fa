"""The jobs page of `spoold serve` (issue 20) in a real browser: what it weighs and how
soon a dropped file shows as done.

- weight: the bytes transferred on the first load of `/` (response headers and bodies
  of every request the page makes, until the network is idle; the events stream,
  which stays open, counted by its headers);
- drop -> done: from dispatching a drop of a tiny Markdown file (-> HTML) on the page to
  its row showing `succeeded`, updated live from the events stream (median of --jobs).

`--screenshot docs/page.png` also takes the picture of docs/http.md and the README: a
done, a failed and a running job, 1000x700. Playwright drives Debian's
chromium-headless-shell (tests/browser.py); one daemon with 2 workers, one gateway.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from bench_http import Gateway
from common import Daemon, make_spool, report, temp_dir, tiny_markdown, wait_for

from tests.browser import launch  # common puts the checkout on sys.path

BENCH = "page"
DROP_TO_DONE_JS = """
async ([name, text]) => {
  const dt = new DataTransfer();
  dt.items.add(new File([text], name, {type: "text/markdown"}));
  const done = () => Array.from(document.querySelectorAll("li.job")).some((li) =>
    li.querySelector(".name").textContent === name &&
    li.querySelector(".state").textContent === "succeeded");
  const t0 = performance.now();
  document.getElementById("drop").dispatchEvent(
    new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
  return await new Promise((resolve) => {
    const observer = new MutationObserver(() => {
      if (done()) { observer.disconnect(); resolve(performance.now() - t0); }
    });
    observer.observe(document.getElementById("jobs"),
                     {childList: true, subtree: true, characterData: true});
  });
}
"""


def first_load(browser: Any, url: str) -> dict[str, int]:
    """Bytes by request of a first load, with an empty cache."""
    context = browser.new_context()
    page = context.new_page()
    finished: list[Any] = []
    heads: dict[str, int] = {}
    page.on("requestfinished", lambda r: finished.append(r))
    page.on("response", lambda r: heads.__setitem__(r.url, len(str(r.all_headers()))))
    page.goto(url + "/")
    # "Live" shows once the list is read and the events stream open: every other
    # request has finished by then.
    page.locator("#live").get_by_text("Live", exact=True).wait_for()
    sizes: dict[str, int] = {}
    for req in finished:
        s = req.sizes()
        sizes[req.url] = s["responseHeadersSize"] + s["responseBodySize"]
    for stream_url, head in heads.items():
        sizes.setdefault(stream_url, head)  # the events stream: still open
    context.close()
    return sizes


def drop_to_done(browser: Any, url: str, jobs: int) -> list[float]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + "/")
    page.locator("#live").get_by_text("Live", exact=True).wait_for()
    page.evaluate(DROP_TO_DONE_JS, ["warm-up.md", tiny_markdown(0).decode()])
    times = []
    for i in range(1, jobs + 1):
        ms = page.evaluate(DROP_TO_DONE_JS, [f"tiny-{i}.md", tiny_markdown(i).decode()])
        times.append(float(ms))
    context.close()
    return times


def screenshot(browser: Any, url: str, spool: Path, out: Path) -> None:
    """A few jobs as people see them: done (two formats), failed, running."""
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    page.goto(url + "/")
    page.locator("#live").get_by_text("Live", exact=True).wait_for()

    def upload(name: str, data: bytes, mime: str, targets: list[str]) -> None:
        for box in ("pdf", "docx", "html"):
            page.locator(f"input[name=target][value={box}]").set_checked(box in targets)
        page.set_input_files("#files", files=[{"name": name, "mimeType": mime, "buffer": data}])

    def state_of(name: str) -> str:
        row = page.locator("li.job").filter(has=page.get_by_text(name, exact=True))
        return str(row.locator(".state").text_content(timeout=60_000))

    minutes = b"# Minutes, 30 November\n\nPresent: everyone.\n\n- Budget approved\n"
    upload("minutes-2026-11.md", minutes, "text/markdown", ["html"])
    upload("scan-0042.pdf", b"%PDF-1.4 truncated scan\n%%EOF\n", "application/pdf", ["pdf"])
    wait_for(lambda: state_of("scan-0042.pdf") == "failed", 120, "scan failed")
    report_md = (
        b"# Quarterly report\n\n## Sales\n\nUp *12 %*.\n\n| Q | EUR |\n|---|---|\n| 3 | 1.2M |\n"
    )
    upload("quarterly-report.md", report_md, "text/markdown", ["pdf", "docx"])
    wait_for(lambda: state_of("quarterly-report.md") == "succeeded", 120, "report done")
    chapters = "".join(
        f"## Chapter {i}\n\n" + "A long paragraph of the handbook. " * 60 + "\n\n"
        for i in range(400)
    )
    upload(
        "staff-handbook.md", f"# Staff handbook\n\n{chapters}".encode(), "text/markdown", ["pdf"]
    )
    wait_for(lambda: state_of("staff-handbook.md") == "running", 120, "handbook running")
    stage = page.locator(".stage")
    wait_for(lambda: "starting" not in (stage.text_content() or "starting"), 60, "its stage")
    page.locator("#uploads li").evaluate_all("(items) => items.forEach((li) => li.remove())")
    page.screenshot(path=str(out))
    context.close()
    from PIL import Image

    with Image.open(out) as shot:  # 256 colours: a third of the bytes, the same to the eye
        small = shot.convert("RGB").quantize(256)
    small.save(out, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=7, help="drops to time (the median is reported)")
    ap.add_argument("--screenshot", type=Path, help="write the page with a few jobs here (PNG)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with temp_dir() as tmp, sync_playwright() as pw:
        spool = make_spool(tmp, targets=["html"], settle_ms=200, poll_interval_ms=50)
        daemon = Daemon(spool, workers=2)
        gateway = Gateway(spool)
        browser = launch(pw)
        try:
            daemon.wait_ready()
            sizes = first_load(browser, gateway.url)
            for name, size in sorted(sizes.items()):
                print(f"  {name.removeprefix(gateway.url)}: {size} B")
            report(BENCH, "first_load_bytes", sum(sizes.values()), "B")
            report(BENCH, "first_load_requests", len(sizes), "requests")
            times = drop_to_done(browser, gateway.url, args.jobs)
            print("  drop -> done, ms:", ", ".join(f"{t:.0f}" for t in times))
            report(BENCH, "drop_to_done_median_ms", round(statistics.median(times), 1), "ms")
            if args.screenshot:
                screenshot(browser, gateway.url, spool, args.screenshot)
                print(f"  screenshot: {args.screenshot}")
        finally:
            browser.close()
            gateway.stop()
            daemon.stop()


if __name__ == "__main__":
    main()
