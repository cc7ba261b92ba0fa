"""Hyperlinks: external ones through relationships (w:hyperlink r:id)."""

from __future__ import annotations

from typing import Any

from docx.opc.constants import RELATIONSHIP_TYPE as RT

from .xml import xml_safe

# Schemes that become clickable links; others (javascript:, file:...) keep their text only.
LINK_SCHEMES = ("http", "https", "mailto", "ftp", "ftps", "tel", "news")


class ExternalLinks:
    """One relationship per (part, URL), with ids given in document order."""

    def __init__(self) -> None:
        self.rids: dict[tuple[int, str], str] = {}
        self.next_rid: dict[int, int] = {}

    def rid(self, part: Any, href: str) -> str:
        key = (id(part), href)
        rid = self.rids.get(key)
        if rid is None:
            # python-docx's relate_to scans every relationship per call: quadratic in links.
            rels = part.rels
            n = self.next_rid.get(id(part), len(rels) + 1)
            while f"rId{n}" in rels:
                n += 1
            rid = f"rId{n}"
            self.next_rid[id(part)] = n + 1
            rels.add_relationship(RT.HYPERLINK, xml_safe(href), rid, is_external=True)
            self.rids[key] = rid
        return rid
