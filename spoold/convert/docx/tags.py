"""How the walk treats each HTML element: skipped, a block, or inline content."""

from __future__ import annotations

HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Not rendered at all (metadata, scripts, media and form controls).
SKIP = frozenset(
    {
        "head",
        "script",
        "style",
        "template",
        "noscript",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "param",
        "audio",
        "video",
        "canvas",
        "map",
        "title",
        "meta",
        "link",
        "base",
        "button",
        "select",
        "textarea",
        "datalist",
        "source",
        "track",
    }
)
# Elements whose children are walked as blocks.
CONTAINERS = frozenset(
    {
        "html",
        "body",
        "div",
        "section",
        "article",
        "main",
        "header",
        "footer",
        "nav",
        "aside",
        "figure",
        "details",
        "summary",
        "address",
        "center",
        "fieldset",
        "form",
        "hgroup",
        "search",
        "li",
        "dt",
        "dd",
        "caption",
        "thead",
        "tbody",
        "tfoot",
        "tr",
        "td",
        "th",
        "legend",
        "picture",
        "dialog",
        "menu",
    }
)
# Elements that end the current paragraph (parts of tables, lists and dl excluded: they
# only occur inside their parent, which handles them).
BLOCKS = (
    (
        set(HEADINGS)
        | CONTAINERS
        | {"p", "pre", "ul", "ol", "blockquote", "hr", "table", "dl", "figcaption", "svg", "math"}
    )
    - {"li", "dt", "dd", "caption", "thead", "tbody", "tfoot", "tr", "td", "th", "legend"}
) | SKIP
