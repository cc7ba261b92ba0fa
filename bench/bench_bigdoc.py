"""Big documents: one bare WeasyPrint call against PDF by parts on 2 local processes.

(a) A ~600-page Markdown changelog (pass real ones with --changelog; several are
    concatenated in the order given; without any, a generated release history of the
    same size is used and the output says so) becomes HTML through spoold's md->html
    converter. Then, on that same HTML file: one bare `weasyprint.HTML(...).write_pdf()`
    in a child process, and spoold.convert.parts (split, 2 part processes under
    RLIMIT_AS = 1024 MB, stamp, merge). Printed: both times and their ratio (target
    <= 0.6), the bare call's peak RSS and each part process's, page counts, whether the
    pdftotext words are identical (page-number lines aside), whether the outlines are
    equal, and whether every internal link resolves.
(b) A 30,000-row HTML table (a generated data export): parts' time and peak RSS per
    part; the unsplit call runs only under an address-space cap (--table-cap-mb, 2048 by
    default) and is reported as failing or not.

Figures are printed and appended to bench/results/latest.ndjson; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import ROOT, report, temp_dir

from spoold.convert import ConversionContext, ConvertOptions, get_converter, load_converters
from spoold.convert.parts.executor import LocalProcessExecutor
from spoold.convert.parts.pipeline import finish, split_document
from spoold.spool.parts import PartsPolicy

BENCH = "bigdoc"
TARGET_MD_BYTES = 1_300_000
BARE_CHILD = """
import json, resource, sys, time
import weasyprint
t0 = time.monotonic()
try:
    doc = weasyprint.HTML(filename=sys.argv[1]).render()
    doc.write_pdf(sys.argv[2])
    ok, pages, error = True, len(doc.pages), None
except MemoryError:
    ok, pages, error = False, 0, "MemoryError"
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"ok": ok, "pages": pages, "error": error, "wall_s": time.monotonic() - t0,
    "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024}))
