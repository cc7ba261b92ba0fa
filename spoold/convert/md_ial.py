"""kramdown's inline attribute lists (IALs), as Jekyll pages write them.

- A line `{: .class #id key="v"}` right after a block (a heading's `{: .no_toc }`, a
  paragraph's last line `{: .label .label-red }`) gives that block the attributes;
  a line of its own directly before a block (`{: .note }` above a paragraph or quote)
  gives them to that block. A lone IAL with a blank line on both sides applies to
  nothing and is dropped; it is never printed.
- `{:name: .class}` lines define a reference (an ALD); `{: name}` uses it.
- After a span: `*text*{: .cls}`, `**text**{:.cls}` (images, links and code are
  md_attrs.py's).
- `<div markdown="1">` (also `markdown`, `"block"`, `"span"`): the lines inside are
  Markdown, as kramdown, PHP Markdown Extra and Python-Markdown's md_in_html read them.

`{:toc}` is left for md_toc.py. The attributes pass md_attrs' checks (no event
handlers, no URLs) and then the HTML sanitiser, like every other attribute.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

from .md_attrs import MAX_ATTR_CHARS, merge_attrs, parse_attr_words, safe_attrs

_IAL_LINE = re.compile(r"^[ \t]*\{:(?!:)([^{}\n]*)\}[ \t]*$")
_ALD = re.compile(r"^\s*([A-Za-z][\w-]*):(.*)$")
_MD_OPEN = re.compile(
    r"""^[ \t]{0,3}<([A-Za-z][\w-]*)(\s[^<>]*?)?\s+markdown(?:=(["']?)(?:1|block|span)\3)?(\s[^<>]*)?>[ \t]*$"""
)
_SPAN_AFTER = ("em_close", "strong_close", "s_close")


def ial(words: str, alds: dict[str, dict[str, str]]) -> dict[str, str] | None:
    """The attributes of an IAL's inside (after `{:`), references resolved; None when
    it is no IAL or is `{:toc}` (a table of contents, not attributes)."""
    if len(words) > MAX_ATTR_CHARS:
        return None
    parsed = parse_attr_words(words.strip())
    if parsed is None or "toc" in parsed[1]:
        return None
    attrs: dict[str, str] = {}
    for ref in parsed[1]:
        merge_attrs(attrs, dict(alds.get(ref, {})))
    merge_attrs(attrs, parsed[0])
    return safe_attrs(attrs)


def _line_attrs(line: str, alds: dict[str, dict[str, str]]) -> dict[str, str] | None:
    """A whole line that is an IAL (or an ALD, recorded in `alds`): its attributes."""
    m = _IAL_LINE.match(line)
    if m is None:
        return None
    ald = _ALD.match(m.group(1))
    if ald is not None and not m.group(1).startswith(" "):
        parsed = parse_attr_words(ald.group(2).strip())
        if parsed is not None:
            alds[ald.group(1)] = safe_attrs(parsed[0])
            return {}
    return ial(m.group(1), alds)


def _block_start(tokens: Sequence[Token], close: int) -> int:
    """Index of the opening token of the block that ends at `tokens[close]`."""
    if tokens[close].nesting == 0:
        return close
    depth, i = 0, close
    while i >= 0:
        depth += tokens[i].nesting
        if depth == 0:
            return i
        i -= 1
    return close


def _neighbours(tokens: list[Token], start: int, end: int) -> tuple[int | None, int | None]:
    """The blocks adjacent (no blank line) before and after the paragraph start..end."""
    para = tokens[start]
    level = para.level
    before: int | None = None
    if start > 0 and tokens[start - 1].level == level and tokens[start - 1].nesting <= 0:
        opener = _block_start(tokens, start - 1)
        block_map = tokens[opener].map
        if block_map and para.map and block_map[1] == para.map[0]:
            before = opener
    after: int | None = None
    nxt = end + 1
    nxt_map = tokens[nxt].map if nxt < len(tokens) else None
    if nxt_map and para.map and tokens[nxt].level == level and tokens[nxt].nesting >= 0:
        after = nxt if nxt_map[0] == para.map[1] else None
    return before, after


def _paragraph(tokens: list[Token], i: int, alds: dict[str, dict[str, str]]) -> bool:
    """Read the IAL lines of the paragraph at tokens[i]; True when it was only IALs
    (and is to be removed)."""
    inline = tokens[i + 1]
    lines = inline.content.split("\n")
    found: list[dict[str, str]] = []
    head: dict[str, str] = {}
    while lines and (attrs := _line_attrs(lines[0], alds)) is not None:
        merge_attrs(head, attrs)
        found.append(attrs)
        lines.pop(0)
    tail: dict[str, str] = {}
    while lines and (attrs := _line_attrs(lines[-1], alds)) is not None:
        merge_attrs(tail, attrs)
        found.append(attrs)
        lines.pop()
    if not found:
        return False
    if not lines:
        before, after = _neighbours(tokens, i, i + 2)
        target = before if before is not None else after
        if target is not None:
            merge_attrs_token(tokens[target], {**tail, **head})
        return True
    inline.content = "\n".join(lines)
    merge_attrs_token(tokens[i], head)
    merge_attrs_token(tokens[i], tail)
    return False


def merge_attrs_token(token: Token, attrs: dict[str, str]) -> None:
    current = {str(k): str(v) for k, v in token.attrs.items()}
    merge_attrs(current, attrs)
    token.attrs = dict(current)


def _block_ials(state: StateCore) -> None:
    """Apply block IALs and drop the lines that held them (before inline parsing)."""
    tokens = state.tokens
    alds: dict[str, dict[str, str]] = state.env.setdefault("spoold_alds", {})
    keep = [True] * len(tokens)
    for i, token in enumerate(tokens):
        if token.type != "paragraph_open" or "{:" not in tokens[i + 1].content:
            continue
        if _paragraph(tokens, i, alds):
            keep[i] = keep[i + 1] = keep[i + 2] = False
    if not all(keep):
        state.tokens = [t for t, k in zip(tokens, keep, strict=True) if k]


def _span_ial(state: StateInline) -> None:
    """`*text*{: .cls}`: attributes for the emphasis just closed (after emphasis)."""
    tokens = state.tokens
    alds: dict[str, dict[str, str]] = state.env.get("spoold_alds", {})
    i = 0
    while i < len(tokens) - 1:
        if tokens[i].type in _SPAN_AFTER and tokens[i + 1].type == "text":
            _apply_span(tokens, i, alds)
        i += 1


def _apply_span(tokens: list[Token], close: int, alds: dict[str, dict[str, str]]) -> None:
    j, text = close + 1, ""
    while j < len(tokens) and tokens[j].type == "text" and "}" not in text:
        text += tokens[j].content
        j += 1
    m = re.match(r"\{:?([^{}\n]*)\}", text)
    if m is None:
        return
    attrs = ial(m.group(1), alds) if text.startswith("{:") else None
    if attrs is None:
        return
    merge_attrs_token(tokens[_block_start(tokens, close)], attrs)
    rest = text[m.end() :]
    tokens[close + 1].content = rest
    del tokens[close + 2 : j]


def _markdown_in_html(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """`<div markdown="1">` and its `</div>`, each alone on its line: the lines between
    are parsed as Markdown, not kept as raw HTML."""
    line = state.src[state.bMarks[start] : state.eMarks[start]]
    open_tags: list[str] = state.env.setdefault("spoold_md_html", [])
    m = _MD_OPEN.match(line)
    closing = open_tags and re.fullmatch(rf"[ \t]*</{open_tags[-1]}>[ \t]*", line)
    if m is None and not closing:
        return False
    if silent:
        return True
    token = state.push("html_block", "", 0)
    token.map = [start, start + 1]
    if m is not None:
        open_tags.append(m.group(1))
        token.content = f"<{m.group(1)}{m.group(2) or ''}{m.group(4) or ''}>\n"
    else:
        open_tags.pop()
        token.content = line.strip() + "\n"
    state.line = start + 1
    return True


def ial_plugin(md: MarkdownIt) -> None:
    md.block.ruler.before(
        "html_block", "markdown_in_html", _markdown_in_html, {"alt": ["paragraph"]}
    )
    md.core.ruler.after("block", "kramdown_ial", _block_ials)
    md.inline.ruler2.push("kramdown_span_ial", _span_ial)
