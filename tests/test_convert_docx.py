"""HTML/Markdown/PDF -> DOCX, checked with python-docx, the raw package XML and pandoc."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import docx
import pytest
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml.ns import qn
from docx.shared import Mm, Pt
from PIL import Image

from spoold.convert import ConversionContext, ConvertOptions, get_converter, load_converters
from spoold.errors import ErrorCode, JobError

FIXTURES = Path(__file__).parent / "fixtures" / "docx"
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
NS = {"w": W_NS}

load_converters()


@pytest.fixture
def job(tmp_path: Path) -> Path:
    root = tmp_path / "job"
    root.mkdir()
    for f in FIXTURES.iterdir():
        shutil.copy(f, root / f.name)
    return root


def convert(source: Path, out: Path, src_type: str = "md", **options: Any) -> ConversionContext:
    stages: list[str] = []
    ctx = ConversionContext(
        job_root=source.parent, options=ConvertOptions(**options), on_stage=stages.append
    )
    converter = get_converter(src_type, "docx")
    assert converter is not None
    converter.convert(source, out, ctx)
    assert "parsing" in stages and "writing" in stages
    return ctx


@pytest.fixture
def features(job: Path) -> tuple[Any, ConversionContext, Path]:
    out = job.parent / "features.docx"
    ctx = convert(job / "features.md", out)
    return load(out), ctx, out


def load(path: Path) -> Any:
    # Any: the tests poke at python-docx internals its type hints do not cover.
    return docx.Document(str(path))


def part_xml(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


def text_width(doc: Any) -> int:
    s = doc.sections[0]
    return int(s.page_width - s.left_margin - s.right_margin)


def paragraphs_by_text(doc: Any) -> dict[str, Any]:
    return {p.text: p for p in doc.paragraphs}


def num_pr(paragraph: Any) -> tuple[int, int] | None:
    ppr = paragraph._p.pPr
    if ppr is None or ppr.numPr is None:
        return None
    return int(ppr.numPr.numId.val), int(ppr.numPr.ilvl.val)


# --- structure ------------------------------------------------------------------------


def test_headings_and_paragraph_styles(features: tuple[Any, ConversionContext, Path]) -> None:
    doc, _, _ = features
    by_text = paragraphs_by_text(doc)
    assert by_text["Widget Report"].style.name == "Title"
    assert by_text["Overview"].style.name == "Heading 1"
    assert by_text["Lists"].style.name == "Heading 2"
    assert by_text["Definitions"].style.name == "Heading 3"
    assert by_text["Table"].style.name == "Heading 4"
    assert by_text["Pictures"].style.name == "Heading 5"
    assert by_text["Code"].style.name == "Heading 6"
    code = next(p for p in doc.paragraphs if p.text.startswith("def long_function_name"))
    assert code.style.name == "Source Code"
    assert code.style.font.name == "Courier New"
    # Line breaks are kept as w:br, not folded into one line.
    assert code._p.findall(f".//{{{W_NS}}}br")
    assert "\n    return argument_one" in code.text
    assert by_text["Quoted wisdom."].style.name == "Quote"
    assert by_text["Sprocket"].style.name == "Definition Term"
    assert by_text["A toothed wheel."].style.name == "Definition"
    rule = next(p for p in doc.paragraphs if p._p.find(".//w:pBdr/w:bottom", NS) is not None)
    assert rule.text == ""


def test_inline_formatting(features: tuple[Any, ConversionContext, Path]) -> None:
    doc, _, _ = features
    para = next(p for p in doc.paragraphs if p.text.startswith("Plain"))
    runs = {r.text.strip(): r for r in para.runs if r.text.strip()}
    assert runs["bold"].bold
    assert runs["italic"].italic
    assert runs["underlined"].underline
    assert runs["struck"].font.strike
    assert runs["inline_code()"].style.name == "Verbatim Char"
    assert runs["inline_code()"].style.font.name == "Courier New"
    assert runs["2"].font.subscript or runs["2"].font.superscript
    subs = [r for r in para.runs if r.text == "2"]
    assert {bool(r.font.subscript) for r in subs} == {True, False}
    # Whitespace is collapsed like a browser would: no doubled or trailing spaces.
    assert "  " not in para.text and para.text == para.text.strip()


def test_lists_use_real_numbering(features: tuple[Any, ConversionContext, Path]) -> None:
    doc, _, _ = features
    by_text = paragraphs_by_text(doc)
    apple, banana = num_pr(by_text["apple"]), num_pr(by_text["banana"])
    assert apple is not None and banana is not None and apple == banana
    assert apple[1] == 0
    nested = num_pr(by_text["nested one"])
    deep = num_pr(by_text["deep bullet"])
    assert nested is not None and nested[1] == 1
    assert deep is not None and deep[1] == 2
    assert nested[0] != apple[0]  # an <ol> inside a <ul>: its own decimal numbering
    first, third = num_pr(by_text["first"]), num_pr(by_text["third restarts here"])
    assert first is not None and third is not None
    assert first[0] != third[0], "two <ol> lists must not share a w:num"
    assert num_pr(by_text["second"]) == first

    numbering = doc.part.numbering_part.element

    def num_info(num_id: int) -> tuple[str, int | None]:
        num = numbering.find(f"w:num[@w:numId='{num_id}']", NS)
        assert num is not None
        abstract_id = num.find("w:abstractNumId", NS).get(qn("w:val"))
        override = num.find("w:lvlOverride/w:startOverride", NS)
        abstract = numbering.find(f"w:abstractNum[@w:abstractNumId='{abstract_id}']", NS)
        fmt = abstract.find("w:lvl[@w:ilvl='0']/w:numFmt", NS).get(qn("w:val"))
        return fmt, None if override is None else int(override.get(qn("w:val")))

    assert num_info(apple[0])[0] == "bullet"
    assert num_info(first[0]) == ("decimal", 1)
    assert num_info(third[0]) == ("decimal", 3)
    assert num_info(nested[0]) == ("decimal", 1)
    # Task list items carry check boxes.
    assert by_text["☒ shipped the gizmo"] is not None
    assert by_text["☐ tested the doohickey"] is not None


def test_native_footnotes(features: tuple[Any, ConversionContext, Path]) -> None:
    doc, _, path = features
    with zipfile.ZipFile(path) as zf:
        types = zf.read("[Content_Types].xml").decode()
        footnotes = zf.read("word/footnotes.xml").decode()
        body = zf.read("word/document.xml").decode()
    assert (
        'PartName="/word/footnotes.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml"'
    ) in types
    part = doc.part.part_related_by(RT.FOOTNOTES)
    assert part.partname == "/word/footnotes.xml"
    assert 'w:type="separator" w:id="-1"' in footnotes
    assert 'w:type="continuationSeparator" w:id="0"' in footnotes
    assert "Mostly from the " in footnotes and "See the regional breakdown." in footnotes
    assert "<w:footnoteRef/>" in footnotes and 'w:val="FootnoteText"' in footnotes
    assert body.count("<w:footnoteReference ") == 2
    # The HTML footnotes section is not repeated as body text.
    assert "Mostly from the" not in body and "regional breakdown" not in body
    assert "↩" not in footnotes


def test_hyperlinks(features: tuple[Any, ConversionContext, Path]) -> None:
    doc, _, _ = features
    links = doc.element.body.findall(".//w:hyperlink", NS)
    assert len(links) == 1
    rid = links[0].get(qn("r:id"))
    rel = doc.part.rels[rid]
    assert rel.is_external and rel.target_ref == "https://example.com/spec"
    assert rel.reltype == RT.HYPERLINK
    run_style = links[0].find("w:r/w:rPr/w:rStyle", NS).get(qn("w:val"))
    assert doc.styles.get_by_id(run_style, 2).name == "Hyperlink"
    # The internal anchor stays as text.
    para = next(p for p in doc.paragraphs if "the details" in p.text)
    assert "the details" in para.text


def test_table_header_alignment_and_widths(features: tuple[Any, ConversionContext, Path]) -> None:
    doc, _, _ = features
    table = doc.tables[0]
    assert table.style.name == "Table Grid"
    rows = table._tbl.findall("w:tr", NS)
    assert rows[0].find("w:trPr/w:tblHeader", NS) is not None
    assert rows[1].find("w:trPr/w:tblHeader", NS) is None
    assert [c.text for c in table.rows[0].cells] == ["Region", "Units", "Notes on the quarter"]
    assert all(r.bold for r in table.rows[0].cells[0].paragraphs[0].runs)
    units = table.rows[1].cells[1].paragraphs[0]
    notes = table.rows[1].cells[2].paragraphs[0]
    assert units.alignment == 2  # right
    assert notes.alignment == 1  # center
    grid = [int(g.get(qn("w:w"))) for g in table._tbl.findall("w:tblGrid/w:gridCol", NS)]
    assert sum(grid) * 635 == text_width(doc)
    assert grid[2] > grid[1], "the long notes column gets more room"


def test_images_fit_the_page_and_missing_ones_warn(
    features: tuple[Any, ConversionContext, Path],
) -> None:
    doc, ctx, _ = features
    shapes = doc.inline_shapes
    assert len(shapes) == 1
    inline = shapes[0]._inline
    assert inline.docPr.get("descr") == "A wide red banner"
    assert shapes[0].width <= text_width(doc)
    assert abs(shapes[0].width / shapes[0].height - 2.0) < 0.01
    assert any("missing.png" in w for w in ctx.warnings)
    # The missing picture leaves its alt text behind.
    assert any("[A missing picture]" in p.text for p in doc.paragraphs)


def test_core_properties_from_front_matter(features: tuple[Any, ConversionContext, Path]) -> None:
    doc, _, _ = features
    cp = doc.core_properties
    assert cp.title == "Widget Report"
    assert cp.author == "Ada Lovelace"
    assert cp.keywords == "widgets, quarterly"
    assert cp.subject == "Widget sales"
    assert cp.created.year == 2024 and cp.created.month == 5 and cp.modified == cp.created


def test_metadata_option_overrides_head(job: Path) -> None:
    out = job.parent / "meta.docx"
    convert(job / "features.md", out, metadata={"title": "Overridden", "author": ["A", "B"]})
    cp = load(out).core_properties
    assert cp.title == "Overridden"
    assert cp.author == "A, B"


def test_output_is_byte_identical(job: Path) -> None:
    a, b = job.parent / "a.docx", job.parent / "b.docx"
    convert(job / "features.md", a)
    convert(job / "features.md", b)
    assert a.read_bytes() == b.read_bytes()
    with zipfile.ZipFile(a) as zf:
        infos = zf.infolist()
        core = zf.read("docProps/core.xml").decode()
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert "2024-05-01T00:00:00Z" in core


def test_no_date_gives_fixed_timestamp(job: Path) -> None:
    (job / "plain.md").write_text("# Hi\n\ntext\n", encoding="utf-8")
    out = job.parent / "plain.docx"
    convert(job / "plain.md", out)
    assert b"2000-01-01T00:00:00Z" in part_xml(out, "docProps/core.xml")


def test_page_size_option(job: Path) -> None:
    out = job.parent / "letter.docx"
    convert(job / "features.md", out, page_size="Letter")
    section = load(out).sections[0]
    assert (section.page_width.twips, section.page_height.twips) == (12240, 15840)
    convert(job / "features.md", out, page_size="A4")
    section = load(out).sections[0]
    assert abs(section.page_width - Mm(210)) < Mm(1)
    with pytest.raises(JobError) as err:
        convert(job / "features.md", out, page_size="Postcard")
    assert err.value.code == ErrorCode.INPUT_INVALID


# --- reference.docx -------------------------------------------------------------------


def make_reference(path: Path) -> None:
    ref = docx.Document()
    ref.styles["Normal"].font.name = "Georgia"
    ref.styles["Normal"].font.size = Pt(13)
    ref.styles["Heading 1"].font.size = Pt(30)
    section = ref.sections[0]
    section.page_width, section.page_height = Mm(148), Mm(210)
    section.left_margin = section.right_margin = Mm(15)
    ref.add_paragraph("REFERENCE BODY TEXT that must not appear")
    ref.add_table(rows=1, cols=1).cell(0, 0).text = "REFERENCE TABLE"
    ref.save(str(path))


def test_reference_docx_styles_and_page_setup(job: Path) -> None:
    ref = job / "reference.docx"
    make_reference(ref)
    out = job.parent / "ref.docx"
    convert(job / "features.md", out, reference_docx=ref)
    doc = load(out)
    section = doc.sections[0]
    assert abs(section.page_width - Mm(148)) < Mm(1)
    assert abs(section.page_height - Mm(210)) < Mm(1)
    assert abs(section.left_margin - Mm(15)) < Mm(1)
    assert doc.styles["Normal"].font.name == "Georgia"
    assert doc.styles["Heading 1"].font.size == Pt(30)
    body = part_xml(out, "word/document.xml").decode()
    assert "REFERENCE BODY TEXT" not in body and "REFERENCE TABLE" not in body
    assert "Overview" in body
    # Styles the reference lacked were added, so the code block still looks like code.
    code = next(p for p in doc.paragraphs if p.text.startswith("def long_function_name"))
    assert code.style.name == "Source Code"
    # The pictures still fit the (narrower) reference page.
    assert doc.inline_shapes[0].width <= text_width(doc)
    # Reproducible with a reference too.
    again = job.parent / "ref2.docx"
    convert(job / "features.md", again, reference_docx=ref)
    assert again.read_bytes() == out.read_bytes()


def test_invalid_reference_docx(job: Path) -> None:
    bad = job / "reference.docx"
    bad.write_bytes(b"this is not a zip file")
    with pytest.raises(JobError) as err:
        convert(job / "features.md", job.parent / "x.docx", reference_docx=bad)
    assert err.value.code == ErrorCode.INPUT_INVALID
    assert err.value.message.startswith("reference.docx is not a valid Word document:")
    # A zip that is not a Word package.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "hi")
    bad.write_bytes(buf.getvalue())
    with pytest.raises(JobError) as err:
        convert(job / "features.md", job.parent / "x.docx", reference_docx=bad)
    assert err.value.code == ErrorCode.INPUT_INVALID


# --- other routes and limits ----------------------------------------------------------


def test_html_to_docx(job: Path) -> None:
    out = job.parent / "page.docx"
    ctx = convert(job / "page.html", out, "html")
    doc = load(out)
    cp = doc.core_properties
    assert (cp.title, cp.author, cp.keywords, cp.subject) == (
        "HTML Page",
        "Grace Hopper",
        "html, docx",
        "An HTML fixture",
    )
    assert cp.language == "en"
    by_text = paragraphs_by_text(doc)
    assert by_text["HTML Page"].style.name == "Heading 1"
    body = part_xml(out, "word/document.xml").decode()
    assert "alert" not in body and "color: red" not in body
    links = doc.element.body.findall(".//w:hyperlink", NS)
    assert [doc.part.rels[a.get(qn("r:id"))].target_ref for a in links] == [
        "https://example.org/a?b=1&c=2"
    ]
    assert "a bad link" in body  # javascript: links stay as plain text
    intro = next(p for p in doc.paragraphs if p.text.startswith("Text with"))
    assert intro._p.find(".//w:br", NS) is not None
    styled = next(r for r in intro.runs if r.text == "styled span")
    assert styled.bold
    assert "Loose text in a div with bold." in by_text
    # <ol start="5" type="a">: letters, starting at the fifth.
    fifth = num_pr(by_text["fifth letter"])
    sub = num_pr(by_text["sub bullet"])
    assert fifth is not None and sub is not None and sub[1] == 1
    numbering = doc.part.numbering_part.element
    num = numbering.find(f"w:num[@w:numId='{fifth[0]}']", NS)
    assert num.find("w:lvlOverride/w:startOverride", NS).get(qn("w:val")) == "5"
    # Table: header row, colspan as gridSpan, rowspan as vMerge.
    table = doc.tables[0]
    tbl = table._tbl
    assert tbl.find("w:tr/w:trPr/w:tblHeader", NS) is not None
    assert tbl.find(".//w:gridSpan", NS).get(qn("w:val")) == "2"
    merges = tbl.findall(".//w:vMerge", NS)
    assert merges[0].get(qn("w:val")) == "restart" and len(merges) == 2
    assert by_text["Merged cells"].style.name == "Caption"
    # Image with an HTML width attribute: 80 CSS px wide, aspect kept.
    shape = doc.inline_shapes[0]
    assert shape.width == 80 * 9525 and shape.height == 40 * 9525
    assert shape._inline.docPr.get("descr") == "Small blue"
    pre = next(p for p in doc.paragraphs if p.text.startswith("line one"))
    assert pre.style.name == "Source Code" and "\n    line two indented" in pre.text
    assert not ctx.warnings


def test_deeply_nested_html_is_refused(job: Path) -> None:
    deep = job / "deep.html"
    deep.write_text("<div>" * 50_000 + "x" + "</div>" * 50_000, encoding="utf-8")
    with pytest.raises(JobError) as err:
        convert(deep, job.parent / "deep.docx", "html")
    assert err.value.code == ErrorCode.INPUT_INVALID


def test_moderately_nested_html_converts(job: Path) -> None:
    page = job / "nested.html"
    page.write_text(
        "<ul><li>" * 100
        + "deep item"
        + "</li></ul>" * 100
        + "<span>" * 200
        + "x"
        + "</span>" * 200,
        encoding="utf-8",
    )
    out = job.parent / "nested.docx"
    convert(page, out, "html")
    item = paragraphs_by_text(load(out))["deep item"]
    assert num_pr(item) is not None and num_pr(item)[1] == 8  # type: ignore[index]


def test_image_limits_and_svg(job: Path) -> None:
    Image.new("RGB", (300, 300), (0, 255, 0)).save(job / "big.png")
    (job / "pic.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>', encoding="utf-8")
    Image.new("RGB", (30, 10), (0, 0, 0)).save(job / "pic.webp", format="WEBP")
    (job / "imgs.html").write_text(
        '<p><img src="big.png" alt="too big"> <img src="pic.svg" alt="vector">'
        ' <img src="pic.webp" alt="webp"> <img src="/etc/passwd" alt="escape">'
        ' <img src="../outside.png" alt="outside"></p>',
        encoding="utf-8",
    )
    out = job.parent / "imgs.docx"
    ctx = convert(job / "imgs.html", out, "html", max_image_pixels=50_000)
    doc = load(out)
    assert [s._inline.docPr.get("descr") for s in doc.inline_shapes] == ["webp"]
    joined = "\n".join(ctx.warnings)
    assert "big.png" in joined and "pixel cap" in joined
    assert "pic.svg" in joined and "SVG" in joined
    assert "../outside.png" in joined
    assert doc.paragraphs[0].text.startswith("[too big]")


def test_pdf_to_docx(job: Path) -> None:
    pdf_route = get_converter("md", "pdf")
    if pdf_route is None:
        pytest.skip("md->pdf is not available to make a PDF fixture")
    src = job / "simple.md"
    src.write_text("# Big Heading\n\nBody text of the PDF.\n\n- one\n- two\n", encoding="utf-8")
    pdf = job / "simple.pdf"
    pdf_route.convert(src, pdf, ConversionContext(job_root=job))
    out = job.parent / "simple.docx"
    convert(pdf, out, "pdf")
    doc = load(out)
    text = "\n".join(p.text for p in doc.paragraphs)
    assert "Body text of the PDF." in text


@pytest.mark.skipif(shutil.which("pandoc") is None, reason="pandoc is not installed")
def test_pandoc_reads_it_back(features: tuple[Any, ConversionContext, Path]) -> None:
    _, _, path = features
    md = subprocess.run(
        ["pandoc", "-f", "docx", "-t", "markdown", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "# Overview" in md and "## Lists" in md
    assert "-   apple" in md and "1.  nested one" in md
    assert "3.  third restarts here" in md
    assert "[x] shipped the gizmo" in md
    assert "North" in md and "1200" in md and "Notes on the quarter" in md
    assert "[^1]" in md and "[^1]: Mostly from the **north**." in md
    assert "[the spec](https://example.com/spec)" in md
    assert "def long_function_name" in md
    assert "Sprocket\n\n:   A toothed wheel." in md


def test_reference_with_notes_and_media_keeps_none_of_its_content(job: Path) -> None:
    # Our own output is a reference with footnotes, pictures and links in its body.
    ref = job / "reference.docx"
    convert(job / "features.md", ref)
    (job / "small.md").write_text("# Small\n\nA note[^a].\n\n[^a]: The new note.\n", "utf-8")
    out = job.parent / "small.docx"
    convert(job / "small.md", out, reference_docx=ref)
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        footnotes = zf.read("word/footnotes.xml").decode()
        rels = zf.read("word/_rels/document.xml.rels").decode()
    assert not [n for n in names if n.startswith("word/media/")]
    assert "example.com" not in rels
    assert "The new note." in footnotes and "Mostly from the" not in footnotes
    assert footnotes.count("<w:footnoteRef/>") == 1


def test_fixed_zip_equals_a_plain_deflate_of_python_docx_save(job: Path) -> None:
    # The writer skips python-docx's own zip and reuses deflates of repeated members; the
    # bytes must be what deflating python-docx's saved package member by member gives.
    from spoold.convert.docx import package, template

    for reference in (None, job / "ref.docx"):
        if reference is not None:
            convert(job / "features.md", reference)
            doc = template.load_reference(ConversionContext(job_root=job), reference)
        else:
            doc = docx.Document(io.BytesIO(template.default_template()))
        doc.add_paragraph("x" * 50_000)  # document.xml: deflated afresh for every document
        saved = io.BytesIO()
        doc.save(saved)
        plain = io.BytesIO()
        with (
            zipfile.ZipFile(saved) as src,
            zipfile.ZipFile(plain, "w", zipfile.ZIP_DEFLATED) as dst,
        ):
            for name in sorted(src.namelist()):
                info = zipfile.ZipInfo(name, date_time=package.ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 0
                info.external_attr = 0
                dst.writestr(info, src.read(name), compresslevel=6)
        for _ in range(2):  # a cold and a warm deflate cache
            assert package.docx_bytes(doc) == plain.getvalue()


@pytest.mark.parametrize(
    "text",
    ["", "a", " x ", "\t", "a\tb\n\nc\r\nd ", "\n lead", "trail\u00a0", "\u2003\tq\r", "x\n"],
)
def test_pre_text_matches_python_docx_run_text(text: str) -> None:
    from lxml import etree

    from spoold.convert.docx.xml import append_pre_text

    ours = docx.Document().add_paragraph().add_run()._r
    theirs = docx.Document().add_paragraph().add_run()._r
    last_t = append_pre_text(ours, text)
    theirs.text = text
    assert etree.tostring(ours) == etree.tostring(theirs)
    ts = theirs.findall(qn("w:t"))
    assert (last_t is None) == (not ts)
    if ts:
        assert last_t is ours.findall(qn("w:t"))[-1]