"""


def markdown_source(paths: list[Path]) -> tuple[str, str]:
    """(Markdown text, what it is)."""
    if paths:
        text = "\n\n".join(p.read_text(encoding="utf-8") for p in paths)
        return text, "real: " + " + ".join(p.name for p in paths)
    sys.path.insert(0, str(ROOT))
    from tests.bigdoc import release_notes

    sections = 60
    text = release_notes(sections)
    while len(text) < TARGET_MD_BYTES:
        sections = int(sections * TARGET_MD_BYTES / len(text)) + 1
        text = release_notes(sections)
    return text, f"generated: tests.bigdoc.release_notes({sections})"


def with_contents(text: str, folder: Path) -> tuple[str, int]:
    """`text` with a contents list up front linking every release (h2) heading.

    A reader of 400 pages of changelog wants one, and the real changelogs have no
    internal links of their own: these links run from the first part into all others.
    """
    import lxml.html

    root = lxml.html.fromstring(markdown_to_html_file(text, folder).read_bytes())
    items = []
    for h in root.iter("h2"):
        if h.get("id"):
            title = re.sub(r"([\\`*_\[\]<>#])", r"\\\1", " ".join(h.text_content().split()))
            items.append(f"- [{title}](#{h.get('id')})")
    return "# Contents\n\n" + "\n".join(items) + "\n\n" + text, len(items)


def markdown_to_html_file(text: str, folder: Path) -> Path:
    load_converters()
    source = folder / "CHANGELOG.md"
    source.write_text(text, encoding="utf-8")
    out = folder / "CHANGELOG.html"
    converter = get_converter("md", "html")
    assert converter is not None
    converter.convert(source, out, ConversionContext(job_root=folder))
    return out


def bare_layout(html: Path, pdf: Path, cap_mb: int | None, timeout: float) -> dict[str, Any]:
    """One bare WeasyPrint call in a child process, optionally under RLIMIT_AS."""

    def limit() -> None:
        if cap_mb:
            resource.setrlimit(resource.RLIMIT_AS, (cap_mb << 20, cap_mb << 20))

    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", BARE_CHILD, str(html), str(pdf)],
            capture_output=True,
            text=True,
            preexec_fn=limit,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timeout after {timeout:.0f} s", "total_s": timeout}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:160]
        return {
            "ok": False,
            "error": f"exit {proc.returncode}: {tail}",
            "total_s": time.monotonic() - t0,
        }
    result: dict[str, Any] = json.loads(lines[-1])
    result["total_s"] = time.monotonic() - t0
    return result


def parts_layout(
    html: Path, pdf: Path, work: Path, cap_mb: int, policy: PartsPolicy
) -> dict[str, Any]:
    ctx = ConversionContext(job_root=html.parent, options=ConvertOptions(theme="default"))
    executor = LocalProcessExecutor(2, memory_limit_mb=cap_mb)
    executor.warm()  # the bare call's clock also starts after WeasyPrint is imported
    t0, cpu0 = time.monotonic(), time.process_time()
    outcome_of_split = split_document(html.read_bytes(), ctx, html.parent, work, policy)
    t_split, cpu_split = time.monotonic(), time.process_time() - cpu0
    split = outcome_of_split.split_plan()
    if split is None:
        return {"ok": False, "error": f"not split: {outcome_of_split.plan.reason}"}
    results = executor.run(split.parts)
    t_layout = time.monotonic()
    failed = [r for r in results if r.error]
    if failed:
        return {"ok": False, "error": str(failed[0].error), "wall_s": t_layout - t0}
    cpu1 = time.process_time()
    outcome = finish(split, results, executor, pdf, policy.workers)
    t_end, cpu_merge = time.monotonic(), time.process_time() - cpu1
    part_cpu = [r.cpu_s for r in results]
    stamp_cpu = [s.cpu_s for s in outcome.stamps]
    return {
        "ok": True,
        "wall_s": t_end - t0,
        "split_s": t_split - t0,
        "layout_s": t_layout - t_split,
        "stamp_merge_s": t_end - t_layout,
        "parts": len(results),
        "pages": outcome.pages,
        "part_pages": [r.pages for r in results],
        "part_rss_mb": [r.peak_rss_mb for r in results],
        "part_wall_s": [r.wall_s for r in results],
        "stamp_rss_mb": max(s.peak_rss_mb for s in outcome.stamps),
        "stamp_s": [s.wall_s for s in outcome.stamps],
        "links_across_parts": outcome.merge.links_across_parts,
        "coordinator_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpu_s": cpu_split + sum(part_cpu) + sum(stamp_cpu) + cpu_merge,
        "split_cpu_s": cpu_split,
        "merge_cpu_s": cpu_merge,
        "part_cpu_s": part_cpu,
        # What the run would take on 2 otherwise idle cores: the coordinator's CPU plus
        # the part and stamp CPU scheduled greedily on 2 processes.
        "idle_2core_s": cpu_split + two_core_span(part_cpu) + two_core_span(stamp_cpu) + cpu_merge,
    }


def two_core_span(cpu: list[float]) -> float:
    """Wall time of tasks taken in order by the first of 2 free processes."""
    free = [0.0, 0.0]
    for c in cpu:
        free[free.index(min(free))] += c
    return max(free)


def words(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    kept = [ln for ln in text.splitlines() if not re.fullmatch(r"\s*\d+ / \d+\s*", ln)]
    return " ".join(kept).split()


def fonts(pdf: Path) -> str:
    """Font families on the first pages (a broken font setup shows up here)."""
    out = subprocess.run(["pdffonts", "-l", "3", str(pdf)], capture_output=True, text=True).stdout
    names = {line.split()[0].split("+")[-1] for line in out.splitlines()[2:] if line.strip()}
    return ", ".join(sorted(names))


def outline(pdf: Path) -> list[tuple[int, str]]:
    from pypdf import PdfReader

    sys.path.insert(0, str(ROOT))
    from tests.bigdoc import outline_entries

    return outline_entries(PdfReader(pdf))


def links(pdf: Path) -> tuple[int, int]:
    """(internal links, of which resolve to a named destination)."""
    from pypdf import PdfReader

    reader = PdfReader(pdf)
    names = reader.named_destinations
    total = resolved = 0
    for page in reader.pages:
        for ref in page.get("/Annots", []):
            annot = ref.get_object()
            if "/Dest" in annot:
                total += 1
                resolved += str(annot["/Dest"]) in names
    return total, resolved


def bench_markdown(tmp: Path, sources: list[Path], cap_mb: int, policy: PartsPolicy) -> None:
    text, what = markdown_source(sources)
    text, contents = with_contents(text, tmp)
    what += f", with a contents list of {contents} internal links"
    html = markdown_to_html_file(text, tmp)
    report(BENCH, "md_source", what, md_bytes=len(text.encode()), html_bytes=html.stat().st_size)
    bare = bare_layout(html, tmp / "bare.pdf", None, timeout=1800)
    if not bare["ok"]:
        report(BENCH, "md_bare_failed", str(bare["error"]))
        return
    parts = parts_layout(html, tmp / "parts.pdf", tmp / "work", cap_mb, policy)
    if not parts["ok"]:
        report(BENCH, "md_parts_failed", str(parts["error"]))
        return
    report(BENCH, "md_bare_wall", bare["wall_s"], "s", pages=bare["pages"])
    report(BENCH, "md_bare_peak_rss", bare["peak_rss_mb"], "MB")
    report(
        BENCH,
        "md_parts_wall",
        parts["wall_s"],
        "s",
        **{k: parts[k] for k in ("split_s", "layout_s", "stamp_merge_s")},
    )
    report(BENCH, "md_ratio_parts_over_bare", parts["wall_s"] / bare["wall_s"], "x", "<= 0.6")
    report(BENCH, "md_bare_cpu", bare["cpu_s"], "s")
    report(
        BENCH,
        "md_parts_cpu",
        parts["cpu_s"],
        "s",
        split_cpu_s=parts["split_cpu_s"],
        merge_cpu_s=parts["merge_cpu_s"],
        part_cpu_s=parts["part_cpu_s"],
    )
    # On a shared machine wall times swing with other load; this one does not.
    ratio = parts["idle_2core_s"] / bare["cpu_s"]
    report(BENCH, "md_ratio_on_2_idle_cores_from_cpu", ratio, "x", "<= 0.6")
    report(
        BENCH,
        "md_parts",
        parts["parts"],
        "parts",
        pages=parts["part_pages"],
        wall_s=parts["part_wall_s"],
    )
    report(
        BENCH,
        "md_part_peak_rss_max",
        max(parts["part_rss_mb"]),
        "MB",
        per_part=parts["part_rss_mb"],
    )
    report(
        BENCH,
        "md_stamp_chunks",
        len(parts["stamp_s"]),
        wall_s=parts["stamp_s"],
        peak_rss_mb=parts["stamp_rss_mb"],
    )
    report(BENCH, "md_coordinator_peak_rss", parts["coordinator_rss_mb"], "MB")
    report(BENCH, "md_fonts", fonts(tmp / "parts.pdf"), bare=fonts(tmp / "bare.pdf"))
    report_fidelity(
        BENCH,
        bare,
        tmp / "bare.pdf",
        tmp / "parts.pdf",
        parts["pages"],
        "parts",
        across_parts=parts["links_across_parts"],
    )


def report_fidelity(
    bench: str,
    bare: dict[str, Any],
    bare_pdf: Path,
    pdf: Path,
    pages: int,
    what: str,
    **extra: Any,
) -> None:
    """Pages within 3 %, the same words, the same outline, internal links resolving."""
    diff = (pages - bare["pages"]) / bare["pages"] * 100
    report(
        bench,
        f"md_pages_bare_vs_{what}",
        f"{bare['pages']} vs {pages} ({diff:+.1f} %)",
        target="within 3 %",
    )
    report(bench, "md_words_identical", str(words(bare_pdf) == words(pdf)))
    o_bare, o_split = outline(bare_pdf), outline(pdf)
    report(bench, "md_outline_equal", str(o_bare == o_split), entries=len(o_split))
    total, resolved = links(pdf)
    report(
        bench,
        "md_internal_links_resolving",
        f"{resolved}/{total}",
        bare=links(bare_pdf)[0],
        **extra,
    )


def export_table_file(tmp: Path, rows: int, bench: str, **extra: Any) -> Path:
    """The generated data export as an HTML file, reported as the bench's source."""
    sys.path.insert(0, str(ROOT))
    from tests.bigdoc import export_table

    html = tmp / "export.html"
    html.write_text(export_table(rows), encoding="utf-8")
    what = f"generated: tests.bigdoc.export_table({rows})"
    report(bench, "table_source", what, html_bytes=html.stat().st_size, **extra)
    return html


