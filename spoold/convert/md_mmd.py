"""MultiMarkdown's own spans: CriticMarkup, abbreviations and glossary terms.

- CriticMarkup (also CriticMarkup's own tools): `{++added++}` is `<ins>`, `{--removed--}`
  `<del>`, `{~~old~>new~~}` both, `{==highlight==}` `<mark>`; a reviewer's comment
  `{>>...<<}` is left out of the document, as MultiMarkdown's "accept" does.
- Abbreviations: `[>(MMD) MultiMarkdown]`, or `[>MMD]` with a definition line
  `[>MMD]: MultiMarkdown` anywhere: `<abbr title="MultiMarkdown">MMD</abbr>`.
- Glossary terms: `[?(term) definition]`, or `[?term]` with `[?term]: definition`:
  `<dfn title="definition">term</dfn>`.
- Header labels `# A Header [label] #` give the header its id (in documents that are
  MultiMarkdown by their metadata or `{{TOC}}`).

Definition lines are not printed. `[>X]` or `[?X]` without a definition is left as
written (it may be ordinary bracketed text).
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline

_DEFINITION = re.compile(r"^[ \t]{0,3}\[([>?])([^\]\n]+)\]:[ \t]*(.*)$")
_INLINE_DEFINED = re.compile(r"\[([>?])\(([^)\n]+)\)[ \t]*([^\]]+)\]")
_REFERENCE = re.compile(r"\[([>?])([^\]\[\n()]+)\]")
_CRITIC = re.compile(r"\{(\+\+|--|~~|==|>>)(.*?)(\+\+|--|~~|==|<<)\}", re.S)
_CLOSERS = {"++": "++", "--": "--", "~~": "~~", "==": "==", ">>": "<<"}
MMD_KEY = "spoold_mmd"


def _definitions(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """`[>ABBR]: text` and `[?term]: text` lines (indented lines continue them)."""
    if state.sCount[start] - state.blkIndent >= 4:
        return False
    m = _DEFINITION.match(state.src[state.bMarks[start] : state.eMarks[start]])
    if m is None:
        return False
    if silent:
        return True
    text = [m.group(3).strip()]
    line = start + 1
    while line < end and state.sCount[line] > state.blkIndent and not state.isEmpty(line):
        text.append(state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]])
        line += 1
    kind = "abbr" if m.group(1) == ">" else "dfn"
    state.env.setdefault(MMD_KEY, {}).setdefault(kind, {})[m.group(2).strip()] = " ".join(text)
    state.line = line
    return True


def _push_term(state: StateInline, kind: str, term: str, title: str) -> None:
    token = state.push(f"{kind}_open", kind, 1)
    token.attrSet("title", title)
    state.push("text", "", 0).content = term
    state.push(f"{kind}_close", kind, -1)


def _term(state: StateInline, silent: bool) -> bool:
    src, pos = state.src, state.pos
    if not src.startswith(("[>", "[?"), pos):
        return False
    kind = "abbr" if src[pos + 1] == ">" else "dfn"
    m = _INLINE_DEFINED.match(src, pos, state.posMax)
    if m is not None:
        term, title = m.group(2).strip(), " ".join(m.group(3).split())
    else:
        m = _REFERENCE.match(src, pos, state.posMax)
        defined = state.env.get(MMD_KEY, {}).get(kind, {})
        if m is None or m.group(2).strip() not in defined:
            return False
        term = m.group(2).strip()
        title = defined[term]
    if not silent:
        _push_term(state, kind, term, title)
    state.pos = m.end()
    return True


def _critic(state: StateInline, silent: bool) -> bool:
    src, pos = state.src, state.pos
    if src[pos] != "{" or src[pos + 1 : pos + 3] not in _CLOSERS:
        return False
    m = _CRITIC.match(src, pos, state.posMax)
    if m is None or _CLOSERS[m.group(1)] != m.group(3):
        return False
    if not silent:
        _critic_tokens(state, m.group(1), m.group(2))
    state.pos = m.end()
    return True


def _critic_tokens(state: StateInline, mark: str, text: str) -> None:
    if mark == ">>":
        return  # a reviewer's comment
    if mark == "~~":
        old, _, new = text.partition("~>")
        parts = [("del", old), ("ins", new)]
    else:
        parts = [({"++": "ins", "--": "del", "==": "mark"}[mark], text)]
    for tag, content in parts:
        if not content:
            continue
        state.push(f"{tag}_open", tag, 1)
        state.md.inline.parse(content, state.md, state.env, state.tokens)
        state.push(f"{tag}_close", tag, -1)


_HEADER_LABEL = re.compile(r"^(.*\S)\s+\[([^\[\]\n]+)\]$")
_MMD_MARKERS = re.compile(r"^\{\{TOC(?::\d-\d)?\}\}[ \t]*$", re.M)


def is_multimarkdown(state: StateCore) -> bool:
    """A MultiMarkdown document: it has MMD metadata or MMD's `{{TOC}}` marker."""
    first = state.tokens[0] if state.tokens else None
    if first is not None and first.type == "front_matter" and first.meta.get("format") == "mmd":
        return True
    return bool(_MMD_MARKERS.search(state.src))


def _header_labels(state: StateCore) -> None:
    """MultiMarkdown `# A Header [label] #`: the label is the header's id, not its text
    (only in MultiMarkdown documents: elsewhere a trailing `[x]` is the author's text)."""
    if not is_multimarkdown(state):
        return
    for i, token in enumerate(state.tokens[:-1]):
        inline = state.tokens[i + 1]
        if token.type != "heading_open" or token.attrGet("id"):
            continue
        m = _HEADER_LABEL.match(inline.content)
        if m is not None:
            inline.content = m.group(1)
            token.attrSet("id", re.sub(r"[^\w.:-]", "", m.group(2)).lower() or m.group(2))


def mmd_plugin(md: MarkdownIt) -> None:
    md.block.ruler.before(
        "reference", "mmd_definitions", _definitions, {"alt": ["paragraph", "reference"]}
    )
    md.inline.ruler.before("link", "mmd_terms", _term)
    md.inline.ruler.before("link", "critic_markup", _critic)
    md.core.ruler.after("block", "mmd_header_labels", _header_labels)
