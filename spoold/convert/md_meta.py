"""Document metadata in the other dialects' forms: never printed, always read.

YAML front matter (`---`) is mdit-py-plugins' front_matter plugin; this module adds,
at the very top of a document only:

- TOML front matter between `+++` lines (Hugo, Zola), read with tomllib;
- MultiMarkdown metadata: `Key: value` lines up to the first blank line, continuation
  lines indented. Only when every line of that first block is such a line and one key is
  one MultiMarkdown defines (Title, Author, Date...), so a document that opens with
  "Note: ..." keeps its paragraph;
- pandoc's title block: `% Title`, `% Author(s)`, `% Date` lines.

Each becomes a hidden `front_matter` token whose `meta["format"]` says which it was;
`read_metadata` turns its text into keys (lower case, as the YAML reader gives them).
MultiMarkdown's `[%key]` (the value of a metadata key) is replaced in the text.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline

# Keys MultiMarkdown 6 gives a meaning (lower case, spaces removed as MMD does).
MMD_KEYS = frozenset(
    {
        "title",
        "author",
        "affiliation",
        "date",
        "copyright",
        "keywords",
        "language",
        "lang",
        "baseheaderlevel",
        "htmlheaderlevel",
        "latexheaderlevel",
        "css",
        "htmlheader",
        "htmlfooter",
        "mmdheader",
        "mmdfooter",
        "latexconfig",
        "latexleader",
        "latexbegin",
        "latexfooter",
        "latexmode",
        "quoteslanguage",
        "transcludebase",
        "xhtmlheader",
        "subtitle",
        "uuid",
        "version",
        "odfheader",
        "bibtex",
    }
)
_MMD_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9 _.-]*?)[ \t]*:[ \t]*(.*)$")
_MMD_VARIABLE = re.compile(r"\[%([A-Za-z0-9][A-Za-z0-9 _.-]*)\]")


def _lines(src: str, limit: int = 200) -> list[str]:
    return src.split("\n", limit)[:limit]


def _toml_block(lines: list[str]) -> int | None:
    """Lines the `+++` front matter takes (closing line included), or None."""
    if not lines or lines[0].rstrip() != "+++":
        return None
    for i, line in enumerate(lines[1:], start=1):
        if line.rstrip() == "+++":
            return i + 1
    return None


def _mmd_block(lines: list[str]) -> int | None:
    """Lines of a MultiMarkdown metadata block at the top, or None when it is none."""
    count, known = 0, False
    for line in lines:
        if not line.strip():
            break
        m = _MMD_LINE.match(line)
        if m is not None and not line[0].isspace():
            key = m.group(1).replace(" ", "").lower()
            known = known or key in MMD_KEYS
        elif not (line[0].isspace() and count):  # an indented continuation line
            return None
        count += 1
    return count if count and known else None


def _pandoc_block(lines: list[str]) -> int | None:
    """pandoc's `% title` block: up to three `%` lines (with indented continuations)."""
    if not lines or not lines[0].startswith("% "):
        return None
    count = 0
    for line in lines:
        if line.startswith("%") or (count and line[:1].isspace() and line.strip()):
            count += 1
        else:
            break
    return count


def _metadata_rule(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    if start != 0 or state.blkIndent != 0 or not state.src:
        return False
    lines = _lines(state.src)
    found: tuple[str, int] | None = None
    for fmt, finder in _FINDERS:
        taken = finder(lines)
        if taken:
            found = fmt, taken
            break
    if found is None:
        return False
    if silent:
        return True
    fmt, taken = found
    token = state.push("front_matter", "", 0)
    token.hidden = True
    token.block = True
    body = lines[1 : taken - 1] if fmt == "toml" else lines[:taken]
    token.content = "\n".join(body)
    token.meta = {"format": fmt}
    token.map = [0, taken]
    state.line = taken
    return True


_FINDERS: tuple[tuple[str, Callable[[list[str]], int | None]], ...] = (
    ("toml", _toml_block),
    ("pandoc", _pandoc_block),
    ("mmd", _mmd_block),
)


def read_metadata(fmt: str, text: str, yaml: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """The keys of a front matter block of format `fmt` ("yaml" is read by `yaml`)."""
    if fmt == "toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return {}
        return {str(k).lower(): v for k, v in data.items() if not isinstance(v, dict)}
    if fmt == "mmd":
        return _read_mmd(text)
    if fmt == "pandoc":
        return _read_pandoc(text)
    return yaml(text)


def _read_mmd(text: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    key = ""
    for line in text.split("\n"):
        m = _MMD_LINE.match(line)
        if m is not None and not line[0].isspace():
            key = m.group(1).replace(" ", "").lower()
            data[key] = m.group(2).strip()
        elif key:
            data[key] = f"{data[key]} {line.strip()}".strip()
    if "language" in data and "lang" not in data:
        data["lang"] = data["language"]
    return data


def _read_pandoc(text: str) -> dict[str, Any]:
    fields: list[str] = []
    for line in text.split("\n"):
        if line.startswith("%"):
            fields.append(line[1:].strip())
        elif fields:
            fields[-1] = f"{fields[-1]} {line.strip()}"
    data: dict[str, Any] = {}
    for key, value in zip(("title", "author", "date"), fields, strict=False):
        if value:
            data[key] = [a.strip() for a in value.split(";")] if key == "author" else value
    return data


def _variable(state: StateInline, silent: bool) -> bool:
    """MultiMarkdown `[%key]`: the value of metadata key `key`, when the document has it."""
    if not state.src.startswith("[%", state.pos):
        return False
    m = _MMD_VARIABLE.match(state.src, state.pos, state.posMax)
    values = state.env.get("spoold_metadata") or {}
    key = m.group(1).replace(" ", "").lower() if m else ""
    if m is None or key not in values:
        return False
    if not silent:
        state.push("text", "", 0).content = str(values[key])
    state.pos = m.end()
    return True


def metadata_plugin(md: MarkdownIt) -> None:
    """TOML, MultiMarkdown and pandoc metadata blocks; `[%key]` substitution."""
    md.block.ruler.before(
        "table", "spoold_metadata", _metadata_rule, {"alt": ["paragraph", "reference"]}
    )
    md.inline.ruler.before("link", "mmd_variable", _variable)
