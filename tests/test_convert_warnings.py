"""Warnings about resources name them as the document wrote them, once, and say why.

These are the `warnings` the worker copies into manifest.json (issue 14): a person reads
"resource 'images/missing.png' not loaded: not found", not WeasyPrint's "Failed to load
image at 'data:,'".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spoold.convert import ConversionContext, ConvertOptions, get_converter, load_converters

load_converters()

# Written as a person would; the reason each warning must give.
MISSING = {
    "images/missing.png": "not found",
    "../secret.png": "outside the job folder",
    "https://example.com/logo.png": "not allow-listed",
    "bilder/größe.png": "not found",  # markdown-it percent-encodes it: still shown as written
}
CSS_MISSING = {"images/missing-bg.png": "not found", "fonts/gone.woff2": "not found"}
# A PNG signature and nothing after it: the header looks fine, layout cannot decode it.
BROKEN = "images/broken.png"
STYLE = (
    "<style>@font-face { font-family: Gone; src: url(fonts/gone.woff2) format('woff2') }\n"
    "p.bg { background: url(images/missing-bg.png) no-repeat; font-family: Gone }</style>"
)

MARKDOWN = f"""# Report

![missing](images/missing.png) and again ![missing](images/missing.png)

![outside](../secret.png) ![remote](https://example.com/logo.png)

![umlaut](bilder/größe.png) ![broken]({BROKEN})

{STYLE}

<p class="bg">Background.</p>
"""

HTML = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Report</title>{STYLE}</head>
<body>
<h1>Report</h1>
<p><img src="images/missing.png" alt="missing"> <img src="images/missing.png" alt="again">
<img src="../secret.png" alt="outside"> <img src="https://example.com/logo.png" alt="remote">
<img src="bilder/größe.png" alt="umlaut"> <img src="{BROKEN}" alt="broken"></p>
<p class="bg" style="background-image: url(images/missing-bg.png)">Background.</p>
</body></html>
"""


@pytest.fixture
def job(tmp_path: Path) -> Path:
    job = tmp_path / "job"
    (job / "images").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(b"never read: outside the job")
    (job / BROKEN).write_bytes(b"\x89PNG\r\n\x1a\n")
    (job / "doc.md").write_text(MARKDOWN, encoding="utf-8")
    (job / "doc.html").write_text(HTML, encoding="utf-8")
    return job


def warnings_of(job: Path, source: str, target: str) -> list[str]:
    src = job / source
    ctx = ConversionContext(job_root=job, options=ConvertOptions())
    converter = get_converter(src.suffix.lstrip("."), target)
    assert converter is not None
    converter.convert(src, job.parent / f"out.{target}", ctx)
    assert (job.parent / f"out.{target}").stat().st_size > 0
    return ctx.warnings


def naming(warnings: list[str], written: str) -> list[str]:
    return [w for w in warnings if f"'{written}'" in w]


@pytest.mark.parametrize(
    ("source", "target"), [("doc.md", "pdf"), ("doc.html", "pdf"), ("doc.md", "docx")]
)
def test_each_resource_is_named_as_written_once_with_the_reason(
    job: Path, source: str, target: str
) -> None:
    warnings = warnings_of(job, source, target)
    assert not [w for w in warnings if "data:" in w], warnings
    expected = dict(MISSING)
    if target == "pdf":
        expected |= CSS_MISSING  # DOCX does not read CSS
    for written, reason in expected.items():
        about = naming(warnings, written)
        assert len(about) == 1, (written, warnings)
        assert reason in about[0], about
    if target == "pdf":
        assert len(naming(warnings, BROKEN)) == 1, warnings
    # Every warning is about one of the document's resources: the missing font file is
    # not reported a second time by its family name.
    known = [*expected, BROKEN]
    assert all(any(f"'{w}'" in line for w in known) for line in warnings), warnings


def test_md_to_html_output_keeps_no_reference_to_the_missing_files(job: Path) -> None:
    warnings = warnings_of(job, "doc.md", "html")
    for written, reason in (MISSING | CSS_MISSING).items():
        assert reason in naming(warnings, written)[0]
    html = (job.parent / "out.html").read_text(encoding="utf-8")
    assert "missing.png" not in html and "missing-bg.png" not in html


def test_a_font_face_is_dropped_only_when_none_of_its_sources_loads(tmp_path: Path) -> None:
    (tmp_path / "present.woff2").write_bytes(b"wOF2 not really a font")
    src = tmp_path / "doc.html"
    src.write_text(
        "<style>@font-face { font-family: Gone; src: url(gone.woff2), url(gone.ttf) }\n"
        "@font-face { font-family: Local; src: url(gone.woff2), local('DejaVu Sans') }\n"
        "@font-face { font-family: Here; src: url(gone.ttf), url(present.woff2) }</style>"
        "<p>Text</p>"
    )
    ctx = ConversionContext(job_root=tmp_path)
    converter = get_converter("html", "html")
    assert converter is not None
    converter.convert(src, tmp_path / "out.html", ctx)
    html = (tmp_path / "out.html").read_text(encoding="utf-8")
    assert "Gone" not in html
    assert "font-family: Local" in html and 'local("DejaVu Sans")' in html
    assert "font-family: Here" in html and "data:font/woff2;base64," in html
    assert len(naming(ctx.warnings, "gone.woff2")) == 1
