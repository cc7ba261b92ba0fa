"""HTML as authored: own styles are laid out alone; the theme option decides first.

Also the languages and scripts: lang/dir from the document or its text, right-to-left
DOCX, fonts for every script and a warning when none has a character (issue 21).
"""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import lxml.html
import pytest
from docx import Document
from pypdf import PdfReader

from spoold.convert import ConversionContext, ConvertOptions, get_converter, load_converters
from spoold.convert.html.authored import choose_layout, own_page_setup
from spoold.convert.html.parse import parse_html
from spoold.convert.html.themes import check_theme
from spoold.convert.scripts import covered_scripts, detect_language, font_report
from spoold.errors import JobError
from spoold.settings import JobDefaults

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
PLAIN = "<html><head><title>t</title></head><body><h1>Plain</h1><p>Body text.</p></body></html>"
STYLED = (
    "<html><head><title>t</title><style>@page { size: A5; margin: 10mm }"
    " body { font-family: serif }</style></head><body><h1>Styled</h1><p>Body.</p></body></html>"
)


def convert(
    tmp_path: Path, html: str, target: str, theme: str = "auto", name: str = "doc"
) -> tuple[Path, ConversionContext, str | None]:
    load_converters()
    source = tmp_path / f"{name}.html"
    source.write_text(html, encoding="utf-8")
    ctx = ConversionContext(job_root=tmp_path, options=ConvertOptions(theme=theme))
    output = tmp_path / f"{name}-{theme}.{target}"
    result = get_converter("html", target).convert(source, output, ctx)
    return output, ctx, result.layout


def pdf_text(pdf: Path) -> str:
    """The PDF's text, with the theme's "n / N" page number written "n/N"."""
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    return re.sub(r"(\d) ?/ ?(\d)", r"\1/\2", text)


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("<style>p { color: red }</style><p>x", "own styles: it has a <style> element"),
        ('<link rel="stylesheet" href="a.css"><p>x', "own styles: it links a stylesheet"),
        ('<body style="margin: 0"><p>x', "own styles: its <body> has a style attribute"),
        (
            '<table style="width: 100%"><tr><td>x</table>',
            "own styles: its <table> has a style attribute",
        ),
        ('<p style="color: red">x', "theme default: the document has no styles of its own"),
        ("<style> </style><p>x", "theme default: the document has no styles of its own"),
    ],
)
def test_which_documents_bring_their_own_styles(html: str, reason: str) -> None:
    assert choose_layout(parse_html(html), "auto").describe() == reason


def test_the_theme_option_decides_first() -> None:
    styled, plain = parse_html(STYLED), parse_html(PLAIN)
    assert choose_layout(styled, "default").describe() == 'theme default: theme = "default"'
    assert choose_layout(styled, "handout").theme == "handout"
    assert choose_layout(plain, "none").describe() == 'own styles: theme = "none"'
    for choice in ("auto", "none", "default", "handout"):
        assert check_theme(choice) == choice
        assert JobDefaults(theme=choice).theme == choice
    assert JobDefaults().theme == "auto"
    with pytest.raises(JobError, match="allowed: auto, none, default, handout"):
        check_theme("fancy")
    with pytest.raises(ValueError, match="unknown theme 'fancy'"):
        JobDefaults(theme="fancy")


def test_own_styles_keep_their_page_and_get_no_theme_page_numbers(tmp_path: Path) -> None:
    own, _, layout = convert(tmp_path, STYLED, "pdf")
    assert layout == "own styles: it has a <style> element"
    page = PdfReader(own).pages[0].mediabox
    assert (round(float(page.width)), round(float(page.height))) == (420, 595)  # A5
    assert "1/1" not in pdf_text(own)
    themed, _, layout = convert(tmp_path, STYLED, "pdf", theme="default")
    assert layout == 'theme default: theme = "default"'
    assert "1/1" in pdf_text(themed)
    plain, _, layout = convert(tmp_path, PLAIN, "pdf")
    assert layout == "theme default: the document has no styles of its own"
    assert "1/1" in pdf_text(plain)
    bare, _, layout = convert(tmp_path, PLAIN, "pdf", theme="none")
    assert layout == 'own styles: theme = "none"' and "1/1" not in pdf_text(bare)


def test_markdown_with_theme_none_gets_no_theme(tmp_path: Path) -> None:
    load_converters()
    source = tmp_path / "doc.md"
    source.write_text("# Title\n\nText.\n", encoding="utf-8")
    for theme, numbered in (("auto", True), ("none", False)):
        ctx = ConversionContext(job_root=tmp_path, options=ConvertOptions(theme=theme))
        out = tmp_path / f"doc-{theme}.pdf"
        result = get_converter("md", "pdf").convert(source, out, ctx)
        assert ("1/1" in pdf_text(out)) is numbered
        assert result.layout == (
            "theme default: Markdown" if numbered else 'own styles: theme = "none"'
        )
        html = tmp_path / f"doc-{theme}.html"
        get_converter("md", "html").convert(source, html, ctx)
        assert (b"DejaVu Serif" in html.read_bytes()) is numbered


def test_docx_page_size_and_margins_from_the_documents_page(tmp_path: Path) -> None:
    docx, _, _ = convert(tmp_path, STYLED, "docx")
    section = Document(str(docx)).sections[0]
    assert (round(section.page_width.mm), round(section.page_height.mm)) == (148, 210)
    assert round(section.left_margin.mm) == 10 and round(section.bottom_margin.mm) == 10
    themed, _, _ = convert(tmp_path, STYLED, "docx", theme="default")
    assert round(Document(str(themed)).sections[0].page_width.mm) == 210  # page_size A4


