"""Debian's chromium-headless-shell driven by Playwright (tests/test_http_page.py and
bench/bench_page.py). Playwright never downloads a browser here: .ci/run installs the
apt package and sets PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

CHROMIUM = Path("/usr/bin/chromium-headless-shell")  # dpkg -L chromium-headless-shell
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def launch(playwright: Any) -> Any:
    """The browser, started from Debian's binary (never one Playwright downloaded)."""
    # A deadline for a busy machine (Playwright's default is 30 s), not a speed.
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=180_000)
