"""Markdown and HTML routes, checked with real readers (pypdf, pdftotext, lxml)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from PIL import Image
from pypdf import PdfReader

from spoold.convert import ConversionContext, ConvertOptions, get_converter, load_converters
from spoold.convert.markdown import markdown_to_html, parse_front_matter
from spoold.errors import ConfigError, ErrorCode, JobError
from spoold.settings import load_spool_settings

from .conftest import manifests, wait_for
from .corpus_measure import pdf_links

FIXTURES = Path(__file__).parent / "fixtures" / "convert"

load_converters()


def convert(
    src_type: str, target: str, source: Path, out: Path, **options: object
) -> ConversionContext:
    ctx = ConversionContext(job_root=source.parent, options=ConvertOptions(**options))  # type: ignore[arg-type]
    converter = get_converter(src_type, target)
    assert converter is not None, (src_type, target)
    converter.convert(source, out, ctx)
    return ctx


def pdftotext(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def job(tmp_path: Path) -> Path:
    folder = tmp_path / "job"
    folder.mkdir()
    shutil.copy(FIXTURES / "features.md", folder / "doc.md")
    return folder


def outline_titles(reader: PdfReader) -> list[str]:
    titles: list[str] = []
    stack: list[object] = list(reader.outline)
    while stack:
        item = stack.pop(0)
        if isinstance(item, list):
            stack[:0] = item
        else:
            titles.append(str(item.title))  # type: ignore[attr-defined]
    return titles


# --- markdown_to_html ---------------------------------------------------------------


def test_markdown_to_html_features_and_head() -> None:
    text = (FIXTURES / "features.md").read_text()
    doc = markdown_to_html(text, "fallback")
    root = lxml.html.document_fromstring(doc.encode())
    assert doc.startswith("<!DOCTYPE html>")
    assert root.findtext(".//title") == "Quarterly Report: Widgets"
    metas = {m.get("name"): m.get("content") for m in root.iter("meta") if m.get("name")}
    assert metas["author"] == "Ada Lovelace"
    assert metas["keywords"] == "widgets, quarterly"
    assert metas["dcterms.created"] == "2024-05-01"
    assert metas["description"] == "Widget sales"
    # footnotes, task lists, definition lists, tables, strikethrough, raw HTML
    assert root.xpath("//section[contains(@class,'footnotes')]//li")
    assert root.xpath("//sup[contains(@class,'footnote-ref')]")
    boxes = root.xpath("//input[@type='checkbox']")
    assert len(boxes) == 2 and boxes[0].get("checked") is not None
    assert root.xpath("//dl/dt")[0].text == "Sprocket"
    assert [th.text for th in root.xpath("//table//th")] == ["Region", "Units"]
    assert root.xpath("//s")[0].text == "Nothing"
    assert root.xpath("//div[@class='raw-html']")[0].text == "kept raw html"
    assert root.xpath("//h2[@id='details']")
    # the front matter itself is not body text
    assert "keywords:" not in root.find("body").text_content()


def test_a_leading_h1_equal_to_the_title_is_not_shown_twice() -> None:
    text = "---\ntitle: Welcome\nauthor: Us\n---\n\n# Welcome\n\nBody.\n\n# Welcome\n"
    root = lxml.html.document_fromstring(markdown_to_html(text, "x").encode())
    h1s = [h.text_content() for h in root.iter("h1")]
    # The title block's H1, then the later one the author wrote on purpose.
    assert h1s == ["Welcome", "Welcome"]
    assert root.xpath("//header[@class='title-block']/h1")
    other = "---\ntitle: Report\n---\n\n# Summary\n"
    root = lxml.html.document_fromstring(markdown_to_html(other, "x").encode())
    assert [h.text_content() for h in root.iter("h1")] == ["Report", "Summary"]


def test_task_list_boxes_sit_on_their_item_line(tmp_path: Path) -> None:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTCurve, LTTextLine

    src = tmp_path / "tasks.md"
    src.write_text("- [x] claim by rename\n- [ ] lose a file\n")
    out = tmp_path / "tasks.pdf"
    convert("md", "pdf", src, out)
    lines: list[Any] = []
    boxes: list[Any] = []
    stack: list[Any] = list(extract_pages(out))
    while stack:
        item = stack.pop()
        if isinstance(item, LTTextLine):
            lines.append(item)
        elif isinstance(item, LTCurve) and item.width < 20 and item.height < 20:
            boxes.append(item)  # rectangles are curves to pdfminer
        elif hasattr(item, "__iter__"):
            stack.extend(item)
    labels = [ln for ln in lines if ln.get_text().strip() in ("claim by rename", "lose a file")]
    assert len(labels) == 2 and boxes
    for label in labels:
        # Some box drawn within the label's line height: on the same line, not above it.
        assert any(label.y0 - 2 <= (b.y0 + b.y1) / 2 <= label.y1 + 2 for b in boxes), label


def test_title_falls_back_to_h1_then_argument() -> None:
    root = lxml.html.document_fromstring(markdown_to_html("# The *H1*\n\ntext", "arg").encode())
    assert root.findtext(".//title") == "The H1"
    root = lxml.html.document_fromstring(markdown_to_html("just text", "arg").encode())
    assert root.findtext(".//title") == "arg"
    assert not root.xpath("//meta[@name='author']")


def test_front_matter_parser_subset() -> None:
    meta = parse_front_matter(
        "title: 'A: B'\nauthor: X\ntags:\n  - one\n  - two\nkeywords: [a, 'b, c']\n# comment\n"
    )
    assert meta == {
        "title": "A: B",
        "author": "X",
        "tags": ["one", "two"],
        "keywords": ["a", "b, c"],
    }


# --- md -> html ---------------------------------------------------------------------


def test_md_to_html_inlines_images_and_warns_on_missing(job: Path) -> None:
    Image.new("RGB", (8, 4), "blue").save(job / "pic.png")
    (job / "doc.md").write_text("# T\n\n![a](pic.png) ![b](missing.png)\n")
    out = job.parent / "out.html"
    ctx = convert("md", "html", job / "doc.md", out)
    root = lxml.html.document_fromstring(out.read_bytes())
    srcs = [img.get("src") for img in root.iter("img")]
    assert srcs[0].startswith("data:image/png;base64,")
    assert srcs[1] is None  # dropped, not left pointing outside the document
    assert any("missing.png" in w for w in ctx.warnings)
    assert root.xpath("//style")  # default stylesheet embedded
    assert [f.url for f in ctx.fetches if f.allowed] == ["pic.png"]


def test_md_to_html_is_reproducible(job: Path) -> None:
    a, b = job.parent / "a.html", job.parent / "b.html"
    convert("md", "html", job / "doc.md", a)
    convert("md", "html", job / "doc.md", b)
    assert a.read_bytes() == b.read_bytes()


# --- html -> html -------------------------------------------------------------------


def test_html_to_html_sanitises(tmp_path: Path) -> None:
    (tmp_path / "s.css").write_text("body { background: url(bg.png) } @import 'more.css';")
    (tmp_path / "more.css").write_text("h1 { color: red }")
    Image.new("RGB", (2, 2), "red").save(tmp_path / "bg.png")
    src = tmp_path / "page.html"
    src.write_text(
        "<html><head><link rel=stylesheet href=s.css><script>alert(1)</script></head>"
        "<body onload='x()'><h1 onclick=\"evil()\">Hi</h1>"
        "<a href='javascript:alert(1)'>js</a><a href=' JaVa&#x09;script:alert(2)'>js2</a>"
        "<a href='https://example.com/ok'>ok</a>"
        "<iframe src='x.html'></iframe><object data='x.swf'></object><embed src='y.swf'>"
        "<p style=\"background:url('bg.png')\">styled</p>tail text"
        "<svg><image href='bg.png'/></svg></body></html>"
    )
    out = tmp_path / "out.html"
    ctx = convert("html", "html", src, out)
    data = out.read_text()
    root = lxml.html.document_fromstring(out.read_bytes())
    for tag in ("script", "iframe", "object", "embed", "link"):
        assert not list(root.iter(tag)), tag
    assert "javascript" not in data.lower()
    assert "onload" not in data and "onclick" not in data
    assert root.xpath("//a[@href='https://example.com/ok']")
    styles = "\n".join(s.text or "" for s in root.iter("style"))
    assert "color: red" in styles  # @import inlined
    assert "bg.png" not in data  # every reference now a data: URL
    assert data.count("data:image/png;base64,") >= 3
    assert "tail text" in root.text_content()
    assert any("removed from the HTML" in w for w in ctx.warnings)


def test_css_escape_cannot_hide_a_url(tmp_path: Path) -> None:
    src = tmp_path / "page.html"
    # \75 is "u": browsers read this as url(http://...), so must we.
    src.write_text("<style>p { background: \\75rl(http://example.invalid/x.png) }</style><p>x</p>")
    out = tmp_path / "out.html"
    ctx = convert("html", "html", src, out)
    assert "example.invalid" not in out.read_text()
    assert any(not f.allowed and "example.invalid" in f.url for f in ctx.fetches)


def test_deeply_nested_html_fails_cleanly(tmp_path: Path) -> None:
    src = tmp_path / "deep.html"
    src.write_text("<html><body>" + "<div>" * 50_000 + "x" + "</div>" * 50_000 + "</body></html>")
    for target in ("html", "pdf"):
        with pytest.raises(JobError) as info:
            convert("html", target, src, tmp_path / f"out.{target}")
        assert info.value.code in (ErrorCode.INPUT_INVALID, ErrorCode.CONVERSION_FAILED)


def test_moderately_nested_html_still_converts(tmp_path: Path) -> None:
    src = tmp_path / "nested.html"
    src.write_text("<html><body>" + "<div>" * 200 + "deepword" + "</div>" * 200 + "</body></html>")
    out = tmp_path / "out.pdf"
    convert("html", "pdf", src, out)
    assert "deepword" in pdftotext(out)


# --- md/html -> pdf -----------------------------------------------------------------


def test_md_to_pdf_text_metadata_outline_links(job: Path) -> None:
    out = job.parent / "out.pdf"
    convert("md", "pdf", job / "doc.md", out)
    text = pdftotext(out)
    for word in ("Overview", "Sprocket", "North", "Mostly from the north", "first"):
        assert word in text
    # the long code line wraps: its end is on the page
    assert "going_end" in text.replace("\n", "").replace(" ", "")
    reader = PdfReader(out)
    meta = reader.metadata
    assert meta is not None
    assert meta.title == "Quarterly Report: Widgets"
    assert meta.author == "Ada Lovelace"
    assert "widgets" in str(meta.get("/Keywords"))
    titles = outline_titles(reader)
    assert "Overview" in titles and "Details" in titles
    uris = []
    for page in reader.pages:
        for annot in page.get("/Annots") or []:
            a = annot.get_object()
            action = a.get("/A")
            if a.get("/Subtype") == "/Link" and action is not None and "/URI" in action:
                uris.append(str(action["/URI"]))
    assert "https://example.com/spec" in uris
    # The #details link and the footnote references jump to named destinations.
    links = pdf_links(out)
    assert "details" in links.targets and all(links.resolved)
    assert any(str(t).startswith("fn") for t in links.targets)


def test_page_size_and_theme(job: Path) -> None:
    a4, a5 = job.parent / "a4.pdf", job.parent / "a5.pdf"
    convert("md", "pdf", job / "doc.md", a4)
    convert("md", "pdf", job / "doc.md", a5, page_size="A5", theme="handout")
    w4 = float(PdfReader(a4).pages[0].mediabox.width)
    w5 = float(PdfReader(a5).pages[0].mediabox.width)
    assert round(w4) == 595 and round(w5) == 420
    text = pdftotext(a5)
    assert "Page 1 of" in text  # handout footer from @page margin boxes


def test_handout_running_header_has_title(tmp_path: Path) -> None:
    src = tmp_path / "long.md"
    src.write_text("---\ntitle: Running Title Here\n---\n" + "\n\n".join(["para " * 80] * 30))
    out = tmp_path / "long.pdf"
    convert("md", "pdf", src, out, theme="handout")
    reader = PdfReader(out)
    assert len(reader.pages) >= 2
    page2 = reader.pages[1].extract_text()
    assert "Running Title Here" in page2


def test_unknown_theme_and_page_size_are_input_invalid(job: Path) -> None:
    with pytest.raises(JobError) as info:
        convert("md", "pdf", job / "doc.md", job.parent / "x.pdf", theme="fancy")
    assert info.value.code == ErrorCode.INPUT_INVALID
    assert "fancy" in info.value.message and "handout" in info.value.message
    with pytest.raises(JobError) as info:
        convert("md", "pdf", job / "doc.md", job.parent / "x.pdf", page_size="B52")
    assert info.value.code == ErrorCode.INPUT_INVALID
    assert "B52" in info.value.message and "Letter" in info.value.message


def test_pdf_outputs_are_byte_identical(job: Path, tmp_path: Path) -> None:
    for i in range(2):
        convert("md", "pdf", job / "doc.md", tmp_path / f"md{i}.pdf")
    assert (tmp_path / "md0.pdf").read_bytes() == (tmp_path / "md1.pdf").read_bytes()
    page = job / "page.html"
    page.write_text("<title>T</title><h1>Hello</h1><p>World</p>")
    for i in range(2):
        convert("html", "pdf", page, tmp_path / f"h{i}.pdf")
    assert (tmp_path / "h0.pdf").read_bytes() == (tmp_path / "h1.pdf").read_bytes()
    assert b"/CreationDate" not in (tmp_path / "h0.pdf").read_bytes()


def test_missing_image_warns_and_still_renders(tmp_path: Path) -> None:
    src = tmp_path / "doc.md"
    src.write_text("# Title\n\n![gone](nowhere.png)\n\nbody words\n")
    out = tmp_path / "out.pdf"
    ctx = convert("md", "pdf", src, out)
    assert "body words" in pdftotext(out)
    assert any("nowhere.png" in w for w in ctx.warnings)


def test_image_over_pixel_cap_is_not_loaded(tmp_path: Path) -> None:
    Image.new("L", (400, 300)).save(tmp_path / "big.png")
    Image.new("L", (10, 10)).save(tmp_path / "small.png")
    src = tmp_path / "doc.md"
    src.write_text("![big](big.png) ![small](small.png)\n\ntext\n")
    out = tmp_path / "out.html"
    ctx = convert("md", "html", src, out, max_image_pixels=10_000)
    assert any("pixel" in w and "big.png" in w for w in ctx.warnings)
    srcs = [img.get("src") for img in lxml.html.document_fromstring(out.read_bytes()).iter("img")]
    assert srcs[0] is None and srcs[1].startswith("data:image/png")
    ctx = convert("md", "pdf", src, tmp_path / "out.pdf", max_image_pixels=10_000)
    assert any("big.png" in w for w in ctx.warnings)


def test_resources_css_applies_last(tmp_path: Path) -> None:
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "zz.css").write_text(
        "@page { @bottom-right { content: 'CUSTOMFOOTER' } }"
    )
    src = tmp_path / "doc.md"
    src.write_text("# Hi\n\ntext\n")
    out = tmp_path / "out.pdf"
    convert("md", "pdf", src, out)
    text = pdftotext(out)
    assert "CUSTOMFOOTER" in text
    assert "1 / 1" not in text  # the theme's footer was overridden


# --- margins --------------------------------------------------------------------------

PT_PER_MM = 72 / 25.4


def word_left(pdf: Path, word: str) -> float:
    """The left edge, in PDF points, of the first occurrence of `word` on page 1."""
    out = subprocess.run(
        ["pdftotext", "-bbox", "-f", "1", "-l", "1", str(pdf), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    m = re.search(rf'<word xMin="([\d.]+)"[^>]*>{re.escape(word)}</word>', out)
    assert m is not None, f"{word!r} not on page 1"
    return float(m.group(1))


@pytest.mark.parametrize(
    ("theme", "margins", "left_mm"),
    [
        ("default", "theme", 20),  # the theme's own margins
        ("handout", "theme", 22),
        ("default", "20mm 20mm 20mm 80mm", 80),
        ("handout", "3cm 1in", 25.4),  # top/bottom, right/left
        ("default", "200pt", 200 / PT_PER_MM),
    ],
)
def test_margins_move_the_text(tmp_path: Path, theme: str, margins: str, left_mm: float) -> None:
    src = tmp_path / "doc.md"
    src.write_text("Leftmost words of the body.\n")
    out = tmp_path / "out.pdf"
    ctx = convert("md", "pdf", src, out, theme=theme, margins=margins)
    assert word_left(out, "Leftmost") == pytest.approx(left_mm * PT_PER_MM, abs=1.0)
    assert not ctx.warnings


def test_resources_css_wins_over_the_margins_option(tmp_path: Path) -> None:
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "page.css").write_text("@page { margin-left: 40mm }")
    src = tmp_path / "doc.md"
    src.write_text("Leftmost words.\n")
    out = tmp_path / "out.pdf"
    convert("md", "pdf", src, out, margins="80mm")
    assert word_left(out, "Leftmost") == pytest.approx(40 * PT_PER_MM, abs=1.0)


@pytest.mark.parametrize(
    ("margins", "page_size", "needle"),
    [
        ("wide", "A4", "'wide' is not a length"),
        ("-5mm", "A4", "not a length"),
        ("5%", "A4", "not a length"),
        ("1mm 2mm 3mm 4mm 5mm", "A4", "1 to 4 CSS lengths"),
        ("60mm", "A6", "leave less than 50 mm"),  # 105 mm wide: nothing left for text
        ("120mm", "A4 landscape", "leave less than 50 mm"),
    ],
)
def test_bad_margins_are_input_invalid(
    tmp_path: Path, margins: str, page_size: str, needle: str
) -> None:
    src = tmp_path / "doc.md"
    src.write_text("text\n")
    with pytest.raises(JobError) as info:
        convert("md", "pdf", src, tmp_path / "out.pdf", margins=margins, page_size=page_size)
    assert info.value.code is ErrorCode.INPUT_INVALID
    assert "margins" in info.value.message and needle in info.value.message
    assert not (tmp_path / "out.pdf").exists()


def test_margins_setting_is_validated_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "spool.toml").write_text('margins = "20 mm"\n')
    with pytest.raises(ConfigError) as info:
        load_spool_settings(tmp_path, env={})
    assert "spool.toml: key 'margins'" in str(info.value)
    (tmp_path / "spool.toml").write_text('[routes.wide]\nmargins = "2cm 8cm"\n')
    assert load_spool_settings(tmp_path, env={}).routes["wide"].margins == "2cm 8cm"
    assert load_spool_settings(tmp_path, env={"SPOOLD_MARGINS": "15mm"}).margins == "15mm"


def test_margins_from_job_json_through_the_daemon(
    make_spool: Callable[..., Path], daemon_factory: Callable[..., Any]
) -> None:
    spool = make_spool(targets=["pdf"], margins="10mm")
    for name, job in {
        "wide": {"margins": "30mm 20mm 30mm 90mm"},
        "spool": {},
        "bad": {"margins": "ninety"},
    }.items():
        folder = spool / "tmp" / name
        folder.mkdir()
        (folder / "doc.md").write_text("Leftmost words.\n")
        (folder / "job.json").write_text(json.dumps(job))
        os.rename(folder, spool / "inbox" / name)
    daemon_factory(spool)
    wait_for(lambda: len(manifests(spool)) == 3, what="3 jobs published")
    results = {m["name"]: m for m in manifests(spool)}
    for name, left_mm in (("wide", 90), ("spool", 10)):
        m = results[name]
        assert m["status"] == "succeeded"
        pdf = next((spool / "done").glob(f"*/{m['artifacts'][0]['path']}"))
        assert word_left(pdf, "Leftmost") == pytest.approx(left_mm * PT_PER_MM, abs=1.0)
    assert results["wide"]["options"]["margins"] == "30mm 20mm 30mm 90mm"
    assert results["bad"]["error"]["code"] == "input_invalid"
    assert "margins" in results["bad"]["error"]["message"]
