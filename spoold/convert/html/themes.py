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
SHARED_CSS = THEMES_DIR / "shared" / "markdown-extras.css"


def check_theme(theme: str) -> str:
    """`theme` if it is a built-in theme; JobError(input_invalid) naming them otherwise."""
    if theme not in THEMES:
        raise JobError(
            ErrorCode.INPUT_INVALID,
            f"unknown theme {theme!r}; allowed: {', '.join(THEMES)}",
            hint="Set theme to one of the built-in themes in job.json or spool.toml.",
        )
    return theme


@functools.cache
def theme_css(theme: str) -> str:
    """The theme's stylesheet text, shared rules included (read once per process)."""
    own = (THEMES_DIR / f"{check_theme(theme)}.css").read_text(encoding="utf-8")
    return own + "\n" + SHARED_CSS.read_text(encoding="utf-8")
