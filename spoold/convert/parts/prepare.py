"""The document as the unsplit PDF route hands it to WeasyPrint, before any split.

Mirrors the front half of `spoold.convert.html.render_pdf`: parse (depth-checked),
sanitise and inline every resource through the job's sandbox, append resources/*.css,
force UTF-8, add the running title. Splitting works on this tree, so each part is
already self-contained and its layout needs no fetcher beyond data: URLs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import html as html_conv
from ..base import ConversionContext


def prepare_document(text: str | bytes, ctx: ConversionContext, base: Path) -> Any:
    """The sanitised, self-contained lxml tree the unsplit layout would see."""
    ctx.stage("parsing")
    root = html_conv.parse_html(text)
    inliner = html_conv.sanitise(root, ctx, base)
    for css, folder in html_conv.resource_css(ctx):
        html_conv._add_style(root, inliner.css(css, folder))
    html_conv._ensure_charset(root)
    html_conv._running_title(root)
    return root


def serialize(root: Any) -> bytes:
    return html_conv._serialize(root)
