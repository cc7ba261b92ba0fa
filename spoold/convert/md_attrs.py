"""Attribute blocks `{#id .class key=val}` in Markdown (markdown-it-py rules).

People write them after headings (pandoc, kramdown `{: #id}`, mkdocs attr_list
`{ #id }`, Hugo, Docusaurus), in the info string of fenced code blocks (pandoc
`{.python #id}`, or `python {#id}`), right after images, links and inline code, and on
bracketed spans `[text]{#id}` (pandoc, djot). Inside the braces the syntax is djot's,
parsed by mdit-py-plugins. The result is HTML attributes on the element; what the
attributes cannot do (event handlers, URLs) is refused here, and the HTML sanitiser
still checks everything after.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

# Event handlers run script; a link's or image's URL comes from the Markdown, never
# from an attribute block.
_REFUSED = re.compile(r"^(on.*|href|src|srcset|action|formaction|xlink:href)$", re.I)
# Attribute blocks longer than this are not looked for: it keeps the scan for the
# closing brace linear in the document, whatever it holds.
MAX_ATTR_CHARS = 1024
# Inline elements an attribute block may follow directly.
_INLINE_AFTER = ("image", "code_inline", "link_close")


# One word of an attribute block: `#id`, `.class`, `key=value` (value quoted or not),
# pandoc's `-`, a bare name (kramdown's reference to an attribute list definition), or
# a djot `%comment%`. An id or class is any run without spaces or braces, as pandoc
# reads `{#pandoc.BlockQuote}` or `{#a:b}`.
_ATTR_WORD = re.compile(
    r"""\s*(?:
    \#(?P<id>[^\s{}]+)
    |\.(?P<cls>[^\s{}]+)
    |(?P<key>[A-Za-z_:][\w:.-]*)=(?:"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"'{}]+))
    |(?P<dash>-)(?=\s|$)
    |(?P<ref>[A-Za-z][\w-]*)(?=\s|$)
    |%[^%]*%
    )""",
    re.VERBOSE,
)


def parse_attr_words(words: str) -> tuple[dict[str, str], list[str]] | None:
    """(attributes, bare names) of an attribute block's inside; None if not one.

    Attributes keep djot's order (the id and keys as written, the classes joined last).
    """
    attrs: dict[str, str] = {}
    classes: list[str] = []
    refs: list[str] = []
    pos = 0
    while pos < len(words):
        m = _ATTR_WORD.match(words, pos)
        if m is None or m.end() == pos:
            if words[pos:].strip():
                return None
            break
        pos = m.end()
        if m["id"] is not None:
            attrs["id"] = m["id"]
        elif m["cls"] is not None:
            classes.append(m["cls"])
        elif m["key"] is not None:
            value = (
                m["dq"] if m["dq"] is not None else m["sq"] if m["sq"] is not None else m["bare"]
            )
            attrs[m["key"]] = re.sub(r"\\(.)", r"\1", value) if m["dq"] is not None else value
        elif m["dash"] is not None:
            classes.append("unnumbered")
        elif m["ref"] is not None:
            refs.append(m["ref"])
    if classes:
        attrs["class"] = " ".join(classes)
    return attrs, refs


def attributes(text: str) -> dict[str, str] | None:
    """Parse the inside of an attribute block (`#id .a .b key=val`); None if invalid.

    A leading `:` (kramdown) is allowed; pandoc's `-` becomes the class `unnumbered`.
    Bare names (kramdown references) make it invalid here; md_ial.py reads those.
    """
    words = text.strip().removeprefix(":").strip()
    if not words or len(words) > MAX_ATTR_CHARS:
        return None
    parsed = parse_attr_words(words)
    if parsed is None or parsed[1] or not parsed[0]:
        return None
    return safe_attrs(parsed[0])


def safe_attrs(attrs: dict[str, str]) -> dict[str, str]:
    """`attrs` without event handlers and URLs (a link's target is its Markdown's)."""
    return {k: v for k, v in attrs.items() if not _REFUSED.match(k)}


def merge_attrs(into: dict[str, str], attrs: dict[str, str]) -> None:
    """Add `attrs` to `into`: classes are joined, anything else replaced."""
    for key, value in attrs.items():
        if key == "class" and into.get("class"):
            into["class"] = f"{into['class']} {value}"
        else:
            into[key] = value


def _merge(token: Token, attrs: dict[str, str]) -> None:
    if "class" in attrs and token.attrGet("class"):
        attrs["class"] = f"{token.attrGet('class')} {attrs['class']}"
    for key, value in attrs.items():
        token.attrSet(key, value)


def _block_at(src: str, pos: int, limit: int) -> tuple[dict[str, str], int] | None:
    """The attribute block starting at src[pos] == '{': (attributes, end) or None."""
    close = src.find("}", pos, min(limit, pos + MAX_ATTR_CHARS))
    if close < 0:
        return None
    attrs = attributes(src[pos + 1 : close])
    return None if attrs is None else (attrs, close + 1)


# --- block rules (core, before inline parsing) -----------------------------------------


def _heading_attrs(state: StateCore) -> None:
    """Move a trailing ` {...}` from a heading's text to the heading's attributes."""
    tokens = state.tokens
    for i, token in enumerate(tokens[:-1]):
        inline = tokens[i + 1]
        if token.type != "heading_open" or inline.type != "inline":
            continue
        text = inline.content.rstrip()
        start = text.rfind("{")
        # After a space (`Title {#id}`), ending the line, not escaped (`\{`).
        if not text.endswith("}") or start < 1 or not text[start - 1].isspace():
            continue
        attrs = attributes(text[start + 1 : -1])
        if attrs is not None:
            inline.content = text[:start].rstrip()
            _merge(token, attrs)


def _fence_attrs(state: StateCore) -> None:
    """`{.python #id}` (pandoc: the first class is the language) or `python {#id .x}`."""
    for token in state.tokens:
        info = token.info.strip()
        if token.type != "fence" or not info.endswith("}") or "{" not in info:
            continue
        lang, _, inner = info[:-1].partition("{")
        attrs = attributes(inner)
        if attrs is None:
            continue
        classes = attrs.pop("class", "").split()
        if not lang.strip() and classes:
            lang = classes.pop(0)
        token.info = lang.strip()
        if classes:
            attrs["class"] = " ".join(classes)
        _merge(token, attrs)


# --- inline rules -------------------------------------------------------------------------


def _after_element(state: StateInline, silent: bool) -> bool:
    """`{...}` (or kramdown's `{: ...}`) right after an image, a link or inline code."""
    pos = state.pos
    if state.src[pos] != "{" or state.pending or not state.tokens:
        return False
    if state.tokens[-1].type not in _INLINE_AFTER:
        return False
    found = _block_at(state.src, pos, state.posMax)
    if found is None:
        return False
    if not silent:
        index, depth = len(state.tokens) - 1, 0
        while index > 0:  # from a link_close back to its link_open
            depth += state.tokens[index].nesting
            if depth == 0:
                break
            index -= 1
        _merge(state.tokens[index], found[0])
    state.pos = found[1]
    return True


def _span(state: StateInline, silent: bool) -> bool:
    """`[text]{#id .class}`: a span (the link rule runs first, so links stay links)."""
    start = state.pos
    if state.src[start] != "[":
        return False
    label_end = state.md.helpers.parseLinkLabel(state, start, False)
    after = label_end + 1
    if label_end < 0 or after >= state.posMax or state.src[after] != "{":
        return False
    found = _block_at(state.src, after, state.posMax)
    if found is None:
        return False
    if not silent:
        limit = state.posMax
        state.pos, state.posMax = start + 1, label_end
        _merge(state.push("span_open", "span", 1), found[0])
        state.md.inline.tokenize(state)
        state.push("span_close", "span", -1)
        state.posMax = limit
    state.pos = found[1]
    return True


def _fence(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """`<pre id=.. class=..><code class="language-x">`: attributes on the block, the
    language on the code, as the HTML contract between Markdown and DOCX says."""
    token = tokens[idx]
    lang = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
    code = f' class="{escapeHtml(options.langPrefix + lang)}"' if lang else ""
    return f"<pre{self.renderAttrs(token)}><code{code}>{escapeHtml(token.content)}</code></pre>\n"


def attrs_plugin(md: MarkdownIt) -> None:
    md.core.ruler.after("block", "heading_attrs", _heading_attrs)
    md.core.ruler.after("heading_attrs", "fence_attrs", _fence_attrs)
    md.inline.ruler.after("link", "span_attrs", _span)
    md.inline.ruler.push("element_attrs", _after_element)
    md.add_render_rule("fence", _fence)
