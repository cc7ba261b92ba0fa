"""Generated big documents for the parts tests and bench/bench_bigdoc.py.

Deterministic (seeded): a long Markdown release history with sections, subsections,
lists, code, footnotes and links across the document, and an HTML data export table.
`outline_entries` reads a PDF's outline back, for the tests and the benches alike.
"""

from __future__ import annotations

import random
from typing import Any

WORDS = [
    "spool",
    "worker",
    "layout",
    "page",
    "merge",
    "part",
    "table",
    "header",
    "footer",
    "render",
    "queue",
    "retry",
    "cancel",
    "timeout",
    "memory",
    "budget",
    "release",
    "fix",
    "change",
    "option",
    "theme",
    "margin",
    "outline",
    "bookmark",
    "link",
    "anchor",
    "document",
    "export",
    "report",
    "manual",
    "log",
    "archive",
    "folder",
    "daemon",
    "priority",
    "fairness",
]


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 18))]
    return " ".join(words).capitalize() + "."


def release_notes(sections: int = 120, seed: int = 12) -> str:
    """A Markdown changelog of `sections` releases (about 2.3 pages each on A4)."""
    rng = random.Random(seed)
    out = [
        "---",
        "title: Release history",
        "author: The spoold authors",
        "date: 2026-11-30",
        "lang: en",
        "keywords: [changelog, releases]",
        "---",
        "",
        "This history starts at [the oldest release](#release-0"
        f"{sections - 1}) and ends with [the newest](#release-00).[^intro]",
        "",
    ]
    for s in range(sections):
        out.append(f"## Release 0.{s}")
        out.append("")
        for _ in range(rng.randint(2, 4)):
            out.append(" ".join(_sentence(rng) for _ in range(rng.randint(3, 6))))
            out.append("")
        out.append("### Changes")
        out.append("")
        for _ in range(rng.randint(4, 9)):
            out.append(f"- {_sentence(rng)}")
        out.append("")
        if s % 3 == 0:
            out.append("```")
            out.extend(f"spoold convert part-{s}-{i}.md -o out-{i}.pdf" for i in range(4))
            out.append("```")
            out.append("")
        target = rng.randrange(sections)
        out.append(f"See also [release 0.{target}](#release-0{target}) for context.[^n{s}]")
        out.append("")
        out.append(" ".join(_sentence(rng) for _ in range(rng.randint(4, 8))))
        out.append("")
    out.append("[^intro]: Dates are release dates.")
    out.extend(f"[^n{s}]: Note on release 0.{s}: {_sentence(rng)}" for s in range(sections))
    out.append("")
    return "\n".join(out)


def export_table(rows: int, seed: int = 30) -> str:
    """An HTML data export: one table, a header row, `rows` rows of six columns."""
    rng = random.Random(seed)
    head = "".join(f"<th>{h}</th>" for h in ("id", "date", "account", "item", "qty", "amount"))
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Export</title>'
        '<meta name="author" content="Ledger"></head><body>',
        '<h1 id="export">Export</h1>',
        '<table id="data"><caption>All rows</caption>',
        f"<thead><tr>{head}</tr></thead><tbody>",
    ]
    for i in range(rows):
        lines.append(
            f"<tr><td>{i + 1}</td><td>2026-{1 + i % 12:02d}-{1 + i % 28:02d}</td>"
            f"<td>ACC-{rng.randrange(10**6):06d}</td><td>{rng.choice(WORDS)} {rng.choice(WORDS)}</td>"
            f"<td>{rng.randint(1, 99)}</td><td>{rng.randint(100, 999999) / 100:.2f}</td></tr>"
        )
    lines.append(
        '</tbody></table><p id="end">End of export. Back to <a href="#export">the top</a>.</p>'
    )
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"


def outline_entries(reader: Any) -> list[tuple[int, str]]:
    """(depth, title) of every outline entry of a pypdf PdfReader, in order."""
    out: list[tuple[int, str]] = []

    def walk(items: list[Any], depth: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
            else:
                out.append((depth, str(item.title)))

    walk(reader.outline, 0)
    return out
