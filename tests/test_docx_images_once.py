"""A picture shown twice in one document is fetched, checked and embedded once."""

from __future__ import annotations

import zipfile
from pathlib import Path

from PIL import Image

from .docx_support import convert, load


def _job(tmp_path: Path, text: str) -> Path:
    job = tmp_path / "job"
    job.mkdir()
    Image.new("RGB", (40, 20), (200, 30, 30)).save(job / "logo.png")
    source = job / "doc.md"
    source.write_text(text)
    return source


def test_the_same_png_twice_is_two_pictures_on_one_media_part(tmp_path: Path) -> None:
    source = _job(
        tmp_path,
        "# Report\n\n![Logo](logo.png)\n\nSome text.\n\n![Logo again](logo.png)\n",
    )
    out = tmp_path / "doc.docx"
    ctx = convert(source, out)
    shapes = load(out).inline_shapes
    assert len(shapes) == 2
    with zipfile.ZipFile(out) as docx_zip:
        media = [n for n in docx_zip.namelist() if n.startswith("word/media/")]
    assert len(media) == 1
    # Both drawings point at that one part, each with its own alt text.
    descrs = sorted(s._inline.docPr.get("descr") for s in shapes)
    assert descrs == ["Logo", "Logo again"]
    blips = {s._inline.graphic.graphicData.pic.blipFill.blip.embed for s in shapes}
    assert len(blips) == 1
    # Read once: one fetch in the manifest's list, no warnings.
    assert [f.url for f in ctx.fetches] == ["logo.png"]
    assert ctx.warnings == []


def test_a_missing_picture_twice_is_one_fetch_and_one_warning(tmp_path: Path) -> None:
    source = _job(tmp_path, "![Gone](missing.png)\n\n![Gone too](missing.png)\n")
    out = tmp_path / "doc.docx"
    ctx = convert(source, out)
    assert len(ctx.fetches) == 1 and not ctx.fetches[0].allowed
    assert len([w for w in ctx.warnings if "missing.png" in w]) == 1
    # Both places still say what was meant.
    text = "\n".join(p.text for p in load(out).paragraphs)
    assert "[Gone]" in text and "[Gone too]" in text


def test_the_same_picture_in_a_footnote_and_the_body_is_one_media_part(tmp_path: Path) -> None:
    source = _job(tmp_path, "![Logo](logo.png) and a note.[^1]\n\n[^1]: ![Logo](logo.png)\n")
    out = tmp_path / "doc.docx"
    ctx = convert(source, out)
    with zipfile.ZipFile(out) as docx_zip:
        names = docx_zip.namelist()
        footnotes = docx_zip.read("word/footnotes.xml").decode()
    assert len([n for n in names if n.startswith("word/media/")]) == 1
    assert "<w:drawing>" in footnotes  # the footnote shows it too
    assert len(ctx.fetches) == 1
