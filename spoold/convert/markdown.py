"""Markdown to HTML (markdown-it-py): the first step of every Markdown route.

`markdown_to_html` is the one entry point the other routes share (md->pdf lays its
result out with WeasyPrint, md->docx walks it with python-docx). Front matter becomes
<head> metadata; the HTML it returns is not yet sanitised or self-contained — the
converters here pass it through spoold.convert.html for that.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from mdit_py_plugins.deflist import deflist_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.front_matter import front_matter_plugin
from mdit_py_plugins.tasklists import tasklists_plugin

from ..errors import ErrorCode, JobError
from .base import ConversionContext, ConversionResult, metadata_text, register
from .md_anchors import anchors_plugin
from .md_attrs import attrs_plugin
from .md_callouts import callouts_plugin
from .md_ial import ial_plugin
from .md_meta import metadata_plugin, read_metadata
from .md_mkdocs import mkdocs_plugin
from .md_mmd import mmd_plugin
from .md_templates import WARNINGS_KEY, templates_plugin
from .md_toc import TOC_CSS, TOC_KEY, toc_plugin

# Front matter keys that land in <head>; anything else is kept only for the title block.
META_KEYS = ("title", "author", "date", "keywords", "subject", "description", "lang", "dir")
METADATA_KEY = "spoold_metadata"


@functools.cache
def _md() -> MarkdownIt:
    # Built once per worker process: plugin setup costs more than a small document.
    md = (
        MarkdownIt("commonmark", {"html": True})
        .enable(["table", "strikethrough"])
        .use(front_matter_plugin)
        # TOML, MultiMarkdown and pandoc metadata (docs/conversion.md "Dialects").
        .use(metadata_plugin)
        .use(mmd_plugin)
        .use(mkdocs_plugin)
        .use(footnote_plugin)
        .use(tasklists_plugin)
        .use(deflist_plugin)
        # Admonitions and `:::` containers become GitHub alerts; kramdown IALs; Hugo and
        # Liquid template tags dropped with a warning.
        .use(callouts_plugin)
        .use(ial_plugin)
        .use(templates_plugin)
        # `{#id .class}` attributes, then heading ids and `#id` links that land: anchors
        # in HTML, PDF destinations and DOCX bookmarks; then contents markers.
        .use(attrs_plugin)
        .use(anchors_plugin)
        .use(toc_plugin)
    )
    md.core.ruler.after("block", "spoold_read_metadata", _read_metadata)
    # GitHub alerts (`> [!NOTE]`): markdown-it-py renders them as GitHub does.
    md.options["alerts"] = True
    return md


def _read_metadata(state: StateCore) -> None:
    """The document's metadata block, read before inline parsing (`[%key]` uses it)."""
    for token in state.tokens:
        if token.type == "front_matter":
            fmt = str((token.meta or {}).get("format", "yaml"))
            state.env[METADATA_KEY] = read_metadata(fmt, token.content, parse_front_matter)
            return


def read_text(source: Path) -> str:
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise JobError(
            ErrorCode.INPUT_INVALID,
            f"{source.name} is not UTF-8 text (byte {exc.start})",
            hint="Save the document as UTF-8 and drop it again.",
        ) from exc
    return text.removeprefix("\ufeff")


def _scalar(raw: str) -> Any:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    if value.startswith("[") and value.endswith("]"):
        return [str(_scalar(v)) for v in _split_flow(value[1:-1]) if v.strip()]
    return value


def _split_flow(inner: str) -> list[str]:
    # Split "a, 'b, c', d" on commas outside quotes.
    parts: list[str] = []
    buf: list[str] = []
    quote = ""
    for ch in inner:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            buf.append(ch)
        elif ch == ",":
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def parse_front_matter(block: str) -> dict[str, Any]:
    """Parse the simple YAML subset people write in front matter.

    `key: value`, quoted values, `key: [a, b]` and `key:` followed by `- item` lines.
    PyYAML is not a dependency; anything fancier is kept as its raw text.
    """
    data: dict[str, Any] = {}
    current: str | None = None
    for line in block.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        item = re.match(r"^\s+-\s*(.*)$", line) or re.match(r"^-\s+(.*)$", line)
        if item and current is not None:
            existing = data.get(current)
            if not isinstance(existing, list):
                existing = [] if existing in (None, "") else [existing]
            existing.append(str(_scalar(item.group(1))))
            data[current] = existing
            continue
        m = re.match(r"^([A-Za-z0-9_.-]+)\s*:\s*(.*)$", line)
        if m:
            current = m.group(1).strip().lower()
            data[current] = _scalar(m.group(2)) if m.group(2).strip() else ""
        elif current is not None and isinstance(data.get(current), str):
            # A folded continuation line of the previous value.
            data[current] = (str(data[current]) + " " + line.strip()).strip()
    return data


