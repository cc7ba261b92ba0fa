"""Real documents from other ecosystems (tests/corpus/dialects/), converted as dropped.

Jekyll/kramdown (just-the-docs), MkDocs-Material, Docusaurus, Hugo, MultiMarkdown and
the Vite documentation in Chinese and Persian (VitePress), plus two HTML documents that
bring their own stylesheet (WeasyPrint's invoice and report samples). Checked with real
readers: pdftotext for the PDF, pandoc for the DOCX, python-docx and lxml for
structure, pdftoppm for pixels. Issue 21.
"""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import lxml.etree
import lxml.html
import pytest
from docx import Document
from PIL import Image, ImageChops
from pypdf import PdfReader

from spoold.convert import ConversionContext, ConvertOptions, get_converter, load_converters

from .dialect_measure import docx_text, page_one_pixels, pdf_text, printed_markup, word_share, words

DIALECTS = Path(__file__).with_name("corpus") / "dialects"
SOURCES = Path(__file__).with_name("corpus") / "SOURCES.md"
MARKDOWN = sorted(p.name for p in DIALECTS.glob("*.md"))
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"

_cache: dict[tuple[str, str, str], tuple[Path, ConversionContext]] = {}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dialects")


def convert(
    source: Path, target: str, out_dir: Path, theme: str = "auto"
) -> tuple[Path, ConversionContext]:
    """The worker's converter for the source's type; cached per module."""
    key = (str(source), target, theme)
    if key not in _cache:
        load_converters()
        kind = "html" if source.suffix == ".html" else "md"
        converter = get_converter(kind, target)
        assert converter is not None
        ctx = ConversionContext(job_root=source.parent, options=ConvertOptions(theme=theme))
        output = out_dir / f"{source.stem}-{theme}.{target}"
        result = converter.convert(source, output, ctx)
        ctx.layout = result.layout
        _cache[key] = (output, ctx)
    return _cache[key]


def test_every_document_has_its_source_and_licence() -> None:
    sources = SOURCES.read_text(encoding="utf-8")
    documents = [*MARKDOWN, "invoice/invoice.html", "report/report.html"]
    assert len(MARKDOWN) >= 8
    for name in documents:
        assert f"`dialects/{name}`" in sources, name
    for licence in re.findall(r"`(licenses/[^`]+)`", sources):
        assert (SOURCES.parent / licence).is_file(), licence


@pytest.mark.parametrize("name", MARKDOWN)
def test_no_dialect_markup_is_printed(name: str, out_dir: Path) -> None:
    source = DIALECTS / name
    text = source.read_text(encoding="utf-8")
    pdf, _ = convert(source, "pdf", out_dir)
    docx, _ = convert(source, "docx", out_dir)
    assert printed_markup(text, pdf_text(pdf)) == []
    assert printed_markup(text, docx_text(docx)) == []


@pytest.mark.parametrize("name", MARKDOWN)
def test_the_pdf_has_every_word_of_the_html(name: str, out_dir: Path) -> None:
    html, _ = convert(DIALECTS / name, "html", out_dir)
    pdf, _ = convert(DIALECTS / name, "pdf", out_dir)
    root = lxml.html.fromstring(html.read_bytes())
    for el in root.xpath("//head|//style|//script"):
        el.drop_tree()
    assert word_share(words(root.text_content()), words(pdf_text(pdf))) >= 0.995


def test_callouts_of_every_dialect_look_alike(out_dir: Path) -> None:
    """MkDocs `???`, Docusaurus `:::caution`/`:::tip Title`, VitePress `::: tip Title`,
    Hugo `{{< hint tip >}}`: the same callout (HTML class, DOCX style), the title
    printed, the marker not."""
    expected = {
        "mkdocs-building-an-optimized-site.md": ["Use cases for the projects plugin"],
        "docusaurus-versioning.md": ["Caution", "Tip", "archive older versions"],
        "vite-ja-per-environment-apis.md": ["フィードバック", "将来の廃止予定"],
        "hugo-geekdoc-hints.md": ["Note", "Tip", "Important", "Caution", "Warning"],
    }
    for name, titles in expected.items():
        html, _ = convert(DIALECTS / name, "html", out_dir)
        root = lxml.html.fromstring(html.read_bytes())
        shown = [p.text_content() for p in root.find_class("markdown-alert-title")]
        assert shown == titles, name
        docx, _ = convert(DIALECTS / name, "docx", out_dir)
        styles = [p.style.name for p in Document(str(docx)).paragraphs]
        callout = [s for s in styles if s.startswith("Alert ")]
        assert len(callout) >= 2 * len(titles), (name, styles)
        pdf, _ = convert(DIALECTS / name, "pdf", out_dir)
        for title in titles:
            assert title in pdf_text(pdf)


