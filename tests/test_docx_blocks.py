"""Code blocks, task lists, GitHub alerts and raw HTML in DOCX (issue 13, DOCX side).

Read back with python-docx and pandoc's DOCX reader: what a Word user sees, and what a
tool that reads Word files finds.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from docx.oxml.ns import qn

from .docx_support import FIXTURES, html_to_docx, load, md_to_docx, pandoc_blocks, plain_text

WIDE_PNG = (
    "data:image/png;base64," + base64.b64encode((FIXTURES / "wide.png").read_bytes()).decode()
)


def kinds(blocks: list[dict[str, Any]]) -> list[str]:
    """Block kinds pandoc read, without the empty paragraphs it keeps for bookmarks."""
    return [b["t"] for b in blocks if not (b["t"] == "Para" and not b["c"])]


# --- code blocks ----------------------------------------------------------------------


def test_adjacent_code_blocks_stay_separate(tmp_path: Path) -> None:
    md = (
        "Two languages:\n\n```python\nprint('hi')\nx = 1\n```\n\n```js\nconsole.log('hi')\n```\n\n"
        "```sh\necho hi\n```\n\nAfter.\n"
    )
    out = md_to_docx(tmp_path, md)
    blocks = pandoc_blocks(out)
    code = [b["c"][1] for b in blocks if b["t"] == "CodeBlock"]
    assert code == ["print('hi')\nx = 1", "console.log('hi')", "echo hi"]
    assert kinds(blocks) == ["Para", "CodeBlock", "CodeBlock", "CodeBlock", "Para"]
    # In Word: three code paragraphs, each one block with its line breaks.
    doc = load(out)
    source = [p for p in doc.paragraphs if p.style.name == "Source Code"]
    assert [p.text for p in source] == code
    # What keeps them apart is a 1 pt paragraph, not a blank line a reader would see.
    seps = [p for p in doc.paragraphs if p.style.name != "Source Code" and not p.text][:2]
    assert all(p._p.pPr.find(qn("w:spacing")).get(qn("w:line")) == "20" for p in seps)


def test_code_block_followed_by_code_in_html_and_ids(tmp_path: Path) -> None:
    out = html_to_docx(
        tmp_path,
        '<pre id="first"><code>a = 1</code></pre><pre><code>b = 2</code></pre>'
        '<pre id="third"><code>c = 3</code></pre><p><a href="#third">third</a></p>',
    )
    code = [b["c"][1] for b in pandoc_blocks(out) if b["t"] == "CodeBlock"]
    assert code == ["a = 1", "b = 2", "c = 3"]


def test_adjacent_block_quotes_stay_separate(tmp_path: Path) -> None:
    out = md_to_docx(tmp_path, "> first quote\n\n> second quote\n")
    blocks = [b for b in pandoc_blocks(out) if b["t"] == "BlockQuote"]
    assert [plain_text(b) for b in blocks] == ["first quote", "second quote"]


def test_code_in_a_list_item_is_not_merged_into_the_next_quote(tmp_path: Path) -> None:
    # Indented code reads as quoted code in pandoc, and adjacent quotes merge.
    out = md_to_docx(tmp_path, "1. step\n\n   ```\n   make\n   ```\n\n> a quote\n")
    quotes = [b for b in pandoc_blocks(out) if b["t"] == "BlockQuote"]
    assert [[inner["t"] for inner in q["c"]] for q in quotes] == [["CodeBlock"], ["Para"]]


# --- task lists -----------------------------------------------------------------------


def test_markdown_task_list_items_keep_their_state(tmp_path: Path) -> None:
    out = md_to_docx(tmp_path, "- [x] shipped\n- [ ] tested\n- plain item\n")
    lists = [b for b in pandoc_blocks(out) if b["t"] == "BulletList"]
    assert len(lists) == 1
    items = [plain_text(item) for item in lists[0]["c"]]
    assert items == ["\u2612 shipped", "\u2610 tested", "plain item"]
    texts = [p.text for p in load(out).paragraphs if p.style.name == "List Paragraph"]
    assert texts == ["☒ shipped", "☐ tested", "plain item"]


def test_html_task_list_reads_checked_from_the_input(tmp_path: Path) -> None:
    out = html_to_docx(
        tmp_path,
        '<ul class="contains-task-list">'
        '<li class="task-list-item"><input type="checkbox" class="task-list-item-checkbox"'
        " disabled checked> done</li>"
        '<li class="task-list-item"><p><input type="checkbox" disabled> loose todo</p></li>'
        "</ul>",
    )
    texts = [p.text for p in load(out).paragraphs if p.text]
    assert texts == ["☒ done", "☐ loose todo"]


# --- GitHub alerts --------------------------------------------------------------------


def alert(kind: str, text: str) -> str:
    return (
        f'<div class="markdown-alert markdown-alert-{kind}">'
        f'<p class="markdown-alert-title"><svg class="octicon"><path d=""/></svg>'
        f"{kind.title()}</p><p>{text}</p></div>"
    )


@pytest.mark.parametrize(
    ("kind", "colour"),
    [
        ("note", "0969DA"),
        ("tip", "1A7F37"),
        ("important", "8250DF"),
        ("warning", "9A6700"),
        ("caution", "D1242F"),
    ],
)
def test_alerts_are_callouts_read_back_as_quotes(tmp_path: Path, kind: str, colour: str) -> None:
    out = html_to_docx(
        tmp_path, "<p>Before.</p>" + alert(kind, f"Mind the {kind}.") + "<p>After.</p>"
    )
    doc = load(out)
    paras = [p for p in doc.paragraphs if p.text]
    assert [p.text for p in paras] == ["Before.", kind.title(), f"Mind the {kind}.", "After."]
    title, body = paras[1], paras[2]
    style = title.style
    assert style.name == f"Alert {kind.title()}" and body.style.name == style.name
    assert style.base_style.name == "Quote"
    assert all(r.bold for r in title.runs) and not any(r.bold for r in body.runs)
    left = style.element.pPr.find(qn("w:pBdr")).find(qn("w:left"))
    assert left.get(qn("w:color")) == colour
    # pandoc: one block quote holding the bold title and the text.
    quotes = [b for b in pandoc_blocks(out) if b["t"] == "BlockQuote"]
    assert len(quotes) == 1
    first, second = quotes[0]["c"]
    assert first["c"][0]["t"] == "Strong" and plain_text(first) == kind.title()
    assert plain_text(second) == f"Mind the {kind}."


def test_adjacent_alerts_and_unknown_types(tmp_path: Path) -> None:
    html = alert("warning", "One.") + alert("tip", "Two.") + alert("bogus", "Three.")
    out = html_to_docx(tmp_path, html)
    quotes = [b for b in pandoc_blocks(out) if b["t"] == "BlockQuote"]
    assert [[plain_text(p) for p in q["c"]] for q in quotes] == [
        ["Warning", "One."],
        ["Tip", "Two."],
        ["Bogus", "Three."],
    ]
    styles = {p.style.name for p in load(out).paragraphs if p.text.startswith("Bogus")}
    assert styles == {"Alert Note"}


# --- raw HTML ---------------------------------------------------------------------------


def test_raw_html_inline_elements(tmp_path: Path) -> None:
    out = html_to_docx(
        tmp_path,
        "<p>Press <kbd>Ctrl</kbd>+<kbd>C</kbd>; H<sub>2</sub>O, E=mc<sup>2</sup>,"
        ' <mark>marked</mark>, <abbr title="HyperText Markup Language">HTML</abbr>.<br>'
        "Next line.</p>",
    )
    para = load(out).paragraphs[0]
    assert para.text == "Press Ctrl+C; H2O, E=mc2, marked, HTML.\nNext line."
    runs = {r.text: r for r in para.runs}
    assert runs["Ctrl"].style.name == "Verbatim Char"
    assert runs["2"].font.subscript or runs["2"].font.superscript
    assert runs["marked"].font.highlight_color is not None
    inlines = pandoc_blocks(out)[0]["c"]
    found = {i["t"] for i in inlines}
    assert {"Code", "Subscript", "Superscript", "LineBreak"} <= found
    # abbr keeps its text only (as printed HTML does): the title is not inserted.
    assert "HyperText" not in plain_text(inlines)


def test_details_summary_is_a_bold_line_then_the_content(tmp_path: Path) -> None:
    out = html_to_docx(
        tmp_path,
        "<details><summary>Show the <em>details</em></summary><p>Hidden text.</p>"
        "<ul><li>item</li></ul></details><p>After.</p>",
    )
    paras = [p for p in load(out).paragraphs if p.text]
    assert [p.text for p in paras] == ["Show the details", "Hidden text.", "item", "After."]
    assert all(r.bold for r in paras[0].runs)
    assert not any(r.bold for r in paras[1].runs)
    blocks = pandoc_blocks(out)
    assert blocks[0]["t"] == "Para" and blocks[0]["c"][0]["t"] == "Strong"


def test_img_width_and_height_in_css_pixels_capped_to_the_text_width(tmp_path: Path) -> None:
    out = html_to_docx(
        tmp_path,
        f'<p><img src="{WIDE_PNG}" width="120" height="30" alt="a">'
        f'<img src="{WIDE_PNG}" width="240" alt="b">'
        f'<img src="{WIDE_PNG}" width="5000" height="500" alt="c"></p>',
    )
    doc = load(out)
    section = doc.sections[0]
    text_width = section.page_width - section.left_margin - section.right_margin
    shapes = doc.inline_shapes
    assert (shapes[0].width, shapes[0].height) == (120 * 9525, 30 * 9525)
    assert shapes[1].width == 240 * 9525 and shapes[1].height == 120 * 9525  # wide.png is 2:1
    assert shapes[2].width == text_width
    assert abs(shapes[2].width / shapes[2].height - 10) < 0.01
