"""Dialect markup a reader would see: found in a Markdown source, looked for in outputs.

Shared by tests/test_dialects_corpus.py and bench/bench_heldout.py. The source is read
by a plain CommonMark parser (markdown-it-py, no plugins): every string of a dialect's
markup (kramdown IALs, `{#id}` blocks, `!!!`/`???`/`:::`/`===` lines, template tags,
contents markers, metadata lines, MultiMarkdown and CriticMarkup spans, icon
shortcodes) that it leaves in ordinary text -- not in code -- is markup that would be
printed if it were not recognised. An output "prints" such a string when it holds it
more often than the source's code does (code shows markup on purpose).
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt
from PIL import Image

# Each dialect's markup, as it appears in running text or on a line of its own.
MARKUP = (
    ("kramdown IAL", re.compile(r"\{:[^{}\n]*\}")),
    ("attribute block", re.compile(r"\{[ ]?[#.][^{}\s][^{}\n]*\}")),
    ("admonition", re.compile(r"^(?:!!!|\?\?\?\+?)[ ]+\w.*$", re.M)),
    ("container fence", re.compile(r"^:{3,}.*$", re.M)),
    ("content tab", re.compile(r'^===\+?[ ]+".*"$', re.M)),
    ("template tag", re.compile(r"\{\{[<%].*?[>%]\}\}|\{%.*?%\}")),
    ("contents marker", re.compile(r"\{\{TOC(?::\d-\d)?\}\}|\[TOC\]|\[\[_TOC_\]\]")),
    ("MultiMarkdown variable", re.compile(r"\[%[\w .-]+\]")),
    ("MultiMarkdown term", re.compile(r"\[[>?]\(?[^\]\n]+\]")),
    ("CriticMarkup", re.compile(r"\{(?:\+\+|--|~~|==|>>).*?(?:\+\+|--|~~|==|<<)\}")),
    ("icon shortcode", re.compile(r":(?:material|octicons|fontawesome|simple)-[\w-]+:")),
)
_MMD = re.compile(r"^(?:\{\{TOC\}\}|Title:)", re.M)
_MMD_LABEL = re.compile(r"^#{1,6} .*?(\[[^\[\]\n]+\])[ ]*#*[ ]*$", re.M)
# Metadata blocks at the top: their lines must not be printed either.
_META_LINE = re.compile(r"^[A-Za-z][\w -]*:[ \t]+\S.*$")


def _plain() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def _prose(text: str) -> list[str]:
    """Ordinary text of a Markdown source, per block, as plain CommonMark reads it."""
    return [t.content for t in _plain().parse(text) if t.type in ("inline", "html_block")]


def _code(text: str) -> list[str]:
    """What spoold shows as code (blocks and spans): markup there is an example."""
    from spoold.convert.markdown import _md

    code: list[str] = []
    for token in _md().parse(text, {}):
        if token.type in ("fence", "code_block"):
            code.append(token.content)
        for child in token.children or []:
            if child.type == "code_inline":
                code.append(child.content)
    return code


def _normal(text: str) -> str:
    return " ".join(text.split())


def metadata_lines(text: str) -> list[str]:
    """`Key: value` lines of a metadata block at the very top (front matter, TOML,
    MultiMarkdown): printed, they would read as such lines."""
    lines = text.split("\n")
    if lines and lines[0].strip() in ("---", "+++"):
        fence = lines[0].strip()
        end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == fence), 0)
        block = lines[1:end]
    else:
        block = []
        for line in lines:
            if not line.strip():
                break
            block.append(line)
    found = [ln.strip() for ln in block if _META_LINE.match(ln)]
    return found if len(found) == len([b for b in block if b.strip()]) else []


def markup_in(text: str) -> Counter[str]:
    """Dialect markup strings of a source outside code (normalised), with counts. A
    metadata line whose key the text uses (`[%version]`) may legitimately print."""
    found: Counter[str] = Counter()
    for block in _prose(text):
        for _, pattern in MARKUP:
            found.update(_normal(m.group(0)) for m in pattern.finditer(block))
    if _MMD.search(text):  # MultiMarkdown header labels: `# Header [label] #`
        found.update(m.group(1) for m in _MMD_LABEL.finditer(text))
    for line in metadata_lines(text):
        key = line.split(":", 1)[0].replace(" ", "").lower()
        if f"[%{key}]" not in text.replace(" ", "").lower():
            found[_normal(line)] += 1
    return found


def printed_markup(source: str, output_text: str) -> list[str]:
    """Markup of `source` that `output_text` shows more often than `source`'s code."""
    code = _code(source)
    shown = _normal(output_text)
    code_text = _normal(" ".join(code))
    printed = []
    for markup in markup_in(source):
        if shown.count(markup) > code_text.count(markup):
            printed.append(markup)
    return sorted(printed)


def pdf_text(pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def docx_text(docx: Path) -> str:
    """The DOCX as pandoc reads it back, in plain text."""
    return subprocess.run(
        ["pandoc", "-f", "docx", "-t", "plain", "--wrap=none", str(docx)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@dataclass
class Printed:
    pdf: list[str]
    docx: list[str]

    def __iter__(self) -> Iterator[list[str]]:
        return iter((self.pdf, self.docx))


# Han characters, kana and Hangul syllables are counted one by one (lines break between
# any two of them); other words are runs of letters and digits.
# Right-to-left runs are words of their own: text extraction splits "APIها" in two.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RTL = "\u0590-\u05ff\u0600-\u06ff\u0750-\u077f\ufb1d-\ufdff\ufe70-\ufeff"
_WORD = re.compile(rf"[{_CJK}]|(?:(?=\w)[{_RTL}])+|[^\W{_CJK}{_RTL}]+")


def words(text: str) -> Counter[str]:
    """Words of a text for comparing two renderings (letters and digits only).

    pdftotext reverses the two letters of the Arabic lam-alef ligature (لا, one glyph)
    when it reorders right-to-left text: both sides are compared with that pair in one
    order, so the check sees the text, not the extractor's slip.
    """
    return Counter(_WORD.findall(text.casefold().replace("\u0644\u0627", "\u0627\u0644")))


def word_share(expected: Counter[str], found: Counter[str]) -> float:
    """Share of `expected`'s words (with multiplicity) that `found` has."""
    total = sum(expected.values())
    if not total:
        return 1.0
    return sum(min(n, found[w]) for w, n in expected.items()) / total


def page_one_pixels(pdf: Path, prefix: Path) -> Image.Image:
    """Page 1 of `pdf` at 40 dpi (pdftoppm, written to PREFIX.png), as RGB pixels."""
    args = ["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "1", "-singlefile"]
    subprocess.run([*args, str(pdf), str(prefix)], check=True)
    return Image.open(f"{prefix}.png").convert("RGB")
