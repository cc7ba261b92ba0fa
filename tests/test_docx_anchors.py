"""Ids as Word bookmarks, internal links as hyperlinks to them (issue 13, DOCX side).

HTML input follows the Markdown -> HTML contract (headings with ids, `<pre id>`,
`<img id>`, `<a id>`, `<span id>`, links `<a href="#id">`); read back with the package
XML, python-docx and pandoc's DOCX reader.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from spoold.convert.docx.anchors import bookmark_name, map_ids
from spoold.convert.docx.check import read_anchors

from .docx_support import FIXTURES, html_to_docx, load, md_to_docx, pandoc_blocks

PNG = "data:image/png;base64," + base64.b64encode((FIXTURES / "small.png").read_bytes()).decode()
VALID_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")

TARGETS = f"""
<h1 id="intro">Intro</h1>
<p>Jump to <a href="#type-blockquote">quotes</a>, <a href="#ex-py">the example</a>,
<a href="#logo">the logo</a>, <a href="#spot">a spot</a>, <a href="#2nd">section 2</a>
and <a href="#top-anchor">the anchor</a>.</p>
<h2 id="type-blockquote">BlockQuote</h2>
<pre id="ex-py"><code class="language-py">print("hi")</code></pre>
<p>A picture <img id="logo" src="{PNG}" alt="logo"> and <span id="spot">a spot</span>.</p>
<h2 id="2nd">Second</h2>
<p><a id="top-anchor"></a>Anchored paragraph.</p>
"""


def walk(node: Any) -> Any:
    """Every dict in a pandoc JSON tree."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def pandoc_links_and_ids(blocks: list[dict[str, Any]]) -> tuple[list[str], set[str]]:
    """Internal link targets (without '#') and the ids of headers and spans pandoc read."""
    links, ids = [], set()
    for node in walk(blocks):
        kind = node.get("t")
        if kind == "Link" and node["c"][2][0].startswith("#"):
            links.append(node["c"][2][0][1:])
        elif kind == "Header":
            ids.add(node["c"][1][0])
        elif kind == "Span":
            ids.add(node["c"][0][0])
    return links, ids


def test_every_internal_link_jumps_to_a_bookmark(tmp_path: Path) -> None:
    out = html_to_docx(tmp_path, TARGETS)
    anchors = read_anchors(out)
    assert len(anchors.link_anchors) == 6
    assert anchors.unresolved() == []
    # Ids that are valid bookmark names stay as they are; the others are mapped.
    assert {"intro", "type_blockquote", "ex_py", "logo", "spot", "id_2nd", "top_anchor"} <= set(
        anchors.bookmarks
    )
    assert all(VALID_NAME.fullmatch(name) for name in anchors.bookmarks if name[0] != "_")
    # Each link's text is a real hyperlink, styled as one, in the paragraph.
    doc = load(out)
    links = doc.element.body.findall(".//w:hyperlink", {"w": doc.element.nsmap["w"]})
    texts = ["".join(t.text for t in link.iter() if t.tag.endswith("}t")) for link in links]
    assert texts == ["quotes", "the example", "the logo", "a spot", "section 2", "the anchor"]


def test_pandoc_finds_every_link_target(tmp_path: Path) -> None:
    blocks = pandoc_blocks(html_to_docx(tmp_path, TARGETS))
    links, ids = pandoc_links_and_ids(blocks)
    assert len(links) == 6
    assert set(links) <= ids, f"links pandoc cannot resolve: {set(links) - ids}"
    # A link to a heading is a link to that header (pandoc names it after its text).
    headers = [b for b in blocks if b["t"] == "Header"]
    assert links[0] == headers[1]["c"][1][0]
    # The code block's id sits right before it, where pandoc sees it.
    code_at = next(i for i, b in enumerate(blocks) if b["t"] == "CodeBlock")
    assert "ex_py" in pandoc_links_and_ids([blocks[code_at - 1]])[1]


def test_markdown_heading_slugs_are_link_targets(tmp_path: Path) -> None:
    out = md_to_docx(
        tmp_path,
        "# Getting started\n\nSee [the API](#api-reference) and [start](#getting-started).\n\n"
        "## API reference\n\nText with a note[^1].\n\n[^1]: The note.\n",
    )
    anchors = read_anchors(out)
    assert sorted(anchors.link_anchors) == ["api_reference", "getting_started"]
    assert anchors.unresolved() == []
    links, ids = pandoc_links_and_ids(pandoc_blocks(out))
    assert set(links) <= ids
    # Footnotes are still native footnotes, not links.
    assert any(n.get("t") == "Note" for n in walk(pandoc_blocks(out)))