def test_kramdown_and_multimarkdown_contents_become_a_real_table_of_contents(
    out_dir: Path,
) -> None:
    cases = {
        "jekyll-in-page-navigation.md": ["Collapsible Table of Contents", "Back to Top"],
        "multimarkdown-quickstart.md": ["Performance", "Glossary Terms", "Future Steps"],
    }
    for name, entries in cases.items():
        pdf, _ = convert(DIALECTS / name, "pdf", out_dir)
        text = pdf_text(pdf)
        for entry in entries:  # a dotted leader and the page number follow each entry
            assert re.search(re.escape(entry) + r"\s*\.{3,}\s*\d+\n", text), (name, entry)
        html, _ = convert(DIALECTS / name, "html", out_dir)
        root = lxml.html.fromstring(html.read_bytes())
        nav = root.find(".//nav[@class='toc']")
        assert nav is not None
        ids = {el.get("id") for el in root.iter() if el.get("id")}
        targets = [a.get("href")[1:] for a in nav.iter("a")]
        assert targets and all(t in ids for t in targets)
        docx, _ = convert(DIALECTS / name, "docx", out_dir)
        with zipfile.ZipFile(docx) as z:
            body = z.read("word/document.xml").decode()
            settings = z.read("word/settings.xml").decode()
        assert re.search(r"<w:instrText[^>]*> TOC \\o", body)
        assert 'w:fldCharType="begin"' in body and 'w:fldCharType="end"' in body
        assert "<w:updateFields" in settings
    # kramdown leaves headings marked .no_toc out of the contents.
    html, _ = convert(DIALECTS / "jekyll-in-page-navigation.md", "html", out_dir)
    nav_text = lxml.html.fromstring(html.read_bytes()).find(".//nav").text_content()
    assert "In-Page Navigation" not in nav_text and "Example" not in nav_text


def test_metadata_becomes_document_properties(out_dir: Path) -> None:
    cases = {
        "multimarkdown-quickstart.md": ("MultiMarkdown v6 Quick Start Guide", "Fletcher T. Penney"),
        "hugo-geekdoc-hints.md": ("Hints", ""),
        "docusaurus-versioning.md": ("Versioning", ""),
    }
    for name, (title, author) in cases.items():
        pdf, _ = convert(DIALECTS / name, "pdf", out_dir)
        info = PdfReader(pdf).metadata
        assert info is not None and info.title == title
        assert (info.author or "") == author
        docx, _ = convert(DIALECTS / name, "docx", out_dir)
        props = Document(str(docx)).core_properties
        assert (props.title, props.author) == (title, author)
        html, _ = convert(DIALECTS / name, "html", out_dir)
        assert lxml.html.fromstring(html.read_bytes()).findtext(".//title") == title
    # MultiMarkdown's [%version] is the metadata's value; its metadata block is not text.
    text = pdf_text(convert(DIALECTS / "multimarkdown-quickstart.md", "pdf", out_dir)[0])
    assert "Version: 6.1.0" in text and "Base Header Level" not in text


