"""PDF by parts: a long document split, laid out in separate processes, merged.

Every check is on real files: the merged PDF is read back with pypdf and pdftotext and
compared with the unsplit layout of the same HTML (spoold's own render_pdf).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from spoold.convert import ConversionContext, ConvertOptions
from spoold.convert.html import parse_html, render_pdf
from spoold.convert.markdown import markdown_to_html
from spoold.convert.parts.executor import LocalProcessExecutor
from spoold.convert.parts.layout import layout_part
from spoold.convert.parts.pipeline import PartsOutcome, render_pdf_in_parts, split_document
from spoold.convert.parts.plan import plan_parts
from spoold.errors import JobError
from spoold.spool import parts as tasks
from spoold.spool.parts import PartResult, PartsPolicy, PartTask
from tests.bigdoc import export_table, release_notes
from tests.conftest import pid_alive, wait_for

pytestmark = pytest.mark.slow

SMALL_PARTS = PartsPolicy(split_above=100_000, part_cost=120_000)
TINY_PARTS = PartsPolicy(split_above=40_000, part_cost=50_000)
TABLE_PARTS = PartsPolicy(split_above=100_000, part_cost=400_000)


@dataclass
class Layouts:
    whole: Path
    parts: Path
    again: Path
    outcome: PartsOutcome
    html: str


def _convert(
    html: str, folder: Path, name: str, theme: str = "default", policy: PartsPolicy = SMALL_PARTS
) -> tuple[Path, Any]:
    ctx = ConversionContext(job_root=folder, options=ConvertOptions(theme=theme))
    out = folder / f"{name}.pdf"
    outcome = render_pdf_in_parts(
        html, ctx, folder, out, LocalProcessExecutor(2), folder / f"{name}-work", policy
    )
    return out, outcome


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> Layouts:
    folder = tmp_path_factory.mktemp("bigdoc")
    html = markdown_to_html(release_notes(90), "notes")
    whole = folder / "whole.pdf"
    render_pdf(html, ConversionContext(job_root=folder), folder, whole)
    with pytest.MonkeyPatch.context() as patch:
        # Stamps in chunks of 40 pages, so page numbers cross chunk boundaries too.
        patch.setattr(tasks, "STAMP_PAGES_PER_TASK", 40)
        parts, outcome = _convert(html, folder, "parts")
        again, _ = _convert(html, folder, "again")
    return Layouts(whole, parts, again, outcome, html)


def page_text(path: Path, page: int) -> str:
    return subprocess.run(
        ["pdftotext", "-f", str(page), "-l", str(page), str(path), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def words_without_footers(path: Path) -> list[str]:
    text = subprocess.run(
        ["pdftotext", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    lines = [ln for ln in text.splitlines() if not re.fullmatch(r"\s*\d+ / \d+\s*", ln)]
    return " ".join(lines).split()


def outline(path: Path) -> list[tuple[int, str, int]]:
    """(depth, title, page index) of every outline entry, in order."""
    reader = PdfReader(path)
    out: list[tuple[int, str, int]] = []

    def walk(items: list[Any], depth: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
            else:
                out.append((depth, str(item.title), reader.get_destination_page_number(item)))

    walk(reader.outline, 0)
    return out


def internal_links(path: Path) -> list[tuple[int, str]]:
    """(page index, destination name) of every named-destination link annotation."""
    reader = PdfReader(path)
    links = []
    for number, page in enumerate(reader.pages):
        for ref in page.get("/Annots", []):
            annot = ref.get_object()
            if "/Dest" in annot:
                links.append((number, str(annot["/Dest"])))
            elif "/A" in annot and annot["/A"].get("/S") == "/GoTo":
                links.append((number, str(annot["/A"]["/D"])))
    return links


def test_a_long_document_is_laid_out_in_three_or_more_parts(layouts: Layouts) -> None:
    assert len(layouts.html) > 250_000
    assert len(layouts.outcome.parts) >= 3
    assert len(layouts.outcome.stamps) >= 2
    whole = len(PdfReader(layouts.whole).pages)
    merged = len(PdfReader(layouts.parts).pages)
    assert merged == sum(p.pages for p in layouts.outcome.parts)
    assert abs(merged - whole) <= 0.03 * whole


def test_page_numbers_run_on_across_parts(layouts: Layouts) -> None:
    total = len(PdfReader(layouts.parts).pages)
    footers = [page_text(layouts.parts, n).split()[-3:] for n in range(1, total + 1)]
    assert footers == [[str(n), "/", str(total)] for n in range(1, total + 1)]


def test_the_text_is_the_unsplit_text_word_for_word(layouts: Layouts) -> None:
    assert words_without_footers(layouts.parts) == words_without_footers(layouts.whole)


def test_one_outline_equal_to_the_unsplit_one(layouts: Layouts) -> None:
    merged, whole = outline(layouts.parts), outline(layouts.whole)
    assert [(d, t) for d, t, _ in merged] == [(d, t) for d, t, _ in whole]
    assert len(merged) > 150
    # Every entry opens the page that shows its heading.
    for _, title, page in merged[::15]:
        assert title in page_text(layouts.parts, page + 1)


def test_links_across_parts_reach_their_heading(layouts: Layouts) -> None:
    reader = PdfReader(layouts.parts)
    dests = reader.named_destinations
    links = internal_links(layouts.parts)
    assert len(links) == len(internal_links(layouts.whole))
    assert layouts.outcome.merge.links_across_parts > 20
    assert all(name in dests for _, name in links)
    for _, name in links:
        if name.startswith("release-0"):
            page = reader.get_destination_page_number(dests[name])
            number = name.removeprefix("release-0")
            assert f"Release 0.{number}" in page_text(layouts.parts, page + 1)


def test_metadata_is_the_documents(layouts: Layouts) -> None:
    merged, whole = PdfReader(layouts.parts), PdfReader(layouts.whole)
    assert merged.metadata is not None and whole.metadata is not None
    assert merged.metadata.title == "Release history"
    for key in ("/Title", "/Author", "/Keywords", "/CreationDate", "/Producer", "/Creator"):
        assert merged.metadata.get(key) == whole.metadata.get(key), key
    assert merged.trailer["/Root"]["/Lang"] == "en"


def test_the_same_input_gives_the_same_bytes(layouts: Layouts) -> None:
    first = hashlib.sha256(layouts.parts.read_bytes()).hexdigest()
    assert first == hashlib.sha256(layouts.again.read_bytes()).hexdigest()


def test_a_long_table_is_cut_between_rows_with_its_header_in_every_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = 2000
    monkeypatch.setattr(tasks, "STAMP_PAGES_PER_TASK", 30)
    pdf, outcome = _convert(export_table(rows), tmp_path, "table", "handout", TABLE_PARTS)
    assert len(outcome.parts) >= 3 and len(outcome.stamps) >= 2
    total = len(PdfReader(pdf).pages)
    header = ["id", "date", "account", "item", "qty", "amount"]
    seen: list[int] = []
    rows_per_page: list[int] = []
    pages_with_rows = 0
    for n in range(1, total + 1):
        text = page_text(pdf, n)
        if n > 1:
            assert text.split()[0] == "Export"  # the running header; page 1 is :first
        assert f"Page {n} of {total}" in text
        ids = [int(m) for m in re.findall(r"^(\d+)\n\n20\d\d-", text, re.M)]
        if ids:
            pages_with_rows += 1
            assert [w for w in text.split() if w in header][:6] == header
        seen.extend(ids)
        rows_per_page.append(len(ids))
    assert page_text(pdf, 1).split().count("Export") == 1  # the h1; no running header
    assert pages_with_rows >= total - 1  # the last page may hold only the closing text
    # Parts inside the table end full pages: only the end of the part where the table
    # begins (text above it) and the end of the table leave a page partly empty.
    full = max(rows_per_page)
    short = [n for n, c in enumerate(rows_per_page[1:-1], 2) if 0 < c < full - 1]
    assert len(short) <= 1, (short, rows_per_page)
    assert seen == list(range(1, rows + 1))  # every row once, in order
    # The table's caption and id appear once: in the first part.
    assert pdftotext_count(pdf, "All rows") == 1
    assert "data" in PdfReader(pdf).named_destinations


def pdftotext_count(path: Path, phrase: str) -> int:
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True).stdout
    return text.count(phrase)


def test_page_dependent_css_keeps_the_document_whole() -> None:
    html = markdown_to_html(release_notes(40), "notes").replace(
        "</head>", "<style>h2 { string-set: chapter content() }</style></head>"
    )
    plan = plan_parts(parse_html(html), SMALL_PARTS)
    assert not plan.split
    assert "string-set" in plan.reason


def test_a_small_document_is_not_split(tmp_path: Path) -> None:
    html = markdown_to_html(release_notes(3), "notes")
    ctx = ConversionContext(job_root=tmp_path)
    split = split_document(html, ctx, tmp_path, tmp_path / "work", PartsPolicy())
    assert split.tasks == [] and "under" in split.plan.reason


def die_once_then_lay_out(task: PartTask) -> PartResult:
    """Lay the part out, but the first time for part 1 kill the process doing it."""
    mark = Path(task.output_path).with_suffix(".killed")
    if task.index == 1 and not mark.exists():
        mark.write_text("killed once\n")
        os.kill(os.getpid(), signal.SIGKILL)
    return layout_part(task)


def hang_in_part_one(task: PartTask) -> PartResult:
    """Part 1 never finishes (it says where it runs first); the others lay out."""
    if task.index == 1:
        Path(task.output_path).with_suffix(".pid").write_text(str(os.getpid()))
        while True:
            signal.pause()
    return layout_part(task)


def _tiny_split(tmp_path: Path) -> list[PartTask]:
    html = markdown_to_html(release_notes(30), "notes")
    ctx = ConversionContext(job_root=tmp_path)
    tasks = split_document(html, ctx, tmp_path, tmp_path / "work", TINY_PARTS).tasks
    assert len(tasks) >= 2
    return tasks


def test_cancel_stops_every_part_of_a_split_job(tmp_path: Path) -> None:
    tasks = _tiny_split(tmp_path)
    cancel = threading.Event()
    executor = LocalProcessExecutor(1, cancel=cancel, layout=hang_in_part_one)
    results: list[PartResult] = []
    runner = threading.Thread(target=lambda: results.extend(executor.run(tasks)))
    runner.start()
    pid_file = tmp_path / "work" / "part-0001.pid"
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 120, "part 1 to start"))
    cancel.set()
    runner.join(timeout=60)
    assert not runner.is_alive()
    assert results[0].error is None  # done before the cancel
    assert [r.error and r.error.code for r in results[1:]] == ["cancelled"] * (len(tasks) - 1)
    wait_for(lambda: not pid_alive(pid), 30, "the cancelled part's process to end")
    assert not Path(tasks[-1].output_path).exists()  # queued parts never started


def test_a_part_over_its_timeout_is_stopped(tmp_path: Path) -> None:
    tasks = _tiny_split(tmp_path)
    executor = LocalProcessExecutor(2, part_timeout_s=20, layout=hang_in_part_one)
    results = executor.run(tasks)
    error = results[1].error
    assert error is not None and error.code == "timeout" and "20 s" in error.message
    assert all(r.error is None for i, r in enumerate(results) if i != 1)
    pid = int((tmp_path / "work" / "part-0001.pid").read_text())
    wait_for(lambda: not pid_alive(pid), 30, "the timed-out part's process to end")


def test_a_part_whose_process_is_killed_is_laid_out_again(tmp_path: Path) -> None:
    html = markdown_to_html(release_notes(30), "notes")
    ctx = ConversionContext(job_root=tmp_path)
    split = split_document(html, ctx, tmp_path, tmp_path / "work", TINY_PARTS)
    assert len(split.tasks) >= 2
    results = LocalProcessExecutor(2, layout=die_once_then_lay_out).run(split.tasks)
    assert [r.error for r in results] == [None] * len(split.tasks)
    assert (tmp_path / "work" / "part-0001.killed").exists()
    assert all(len(PdfReader(r.output_path).pages) == r.pages > 0 for r in results)


def allocate_then_lay_out(task: PartTask) -> PartResult:
    """A part that needs more memory than its process may have."""
    big = bytearray(768 << 20)
    return PartResult(task.index, task.output_path, pages=len(big))


def test_a_part_over_the_memory_limit_fails_the_job_clearly(tmp_path: Path) -> None:
    # The part never reaches WeasyPrint: fontconfig started under a tiny address-space
    # limit can rewrite the system's font cache with half of the fonts missing.
    html = markdown_to_html(release_notes(30), "notes")
    ctx = ConversionContext(job_root=tmp_path)
    executor = LocalProcessExecutor(2, memory_limit_mb=512, layout=allocate_then_lay_out)
    with pytest.raises(JobError) as info:
        render_pdf_in_parts(
            html, ctx, tmp_path, tmp_path / "out.pdf", executor, tmp_path / "work", TINY_PARTS
        )
    assert info.value.code.value == "resource_limit"
    assert "memory" in info.value.message and "512 MB" in info.value.message
    assert not (tmp_path / "out.pdf").exists()


def test_parts_come_in_multiples_of_the_workers_and_weigh_about_the_same() -> None:
    html = markdown_to_html(release_notes(90), "notes")
    plan = plan_parts(parse_html(html), PartsPolicy(100_000, 100_000, workers=2))
    costs = [sum(u.cost for u in part) for part in plan.parts]
    assert len(costs) >= 4 and len(costs) % 2 == 0
    assert max(costs) < 1.3 * min(costs)


def chapters_with_a_section(chapter_at: int, section_at: int, blocks: int = 40) -> str:
    """Paragraphs of equal weight; an <h2> and later an <h3> before the given ones."""
    body = []
    for i in range(blocks):
        body += ["<h2>Chapter</h2>"] if i == chapter_at else []
        body += ["<h3>Section</h3>"] if i == section_at else []
        body.append(f"<p>{'word ' * 200}</p>")
    return "<html><head></head><body>" + "".join(body) + "</body></html>"


def test_a_medium_split_cuts_for_balance_a_big_one_for_the_chapter() -> None:
    # The <h2> is 10 % short of half the document, the <h3> within 1 %.
    html = chapters_with_a_section(chapter_at=18, section_at=20)
    medium = PartsPolicy(split_above=1_000_000, idle_split_above=10_000, idle_workers=1)
    big = PartsPolicy(split_above=30_000, part_cost=25_000)
    first = {}
    for label, policy in (("medium", medium), ("big", big)):
        plan = plan_parts(parse_html(html), policy)
        assert len(plan.parts) == 2, label
        first[label] = plan.parts[1][0].elements[0].tag
    # Two parts on two idle workers: the longer part is the job's wait, so the cut
    # before the <h3> wins; many parts of a big document still start at chapters.
    assert first == {"medium": "h3", "big": "h2"}


def test_a_table_part_holds_one_slice_of_the_table() -> None:
    plan = plan_parts(parse_html(export_table(2000)), TABLE_PARTS)
    slices = [[u.rows for u in part if u.rows is not None] for part in plan.parts]
    assert all(len(s) == 1 for s in slices)
    assert slices[0][0][0] == 0 and slices[-1][0][1] == 2000
    assert all(a[0][1] == b[0][0] for a, b in itertools.pairwise(slices))


def test_a_document_wrapped_in_one_container_is_cut_inside_it(tmp_path: Path) -> None:
    html = markdown_to_html(release_notes(40), "notes")
    html = html.replace("<body>", '<body><div class="page" id="top">').replace(
        "</body>", "</div></body>"
    )
    whole = tmp_path / "whole.pdf"
    render_pdf(html, ConversionContext(job_root=tmp_path), tmp_path, whole)
    pdf, outcome = _convert(html, tmp_path, "wrapped", policy=TINY_PARTS)
    assert len(outcome.parts) >= 2
    assert words_without_footers(pdf) == words_without_footers(whole)
    reader = PdfReader(pdf)
    # At most one short page per part boundary; the container's id is defined once.
    extra = len(reader.pages) - len(PdfReader(whole).pages)
    assert 0 <= extra <= len(outcome.parts) - 1
    assert reader.get_destination_page_number(reader.named_destinations["top"]) == 0


def test_a_bad_theme_fails_before_any_part_is_written(tmp_path: Path) -> None:
    html = markdown_to_html(release_notes(3), "notes")
    ctx = ConversionContext(job_root=tmp_path, options=ConvertOptions(theme="glossy"))
    with pytest.raises(JobError) as info:
        split_document(html, ctx, tmp_path, tmp_path / "work", TINY_PARTS)
    assert info.value.code.value == "input_invalid" and "glossy" in info.value.message
    assert not (tmp_path / "work").exists()


def test_the_stamp_is_split_over_the_workers_when_long_enough() -> None:
    # One chunk per worker once each gets 6 pages; at most 200 pages per chunk.
    assert tasks.stamp_ranges(379, chunkable=True, workers=2) == [(1, 190), (191, 189)]
    assert tasks.stamp_ranges(11, chunkable=True, workers=2) == [(1, 11)]
    assert tasks.stamp_ranges(14, chunkable=True, workers=2) == [(1, 7), (8, 7)]
    assert tasks.stamp_ranges(60, chunkable=True, workers=4) == [
        (1, 15),
        (16, 15),
        (31, 15),
        (46, 15),
    ]
    assert len(tasks.stamp_ranges(1035, chunkable=True, workers=2)) == 6
    # A total printed in a counter style cannot be faked per chunk: one stamp.
    assert tasks.stamp_ranges(379, chunkable=False, workers=2) == [(1, 379)]
    ranges = tasks.stamp_ranges(1035, chunkable=True, workers=4)
    assert sum(n for _, n in ranges) == 1035 and ranges[0][0] == 1


def _center_pixel(pdf: Path, tmp_path: Path) -> tuple[int, ...]:
    from PIL import Image

    png = tmp_path / f"{pdf.stem}-page"
    subprocess.run(["pdftoppm", "-r", "20", "-png", "-f", "1", "-l", "1", pdf, png], check=True)
    with Image.open(next(tmp_path.glob(f"{pdf.stem}-page*.png"))) as img:
        rgb = img.convert("RGB")
        return tuple(rgb.getpixel((rgb.width // 2, rgb.height // 2)))


def test_parts_honour_presentational_hints_like_the_whole_layout(tmp_path: Path) -> None:
    # `<td bgcolor>` as old HTML exports write it: a red cell filling most of the page.
    cell = '<table width="100%"><tr><td bgcolor="#ff0000" height="500">cell</td></tr></table>'
    html = f"<html><head><title>t</title></head><body><h1>Export</h1>{cell}</body></html>"
    whole = tmp_path / "whole.pdf"
    render_pdf(html, ConversionContext(job_root=tmp_path), tmp_path, whole)
    source = tmp_path / "part.html"
    source.write_text(html)
    part = layout_part(PartTask(0, str(source), str(tmp_path / "part.pdf")))
    assert part.error is None, part.error
    assert _center_pixel(whole, tmp_path) == (255, 0, 0)
    assert _center_pixel(tmp_path / "part.pdf", tmp_path) == (255, 0, 0)


@pytest.mark.parametrize("bodies", [0, 1, 3])
def test_table_slices_hold_every_row_once_whatever_the_markup(bodies: int) -> None:
    from spoold.convert.parts.split import build_parts

    rows = [f"<tr><td>r{i}</td><td>{'cell text ' * 20}</td></tr>" for i in range(300)]
    if bodies:  # rows in one or several <tbody>, or straight in <table>
        step = -(-len(rows) // bodies)
        chunks = [rows[i : i + step] for i in range(0, len(rows), step)]
        body = "".join("<tbody>" + "".join(c) + "</tbody>" for c in chunks)
    else:
        body = "".join(rows)
    html = f"<html><head></head><body><table><thead><tr><th>h</th></tr></thead>{body}</table>"
    root = parse_html(html + "</body></html>")
    plan = plan_parts(root, PartsPolicy(split_above=10_000, part_cost=40_000))
    trees = build_parts(root, plan.parts)
    assert len(trees) >= 3
    cells = [td.text for tree in trees for td in tree.iter("td") if td.text.startswith("r")]
    assert cells == [f"r{i}" for i in range(300)], "every row once, in order"
    assert all(len(list(tree.iter("th"))) == 1 for tree in trees), "the header in every part"
