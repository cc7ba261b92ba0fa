"""Handing spoold's lxml tree to WeasyPrint without serialising and parsing it again.

`weasyprint.HTML(string=...)` parses with tinyhtml5, an HTML5 parser in pure Python:
about 1 ms per KB, 3-5 % of a layout (docs/performance.md). spoold already holds the
sanitised tree, so `weasy_html` copies it into the xml.etree tree WeasyPrint works on
(about 0.06 ms per KB) -- but only when the copy is provably the tree tinyhtml5 would
build from `serialize_html(root)`. An HTML5 parser rebuilds some well-nested trees:
it inserts `tbody`, closes a `p` before a block, closes an `li` or `a` when another
opens inside it, moves text out of tables, namespaces SVG and MathML, drops the first
newline of a `pre`. `etree_copy` returns None for any such tree (and for anything it
does not know), and the caller parses the serialisation as before. So the layout sees
the same tree either way; tests/test_handover.py checks that on every document of the
test corpus and on a list of trees made to trip an HTML5 parser.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from .document import serialize_html


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Phrasing content that no HTML5 parser restructures inside a <p> (no formatting
# element reopened, nothing closing the paragraph).
PHRASING = _names(
    "a abbr b bdi bdo br cite code data del dfn em i img input ins kbd mark q s samp "
    "small span strong sub sup time u var wbr"
)
HEAD_CHILDREN = frozenset({"meta", "title", "style", "link", "base"})
# Elements whose start tag an HTML5 parser treats specially (raw text, forms, frames,
# renaming, ruby's implied ends, foreign content), or that mean something only inside
# a table: never copied.
REFUSED = _names(
    "svg math script template textarea xmp iframe noembed noframes noscript plaintext "
    "select option optgroup frameset frame image isindex keygen button form nobr style "
    "html head body caption colgroup col thead tbody tfoot tr td th listing rb rp rt "
    "rtc title meta link base"
)
# Void elements: content given to one by code would be written after it, or turn its
# end tag into a second element (`</br>` is a <br>).
VOID = _names("area base br col embed hr img input keygen link meta param source track wbr")
TABLE_SECTIONS = frozenset({"thead", "tbody", "tfoot"})
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# HTML's "special" elements but address, div and p: where the search for an open
# <li>, <dd> or <dt> to close stops (HTML 13.2.6.4.7, "in body", li and dd/dt).
STOPS_ITEM_SEARCH = _names(
    "applet area article aside base basefont bgsound blockquote body br button caption "
    "center col colgroup dd details dir dl dt embed fieldset figcaption figure footer "
    "form frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input "
    "keygen li link listing main marquee menu meta nav noembed noframes noscript object "
    "ol param plaintext pre script search section select source style summary table "
    "tbody td template textarea tfoot th thead title tr track ul wbr xmp"
)
_TAG = re.compile(r"[a-z][a-z0-9-]*\Z")
_ATTR = re.compile(r"[a-z_][a-z0-9_.-]*\Z")


class _Refused(Exception):
    """The tree has something an HTML5 parser would build differently."""


def weasy_html(
    root: Any, base_url: str | None, url_fetcher: Any, source: bytes | None = None
) -> Any:
    """A `weasyprint.HTML` of the lxml tree `root`, as WeasyPrint makes it from `source`
    (the file `root` was read from) or else from `serialize_html(root)`."""
    import weasyprint

    # The copy needs WeasyPrint's internals as 68-70 have them (_html_of); another
    # release without them gets the string, as before.
    tree = etree_copy(root) if hasattr(weasyprint, "_find_base_url") else None
    if tree is None:
        return weasyprint.HTML(
            string=(source or serialize_html(root)).decode("utf-8"),
            base_url=base_url,
            url_fetcher=url_fetcher,
            media_type="print",
        )
    return _html_of(tree, base_url, url_fetcher)


def _html_of(tree: ET.Element, base_url: str | None, url_fetcher: Any) -> Any:
    # weasyprint.HTML.__init__ without its parse (WeasyPrint 70: weasyprint/__init__.py).
    import cssselect2
    import weasyprint

    html = weasyprint.HTML.__new__(weasyprint.HTML)
    html.base_url = weasyprint._find_base_url(tree, base_url)
    html.url_fetcher = url_fetcher if url_fetcher is not None else weasyprint.URLFetcher()
    html.media_type = "print"
    html.wrapper_element = cssselect2.ElementWrapper.from_html_root(tree, content_language=None)
    html.etree_element = html.wrapper_element.etree_element
    return html


def etree_copy(root: Any) -> ET.Element | None:
    """The xml.etree tree tinyhtml5 builds from `serialize_html(root)`, or None when
    that is not simply a copy of `root`."""
    try:
        return _document(root)
    except (_Refused, RecursionError):
        return None


def _document(root: Any) -> ET.Element:
    kids = list(root)
    if _tag(root) != "html" or [_tag(k) for k in kids] != ["head", "body"]:
        raise _Refused
    head, body = kids
    _check_text(root.text, blank=True)  # dropped before <head>: must be blank
    html = ET.Element("html", _attrs(root))
    html.append(_copied_head(head))
    copied = _element(body, _Context(), "html")
    copied.tail = None
    html.append(copied)
    # Whatever follows </body> (and the serialisation's final newline) ends up in <body>.
    trailing = _check_text(root.tail) or ""
    after = (_check_text(body.tail) or "") + trailing
    _append_text(copied, after if trailing.endswith("\n") else after + "\n")
    return html


def _copied_head(head: Any) -> ET.Element:
    out = ET.Element("head", _attrs(head))
    out.text = _check_text(head.text, blank=True)
    out.tail = _check_text(head.tail, blank=True)
    for child in head:
        tag = _tag(child)
        text = _check_text(child.text)
        if tag not in HEAD_CHILDREN or len(child) or (text and ("</" in text or tag in VOID)):
            raise _Refused  # moved to <body> by the parser, or cut short by the "</"
        el = ET.SubElement(out, tag, _attrs(child))
        el.text = text
        el.tail = _check_text(child.tail, blank=True)
    return out


class _Context:
    """What is open above an element, as far as an HTML5 parser cares."""

    __slots__ = ("anchor", "item", "paragraph")

    def __init__(self, anchor: bool = False, item: str = "", paragraph: bool = False) -> None:
        self.anchor = anchor  # an <a> is open
        self.item = item  # "li" or "dd": such an item is open with no stop since
        self.paragraph = paragraph  # inside a <p>: phrasing only

    def enter(self, tag: str) -> _Context:
        if tag == "li":
            item = "li"
        elif tag in ("dd", "dt"):
            item = "dd"
        else:
            item = "" if tag in STOPS_ITEM_SEARCH else self.item
        return _Context(self.anchor or tag == "a", item, self.paragraph or tag == "p")


def _element(el: Any, ctx: _Context, parent: str) -> ET.Element:
    """Copy `el` (a child of a `parent` element, in context `ctx`) and its subtree."""
    tag = _tag(el)
    if tag in REFUSED and parent != "html":
        raise _Refused
    if ctx.paragraph and tag not in PHRASING:
        raise _Refused  # a block, list or table would close the <p>
    if (tag == "a" and ctx.anchor) or (tag in HEADINGS and parent in HEADINGS):
        raise _Refused  # the parser closes the outer one
    if (tag == "li" and ctx.item == "li") or (tag in ("dd", "dt") and ctx.item == "dd"):
        raise _Refused
    if tag == "pre" and (el.text or "").startswith("\n"):
        raise _Refused  # the parser drops a first newline
    if tag in VOID and (el.text or len(el)):
        raise _Refused
    out = ET.Element(tag, _attrs(el))
    out.text = _check_text(el.text)
    out.tail = _check_text(el.tail)
    if tag == "table":
        _table(el, out)
        return out
    inner = ctx.enter(tag)
    for child in el:
        out.append(_element(child, inner, tag))
    return out


def _table(el: Any, out: ET.Element) -> None:
    """A table the parser keeps as it is: sections of rows of cells, no text in between."""
    for part in el:
        tag = _tag(part)
        if tag not in TABLE_SECTIONS and tag != "caption":
            raise _Refused  # a bare <tr> gets a <tbody>; <colgroup>/<col>: not handled
        section = ET.SubElement(out, tag, _attrs(part))
        section.tail = _check_text(part.tail, blank=True)
        if tag == "caption":
            section.text = _check_text(part.text)
            for child in part:
                section.append(_element(child, _Context(), "caption"))
            continue
        section.text = _check_text(part.text, blank=True)
        for row in part:
            _row(row, section)
    _check_text(el.text, blank=True)


def _row(row: Any, section: ET.Element) -> None:
    if _tag(row) != "tr":
        raise _Refused
    tr = ET.SubElement(section, "tr", _attrs(row))
    tr.text = _check_text(row.text, blank=True)
    tr.tail = _check_text(row.tail, blank=True)
    for cell in row:
        tag = _tag(cell)
        if tag not in ("td", "th"):
            raise _Refused
        td = ET.SubElement(tr, tag, _attrs(cell))
        td.text = _check_text(cell.text)
        td.tail = _check_text(cell.tail, blank=True)
        for child in cell:  # a cell starts afresh: the parser's scope and marker
            td.append(_element(child, _Context(), tag))


def _tag(el: Any) -> str:
    tag = el.tag
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise _Refused  # comments, processing instructions, odd or namespaced names
    return str(tag)


def _attrs(el: Any) -> dict[str, str]:
    attrs = dict(el.attrib)
    for name, value in attrs.items():
        if not _ATTR.match(name) or "\x00" in value or "\r" in value:
            raise _Refused
    return attrs


def _check_text(text: str | None, blank: bool = False) -> str | None:
    if not text:
        return None
    if "\x00" in text or "\r" in text or (blank and text.strip(" \t\n\f")):
        raise _Refused
    return text


def _append_text(el: ET.Element, text: str) -> None:
    if len(el):
        last = el[-1]
        last.tail = (last.tail or "") + text
    else:
        el.text = (el.text or "") + text
