"""HTML as its author made it: which layout a document gets, and its own page setup.

An HTML document that brings its own styles -- a `<style>` element, a stylesheet
`<link>`, or a `style` attribute on its `<html>`, `<body>` or a table -- is laid out with
its styles alone: no theme rules, margins, page numbers or running title (its own
`@page` rules stay). One without styles of its own gets the theme, as before. The
`theme` option decides first: `auto` (the default) as just said, `none` always bare,
a theme's name always that theme. Markdown (spoold's own rendering, marked by its
`<meta name="generator" content="spoold">`) always gets the theme unless `none`.

`own_page_setup` reads the document's plain `@page` size and margins for DOCX.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tinycss2  # type: ignore[import-untyped]

from ...spool.pages import MARGIN_UNITS_MM, PAGE_SIZES_MM
from .themes import resolve_theme

# WeasyPrint's own page margin (75px), for a side the document's @page leaves alone.
DEFAULT_MARGIN_MM = 75 * 25.4 / 96
# Elements whose `style` attribute is a document-wide design choice.
_STYLED = ("html", "body", "table", "thead", "tbody", "tr", "td", "th")


@dataclass(frozen=True)
class Layout:
    """How a document is laid out: a theme (its name) or bare (None), and why."""

    theme: str | None
    reason: str

    @property
    def themed(self) -> bool:
        return self.theme is not None

    def describe(self) -> str:
        """For the manifest's artifact `layout`."""
        return f"theme {self.theme}: {self.reason}" if self.theme else f"own styles: {self.reason}"


def is_markdown_render(root: Any) -> bool:
    """Whether the document is spoold's rendering of Markdown (markdown_to_html)."""
    for meta in root.iterfind(".//head/meta"):
        if meta.get("name") == "generator" and meta.get("content") == "spoold":
            return True
    return False


def own_styles(root: Any) -> str | None:
    """What makes the document bring its own styles, or None (read before sanitising)."""
    for el in root.iter("style"):
        if (el.text or "").strip():
            return "it has a <style> element"
    for el in root.iter("link"):
        if "stylesheet" in (el.get("rel") or "").lower().split() and el.get("href"):
            return "it links a stylesheet"
    for tag in _STYLED:
        for el in root.iter(tag):
            if (el.get("style") or "").strip():
                return f"its <{tag}> has a style attribute"
    return None


def choose_layout(root: Any, theme_option: str) -> Layout:
    """The layout for a parsed document under the job's `theme` option."""
    theme = resolve_theme(theme_option)
    if theme_option == "none":
        return Layout(None, 'theme = "none"')
    if theme_option != "auto":
        return Layout(theme, f'theme = "{theme_option}"')
    if is_markdown_render(root):
        return Layout(theme, "Markdown")
    why = own_styles(root)
    if why is not None:
        return Layout(None, why)
    return Layout(theme, "the document has no styles of its own")


@dataclass(frozen=True)
class PageSetup:
    """A document's own `@page` size and margins in mm (None: not set)."""

    size: tuple[float, float] | None = None
    margins: tuple[float, float, float, float] | None = None  # top, right, bottom, left


def _length_mm(token: Any) -> float | None:
    if token.type == "dimension" and token.unit.lower() in MARGIN_UNITS_MM:
        return float(token.value) * MARGIN_UNITS_MM[token.unit.lower()]
    if token.type == "number" and token.value == 0:
        return 0.0
    return None


def _size(tokens: list[Any]) -> tuple[float, float] | None:
    words = [t.lower_value for t in tokens if t.type == "ident"]
    lengths = [_length_mm(t) for t in tokens if t.type in ("dimension", "number")]
    size: tuple[float, float] | None = None
    for word in words:
        if word in PAGE_SIZES_MM:
            size = PAGE_SIZES_MM[word]
    if lengths and all(v is not None for v in lengths):
        got = [v for v in lengths if v is not None]
        size = (got[0], got[-1])
    if size is not None and "landscape" in words:
        size = (max(size), min(size))
    elif size is not None and "portrait" in words:
        size = (min(size), max(size))
    return size


def _margins(tokens: list[Any]) -> tuple[float, float, float, float] | None:
    values = [_length_mm(t) for t in tokens if t.type in ("dimension", "number", "percentage")]
    if not 1 <= len(values) <= 4 or any(v is None or v < 0 for v in values):
        return None
    v = [x for x in values if x is not None]
    if len(v) < 4:  # CSS: top [right [bottom]], the missing sides mirror the given ones
        v = v * 4 if len(v) == 1 else v * 2 if len(v) == 2 else [*v, v[1]]
    return v[0], v[1], v[2], v[3]


def stylesheets(root: Any, load: Callable[[str], str | None]) -> list[str]:
    """The document's CSS in order: <style> elements, and linked stylesheets as `load`
    (the sandboxed fetcher) returns them."""
    texts: list[str] = []
    for el in root.iter("style", "link"):
        if el.tag == "style":
            texts.append(el.text or "")
        elif "stylesheet" in (el.get("rel") or "").lower().split() and el.get("href"):
            texts.append(load(el.get("href")) or "")
    return texts


def own_page_setup(css: list[str]) -> PageSetup:
    """The size and margins of the `@page` rules without selectors in `css` (the last
    of each wins, as in CSS); `:first` and named pages are not the section's."""
    size, margins = None, None
    sides = {"margin-top": 0, "margin-right": 1, "margin-bottom": 2, "margin-left": 3}
    for text in css:
        for rule in tinycss2.parse_stylesheet(text, True, True):
            if rule.type != "at-rule" or rule.lower_at_keyword != "page" or rule.content is None:
                continue
            if "".join(t.serialize() for t in rule.prelude).strip():
                continue
            for decl in tinycss2.parse_blocks_contents(rule.content, True, True):
                if decl.type != "declaration":
                    continue
                values = [t for t in decl.value if t.type not in ("whitespace", "comment")]
                if decl.lower_name == "size":
                    size = _size(values) or size
                elif decl.lower_name == "margin":
                    margins = _margins(values) or margins
                elif decl.lower_name in sides and len(values) == 1:
                    side = _length_mm(values[0])
                    if side is not None:
                        current = list(margins or (DEFAULT_MARGIN_MM,) * 4)
                        current[sides[decl.lower_name]] = side
                        margins = (current[0], current[1], current[2], current[3])
    return PageSetup(size, margins)
