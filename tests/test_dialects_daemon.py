"""Through the daemon: the manifest says how each PDF was laid out, and names the lines
of the template tags it dropped (issue 21)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import (
    DaemonProc,
    assert_all_manifests_valid,
    pdftotext,
    published,
    wait_for,
)

CORPUS = Path(__file__).with_name("corpus") / "dialects"
MakeSpool = Callable[..., Path]
DaemonFactory = Callable[..., DaemonProc]


def drop_folder(spool: Path, name: str, files: dict[str, bytes | str]) -> None:
    folder = spool / "tmp" / name
    folder.mkdir()
    for rel, content in files.items():
        (folder / rel).write_bytes(content.encode() if isinstance(content, str) else content)
    os.rename(folder, spool / "inbox" / name)


def manifest_of(spool: Path, name: str) -> tuple[Path, dict[str, Any]]:
    for folder in published(spool):
        m = json.loads((folder / "manifest.json").read_text())
        if m["name"] == name:
            return folder, m
    raise AssertionError(f"{name} not published")


def test_manifest_records_layout_and_dropped_template_tags(
    make_spool: MakeSpool, daemon_factory: DaemonFactory
) -> None:
    spool = make_spool()
    invoice = CORPUS / "invoice"
    drop_folder(
        spool,
        "invoice",
        {
            "invoice.html": (invoice / "invoice.html").read_bytes(),
            "invoice.css": (invoice / "invoice.css").read_bytes(),
            "job.json": json.dumps({"targets": ["pdf", "docx"]}),
        },
    )
    drop_folder(
        spool,
        "themed",
        {
            "themed.html": (invoice / "invoice.html").read_bytes(),
            "invoice.css": (invoice / "invoice.css").read_bytes(),
            "job.json": json.dumps({"targets": ["pdf"], "theme": "default"}),
        },
    )
    drop_folder(
        spool,
        "page",
        {
            "page.md": "---\ntitle: Page\n---\n\n{{< figure src=x.png >}}\n\n!!! tip\n    Done.\n",
            "job.json": json.dumps({"targets": ["pdf"]}),
        },
    )
    d = daemon_factory(spool)
    wait_for(lambda: len(published(spool)) == 3, what="three jobs published")
    assert_all_manifests_valid(spool)

    folder, m = manifest_of(spool, "invoice")
    assert m["status"] == "succeeded" and m["options"]["theme"] == "auto"
    (pdf,) = [a for a in m["artifacts"] if a["target"] == "pdf"]
    assert pdf["layout"] == "own styles: it links a stylesheet"
    assert "€10,545.00" in pdftotext(folder / pdf["path"])

    _, m = manifest_of(spool, "themed")
    assert m["artifacts"][0]["layout"] == 'theme default: theme = "default"'

    folder, m = manifest_of(spool, "page")
    assert m["artifacts"][0]["layout"] == "theme default: Markdown"
    assert (
        "line 5: template tag {{< figure src=x.png >}} dropped (spoold runs no templates)"
        in m["warnings"]
    )
    text = pdftotext(folder / m["artifacts"][0]["path"])
    assert "Tip" in text and "Done." in text and "!!!" not in text and "{{<" not in text
    assert d.stop() == 0
