"""Helpers the converters share are defined once and behave the same on every route."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import docx
import pytest
from pypdf import PdfReader

import spoold.convert
from spoold.convert import ConversionContext, ConvertOptions, get_converter, load_converters

load_converters()
CONVERT = Path(spoold.convert.__file__).parent
# The split-PDF pipeline has an owner of its own; this guards the rest of the package.
OTHER_OWNERS = ("parts",)


def test_no_helper_is_defined_twice_in_the_converters() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for path in sorted(CONVERT.rglob("*.py")):
        rel = path.relative_to(CONVERT)
        if rel.parts[0] in OTHER_OWNERS:
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                where[node.name].append(str(rel))
    twice = {name: files for name, files in where.items() if len(files) > 1}
    assert twice == {}, "one definition per helper, in the module it belongs to"


def convert(source: Path, target: str, **options: object) -> Path:
    out = source.with_suffix(f".{target}")
    ctx = ConversionContext(job_root=source.parent, options=ConvertOptions(**options))  # type: ignore[arg-type]
    converter = get_converter("md", target)
    assert converter is not None
    converter.convert(source, out, ctx)
    return out


def test_list_metadata_reads_the_same_in_pdf_and_docx(tmp_path: Path) -> None:
    src = tmp_path / "doc.md"
    src.write_text("---\nkeywords: [spool, print]\n---\n# Doc\n\nText.\n")
    metadata = {"author": ["Ada", "Grace"]}
    info = PdfReader(convert(src, "pdf", metadata=metadata)).metadata
    assert info is not None
    assert (info.author, info["/Keywords"]) == ("Ada, Grace", "spool, print")
    core = docx.Document(str(convert(src, "docx", metadata=metadata))).core_properties
    assert (core.author, core.keywords) == ("Ada, Grace", "spool, print")


@pytest.mark.parametrize("target", ["pdf", "docx"])
def test_deep_documents_leave_the_recursion_limit_as_it_was(tmp_path: Path, target: str) -> None:
    src = tmp_path / "deep.md"
    src.write_text("".join("> " * depth + "level\n\n" for depth in range(1, 60)))
    before = sys.getrecursionlimit()
    out = convert(src, target)
    assert out.stat().st_size > 0
    assert sys.getrecursionlimit() == before
