"""Template tags a static site generator would run: dropped, with a warning per line.

Hugo shortcodes `{{< name ... >}}` and `{{% name ... %}}` (closing forms `{{< /name >}}`
too) and Liquid/Jinja tags `{% ... %}` (Jekyll, Eleventy, mdBook-like) need the site's
templates to mean anything; spoold has none, so the tag is left out of the document and
the manifest says which tag on which line. The text between an opening and a closing
shortcode stays (it is the author's content). Jekyll's `{% highlight LANG %}` ...
`{% endhighlight %}` is a code block. Tags inside code spans and code blocks are
examples, and stay as written; Hugo's escaped form `{{</* name */>}}` prints the
shortcode itself (`{{< name >}}`), as Hugo does.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

# Opening delimiter -> closing delimiter.
_DELIMITERS = (("{{<", ">}}"), ("{{%", "%}}"), ("{%", "%}"))
MAX_TAG_CHARS = 2000
MAX_WARNINGS = 20
WARNINGS_KEY = "spoold_warnings"
LINE_KEY = "spoold_line"
_ESCAPED = re.compile(r"\{\{([<%])/\*(.*?)\*/([>%])\}\}", re.S)
_HIGHLIGHT = re.compile(r"^[ \t]{0,3}\{%-?\s*highlight\s+([\w+#.-]+)[^%]*-?%\}[ \t]*$")
_END_HIGHLIGHT = re.compile(r"^[ \t]{0,3}\{%-?\s*endhighlight\s*-?%\}[ \t]*$")


def _tag_end(src: str, pos: int, limit: int) -> int | None:
    """End of the template tag starting at src[pos], or None when there is none."""
    for opener, closer in _DELIMITERS:
        if src.startswith(opener, pos):
            end = src.find(closer, pos + len(opener), min(limit, pos + MAX_TAG_CHARS))
            return None if end < 0 else end + len(closer)
    return None


def warn_once(env: MutableMapping[str, Any], message: str) -> None:
    """Add a conversion warning for the document (the first MAX_WARNINGS, then a count)."""
    warnings = env.setdefault(WARNINGS_KEY, [])
    assert isinstance(warnings, list)
    if message in warnings:
        return
    if len(warnings) < MAX_WARNINGS:
        warnings.append(message)
    elif len(warnings) == MAX_WARNINGS:
        warnings.append("more template tags were dropped (only the first are listed)")


def _template_tag(state: StateInline, silent: bool) -> bool:
    if state.src[state.pos] != "{":
        return False
    end = _tag_end(state.src, state.pos, state.posMax)
    if end is None:
        return False
    escaped = _ESCAPED.match(state.src, state.pos, end)
    if escaped is not None:  # Hugo's `{{</* name */>}}` prints the shortcode as written
        if not silent:
            state.push(
                "text", "", 0
            ).content = f"{{{{{escaped.group(1)}{escaped.group(2)}{escaped.group(3)}}}}}"
        state.pos = end
        return True
    if not silent:
        tag = " ".join(state.src[state.pos : end].split())
        first = int(state.env.get(LINE_KEY, 0))
        line = first + state.src.count("\n", 0, state.pos) + 1
        shown = tag if len(tag) <= 80 else tag[:77] + "..."
        warn_once(
            state.env, f"line {line}: template tag {shown} dropped (spoold runs no templates)"
        )
    state.pos = end
    return True


def _inline_with_lines(state: StateCore) -> None:
    """markdown-it's core `inline` rule, telling the inline rules each block's line."""
    for token in state.tokens:
        if token.type == "inline":
            if token.children is None:
                token.children = []
            state.env[LINE_KEY] = token.map[0] if token.map else 0
            state.md.inline.parse(token.content, state.md, state.env, token.children)


def _empty_paragraphs(state: StateCore) -> None:
    """A paragraph that held only template tags is no paragraph."""
    tokens = state.tokens
    drop: set[int] = set()
    for i in range(len(tokens) - 2):
        if tokens[i].type == "paragraph_open" and tokens[i + 2].type == "paragraph_close":
            children = tokens[i + 1].children or []
            if tokens[i + 1].content and all(_blank(c) for c in children):
                drop.update((i, i + 1, i + 2))
    if drop:
        state.tokens = [t for i, t in enumerate(tokens) if i not in drop]


def _blank(token: Token) -> bool:
    return token.type in ("softbreak", "hardbreak") or (
        token.type == "text" and not token.content.strip()
    )


def _highlight(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """Jekyll's `{% highlight ruby %}` ... `{% endhighlight %}`: a fenced code block."""
    if state.sCount[start] - state.blkIndent >= 4:
        return False
    m = _HIGHLIGHT.match(state.src[state.bMarks[start] : state.eMarks[start]])
    if m is None:
        return False
    last = start + 1
    while last < end and not _END_HIGHLIGHT.match(
        state.src[state.bMarks[last] : state.eMarks[last]]
    ):
        last += 1
    if last >= end:
        return False
    if silent:
        return True
    token = state.push("fence", "code", 0)
    token.info = m.group(1)
    token.content = state.getLines(start + 1, last, state.blkIndent, True)
    token.markup = "```"
    token.map = [start, last + 1]
    state.line = last + 1
    return True


def templates_plugin(md: MarkdownIt) -> None:
    md.block.ruler.before("fence", "jekyll_highlight", _highlight, {"alt": ["paragraph"]})
    md.inline.ruler.before("link", "template_tag", _template_tag)
    md.core.ruler.at("inline", _inline_with_lines)
    md.core.ruler.after("inline", "template_paragraphs", _empty_paragraphs)
