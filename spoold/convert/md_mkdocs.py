"""What MkDocs-Material pages add through pymdownx: content tabs and icon shortcodes.

- Content tabs (`=== "Title"`, `===+ "Title"`, the content indented by four spaces)
  cannot be clicked on paper: every tab is printed, one after the other, each under
  its title (`<div class="tabbed-block"><p class="tabbed-title">`).
- Icon shortcodes (`:material-alert-decagram:`, `:octicons-tag-24:`,
  `:fontawesome-brands-github:`, `:simple-python:`) name icons of the site's theme,
  which spoold does not have: they are left out, with an attribute block right after
  them (`{ .mdx-pulse title="..." }`). Emoji shortcodes such as `:smile:` stay text.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline

_TAB = re.compile(r'^===\+?[ \t]+"(.*)"[ \t]*$')
_ICON = re.compile(r":(?:material|octicons|fontawesome|simple)-[a-z0-9-]+:(?:\{[^{}\n]{0,1024}\})?")
TAB_INDENT = 4


def _tab(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    if state.sCount[start] - state.blkIndent >= 4:
        return False
    pos = state.bMarks[start] + state.tShift[start]
    m = _TAB.match(state.src[pos : state.eMarks[start]])
    if m is None:
        return False
    if silent:
        return True
    line = start + 1
    while line < end:
        if not state.isEmpty(line) and state.sCount[line] < state.blkIndent + TAB_INDENT:
            break
        line += 1
    while line > start + 1 and state.isEmpty(line - 1):
        line -= 1
    old_indent, old_max, old_parent = state.blkIndent, state.lineMax, state.parentType
    state.parentType = "tabbed"  # type: ignore[assignment]
    token = state.push("tabbed_open", "div", 1)
    token.attrSet("class", "tabbed-block")
    token.map = [start, line]
    title = state.push("tabbed_title_open", "p", 1)
    title.attrSet("class", "tabbed-title")
    inline = state.push("inline", "", 0)
    inline.content, inline.map, inline.children = m.group(1), [start, start + 1], []
    state.push("tabbed_title_close", "p", -1)
    state.blkIndent += TAB_INDENT
    state.lineMax = line
    state.md.block.tokenize(state, start + 1, line)
    state.push("tabbed_close", "div", -1)
    state.blkIndent, state.lineMax, state.parentType = old_indent, old_max, old_parent
    state.line = line
    return True


def _icon(state: StateInline, silent: bool) -> bool:
    if state.src[state.pos] != ":":
        return False
    m = _ICON.match(state.src, state.pos, state.posMax)
    if m is None:
        return False
    state.pos = m.end()
    return True


def mkdocs_plugin(md: MarkdownIt) -> None:
    md.block.ruler.before(
        "fence", "content_tabs", _tab, {"alt": ["paragraph", "reference", "blockquote", "list"]}
    )
    md.inline.ruler.before("emphasis", "icon_shortcode", _icon)
