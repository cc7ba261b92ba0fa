"""Helpers shared by the DOCX tests: run a converter in-process, read the result back."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import docx

from spoold.convert import ConversionContext, ConvertOptions, get_converter, load_converters

FIXTURES = Path(__file__).parent / "fixtures" / "docx"
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
NS = {"w": W_NS}

load_converters()


def convert(source: Path, out: Path, src_type: str = "md", **options: Any) -> ConversionContext:
    """Convert `source` to DOCX at `out` with the given ConvertOptions."""
    ctx = ConversionContext(job_root=source.parent, options=ConvertOptions(**options))
    converter = get_converter(src_type, "docx")
    assert converter is not None
    converter.convert(source, out, ctx)
    return ctx


def html_to_docx(tmp: Path, body: str, **options: Any) -> Path:
    """Write `body` as an HTML document in a job folder, convert it, return the DOCX."""
    job = tmp / "job"
    job.mkdir(exist_ok=True)
    source = job / "doc.html"
    source.write_text(
        f"<!DOCTYPE html><html><head><title>t</title></head><body>{body}</body></html>"
    )
    out = tmp / "doc.docx"
    convert(source, out, "html", **options)
    return out


def md_to_docx(tmp: Path, text: str, **options: Any) -> Path:
    job = tmp / "job"
    job.mkdir(exist_ok=True)
    source = job / "doc.md"
    source.write_text(text, encoding="utf-8")
    out = tmp / "doc.docx"
    convert(source, out, "md", **options)
    return out


def load(path: Path) -> Any:
    # Any: the tests poke at python-docx internals its type hints do not cover.
    return docx.Document(str(path))


def pandoc_blocks(path: Path) -> list[dict[str, Any]]:
    """The top-level blocks pandoc's DOCX reader finds, as pandoc JSON."""
    assert shutil.which("pandoc"), "pandoc is needed to read the DOCX back"
    out = subprocess.run(
        ["pandoc", "-f", "docx", "-t", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    blocks: list[dict[str, Any]] = json.loads(out)["blocks"]
    return blocks


def plain_text(node: Any) -> str:
    """The text of a pandoc JSON node (Str, Space, nested inlines and blocks)."""
    if isinstance(node, list):
        return "".join(plain_text(n) for n in node)
    if not isinstance(node, dict):
        return ""
    kind = node.get("t")
    if kind == "Str":
        return str(node["c"])
    if kind in ("Space", "SoftBreak", "LineBreak"):
        return " "
    if kind == "CodeBlock":
        return str(node["c"][1])
    return plain_text(node.get("c", []))
