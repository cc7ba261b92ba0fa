"""Documents the tests have never seen (bench/heldout/): what survives, per document.

The held-out set is of the same kinds as tests/corpus/dialects/ (kramdown, MkDocs,
Docusaurus, Hugo, MultiMarkdown, Japanese, Persian, HTML with its own stylesheet) but
was not looked at while the dialect support was written. Markdown: the share of source
blocks pandoc finds again in the DOCX (macro mean, as bench/bench_corpus.py), the share
of the HTML's words pdftotext finds in the PDF, and dialect markup printed in the PDF or
the DOCX. HTML: first-page pixels against WeasyPrint alone (40 dpi) and page counts.
Issue 21's targets: macro >= 0.97, PDF words >= 0.995, no markup, pixels <= 1 %.

Other Markdown files may be given as arguments (pandoc's doc/lua-filters.md, say).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import ROOT, report, temp_dir

sys.path.insert(0, str(ROOT))

import lxml.html
from PIL import ImageChops

from spoold.convert import ConversionContext, get_converter, load_converters
from tests.corpus_measure import measure
from tests.dialect_measure import (
    docx_text,
    page_one_pixels,
    pdf_text,
    printed_markup,
    word_share,
    words,
)

BENCH = "heldout"
HELDOUT = Path(__file__).with_name("heldout")


def pdf_words(source: Path, out: Path) -> float:
    html = out / f"{source.stem}.html"
    get_converter("md", "html").convert(source, html, ConversionContext(job_root=source.parent))
    root = lxml.html.fromstring(html.read_bytes())
    for el in root.xpath("//head|//style|//script"):
        el.drop_tree()
    return word_share(words(root.text_content()), words(pdf_text(out / f"{source.stem}.pdf")))


def markdown_row(source: Path, out: Path) -> tuple[str, float, float, list[str]]:
    m = measure(source, out)  # writes STEM.html, .pdf and .docx into out
    text = source.read_text(encoding="utf-8")
    printed = printed_markup(text, pdf_text(out / f"{source.stem}.pdf"))
    printed += printed_markup(text, docx_text(out / f"{source.stem}.docx"))
    return source.name, m.macro, pdf_words(source, out), sorted(set(printed))


def html_row(source: Path, out: Path) -> tuple[str, float, int, int, str]:
    import weasyprint
    from pypdf import PdfReader

    ctx = ConversionContext(job_root=source.parent)
    ours = out / f"{source.stem}.pdf"
    result = get_converter("html", "pdf").convert(source, ours, ctx)
    bare = weasyprint.HTML(filename=str(source)).render(presentational_hints=True)
    bare_pdf = out / f"{source.stem}-bare.pdf"
    bare.write_pdf(bare_pdf)
    a = page_one_pixels(ours, ours.with_suffix(""))
    b = page_one_pixels(bare_pdf, bare_pdf.with_suffix(""))
    mask = ImageChops.difference(a, b).convert("L").point(lambda v: 255 if v > 16 else 0)
    share = mask.histogram()[255] / (a.size[0] * a.size[1]) if a.size == b.size else 1.0
    return source.name, share, len(PdfReader(ours).pages), len(bare.pages), result.layout or ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("extra", nargs="*", type=Path, help="more Markdown files to measure")
    args = parser.parse_args()
    load_converters()
    sources = sorted(HELDOUT.glob("*.md")) + list(args.extra)
    rows = ["| document | docx macro | pdf words | markup printed |", "|---|---|---|---|"]
    macros, shares, clean = [], [], 0
    with temp_dir() as tmp:
        for source in sources:
            name, macro, share, printed = markdown_row(source, Path(tmp))
            macros.append(macro)
            shares.append(share)
            clean += not printed
            rows.append(f"| {name} | {macro:.3f} | {share:.4f} | {', '.join(printed) or '-'} |")
        print("\n".join(rows) + "\n")
        rows = ["| HTML | page-1 pixels differing | pages (spoold / WeasyPrint) | layout |"]
        rows.append("|---|---|---|---|")
        for source in sorted(HELDOUT.glob("*/*.html")):
            name, diff, ours, bare, layout = html_row(source, Path(tmp))
            rows.append(f"| {name} | {diff * 100:.3f} % | {ours} / {bare} | {layout} |")
            report(BENCH, f"{name} pixel difference %", round(diff * 100, 3), target="<= 1")
        print("\n".join(rows) + "\n")
    report(BENCH, "docx macro mean (all)", round(sum(macros) / len(macros), 4), target=">= 0.97")
    report(BENCH, "pdf words (lowest)", round(min(shares), 4), target=">= 0.995")
    report(BENCH, "documents with no markup printed", f"{clean}/{len(sources)}")


if __name__ == "__main__":
    main()
