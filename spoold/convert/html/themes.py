"""The built-in themes: the print stylesheets in spoold/convert/themes/, by name.

A theme is its own file plus the rules every theme shares (themes/shared/), which come
after the theme's own: an alert type's border colour there refines the border the theme
gives `.markdown-alert`.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ...errors import ErrorCode, JobError

THEMES_DIR = Path(__file__).parent.with_name("themes")
THEMES = ("default", "handout")
# The `theme` option: a theme's name, `auto` (the default theme, except for HTML that
# brings its own styles: html/authored.py) or `none` (no theme at all).
AUTO, NONE = "auto", "none"
THEME_CHOICES = (AUTO, NONE, *THEMES)
SHARED_CSS = THEMES_DIR / "shared" / "markdown-extras.css"


def check_theme(theme: str) -> str:
    """`theme` if the option allows it; JobError(input_invalid) naming the choices."""
    if theme not in THEME_CHOICES:
        raise JobError(
            ErrorCode.INPUT_INVALID,
            f"unknown theme {theme!r}; allowed: {', '.join(THEME_CHOICES)}",
            hint="Set theme to one of the built-in themes in job.json or spool.toml.",
        )
    return theme


def resolve_theme(theme: str) -> str:
    """The stylesheet a `theme` option means when a theme is used (`auto`: default)."""
    name = check_theme(theme)
    return "default" if name in (AUTO, NONE) else name


@functools.cache
def theme_css(theme: str) -> str:
    """The theme's stylesheet text, shared rules included (read once per process)."""
    own = (THEMES_DIR / f"{resolve_theme(theme)}.css").read_text(encoding="utf-8")
    return own + "\n" + SHARED_CSS.read_text(encoding="utf-8")
