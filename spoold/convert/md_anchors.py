"""Attributes, ids and internal links for Markdown (markdown-it-py core rules).

People write `{#id .class key=val}` after headings (pandoc, kramdown, mkdocs
attr_list, Hugo), in the info string of fenced code blocks (pandoc) and right after
images, links and inline code (djot, pandoc). These rules turn them into HTML
attributes, give every heading an id (the explicit one, else a GitHub-style slug,
unique in the document) and make `[text](#id)` links name an id that exists, so
HTML, PDF (named destinations) and DOCX (bookmarks) can all resolve them.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Sequence

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.anchors.index import slugify
from mdit_py_plugins.attrs import attrs_plugin
from mdit_py_plugins.attrs.parse import ParseError
from mdit_py_plugins.attrs.parse import parse as parse_attrs

# A trailing `{...}` after a space: `## Title {#id}`, `{: #id}` (kramdown), `{ #id }`.
_TRAILING_ATTRS = re.compile(r"(?:^|\s+)(?<!\\)\{:?([^{}]*)\}\s*$")
# Ids and names written in raw HTML (`<a name="install"></a>`, `<div id=x>`).
_RAW_ID = re.compile(r"""\b(?:id|name)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)
# Attribute names that never come from Markdown attributes (the sanitiser would drop
# them too; removing them here keeps them out of the HTML at all).
_REFUSED = re.compile(r"^(on|srcset$|formaction$)", re.I)


def attributes(text: str) -> dict[str, str] | None:
    """Parse the inside of an attribute block (`#id .a .b key=val`); None if invalid.

    pandoc's `-` (unnumbered heading) becomes the class `unnumbered`.
    """
    words = re.sub(r"(?:(?<=\s)|^)-(?=\s|$)", ".unnumbered", text.strip())
    if not words:
        return None
    try:
        _, attrs = parse_attrs("{" + words + "}")
    except ParseError:
        return None
    return {k: str(v) for k, v in attrs.items() if not _REFUSED.match(k)}


def _heading_attrs(state: StateCore) -> None:
    """Move a trailing `{...}` from a heading's text to the heading's attributes."""
    tokens = state.tokens
    for i, token in enumerate(tokens[:-1]):
        inline = tokens[i + 1]
        if token.type != "heading_open" or inline.type != "inline":
            continue
        m = _TRAILING_ATTRS.search(inline.content)
        attrs = attributes(m.group(1)) if m else None
        if m is None or attrs is None:
            continue
        inline.content = inline.content[: m.start()].rstrip()
        _merge(token, attrs)


def _fence_attrs(state: StateCore) -> None:
    """`{.python #id}` (pandoc) or `python {#id .x}` in a fence's info string."""
    for token in state.tokens:
        if token.type != "fence" or "{" not in token.info:
            continue
        info = token.info.strip()
        lang, _, rest = info.partition("{") if not info.startswith("{") else ("", "", info[1:])
        if not rest.rstrip().endswith("}"):
            continue
        attrs = attributes(rest.rstrip()[:-1].lstrip(":"))
        if attrs is None:
            continue
        classes = attrs.pop("class", "").split()
        if not lang.strip() and classes:
            lang = classes.pop(0)  # pandoc: the first class names the language
        token.info = lang.strip()
        if classes:
            attrs["class"] = " ".join(classes)
        _merge(token, attrs)


_INLINE_AFTER = ("image", "code_inline", "link_close")


def _colon_attrs(state: StateInline, silent: bool) -> bool:
    """kramdown/attr_list spell inline attributes `{: .class}`; djot's parser (the
    attrs plugin) does not read the colon, so this rule does."""
    start = state.pos
    if state.src[start : start + 2] != "{:" or state.pending or not state.tokens:
        return False
    if state.tokens[-1].type not in _INLINE_AFTER:
        return False
    end = state.src.find("}", start, state.posMax)
    attrs = attributes(state.src[start + 2 : end]) if end > 0 else None
    if attrs is None:
        return False
    if not silent:
        index, depth = len(state.tokens) - 1, 0
        while index > 0:  # a link_close: walk back to its link_open
            depth += state.tokens[index].nesting
            if depth == 0:
                break
            index -= 1
        _merge(state.tokens[index], attrs)
    state.pos = end + 1
    return True


