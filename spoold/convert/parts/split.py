"""Part documents from a plan: each a complete HTML document with the original <head>.

A part holds copies of its units' elements. Containers a part cuts through (see
plan.SHELLS) are repeated as empty start tags around the part's children; a table cut
between rows is repeated with its <colgroup>, <thead> and <tfoot> in every part and its
<caption> in the first. An id stays only on its first copy, so every anchor is defined
once in the merged document. Links to an anchor that lives in another part are turned
into `spoold-dest:` URIs: WeasyPrint writes those as link annotations, and the merge
points them at the merged document's named destination.
"""

from __future__ import annotations

import copy
import urllib.parse
from typing import Any

import lxml.etree

from .plan import TableRows, Unit, tag_of

DEST_SCHEME = "spoold-dest:"


def dest_uri(name: str) -> str:
    return DEST_SCHEME + urllib.parse.quote(name, safe="")


def dest_name(uri: str) -> str | None:
    """The anchor name a `spoold-dest:` URI points to, None for other URIs."""
    if not uri.startswith(DEST_SCHEME):
        return None
    return urllib.parse.unquote(uri[len(DEST_SCHEME) :])


def _shell(el: Any, keep_id: bool) -> Any:
    out = lxml.etree.Element(el.tag, dict(el.attrib))
    if not keep_id:
        out.attrib.pop("id", None)
    return out


def copy_without_ids(el: Any) -> Any:
    out = copy.deepcopy(el)
    for node in out.iter():
        if isinstance(node.tag, str):
            node.attrib.pop("id", None)
            if tag_of(node) == "a":
                node.attrib.pop("name", None)
    return out


def empty_document(root: Any, first: bool) -> tuple[Any, Any]:
    """A copy of <html> with the whole <head> and an empty <body>."""
    html = _shell(root, keep_id=first)
    head = root.find("head")
    if head is not None:
        html.append(copy.deepcopy(head))
    body_src = root.find("body")
    body = _shell(body_src, keep_id=first) if body_src is not None else None
    if body is None:
        body = lxml.etree.Element("body")
    html.append(body)
    if first and body_src is not None:
        body.text = body_src.text
    return html, body


def table_slice(table: Any, index: TableRows, rows: tuple[int, int], first: bool) -> Any:
    """A copy of `table` with body rows [start, end) only (and its header rows)."""
    out = _shell(table, keep_id=first)
    out.text = table.text
    wanted = index.rows[rows[0] : rows[1]]
    by_tbody: dict[int, list[Any]] = {}
    for tr, tbody in wanted:
        by_tbody.setdefault(id(tbody), []).append(tr)
    loose = set(by_tbody.get(id(None), ()))  # rows straight in <table>, no <tbody>
    for child in table:
        tag = tag_of(child)
        if tag == "caption":
            if first:
                out.append(copy.deepcopy(child))
        elif tag in ("colgroup", "col", "thead", "tfoot"):
            out.append(copy.deepcopy(child) if first else copy_without_ids(child))
        elif tag == "tbody":
            picked = by_tbody.get(id(child))
            if picked:
                tbody = _shell(child, keep_id=first)
                tbody.text = child.text
                tbody.extend(copy.deepcopy(tr) for tr in picked)
                out.append(tbody)
        elif tag == "tr":
            if child in loose:
                out.append(copy.deepcopy(child))
        elif isinstance(child.tag, str) and first:
            out.append(copy.deepcopy(child))
    out.tail = table.tail if rows[1] == len(index.rows) else None
    return out


class _PartBuilder:
    """Builds part trees one after another, remembering which shells were emitted."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.emitted: set[int] = set()  # id() of source elements copied with their id

    def build(self, units: list[Unit], first: bool) -> Any:
        html, body = empty_document(self.root, first)
        open_shells: list[tuple[Any, Any]] = []  # (source shell, its copy)
        for unit in units:
            parent = self._open(body, open_shells, unit.shells)
            for el in unit.elements:
                parent.append(self._copy(el, unit))
        return html

    def _open(self, body: Any, open_shells: list[tuple[Any, Any]], shells: tuple[Any, ...]) -> Any:
        keep = 0
        while (
            keep < len(open_shells) and keep < len(shells) and open_shells[keep][0] is shells[keep]
        ):
            keep += 1
        del open_shells[keep:]
        parent = open_shells[-1][1] if open_shells else body
        for src in shells[keep:]:
            first = id(src) not in self.emitted
            self.emitted.add(id(src))
            dup = _shell(src, keep_id=first)
            parent.append(dup)
            open_shells.append((src, dup))
            parent = dup
        return parent

    def _copy(self, el: Any, unit: Unit) -> Any:
        if unit.rows is None:
            return copy.deepcopy(el)
        first = id(el) not in self.emitted
        self.emitted.add(id(el))
        assert unit.table is not None
        return table_slice(el, unit.table, unit.rows, first)


def build_parts(root: Any, parts: list[list[Unit]]) -> list[Any]:
    """One HTML tree per part, with links across parts rewritten (see link_across_parts)."""
    builder = _PartBuilder(root)
    trees = [builder.build(units, first=i == 0) for i, units in enumerate(parts)]
    link_across_parts(trees)
    return trees


def anchors_of(tree: Any) -> set[str]:
    names = {el.get("id") for el in tree.iter() if isinstance(el.tag, str) and el.get("id")}
    names |= {el.get("name") for el in tree.iter("a") if el.get("name")}
    return {n for n in names if n}


def link_across_parts(trees: list[Any]) -> int:
    """Point links whose anchor is in another part at `spoold-dest:` URIs; return how many."""
    anchors = [anchors_of(t) for t in trees]
    everywhere = set().union(*anchors) if anchors else set()
    rewritten = 0
    for tree, own in zip(trees, anchors, strict=True):
        for el in tree.iter():
            href = el.get("href") if isinstance(el.tag, str) else None
            if not href or not href.startswith("#") or len(href) < 2:
                continue
            name = urllib.parse.unquote(href[1:])
            if name not in own and name in everywhere:
                el.set("href", dest_uri(name))
                rewritten += 1
    return rewritten