def test_persian_is_laid_out_right_to_left(out_dir: Path) -> None:
    source = DIALECTS / "vite-fa-per-environment-apis.md"
    html, _ = convert(source, "html", out_dir)
    root = lxml.html.fromstring(html.read_bytes())
    assert (root.get("lang"), root.get("dir")) == ("fa", "rtl")
    # PDF: the list bullets stand at the right, the lines end at the right margin.
    pdf, _ = convert(source, "pdf", out_dir)
    bbox = subprocess.run(
        ["pdftotext", "-bbox", "-f", "1", "-l", "1", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    page_width = float(re.search(r'<page width="([\d.]+)"', bbox).group(1))  # type: ignore[union-attr]
    bullets = [float(x) for x in re.findall(r'<word xMin="([\d.]+)"[^>]*>•</word>', bbox)]
    assert bullets and all(x > page_width * 0.8 for x in bullets)
    # DOCX: right-to-left paragraphs and runs, code left to right.
    docx, _ = convert(source, "docx", out_dir)
    body = Document(str(docx)).element.body
    paragraphs = list(body.iter(f"{_W}p"))
    bidi = [p for p in paragraphs if p.find(f"{_W}pPr/{_W}bidi") is not None]
    code = [
        p for p in paragraphs if p.find(f"{_W}pPr/{_W}pStyle[@{_W}val='SourceCode']") is not None
    ]
    assert code and not any(p in bidi for p in code)
    assert len(bidi) >= len(paragraphs) - len(code) - 1
    assert body.find(f".//{_W}rPr/{_W}rtl") is not None


def test_japanese_prints_with_a_cjk_font_and_no_notdef(out_dir: Path) -> None:
    source = DIALECTS / "vite-ja-per-environment-apis.md"
    pdf, ctx = convert(source, "pdf", out_dir)
    assert not [w for w in ctx.warnings if "notdef" in w or "no installed font" in w]
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True).stdout
    assert re.search(r"WenQuanYi|Noto-Sans-CJK|Droid", fonts), fonts
    text = pdf_text(pdf)
    assert "環境ごとの" in text and "将来の廃止予定" in text
    html, _ = convert(source, "html", out_dir)
    assert lxml.html.fromstring(html.read_bytes()).get("lang") == "ja"


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Share of page-1 pixels that differ visibly (any channel by more than 16)."""
    if a.size != b.size:
        return 1.0
    mask = ImageChops.difference(a, b).convert("L").point(lambda v: 255 if v > 16 else 0)
    return mask.histogram()[255] / (a.size[0] * a.size[1])


@pytest.mark.parametrize("folder", ["invoice", "report"])
def test_html_with_its_own_stylesheet_is_laid_out_as_weasyprint_alone(
    folder: str, out_dir: Path
) -> None:
    import weasyprint

    source = DIALECTS / folder / f"{folder}.html"
    pdf, ctx = convert(source, "pdf", out_dir)
    assert ctx.layout == "own styles: it links a stylesheet"
    bare = weasyprint.HTML(filename=str(source)).render(presentational_hints=True)
    bare_pdf = out_dir / f"{folder}-bare.pdf"
    bare.write_pdf(bare_pdf)
    assert len(PdfReader(pdf).pages) == len(bare.pages)
    assert (
        _difference(
            page_one_pixels(pdf, out_dir / pdf.stem),
            page_one_pixels(bare_pdf, out_dir / bare_pdf.stem),
        )
        <= 0.01
    )
    # The theme, forced, is what the document escaped: visibly different.
    themed, ctx = convert(source, "pdf", out_dir, theme="default")
    assert ctx.layout == 'theme default: theme = "default"'
    assert (
        _difference(
            page_one_pixels(themed, out_dir / themed.stem),
            page_one_pixels(bare_pdf, out_dir / bare_pdf.stem),
        )
        > 0.01
    )


def test_docx_takes_the_page_margins_of_the_document(out_dir: Path) -> None:
    docx, _ = convert(DIALECTS / "invoice" / "invoice.html", "docx", out_dir)
    section = Document(str(docx)).sections[0]
    assert round(section.left_margin.mm) == 30 and round(section.top_margin.mm) == 30
    assert round(section.page_width.mm) == 210  # no size in its @page: WeasyPrint's A4


def test_html_output_keeps_the_authors_stylesheet_alone(out_dir: Path) -> None:
    html, _ = convert(DIALECTS / "invoice" / "invoice.html", "html", out_dir)
    root = lxml.html.fromstring(html.read_bytes())
    styles = [s.text or "" for s in root.iter("style")]
    assert len(styles) == 1 and "table#total" in styles[0]
    assert lxml.etree.tostring(root).count(b"DejaVu") == 0