def _merge(token: Token, attrs: dict[str, str]) -> None:
    if "class" in attrs and token.attrGet("class"):
        attrs["class"] = f"{token.attrGet('class')} {attrs['class']}"
    for key, value in attrs.items():
        token.attrSet(key, value)


def _all_tokens(tokens: Sequence[Token]) -> Iterator[Token]:
    for token in tokens:
        yield token
        if token.children:
            yield from _all_tokens(token.children)


def _heading_text(inline: Token) -> str:
    # GitHub slugs the heading's text: words, code, link text; not image alt text.
    return "".join(
        child.content for child in inline.children or [] if child.type in ("text", "code_inline")
    ).strip()


def _unique(slug: str, taken: set[str]) -> str:
    slug = slug or "section"
    candidate, n = slug, 0
    while candidate in taken:
        n += 1
        candidate = f"{slug}-{n}"
    taken.add(candidate)
    return candidate


def _raw_ids(token: Token) -> Iterator[str]:
    if token.type in ("html_inline", "html_block"):
        for m in _RAW_ID.finditer(token.content):
            yield next(g for g in m.groups() if g is not None)


def _anchors(state: StateCore) -> None:
    """Give headings ids and point internal links at ids that exist.

    Explicit ids (attributes, raw HTML) are reserved first, so a slug never takes one,
    whatever the order. Footnote ids are the footnote plugin's (`fn1`, `fnref1`).
    """
    tokens = list(_all_tokens(state.tokens))
    taken = {str(t.attrGet("id")) for t in tokens if t.attrGet("id")}
    taken.update(i for t in tokens for i in _raw_ids(t))
    for i, token in enumerate(state.tokens[:-1]):
        if token.type == "heading_open" and not token.attrGet("id"):
            token.attrSet("id", _unique(slugify(_heading_text(state.tokens[i + 1])), taken))
    by_folded = {ident.casefold(): ident for ident in sorted(taken)}
    for token in tokens:
        href = token.attrGet("href") if token.type == "link_open" else None
        if isinstance(href, str) and href.startswith("#") and len(href) > 1:
            token.attrSet("href", "#" + _resolve(href[1:], taken, by_folded))


def _resolve(fragment: str, taken: set[str], by_folded: dict[str, str]) -> str:
    """The id a `#fragment` link means: as written, else the same id in other case,
    else the slug of the written text (`#Install Guide` -> `install-guide`)."""
    # markdown-it percent-encodes links; an id is plain text (`#café`, not `#caf%C3%A9`).
    name = urllib.parse.unquote(fragment)
    if name in taken:
        return name
    for guess in (name.casefold(), slugify(name.strip())):
        if guess in by_folded:
            return by_folded[guess]
    return name


def _fence(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """`<pre id=.. class=..><code class="language-x">`: attributes on the block, the
    language on the code, as the HTML contract between Markdown and DOCX says."""
    token = tokens[idx]
    lang = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
    code = f' class="{escapeHtml(options.langPrefix + lang)}"' if lang else ""
    return f"<pre{self.renderAttrs(token)}><code{code}>{escapeHtml(token.content)}</code></pre>\n"


def anchors_plugin(md: MarkdownIt) -> None:
    """Attributes on headings, fences, images, links and inline code; heading ids;
    internal links resolved. Add after the other plugins (it runs last)."""
    md.core.ruler.after("block", "heading_attrs", _heading_attrs)
    md.core.ruler.after("heading_attrs", "fence_attrs", _fence_attrs)
    # spans: pandoc's `[text]{#id .class}`, the usual way to set an anchor mid-text.
    attrs_plugin(md, after=_INLINE_AFTER, spans=True)
    md.inline.ruler.push("colon_attrs", _colon_attrs)
    md.core.ruler.push("spoold_anchors", _anchors)
    md.add_render_rule("fence", _fence)
