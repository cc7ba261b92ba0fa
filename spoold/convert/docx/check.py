"""Reading a DOCX back: its bookmarks and internal links, to check that links resolve.

Used by the tests and the corpus checks; it reads the package with zipfile and lxml only.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_STORIES = ("word/document.xml", "word/footnotes.xml", "word/endnotes.xml")


@dataclass
class DocxAnchors:
    """Bookmark names and the w:anchor of every internal hyperlink, per the whole package."""

    bookmarks: list[str] = field(default_factory=list)
    link_anchors: list[str] = field(default_factory=list)

    def unresolved(self) -> list[str]:
        """Link anchors with no bookmark of that name (an empty list when all resolve)."""
        names = set(self.bookmarks)
        return [a for a in self.link_anchors if a not in names]


def read_anchors(path: Path) -> DocxAnchors:
    found = DocxAnchors()
    with zipfile.ZipFile(path) as zf:
        members = set(zf.namelist())
        stories = [n for n in _STORIES if n in members]
        stories += sorted(n for n in members if n.startswith(("word/header", "word/footer")))
        for name in stories:
            root = etree.fromstring(zf.read(name))
            for start in root.iter(f"{{{W_NS}}}bookmarkStart"):
                found.bookmarks.append(start.get(f"{{{W_NS}}}name") or "")
            for link in root.iter(f"{{{W_NS}}}hyperlink"):
                anchor = link.get(f"{{{W_NS}}}anchor")
                if anchor is not None:
                    found.link_anchors.append(anchor)
    return found
