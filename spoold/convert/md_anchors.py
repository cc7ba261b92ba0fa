"""Heading ids and internal links for Markdown (a markdown-it-py core rule).

Every heading gets an id: the explicit one from its attributes (md_attrs.py), else a
GitHub-style slug of its text, unique in the document. `[text](#id)` links are made to
name an id that exists, so HTML, PDF (named destinations) and DOCX (bookmarks) can all
resolve them.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Sequence

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from mdit_py_plugins.anchors.index import slugify

# Ids and names written in raw HTML (`<a name="install"></a>`, `<div id=x>`).
_RAW_ID = re.compile(r"""\b(?:id|name)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)


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


def _unique(slug: str, taken: set[str], suffixes: dict[str, int]) -> str:
    """`slug`, else `slug-1`, `slug-2`... (the next free one; `suffixes` remembers
    where each slug's count stands, so 10,000 "Usage" headings stay linear)."""
    slug = slug or "section"
    candidate, n = slug, suffixes.get(slug, 0)
    if n:
        candidate = f"{slug}-{n}"
    while candidate in taken:
        n += 1
        candidate = f"{slug}-{n}"
    suffixes[slug] = n + 1
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
    suffixes: dict[str, int] = {}
    for i, token in enumerate(state.tokens[:-1]):
        if token.type == "heading_open" and not token.attrGet("id"):
            slug = slugify(_heading_text(state.tokens[i + 1]))
            token.attrSet("id", _unique(slug, taken, suffixes))
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


def anchors_plugin(md: MarkdownIt) -> None:
    """Heading ids and internal links; add after the other plugins (it runs last)."""
    md.core.ruler.push("spoold_anchors", _anchors)
