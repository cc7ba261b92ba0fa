"""What may stay in a document: the removal policy every HTML goes through.

Scripts, frames, plug-ins, event handlers, `<meta http-equiv>` and javascript: URLs are
removed; stylesheets, images and every other resource a browser would fetch are inlined
through the Inliner (or dropped when they cannot be read). One warning lists what was
removed.
"""

from __future__ import annotations

import html as html_mod
import re
from pathlib import Path
from typing import Any

import lxml.etree

from ..base import ConversionContext
from .inline import Inliner, is_local_ref

# Removed with everything inside them.
_DROP_ELEMENTS = {"script", "iframe", "frame", "frameset", "base", "portal", "noembed"}
# Removed, but their children stay: <object> children are its fallback content, and
# libxml2 wrongly treats void <embed>/<param> as containers of whatever follows them.
_UNWRAP_ELEMENTS = {"object", "embed", "applet", "param"}
# Attributes whose value is a URL a browser would navigate to or run.
_URL_ATTRS = {
    "href",
    "src",
    "action",
    "formaction",
    "poster",
    "background",
    "cite",
    "longdesc",
    "data",
    "codebase",
    "lowsrc",
    "dynsrc",
    "manifest",
    "ping",
    "xlink:href",
    "{http://www.w3.org/1999/xlink}href",
}
# URL attributes that are dropped whatever they point at.
_DROPPED_URL_ATTRS = {"ping", "manifest", "codebase", "data"}
# Attributes that make a browser fetch by themselves; we inline or drop.
_FETCH_ATTRS = {"src", "poster", "background", "lowsrc", "dynsrc"}
# SVG elements whose href is fetched, like an <img src>.
_FETCHING_HREF_TAGS = {"image", "use", "feimage"}
_DANGEROUS_SCHEMES = ("javascript:", "vbscript:", "livescript:", "mocha:", "data:text/html")
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")


def sanitise(
    root: Any, ctx: ConversionContext, base: Path, inliner: Inliner | None = None
) -> Inliner:
    """Sanitise a parsed document in place and inline its resources."""
    sanitiser = _Sanitiser(inliner or Inliner(ctx, base), base)
    for el in list(root.iter()):
        if not isinstance(el.tag, str):
            # Processing instructions and entities have no business in the output.
            if el.getparent() is not None:
                el.getparent().remove(el)
            continue
        if el is not root and el.getroottree().getroot() is not root:
            continue  # inside something already removed: fetch nothing for it
        sanitiser.element(el)
    if sanitiser.removed:
        ctx.warn("removed from the HTML: " + ", ".join(sorted(sanitiser.removed)))
    return sanitiser.inliner


def name_as_id(a: Any) -> None:
    """The old `<a name="x">` anchor gets id="x" (an id it has wins), so every link
    target is an id: HTML anchors, PDF destinations and DOCX bookmarks alike."""
    name = a.get("name")
    if name and not a.get("id"):
        a.set("id", name)


class _Sanitiser:
    """One document's pass: the inliner it fetches through and what it removed."""

    def __init__(self, inliner: Inliner, base: Path) -> None:
        self.inliner = inliner
        self.base = base
        self.removed: set[str] = set()  # what the warning lists: "<script>", ...

    def element(self, el: Any) -> None:
        tag = lxml.etree.QName(el).localname.lower()
        if tag in _DROP_ELEMENTS:
            self.removed.add(f"<{tag}>")
            _drop(el)
        elif tag in _UNWRAP_ELEMENTS:
            self.removed.add(f"<{tag}>")
            _unwrap(el)
        elif tag == "meta" and el.get("http-equiv"):
            _drop(el)  # refresh/redirects and CSP games
        elif tag == "link":
            self._link(el)
        elif tag == "style":
            el.text = self.inliner.css(el.text or "", self.base)
        else:
            for name in list(el.attrib):
                self._attribute(el, tag, name)
            if tag == "a":
                name_as_id(el)
            if tag == "source" and el.getparent() is not None:
                # <picture>/<video> sources would be fetched by a browser; the img stays.
                _drop(el)

    def _link(self, el: Any) -> None:
        """A stylesheet link becomes an inlined <style>; every link element goes."""
        rels = (el.get("rel") or "").lower().split()
        href = el.get("href") or ""
        if "stylesheet" in rels and href and not _dangerous(href):
            got = self.inliner.css_text(href, self.base)
            if got is not None:
                style = lxml.etree.Element("style")
                if el.get("media"):
                    style.set("media", el.get("media"))
                style.text = self.inliner.css(got[0], got[1])
                el.addprevious(style)
        # Other links (icons, prefetch, attachments WeasyPrint would embed) go.
        _drop(el)

    def _attribute(self, el: Any, tag: str, name: str) -> None:
        lname = name.lower()
        value = el.get(name) or ""
        if lname.startswith("on"):
            self.removed.add("event handlers")
            del el.attrib[name]
        elif lname in ("srcset", "imagesrcset"):
            del el.attrib[name]  # we inline src; a browser would fetch these
        elif lname == "style":
            el.set(name, self.inliner.style_attr(value, self.base))
        elif lname in _URL_ATTRS or lname.endswith("}href"):
            self._url_attribute(el, tag, name, value)
        elif lname == "rel" and "attachment" in value.lower():
            del el.attrib[name]

    def _url_attribute(self, el: Any, tag: str, name: str, value: str) -> None:
        """Dangerous URLs go; URLs a browser would fetch are inlined (or dropped)."""
        lname = name.lower()
        if _dangerous(value):
            self.removed.add("javascript: URLs")
            del el.attrib[name]
        elif lname in _DROPPED_URL_ATTRS:
            del el.attrib[name]
        elif _fetched(lname, tag) and not is_local_ref(value):
            url = self.inliner.data_url(value, self.base)
            if url is None:
                del el.attrib[name]
            else:
                el.set(name, url)


def _fetched(lname: str, tag: str) -> bool:
    """Whether a browser would load this URL attribute by itself (not on a click)."""
    return lname in _FETCH_ATTRS or (lname.endswith("href") and tag in _FETCHING_HREF_TAGS)


def _dangerous(value: str) -> bool:
    cleaned = _CONTROL.sub("", html_mod.unescape(value)).lower()
    return cleaned.startswith(_DANGEROUS_SCHEMES)


def _drop(el: Any) -> None:
    """Remove `el` and everything in it, keeping the text that follows it."""
    parent = el.getparent()
    if parent is None:
        return
    # Keep the tail text (it belongs to the parent, not to the removed element).
    if el.tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


def _unwrap(el: Any) -> None:
    if el.getparent() is None:
        return
    # lxml's drop_tag keeps text, children and tail in place.
    el.drop_tag()
