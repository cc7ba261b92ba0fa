"""WeasyPrint's way in and out: the URL fetcher it reads through and the warnings it logs.

WeasyPrint never opens a file or socket itself: its fetcher answers data: URLs and asks
the spoold sandbox for everything else. Its logged warnings become job warnings, naming
inlined resources as the document wrote them. WeasyPrint is imported on first use.
`tune_gc_for_layout` is the one process-wide setting its layouts want (workers call it).
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..base import ConversionContext
from ..fetcher import FetchRefused, decode_data_url, display_url, fetch_bytes
from .inline import REFUSED_URL, image_allowed, mime_for, short_url

MAX_LAYOUT_WARNINGS = 20
# The cyclic collector's thresholds in processes that lay documents out (see below).
LAYOUT_GC_THRESHOLDS = (700, 10, 30)


def tune_gc_for_layout() -> None:
    """Fewer full collections while WeasyPrint builds its box tree.

    A layout allocates millions of container objects that live until it ends; with
    the default thresholds (700, 10, 10) every tenth middle collection walks all of
    them again. Measured on a 62-page part of a changelog: 4.7 s of CPU with the
    defaults, 4.3 s with (700, 10, 30), the same peak RSS (174 MB); larger values saved
    a little more but kept 30-65 % more memory. A whole 377-page layout gains only
    1 % (CPython already spaces full collections out as the heap grows), so parts,
    whose heaps are small, gain the most.
    """
    gc.set_threshold(*LAYOUT_GC_THRESHOLDS)


@functools.cache
def weasy_css(text: str) -> Any:
    """A parsed WeasyPrint stylesheet; theme and page CSS are parsed once per process."""
    import weasyprint

    return weasyprint.CSS(string=text)


@functools.cache
def _font_config_class() -> Any:
    from weasyprint.text.fonts import FontConfiguration

    class JobFonts(FontConfiguration):  # type: ignore[misc]
        """Remembers whether a document added fonts of its own (@font-face)."""

        added_fonts = False

        def add_font_face(self, rule_descriptors: Any, url_fetcher: Any) -> Any:
            self.added_fonts = True
            return super().add_font_face(rule_descriptors, url_fetcher)

    return JobFonts


_fonts: Any = None


def font_config() -> Any:
    """The process's WeasyPrint font configuration, warm across jobs.

    A new one costs about 6 ms (fontconfig loads its configuration and font list) and
    starts with cold Pango font caches; one kept warm lays documents out the same. A
    document's @font-face fonts must not reach the next job's layout (its output would
    depend on history), so a configuration a document added fonts to is replaced
    before the next layout.
    """
    global _fonts
    if _fonts is None or _fonts.added_fonts:
        _fonts = _font_config_class()()
    return _fonts


@functools.cache
def _fetcher_class() -> Any:
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class SandboxFetcher(URLFetcher):  # type: ignore[misc]
        """WeasyPrint's only way out: the spoold fetcher, never urllib."""

        def __init__(self, ctx: ConversionContext, base: Path) -> None:
            super().__init__(allowed_protocols=("data", "file"), allow_redirects=False)
            self.ctx = ctx
            self.base = base

        def fetch(self, url: str, headers: Any = None) -> Any:
            if url.startswith("data:"):
                data, mime = decode_data_url(url, self.ctx.options.max_fetch_bytes)
            else:
                fetched = fetch_bytes(self.ctx, url, self.base)
                if fetched is None:
                    # WeasyPrint catches this, skips the resource and goes on.
                    raise FetchRefused(f"{short_url(url)} refused by the spoold sandbox")
                data, mime = fetched, mime_for(fetched, url)
            if mime.startswith("image/") and not image_allowed(data, self.ctx, url):
                raise FetchRefused(f"{short_url(url)} is over the pixel cap")
            return URLFetcherResponse(url, body=data, headers={"Content-Type": mime})

    return SandboxFetcher


def sandbox_fetcher(ctx: ConversionContext, base: Path) -> Any:
    """A WeasyPrint URL fetcher that reads only through the job's sandbox."""
    return _fetcher_class()(ctx, base)


class LayoutWarnings(logging.Handler):
    """WeasyPrint's warnings as job warnings, naming resources as the document did."""

    def __init__(
        self, ctx: ConversionContext, written: Mapping[str, str], skip_notdef: bool = False
    ) -> None:
        super().__init__(logging.WARNING)
        self.ctx = ctx
        self.written = written
        self.count = 0
        # spoold has said which script lacks a font (scripts.py): not each character.
        self.skip_notdef = skip_notdef

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self._message(record)
        except Exception:  # a warning that cannot be formatted must not fail the job
            message = str(record.msg)
        if message is None or (self.skip_notdef and message.startswith(".notdef glyph")):
            return
        self.count += 1
        if self.count <= MAX_LAYOUT_WARNINGS:
            self.ctx.warn(f"layout: {message}"[:300])

    def _message(self, record: logging.LogRecord) -> str | None:
        """None for a resource refused before layout: the fetcher has said which and why."""
        args = record.args if isinstance(record.args, tuple) else ()
        if not args:
            return record.getMessage()
        if REFUSED_URL in args:
            return None
        shown = tuple(self._as_written(arg) for arg in args)
        try:
            text = str(record.msg) % shown
        except (TypeError, ValueError):
            return record.getMessage()
        # "Failed to load image at 'x': " -- some of WeasyPrint's errors have no text.
        return text.rstrip(": ")

    def _as_written(self, arg: object) -> object:
        if isinstance(arg, str) and arg[:5].lower() == "data:":
            return self.written.get(arg, display_url(arg))
        return arg


@contextmanager
def layout_warnings(
    ctx: ConversionContext, written: Mapping[str, str], skip_notdef: bool = False
) -> Iterator[None]:
    """WeasyPrint reports skipped resources and bad CSS through logging; surface them."""
    logger = logging.getLogger("weasyprint")
    handler = LayoutWarnings(ctx, written, skip_notdef)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
