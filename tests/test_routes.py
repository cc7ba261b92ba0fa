"""Every conversion route, through the daemon and through `spoold convert`, checked
with real readers (pdftotext, python-docx, pandoc where installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import docx
import pytest

from spoold.convert import load_converters, routes

from .conftest import cli, manifests, published, stage_file, wait_for

WORD = "Quillfeather"  # a word no template or theme contains
MARKDOWN = f"# Routes\n\nThe word {WORD} must survive.\n\n- one\n- two\n"
HTML = f"<!doctype html><html><head><title>Routes</title></head><body><h1>Routes</h1><p>The word {WORD} must survive.</p></body></html>"


def text_of(path: Path) -> str:
    """What a reader of the file sees, by the file's own kind."""
    if path.suffix == ".pdf":
        return subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
    if path.suffix == ".docx":
        body = "\n".join(p.text for p in docx.Document(str(path)).paragraphs)
        if shutil.which("pandoc"):
            back = subprocess.run(
                ["pandoc", "-f", "docx", "-t", "plain", str(path)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert WORD in back, "pandoc cannot read the word back"
        return body
    return path.read_text()


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sources")
    (folder / "doc.md").write_text(MARKDOWN)
    (folder / "doc.html").write_text(HTML)
    cli("convert", str(folder / "doc.md"), "-o", str(folder / "doc.pdf"))
    return {"md": folder / "doc.md", "html": folder / "doc.html", "pdf": folder / "doc.pdf"}


def _routes() -> list[tuple[str, str]]:
    load_converters()
    return routes()


def test_the_routes_are_the_ones_the_spec_promises() -> None:
    assert set(_routes()) == {
        ("md", "pdf"),
        ("md", "docx"),
        ("md", "html"),
        ("html", "pdf"),
        ("html", "docx"),
        ("html", "html"),
        ("pdf", "pdf"),
        ("pdf", "docx"),
    }


@pytest.mark.parametrize(("source", "target"), _routes())
def test_spoold_convert(sources: dict[str, Path], tmp_path: Path, source: str, target: str) -> None:
    out = tmp_path / f"out.{target}"
    cli("convert", str(sources[source]), "-o", str(out))
    assert WORD in text_of(out)


def test_every_route_through_the_daemon(
    make_spool, daemon_factory, sources: dict[str, Path]
) -> None:
    spool = make_spool(
        targets=["pdf", "docx", "html"],
        routes={"pdfs": {"targets": ["pdf", "docx"]}},
    )
    d = daemon_factory(spool)
    stage_file(spool, "from-md.md", sources["md"].read_bytes())
    stage_file(spool, "from-html.html", sources["html"].read_bytes())
    (spool / "inbox" / "pdfs").mkdir(exist_ok=True)
    stage_file(spool, "from-pdf.pdf", sources["pdf"].read_bytes(), sub="pdfs")
    wait_for(lambda: len(published(spool)) == 3, timeout=120, what="three jobs published")
    assert published(spool, "failed") == []
    seen = set()
    for m in manifests(spool):
        source = m["name"].rsplit(".", 1)[1]
        folder = next(p for p in published(spool) if p.name.endswith(m["job_id"]))
        for art in m["artifacts"]:
            target = art["path"].rsplit(".", 1)[1]
            assert WORD in text_of(folder / art["path"]), (source, target)
            seen.add((source, target))
    assert seen == set(_routes())
    assert d.stop() == 0