def bench_table(
    tmp: Path, rows: int, cap_mb: int, unsplit_cap_mb: int, policy: PartsPolicy
) -> None:
    html = export_table_file(tmp, rows, BENCH)
    parts = parts_layout(html, tmp / "export.pdf", tmp / "work-table", cap_mb, policy)
    if not parts["ok"]:
        report(BENCH, "table_parts_failed", str(parts["error"]))
    else:
        report(
            BENCH,
            "table_parts_wall",
            parts["wall_s"],
            "s",
            pages=parts["pages"],
            parts=parts["parts"],
            cpu_s=round(parts["cpu_s"], 1),
            idle_2core_s=round(parts["idle_2core_s"], 1),
            stamp_merge_s=round(parts["stamp_merge_s"], 1),
        )
        report(
            BENCH,
            "table_part_peak_rss_max",
            max(parts["part_rss_mb"]),
            "MB",
            per_part=parts["part_rss_mb"],
        )
        report(BENCH, "table_coordinator_peak_rss", parts["coordinator_rss_mb"], "MB")
    bare = bare_layout(html, tmp / "export-bare.pdf", unsplit_cap_mb, timeout=1200)
    outcome = "succeeded" if bare["ok"] else f"failed ({bare['error']})"
    report(
        BENCH,
        "table_unsplit_under_cap",
        outcome,
        cap_mb=unsplit_cap_mb,
        after_s=round(bare["total_s"], 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changelog", type=Path, action="append", default=[])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--part-cap-mb", type=int, default=1024)
    parser.add_argument("--table-cap-mb", type=int, default=2048)
    parser.add_argument("--only", choices=("md", "table"))
    parser.add_argument("--part-cost", type=int, default=PartsPolicy.part_cost)
    parser.add_argument("--split-above", type=int, default=PartsPolicy.split_above)
    args = parser.parse_args()
    policy = PartsPolicy(split_above=args.split_above, part_cost=args.part_cost)
    with temp_dir() as tmp:
        if args.only != "table":
            bench_markdown(tmp, args.changelog, args.part_cap_mb, policy)
        if args.only != "md":
            bench_table(tmp, args.rows, args.part_cap_mb, args.table_cap_mb, policy)


if __name__ == "__main__":
    main()