def test_page_setup_reading() -> None:
    setup = own_page_setup(
        ["@page { size: letter landscape; margin: 1in 2cm }", "@page :first { margin: 0 }"]
    )
    assert setup.size == (279.4, 215.9)
    assert setup.margins is not None and [round(m, 1) for m in setup.margins] == [
        25.4,
        20.0,
        25.4,
        20.0,
    ]
    assert own_page_setup(["@page { size: 100mm 200mm; margin-top: 5mm }"]).size == (100.0, 200.0)


# --- languages, directions, fonts -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("متغیرهای محیطی و حالت‌ها در Vite", ("fa", "rtl")),
        ("هذا نص عربي قصير", ("ar", "rtl")),
        ("שלום עולם, זה טקסט", ("he", "rtl")),
        ("環境ごとの API への移行", ("ja", None)),
        ("迁移到按环境划分的 API", ("zh", None)),
        ("환경별 API로 마이그레이션", ("ko", None)),
        ("Plain English text", (None, None)),
        ("Русский текст", (None, None)),
    ],
)
def test_language_and_direction_from_the_script(
    text: str, expected: tuple[str | None, str | None]
) -> None:
    assert detect_language(text) == expected


def test_declared_language_wins_and_rtl_language_sets_direction(tmp_path: Path) -> None:
    out, _, _ = convert(tmp_path, '<html lang="fr"><body><p>שלום עולם</p></body></html>', "html")
    root = lxml.html.fromstring(out.read_bytes())
    assert (root.get("lang"), root.get("dir")) == ("fr", None)
    out, _, _ = convert(tmp_path, '<html lang="ar"><body><p>x</p></body></html>', "html", name="ar")
    assert lxml.html.fromstring(out.read_bytes()).get("dir") == "rtl"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<p>שלום עולם, זה טקסט</p>", ("he", "rtl")),
        # Written as character references: the text, not the source bytes, decides.
        ("<p>&#x5e9;&#x5dc;&#x5d5;&#x5dd; &#x5e2;&#x5d5;&#x5dc;&#x5dd;</p>", ("he", "rtl")),
        ("<p>環境ごとの API への移行</p>", ("ja", None)),
        ("<p>Plain English text</p>", (None, None)),
        # Other scripts in code only: the prose is Latin, so nothing is implied.
        ("<p>Run it:</p><pre>print('שלום עולם')</pre>", (None, None)),
    ],
)
def test_html_output_gets_language_and_direction_from_its_prose(
    tmp_path: Path, body: str, expected: tuple[str | None, str | None]
) -> None:
    out, _, _ = convert(tmp_path, f"<html><body>{body}</body></html>", "html")
    root = lxml.html.fromstring(out.read_bytes())
    assert (root.get("lang"), root.get("dir")) == expected


def test_right_to_left_docx(tmp_path: Path) -> None:
    html = "<html><body><h1>سلام دنیا</h1><p>این یک متن فارسی است.</p><pre>code()</pre><table><tr><td>یک</td></tr></table></body></html>"
    docx, _, _ = convert(tmp_path, html, "docx")
    with zipfile.ZipFile(docx) as z:
        xml = z.read("word/document.xml").decode()
    assert xml.count("<w:bidi/>") >= 3  # heading, paragraph, table cell; the section too
    assert "<w:bidiVisual/>" in xml and "<w:rtl/>" in xml
    code = next(p for p in Document(str(docx)).paragraphs if p.text == "code()")
    assert code._p.find(f"{_W}pPr/{_W}bidi") is None


def test_a_right_to_left_paragraph_in_a_left_to_right_document(tmp_path: Path) -> None:
    html = "<html><body><p>English first.</p><p>שלום עולם</p><p>Mixed: שלום</p></body></html>"
    docx, _, _ = convert(tmp_path, html, "docx")
    marked = [
        p.text for p in Document(str(docx)).paragraphs if p._p.find(f"{_W}pPr/{_W}bidi") is not None
    ]
    assert marked == ["שלום עולם"]


def test_characters_no_font_has_give_a_warning_naming_script_and_package(tmp_path: Path) -> None:
    # U+F0000 is private use: no installed font draws it.
    _, ctx, _ = convert(tmp_path, "<p>Symbol \U000f0000 here</p>", "pdf")
    assert any(
        w.startswith("no installed font has the other symbols characters")
        and "install fonts-noto-core" in w
        for w in ctx.warnings
    )
    assert not [w for w in ctx.warnings if ".notdef" in w]  # not one per character too
    _, ctx, _ = convert(tmp_path, "<p>Plain text</p>", "pdf", name="plain")
    assert not [w for w in ctx.warnings if "no installed font" in w]


def test_the_installed_fonts_cover_the_scripts_the_readme_names() -> None:
    assert {
        "Latin",
        "Greek",
        "Cyrillic",
        "Arabic",
        "Hebrew",
        "Han",
        "Kana",
        "Hangul",
        "Emoji",
    } <= set(covered_scripts())
    level, detail, packages = font_report()
    assert (level, packages) == ("pass", []) and detail.startswith("scripts covered: Latin")


def test_doctor_lists_the_scripts() -> None:
    from spoold.ops.doctor import system_checks

    (fonts,) = [c for c in system_checks() if c.name == "fonts"]
    assert fonts.level == "pass" and "scripts covered:" in fonts.detail and "Han" in fonts.detail