def split_front_matter(
    text: str, warn: Callable[[str], None] | None = None
) -> tuple[dict[str, Any], str]:
    """Return (front matter, rendered body HTML) for a Markdown text; what the dialect
    rules dropped (template tags) goes to `warn`."""
    md = _md()
    env: dict[str, Any] = {}
    tokens = md.parse(text, env)
    body = md.renderer.render(tokens, md.options, env)
    if warn is not None:
        for message in env.get(WARNINGS_KEY, []):
            warn(message)
    meta = dict(env.get(METADATA_KEY) or {})
    if env.get(TOC_KEY):
        meta["spoold_toc"] = True
    return meta, body


def _first_h1(body: str) -> str | None:
    m = re.search(r"<h1\b[^>]*>(.*?)</h1>", body, re.S | re.I)
    if not m:
        return None
    text = html.unescape(re.sub(r"<[^>]+>", "", m.group(1))).strip()
    return text or None


def markdown_to_html(
    text: str,
    title: str,
    metadata: Mapping[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
) -> str:
    """Render Markdown to a full HTML document with metadata in <head>.

    The title is the front matter's, else the first H1's, else `title`. `metadata`
    (job options) overrides front matter. A front matter title/author/date also gives a
    `<header class="title-block">` at the top of <body> (themes style or hide it).
    `warn` receives what the dialect rules dropped (docs/conversion.md "Dialects").
    """
    meta, body = split_front_matter(text, warn)
    for key, value in (metadata or {}).items():
        meta[str(key).lower()] = value
    fm_title = metadata_text(meta.get("title")).strip()
    head = _head_lines(meta, fm_title or _first_h1(body) or title)
    block = ""
    if fm_title:
        # A document that opens with its own title as H1 would show it twice: the title
        # block takes its place (it is an H1 too, so outlines and DOCX headings keep it).
        lead = re.match(r"\s*<h1\b[^>]*>(.*?)</h1>\s*", body, re.S | re.I)
        if lead and html.unescape(re.sub(r"<[^>]+>", "", lead.group(1))).strip() == fm_title:
            body = body[lead.end() :]
        block = _title_block(
            fm_title, _meta_text(meta, "author", "authors"), _meta_text(meta, "date")
        )
    return (
        f"<!DOCTYPE html>\n<html{_html_attrs(meta)}><head>\n"
        + "\n".join(head)
        + f"\n</head>\n<body>\n{block}{body}</body></html>\n"
    )


def _meta_text(meta: Mapping[str, Any], *keys: str) -> str:
    """The first of `keys` the metadata has, as text."""
    return metadata_text(next((meta[k] for k in keys if meta.get(k)), None)).strip()


def _head_lines(meta: Mapping[str, Any], doc_title: str) -> list[str]:
    head = [
        '<meta charset="utf-8">',
        f"<title>{html.escape(doc_title)}</title>",
        '<meta name="generator" content="spoold">',
    ]
    for name, keys in (
        ("author", ("author", "authors")),
        ("keywords", ("keywords", "tags")),
        ("description", ("subject", "description")),
        ("dcterms.created", ("date",)),
    ):
        value = _meta_text(meta, *keys)
        if value:
            head.append(f'<meta name="{name}" content="{html.escape(value)}">')
    if meta.get("spoold_toc"):
        head.append(f"<style>\n{TOC_CSS}</style>")
    return head


def _html_attrs(meta: Mapping[str, Any]) -> str:
    """`lang` and `dir` of <html> from the metadata (well-formed values only)."""
    attrs = ""
    lang = _meta_text(meta, "lang", "language")
    if re.fullmatch(r"[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*", lang):
        attrs += f' lang="{html.escape(lang.replace("_", "-"))}"'
    direction = _meta_text(meta, "dir").lower()
    if direction in ("rtl", "ltr", "auto"):
        attrs += f' dir="{direction}"'
    return attrs


def _title_block(title: str, author: str, date: str) -> str:
    parts = [f'<h1 class="title">{html.escape(title)}</h1>']
    if author:
        parts.append(f'<p class="author">{html.escape(author)}</p>')
    if date:
        parts.append(f'<p class="date">{html.escape(date)}</p>')
    return '<header class="title-block">\n' + "\n".join(parts) + "\n</header>\n"


class MarkdownToHtml:
    source_type = "md"
    target = "html"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        from .html import standalone_html

        ctx.stage("parsing")
        text = read_text(source)
        doc = markdown_to_html(text, source.stem, ctx.options.metadata, ctx.warn)
        ctx.stage("writing")
        output.write_bytes(standalone_html(doc, ctx, source.parent, with_theme=True))
        return ConversionResult()


class MarkdownToPdf:
    source_type = "md"
    target = "pdf"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        from .html import render_pdf

        ctx.stage("parsing")
        text = read_text(source)
        doc = markdown_to_html(text, source.stem, ctx.options.metadata, ctx.warn)
        pages = render_pdf(doc, ctx, source.parent, output)
        return ConversionResult(pages=pages, layout=ctx.layout)


register(MarkdownToHtml())
register(MarkdownToPdf())