def test_links_to_missing_or_unwritten_targets_stay_plain_text(tmp_path: Path) -> None:
    out = html_to_docx(
        tmp_path,
        '<p><a href="#nowhere">missing</a>, <a href="#in-script">scripted</a>,'
        ' <a href="#in-svg">drawn</a>.</p><script id="in-script">x()</script>'
        '<noscript><p id="in-noscript">n</p></noscript><svg><g id="in-svg"/></svg>',
    )
    anchors = read_anchors(out)
    assert anchors.link_anchors == [] and anchors.unresolved() == []
    doc = load(out)
    assert doc.paragraphs[0].text == "missing, scripted, drawn."
    # Unwrapped links keep no hyperlink look.
    assert b"Hyperlink" not in (doc.element.body.xml.encode())


def test_an_id_with_nothing_after_it_still_gets_its_bookmark(tmp_path: Path) -> None:
    out = html_to_docx(tmp_path, '<p><a href="#end">to the end</a></p><div id="end"></div>')
    anchors = read_anchors(out)
    assert anchors.link_anchors == ["end"] and "end" in anchors.bookmarks


def test_duplicate_ids_bookmark_the_first_element(tmp_path: Path) -> None:
    out = html_to_docx(
        tmp_path, '<h2 id="same">One</h2><h2 id="same">Two</h2><p><a href="#same">go</a></p>'
    )
    anchors = read_anchors(out)
    assert anchors.bookmarks.count("same") == 1
    assert anchors.unresolved() == []
    xml = load(out).element.body.xml
    assert xml.index('w:name="same"') < xml.index(">One<")


def test_bookmark_names_are_valid_unique_and_deterministic() -> None:
    ids = [
        "intro",
        "type-blockquote",
        "type_blockquote",
        "2nd",
        "a.b",
        "a-b",
        "ünïcode",
        "x" * 50,
        "x" * 41,
        "_hidden",
        "Ω",
    ]
    names = map_ids(ids)
    assert names == map_ids(ids)  # the same document gives the same names
    assert len(set(names.values())) == len(ids)
    for anchor_id, name in names.items():
        assert VALID_NAME.fullmatch(name), (anchor_id, name)
    assert names["intro"] == "intro"
    # An id that is a valid name keeps it, even when a mapped id came first.
    assert names["type_blockquote"] == "type_blockquote"
    assert names["type-blockquote"].startswith("type_blockquote_")
    assert names["2nd"] == "id_2nd"
    assert names["_hidden"] == "id__hidden"  # no hidden (leading underscore) names
    assert len(names["x" * 50]) == 40 and names["x" * 41] != names["x" * 50]
    # A name that is taken gets a hashed suffix rather than a clash.
    taken = {"abc"}
    assert bookmark_name("abc", taken) != "abc"


def test_bookmark_ids_stay_unique_beside_a_reference_docx_header(tmp_path: Path) -> None:
    import docx
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    ref = docx.Document()
    header_p = ref.sections[0].header.paragraphs[0]
    header_p.text = "Company"
    for tag in ("w:bookmarkStart", "w:bookmarkEnd"):
        mark = OxmlElement(tag)
        mark.set(qn("w:id"), "7")
        if tag == "w:bookmarkStart":
            mark.set(qn("w:name"), "logo_area")
        header_p._p.append(mark)
    (tmp_path / "job").mkdir()
    ref.save(str(tmp_path / "job" / "reference.docx"))
    out = html_to_docx(
        tmp_path,
        '<h1 id="a">A</h1><h2 id="b">B</h2><p><a href="#b">b</a></p>',
        reference_docx=tmp_path / "job" / "reference.docx",
    )
    doc = load(out)
    ids = [int(s.get(qn("w:id"))) for s in doc.element.body.iter(qn("w:bookmarkStart"))]
    assert len(ids) == 2 and min(ids) > 7 and len(set(ids)) == 2
    assert "logo_area" in read_anchors(out).bookmarks
    assert read_anchors(out).unresolved() == []


def test_old_style_a_name_anchors_are_link_targets(tmp_path: Path) -> None:
    # `<a name="x">` as people still write it in Markdown and HTML: the sanitiser gives
    # it an id for HTML and PDF; the DOCX writer must bookmark it too.
    (tmp_path / "md").mkdir()
    (tmp_path / "html").mkdir()
    md = md_to_docx(
        tmp_path / "md",
        '<a name="setup"></a>\n\n## Set-up\n\nSee [set-up](#setup) and [later](#later-on).\n\n'
        'Some text <a name="later-on">here</a>.\n',
    )
    html = html_to_docx(
        tmp_path / "html",
        '<p><a href="#top">up</a></p><h2><a name="top"></a>Top</h2>'
        '<p><a name="both" id="kept">Named</a> <a href="#kept">by id</a></p>',
    )
    for out, expected in ((md, ["setup", "later_on"]), (html, ["top", "kept"])):
        anchors = read_anchors(out)
        assert anchors.link_anchors == expected
        assert anchors.unresolved() == []
        links, ids = pandoc_links_and_ids(pandoc_blocks(out))
        assert len(links) == 2 and set(links) <= ids, (links, ids)
