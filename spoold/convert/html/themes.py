"""The built-in themes: the print stylesheets in spoold/convert/themes/, by name."""

from __future__ import annotations

import functools
from pathlib import Path

from ...errors import ErrorCode, JobError

THEMES_DIR = Path(__file__).parent.with_name("themes")
THEMES = ("default", "handout")


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
    """The theme's stylesheet text (read once per process)."""
    return (THEMES_DIR / f"{check_theme(theme)}.css").read_text(encoding="utf-8")
