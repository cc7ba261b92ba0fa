"""Ids as anchors: Word bookmarks for elements with an id, internal links to them.

Word limits bookmark names to 40 characters, letters, digits and underscores, starting
with a letter, so ids are mapped to names: an id that already is one is kept (pandoc's
reader then finds the same id), any other gets a deterministic, unique name. All ids
are mapped before the walk, so a link may come before its target. A link whose target
is never written (an id inside skipped content) is unwrapped at the end: no internal
link in the output points nowhere.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from docx.opc.constants import RELATIONSHIP_TYPE as RT
from lxml.etree import SubElement

from .xml import q

MAX_NAME = 40
_VALID = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_]")
_STORY_RELTYPES = frozenset({RT.HEADER, RT.FOOTER, RT.FOOTNOTES, RT.ENDNOTES})
# Hidden bookmarks (a leading underscore, as Word's own _GoBack) that keep adjacent code
# blocks and quotes apart for readers that merge them; never a mapped id's name.
SEPARATOR_PREFIX = "_spoold_split_"


def bookmark_name(anchor_id: str, taken: set[str]) -> str:
    """A valid Word bookmark name for `anchor_id`, not in `taken` (which it joins)."""
    if _VALID.fullmatch(anchor_id) and anchor_id not in taken:
        taken.add(anchor_id)
        return anchor_id
    base = _INVALID_CHARS.sub("_", anchor_id)
    if not base[:1].isascii() or not base[:1].isalpha():
        base = "id_" + base
    name = base
    salt = 0
    while len(name) > MAX_NAME or name in taken:
        digest = hashlib.sha1(f"{anchor_id}\0{salt}".encode()).hexdigest()[:8]
        name = f"{base[: MAX_NAME - 9]}_{digest}"
        salt += 1
    taken.add(name)
    return name


def map_ids(ids: Iterable[str]) -> dict[str, str]:
    """Bookmark name per id (the first of duplicate ids wins). Ids that are valid names
    keep them; the others are mapped next, in document order, around them."""
    unique = list(dict.fromkeys(i for i in ids if i))
    taken = {i for i in unique if _VALID.fullmatch(i)}
    return {i: i if i in taken else bookmark_name(i, taken) for i in unique}


class Anchors:
    """Bookmarks written so far, those waiting for the next paragraph, internal links."""

    def __init__(self, names: Mapping[str, str], first_id: int, hyperlink_style: str | None):
        self.names = names
        self.next_id = first_id
        self.hyperlink_style = hyperlink_style
        self.emitted: set[str] = set()
        self.pending: list[str] = []
        self.links: list[Any] = []  # w:hyperlink elements with a w:anchor
        self.separators = 0

    def name_for(self, anchor_id: str) -> str | None:
        return self.names.get(anchor_id)

    def expect(self, el: Any) -> None:
        """el has an id: bookmark the start of the next paragraph written."""
        name = self.names.get(el.get("id") or "")
        if name is not None and name not in self.emitted and name not in self.pending:
            self.pending.append(name)

    def place_pending(self, p: Any) -> None:
        """Put the waiting bookmarks at the start of the new, still empty paragraph p."""
        names, self.pending = self.pending, []
        for name in names:
            self.mark(p, name)

    def mark_element(self, el: Any, target: Any) -> None:
        """An inline el with an id: a bookmark at the current end of target."""
        name = self.names.get(el.get("id") or "")
        if name is not None:
            self.mark(target, name)

    def mark(self, target: Any, name: str) -> None:
        if name in self.emitted:
            return
        self.emitted.add(name)
        start = SubElement(target, q("w:bookmarkStart"))
        start.set(q("w:id"), str(self.next_id))
        start.set(q("w:name"), name)
        SubElement(target, q("w:bookmarkEnd")).set(q("w:id"), str(self.next_id))
        self.next_id += 1

    def separator(self, p: Any) -> None:
        self.separators += 1
        self.mark(p, f"{SEPARATOR_PREFIX}{self.separators}")

    def link(self, parent: Any, name: str) -> Any:
        """A new w:hyperlink to bookmark `name` at the end of parent."""
        link = SubElement(parent, q("w:hyperlink"))
        link.set(q("w:anchor"), name)
        link.set(q("w:history"), "1")
        self.links.append(link)
        return link

    def unwrap_dangling(self) -> None:
        """Links whose bookmark was never written keep their text, unlinked."""
        for link in self.links:
            parent = link.getparent()
            if parent is None or link.get(q("w:anchor")) in self.emitted:
                continue
            for r in link.iter(q("w:r")):
                self._unstyle(r)
            for child in list(link):
                link.addprevious(child)
            parent.remove(link)

    def _unstyle(self, r: Any) -> None:
        rpr = r.find(q("w:rPr"))
        style = rpr.find(q("w:rStyle")) if rpr is not None else None
        if style is not None and style.get(q("w:val")) == self.hyperlink_style:
            rpr.remove(style)
            if len(rpr) == 0:
                r.remove(rpr)


def first_free_bookmark_id(doc: Any) -> int:
    """Bookmark ids are unique in the package: start above those a reference.docx's
    headers and footers already use."""
    ids = [0]
    for rel in doc.part.rels.values():
        if rel.is_external or rel.reltype not in _STORY_RELTYPES:
            continue
        element = getattr(rel.target_part, "element", None)
        if element is None:
            continue
        for start in element.iter(q("w:bookmarkStart")):
            value = start.get(q("w:id")) or ""
            if value.isdigit():
                ids.append(int(value) + 1)
    return max(ids)
