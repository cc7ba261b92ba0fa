"""A worker keeps WeasyPrint's font configuration warm across jobs, yet a job's PDF
never depends on the jobs before it: fonts a document brings (@font-face) go with it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from spoold.convert import ConversionContext, get_converter, load_converters
from spoold.convert.html import weasy

MONO = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")
STYLE = "@font-face { font-family: Brand; src: url(brand.ttf); }\n"
# Asks for the Brand font by name and falls back to the serif: a Brand font left
# over from an earlier job would change its text.
PAGE = """<!DOCTYPE html><html><head><style>
{style}body {{ font-family: Brand, "DejaVu Serif", serif; }}
</style></head><body><p>Set in Brand if there is one.</p></body></html>
"""

pytestmark = pytest.mark.skipif(not MONO.exists(), reason="needs the DejaVu fonts")


def convert(source: Path, out: Path) -> str:
    load_converters()
    converter = get_converter(source.suffix.lstrip("."), "pdf")
    assert converter is not None
    converter.convert(source, out, ConversionContext(job_root=source.parent))
    return hashlib.sha256(out.read_bytes()).hexdigest()


def folder(tmp_path: Path, name: str, style: str) -> Path:
    (tmp_path / name).mkdir()
    shutil.copyfile(MONO, tmp_path / name / "brand.ttf")
    page = tmp_path / name / "index.html"
    page.write_text(PAGE.format(style=style))
    return page


def test_a_document_after_one_with_its_own_fonts_is_laid_out_as_alone(tmp_path: Path) -> None:
    plain = folder(tmp_path, "plain", "")
    branded = folder(tmp_path, "branded", STYLE)

    alone = convert(plain, tmp_path / "alone.pdf")
    again = convert(plain, tmp_path / "again.pdf")  # on the warm configuration
    own = convert(branded, tmp_path / "own.pdf")
    after = convert(plain, tmp_path / "after.pdf")

    assert own != alone, "the document's own font was not used"
    assert again == alone
    assert after == alone


def test_the_configuration_is_kept_until_a_document_adds_fonts(tmp_path: Path) -> None:
    plain = folder(tmp_path, "plain", "")
    convert(plain, tmp_path / "one.pdf")
    first = weasy.font_config()
    convert(plain, tmp_path / "two.pdf")
    assert weasy.font_config() is first
    convert(folder(tmp_path, "branded", STYLE), tmp_path / "own.pdf")
    assert weasy.font_config() is not first
