"""Table-of-contents markers of the dialects, made a real table of contents.

Recognised, each as a paragraph (or list) of its own:

- kramdown: a one-item list followed by `{:toc}` (`* TOC` / `1. TOC` then `{:toc}`);
  an ordered list gives an ordered contents list;
- MultiMarkdown `{{TOC}}` (and `{{TOC:2-3}}`: levels 2 to 3);
- Python-Markdown/MkDocs and GitLab `[TOC]`, GitLab/Azure DevOps `[[_TOC_]]`.

It becomes `<nav class="toc" role="doc-toc">` holding a nested list that links every
heading (ids from md_anchors.py), except headings of class `no_toc` (kramdown). In
HTML it is a linked list; in PDF each entry also gets its page number
(`target-counter`, TOC_CSS); the DOCX writer makes it a Word TOC field.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

_MARKER = re.compile(r"^(?:\{\{TOC(?::(?P<low>[1-6])-(?P<high>[1-6]))?\}\}|\[TOC\]|\[\[_TOC_\]\])$")
_KRAMDOWN = re.compile(r"^[^\n]*\n[ \t]*\{:toc\}[ \t]*$")
TOC_KEY = "spoold_toc"
# Page numbers after each entry in PDF; browsers ignore target-counter.
TOC_CSS = (
    "nav.toc ul, nav.toc ol { list-style: none; padding-left: 1.2em; margin: 0.2em 0; }\n"
    "nav.toc > ul, nav.toc > ol { padding-left: 0; }\n"
    "nav.toc a { text-decoration: none; color: inherit; }\n"
    "nav.toc a::after { content: leader('.') target-counter(attr(href url), page); }\n"
)


def _heading_entries(tokens: Sequence[Token], low: int, high: int) -> list[tuple[int, str, str]]:
    """(level, id, text) of each heading in the contents."""
    entries = []
    for i, token in enumerate(tokens[:-1]):
        if token.type != "heading_open":
            continue
        level = int(token.tag[1])
        classes = str(token.attrGet("class") or "").split()
        ident = token.attrGet("id")
        if low <= level <= high and "no_toc" not in classes and ident:
            text = "".join(
                c.content for c in tokens[i + 1].children or [] if c.type in ("text", "code_inline")
            )
            entries.append((level, str(ident), text.strip()))
    return entries


def toc_html(entries: list[tuple[int, str, str]], ordered: bool) -> str:
    """The nested contents list: a deeper heading opens a list inside the last item."""
    tag = "ol" if ordered else "ul"
    out = ['<nav class="toc" role="doc-toc">']
    stack: list[int] = []
    for level, ident, text in entries:
        while stack and stack[-1] > level:
            out.append(f"</li></{tag}>")
            stack.pop()
        if stack and stack[-1] == level:
            out.append("</li>")
        else:
            out.append(f"<{tag}>")
            stack.append(level)
        out.append(f'<li><a href="#{html.escape(ident)}">{html.escape(text)}</a>')
    out.extend(f"</li></{tag}>" for _ in stack)
    out.append("</nav>")
    return "\n".join(out) + "\n"


def _marker_at(tokens: list[Token], i: int) -> tuple[int, bool, int, int] | None:
    """A contents marker starting at tokens[i]: (tokens it spans, ordered, low, high)."""
    token = tokens[i]
    if token.type == "paragraph_open" and i + 2 < len(tokens):
        m = _MARKER.match(tokens[i + 1].content.strip())
        if m is not None:
            low, high = int(m["low"] or 1), int(m["high"] or 6)
            return 3, False, low, high
    if token.type in ("bullet_list_open", "ordered_list_open") and i + 6 < len(tokens):
        item = tokens[i + 1 : i + 7]
        kinds = [t.type for t in item]
        closes = tokens[i + 6].type in ("bullet_list_close", "ordered_list_close")
        if (
            kinds[:5]
            == [
                "list_item_open",
                "paragraph_open",
                "inline",
                "paragraph_close",
                "list_item_close",
            ]
            and closes
            and _KRAMDOWN.match(item[2].content.strip())
        ):
            return 7, token.type == "ordered_list_open", 1, 6
    return None


def _toc(state: StateCore) -> None:
    tokens = state.tokens
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        found = _marker_at(tokens, i)
        if found is None:
            out.append(tokens[i])
            i += 1
            continue
        span, ordered, low, high = found
        nav = Token("html_block", "", 0, block=True, level=tokens[i].level)
        nav.content = toc_html(_heading_entries(tokens, low, high), ordered)
        nav.map = tokens[i].map
        out.append(nav)
        state.env[TOC_KEY] = True
        i += span
    state.tokens = out


def toc_plugin(md: MarkdownIt) -> None:
    """Contents markers; add after anchors_plugin (headings need their ids)."""
    md.core.ruler.push("spoold_toc", _toc)
