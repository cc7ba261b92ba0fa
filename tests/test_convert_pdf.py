"""PDF in: pdf->pdf sanitising with pypdf, and PDF->HTML recovery with pdfminer."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import lxml.html
import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

from spoold.convert import ConversionContext, get_converter, load_converters
from spoold.convert.pdf import pdf_to_html
from spoold.errors import ErrorCode, JobError

from .corpus_measure import pdf_links

load_converters()

SOURCE_MD = """# Main Title

Intro paragraph with enough words to be the body text of this document, so that the
body size is clear and the heading sizes stand out from it nicely.

## Section Two

Another paragraph of body text that keeps going for a while so pdfminer sees plenty of
characters at the body size.

- apple item
- banana item

1. first step
2. second step

![pic](g.png)

### Small heading

Final words here.
"""


@pytest.fixture(scope="module")
def plain_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("src")
    Image.new("RGB", (60, 40), "green").save(folder / "g.png")
    (folder / "doc.md").write_text(SOURCE_MD)
    converter = get_converter("md", "pdf")
    assert converter is not None
    converter.convert(folder / "doc.md", folder / "doc.pdf", ConversionContext(job_root=folder))
    return folder / "doc.pdf"


def _js(code: str) -> DictionaryObject:
    return DictionaryObject(
        {NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject(code)}
    )


@pytest.fixture
def hostile_pdf(plain_pdf: Path, tmp_path: Path) -> Path:
    w = PdfWriter(clone_from=plain_pdf)
    tree = DictionaryObject(
        {NameObject("/Names"): ArrayObject([TextStringObject("x"), w._add_object(_js("pwned0()"))])}
    )
    names = DictionaryObject({NameObject("/JavaScript"): w._add_object(tree)})
    w._root_object[NameObject("/Names")] = w._add_object(names)
    w._root_object[NameObject("/OpenAction")] = _js("pwned1()")
    w._root_object[NameObject("/AA")] = DictionaryObject({NameObject("/WC"): _js("pwned2()")})
    page = w.pages[0]
    page[NameObject("/AA")] = DictionaryObject({NameObject("/O"): _js("pwned3()")})
    launch = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject([NumberObject(0)] * 4),
            NameObject("/A"): DictionaryObject(
                {
                    NameObject("/S"): NameObject("/Launch"),
                    NameObject("/F"): TextStringObject("pwned4.exe"),
                }
            ),
        }
    )
    annots = page.get("/Annots")
    annots = ArrayObject(list(annots)) if annots is not None else ArrayObject()
    annots.append(w._add_object(launch))
    page[NameObject("/Annots")] = annots
    w.add_attachment("pwned5.exe", b"payload")
    out = tmp_path / "hostile.pdf"
    w.write(out)
    assert b"pwned" in out.read_bytes()  # the fixture really carries the payloads
    return out


def pdftotext(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def to_pdf(source: Path, out: Path) -> ConversionContext:
    ctx = ConversionContext(job_root=source.parent)
    converter = get_converter("pdf", "pdf")
    assert converter is not None
    result = converter.convert(source, out, ctx)
    assert result.pages == len(PdfReader(out).pages)
    return ctx


def test_pdf_sanitised(hostile_pdf: Path, tmp_path: Path) -> None:
    out = tmp_path / "clean.pdf"
    ctx = to_pdf(hostile_pdf, out)
    data = out.read_bytes()
    assert b"pwned" not in data
    assert b"/JavaScript" not in data and b"/OpenAction" not in data
    assert b"/EmbeddedFiles" not in data and b"/Launch" not in data
    reader = PdfReader(out)
    root = reader.trailer["/Root"]
    assert "/OpenAction" not in root and "/AA" not in root
    assert "/AA" not in reader.pages[0]
    joined = " ".join(ctx.warnings)
    for what in ("JavaScript", "automatic actions", "embedded files", "Launch"):
        assert what in joined, joined
    # content unchanged
    assert pdftotext(out) == pdftotext(hostile_pdf)
    # ordinary links survive
    uris = [
        a.get_object()["/A"].get("/URI")
        for a in reader.pages[0].get("/Annots") or []
        if "/A" in a.get_object()
    ]
    assert all(u is None or not str(u).startswith("javascript") for u in uris)


def test_pdf_to_pdf_keeps_internal_links_and_destinations(tmp_path: Path) -> None:
    src = tmp_path / "links.md"
    filler = "\n\n".join(["filler words " * 60] * 20)
    src.write_text(
        f"# Start {{#start}}\n\n[to the end](#end)\n\n{filler}\n\n## End\n\n[back](#start)\n"
    )
    converter = get_converter("md", "pdf")
    assert converter is not None
    converter.convert(src, tmp_path / "links.pdf", ConversionContext(job_root=tmp_path))
    to_pdf(tmp_path / "links.pdf", tmp_path / "clean.pdf")
    links = pdf_links(tmp_path / "clean.pdf")
    assert links.targets == ["end", "start"] and all(links.resolved)
    assert links.destinations["end"] > links.destinations["start"] == 0


def test_pdf_to_pdf_is_reproducible(hostile_pdf: Path, tmp_path: Path) -> None:
    to_pdf(hostile_pdf, tmp_path / "a.pdf")
    to_pdf(hostile_pdf, tmp_path / "b.pdf")
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
    ids = PdfReader(tmp_path / "a.pdf").trailer["/ID"]
    assert ids[0] == ids[1]


def test_clean_pdf_passes_without_warnings(plain_pdf: Path, tmp_path: Path) -> None:
    ctx = to_pdf(plain_pdf, tmp_path / "out.pdf")
    assert ctx.warnings == []
    assert "Final words here" in pdftotext(tmp_path / "out.pdf")
    meta = PdfReader(tmp_path / "out.pdf").metadata
    assert meta is not None and meta.title == "Main Title"
    outline = PdfReader(tmp_path / "out.pdf").outline
    assert outline and outline[0].title == "Main Title"  # type: ignore[union-attr]


def test_encrypted_pdf_is_input_invalid(plain_pdf: Path, tmp_path: Path) -> None:
    w = PdfWriter(clone_from=plain_pdf)
    w.encrypt(user_password="hunter2", owner_password="owner", algorithm="AES-128")
    locked = tmp_path / "locked.pdf"
    w.write(locked)
    for call in (
        lambda: to_pdf(locked, tmp_path / "out.pdf"),
        lambda: pdf_to_html(locked, ConversionContext(job_root=tmp_path)),
    ):
        with pytest.raises(JobError) as info:
            call()
        assert info.value.code == ErrorCode.INPUT_INVALID
        assert "password" in info.value.message


def test_pdf_with_empty_user_password_is_accepted(plain_pdf: Path, tmp_path: Path) -> None:
    w = PdfWriter(clone_from=plain_pdf)
    w.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    src = tmp_path / "open.pdf"
    w.write(src)
    to_pdf(src, tmp_path / "out.pdf")
    assert "Final words here" in pdftotext(tmp_path / "out.pdf")


@pytest.mark.parametrize(
    "data", [b"", b"not a pdf at all", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog"]
)
def test_unreadable_pdf_is_input_invalid(tmp_path: Path, data: bytes) -> None:
    src = tmp_path / "bad.pdf"
    src.write_bytes(data)
    with pytest.raises(JobError) as info:
        to_pdf(src, tmp_path / "out.pdf")
    assert info.value.code == ErrorCode.INPUT_INVALID
    assert "bad.pdf" in info.value.message


def test_pdf_to_html_recovers_structure(plain_pdf: Path, tmp_path: Path) -> None:
    ctx = ConversionContext(job_root=tmp_path)
    doc = pdf_to_html(plain_pdf, ctx)
    root = lxml.html.document_fromstring(doc.encode())
    assert root.findtext(".//title") == "Main Title"
    assert [h.text for h in root.iter("h1")] == ["Main Title"]
    assert [h.text for h in root.iter("h2")] == ["Section Two"]
    assert [h.text for h in root.iter("h3")] == ["Small heading"]
    assert [li.text for li in root.xpath("//ul/li")] == ["apple item", "banana item"]
    assert [li.text for li in root.xpath("//ol/li")] == ["first step", "second step"]
    paras = [p.text_content() for p in root.iter("p")]
    assert any(p.startswith("Intro paragraph") and p.endswith("nicely.") for p in paras)
    assert not any(re.fullmatch(r"\d+ / \d+", p) for p in paras)  # page numbers dropped
    imgs = [img.get("src") for img in root.iter("img")]
    assert len(imgs) == 1 and imgs[0].startswith("data:image/")
    # the image sits where it was: after the lists, before the last heading
    order = [el.tag for el in root.find("body") if el.tag in ("ol", "p", "h3")]
    assert order.index("h3") > order.index("ol")


def test_pdf_to_html_image_bounds(plain_pdf: Path, tmp_path: Path) -> None:
    from spoold.convert import ConvertOptions

    ctx = ConversionContext(job_root=tmp_path, options=ConvertOptions(max_image_pixels=100))
    root = lxml.html.document_fromstring(pdf_to_html(plain_pdf, ctx).encode())
    assert not list(root.iter("img"))
    assert any("images" in w for w in ctx.warnings)
