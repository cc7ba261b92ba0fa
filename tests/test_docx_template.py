"""The default template, opened once per process and parsed lazily, gives the same DOCX
bytes as python-docx opening the template afresh for every document."""

from __future__ import annotations

import io
from pathlib import Path

import docx
import pytest

from spoold.convert import ConversionContext, get_converter, load_converters
from spoold.convert.docx import template

load_converters()

PLAIN = "# Plain\n\nSome *text* and a [link](https://example.com).\n\n- one\n- two\n"
# A contents list adds "toc N" styles: styles.xml is parsed, changed and serialised.
WITH_TOC = "# Title\n\n[TOC]\n\n## One\n\nText.\n\n### Two\n\nMore text.\n"


def _convert(source: Path, out: Path) -> bytes:
    converter = get_converter("md", "docx")
    assert converter is not None
    converter.convert(source, out, ConversionContext(job_root=source.parent))
    return out.read_bytes()


@pytest.mark.parametrize("text", [PLAIN, WITH_TOC], ids=["plain", "toc"])
def test_lazy_template_gives_the_bytes_of_a_fresh_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    source = tmp_path / "doc.md"
    source.write_text(text, encoding="utf-8")
    lazy = [_convert(source, tmp_path / f"lazy{i}.docx") for i in range(2)]
    monkeypatch.setattr(
        template,
        "open_default_template",
        lambda: docx.Document(io.BytesIO(template.default_template())),
    )
    fresh = _convert(source, tmp_path / "fresh.docx")
    assert lazy[0] == fresh
    assert lazy[1] == fresh  # a second document from the same cached template


def test_styles_are_parsed_only_when_a_document_changes_them(tmp_path: Path) -> None:
    from docx.opc.constants import RELATIONSHIP_TYPE as RT

    from spoold.convert.docx.template_styles import TemplateStylesPart, style_ids

    doc = template.open_default_template()
    part = doc.part.part_related_by(RT.STYLES)
    assert isinstance(part, TemplateStylesPart)
    ids = style_ids(doc)
    assert not part.parsed
    assert ids["Heading 1"] == doc.styles["Heading 1"].style_id  # parses it
    assert part.parsed
    doc.styles.add_style("Added Here", 1)
    assert b"Added Here" in part.blob
    assert (
        b"Added Here" not in template.open_default_template().part.part_related_by(RT.STYLES).blob
    )  # the next document starts from the template again


def test_styles_added_to_the_unparsed_template_are_the_ones_define_style_adds() -> None:
    from docx.opc.constants import RELATIONSHIP_TYPE as RT

    from spoold.convert.docx.styles import P, StyleLook, StyleSpec, define_style
    from spoold.convert.docx.template_styles import ensure_style

    toc3 = StyleSpec("toc 3", P, StyleLook(left_indent=480, space_after=2))
    toc1 = StyleSpec("toc 1", P, StyleLook(left_indent=0, space_after=2))
    heading = StyleSpec("Heading 1", P, StyleLook(left_indent=999))  # the template has it
    doc = template.open_default_template()
    part = doc.part.part_related_by(RT.STYLES)
    ids = [ensure_style(doc, spec) for spec in (toc3, toc1, toc3, heading)]
    assert not part.parsed
    fresh = docx.Document(io.BytesIO(template.default_template()))
    for spec in (toc3, toc1, heading):
        define_style(fresh, spec, tune=False)
    expected = fresh.part.part_related_by(RT.STYLES).blob
    assert part.blob == expected
    assert ids == ["toc3", "toc1", "toc3", fresh.styles["Heading 1"].style_id]
    assert doc.styles["toc 3"].style_id == "toc3"  # parses what was appended
    assert part.parsed
    assert part.blob == expected


def test_a_style_based_on_an_added_one_is_defined_on_the_parsed_part() -> None:
    from docx.opc.constants import RELATIONSHIP_TYPE as RT

    from spoold.convert.docx.styles import P, StyleLook, StyleSpec, define_style
    from spoold.convert.docx.template_styles import ensure_style

    toc1 = StyleSpec("toc 1", P, StyleLook(left_indent=0, space_after=2))
    child = StyleSpec("Child Entry", P, StyleLook(bold=True), base="toc 1")
    doc = template.open_default_template()
    ensure_style(doc, toc1)
    ensure_style(doc, child)
    fresh = docx.Document(io.BytesIO(template.default_template()))
    for spec in (toc1, child):
        define_style(fresh, spec, tune=False)
    assert fresh.styles["Child Entry"].base_style.name == "toc 1"
    part = doc.part.part_related_by(RT.STYLES)
    assert part.parsed
    assert part.blob == fresh.part.part_related_by(RT.STYLES).blob
