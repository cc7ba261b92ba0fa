"""Page sizes are defined once (spoold.spool.pages) for the PDF and DOCX routes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import docx
import pytest
from pydantic import ValidationError
from pypdf import PdfReader

from spoold.convert import ConversionContext, ConvertOptions, get_converter, load_converters
from spoold.errors import ErrorCode, JobError
from spoold.settings import JobDefaults
from spoold.spool import pages as page

load_converters()
MM_PER_PT = 25.4 / 72


def convert(target: str, source: Path, page_size: str) -> Path:
    out = source.with_suffix(f".{target}")
    ctx = ConversionContext(job_root=source.parent, options=ConvertOptions(page_size=page_size))
    converter = get_converter("md", target)
    assert converter is not None
    converter.convert(source, out, ctx)
    return out


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "doc.md"
    src.write_text("# Page\n\nText.\n")
    return src


@pytest.mark.parametrize("name", page.PAGE_SIZE_NAMES)
@pytest.mark.parametrize("orientation", ["", " landscape"])
def test_pdf_and_docx_pages_have_the_size_page_py_gives(
    source: Path, name: str, orientation: str
) -> None:
    size = page.parse_page_size(name + orientation)
    pdf_box = PdfReader(convert("pdf", source, name + orientation)).pages[0].mediabox
    assert float(pdf_box.width) * MM_PER_PT == pytest.approx(size.width_mm, abs=0.1)
    assert float(pdf_box.height) * MM_PER_PT == pytest.approx(size.height_mm, abs=0.1)
    section = docx.Document(str(convert("docx", source, name + orientation))).sections[0]
    assert section.page_width.mm == pytest.approx(size.width_mm, abs=0.1)
    assert section.page_height.mm == pytest.approx(size.height_mm, abs=0.1)


def test_one_table_decides_which_sizes_every_route_accepts(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Take A5 out of page.py's table: no route may still accept it from a list of its own.
    names = tuple(n for n in page.PAGE_SIZE_NAMES if n != "A5")
    monkeypatch.setattr(page, "PAGE_SIZE_NAMES", names)
    messages = set()
    for target in ("pdf", "docx"):
        with pytest.raises(JobError) as info:
            convert(target, source, "A5")
        assert info.value.code is ErrorCode.INPUT_INVALID
        messages.add(info.value.message)
        assert not source.with_suffix(f".{target}").exists()
    # spool.toml, job.json defaults and --page-size are checked by settings: the same table.
    with pytest.raises(ValidationError) as settings_error:
        JobDefaults(page_size="A5")
    messages.add(settings_error.value.errors()[0]["ctx"]["error"].args[0])
    assert JobDefaults(page_size="a6 Landscape").page_size == "a6 Landscape"
    assert messages == {
        "unknown page_size 'A5'; allowed: A3, A4, A6, B4, B5, Letter, Legal, Ledger"
        " (optionally followed by 'landscape')"
    }


def test_settings_check_page_sizes_without_loading_the_converters() -> None:
    # The CLI validates flags with spoold.settings: it must not pay for lxml or WeasyPrint.
    code = "import sys, spoold.settings; print(sorted({'lxml', 'weasyprint'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
