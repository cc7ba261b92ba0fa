"""HTML in, and HTML as the common form: sanitising, inlining, and PDF via WeasyPrint.

Every HTML that leaves spoold or reaches WeasyPrint goes through `sanitise()` first:
scripts, frames, plug-ins, event handlers and javascript: URLs are removed, and every
resource (img, stylesheet, CSS url() and @import, SVG href) is read through the one
sandboxed fetcher and inlined as a data: URL. What cannot be read becomes a warning and
the reference is dropped, so the result is self-contained. WeasyPrint then gets a URL
fetcher that only answers from the same sandbox: it never opens a file or socket itself.
"""

from __future__ import annotations

import base64
import functools
import html as html_mod
import io
import logging
import re
import sys
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lxml.etree
import lxml.html
import tinycss2  # type: ignore[import-untyped]
from tinycss2.serializer import (  # type: ignore[import-untyped]
    serialize_string_value,
    serialize_url,
)

from ..errors import ErrorCode, JobError
from .base import ConversionContext, ConversionResult, register
from .fetcher import (
    FetchRefused,
    decode_data_url,
    display_url,
    fetch_bytes,
    is_network_url,
    resolve_in_job,
    resolve_url,
)
from .page import margins_css, parse_page_size

# Deeper than this is no document a person wrote; WeasyPrint would recurse itself to death.
MAX_DEPTH = 256
# WeasyPrint recurses a few dozen frames per nesting level: at Python's default limit a
# 150-deep page fails, so layout runs under this limit (MAX_DEPTH needs about 3,000).
LAYOUT_RECURSION_LIMIT = 6000
# @import chains deeper than this are cut (and cycles with them).
MAX_IMPORT_DEPTH = 8
MAX_SOURCE_BYTES = 64 * 1024 * 1024

THEMES_DIR = Path(__file__).with_name("themes")
THEMES = ("default", "handout")

# Removed with everything inside them.
_DROP_ELEMENTS = {"script", "iframe", "frame", "frameset", "base", "portal", "noembed"}
# Removed, but their children stay: <object> children are its fallback content, and
# libxml2 wrongly treats void <embed>/<param> as containers of whatever follows them.
_UNWRAP_ELEMENTS = {"object", "embed", "applet", "param"}
_CSS_URL_FUNCTIONS = {"url", "src", "image-set", "-webkit-image-set", "image"}
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
# Attributes that make a browser fetch by themselves; we inline or drop.
_FETCH_ATTRS = {"src", "poster", "background", "lowsrc", "dynsrc"}
_DANGEROUS_SCHEMES = ("javascript:", "vbscript:", "livescript:", "mocha:", "data:text/html")
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")

# What a refused CSS url() becomes: an empty resource, so the file points nowhere. The
# fetcher has already warned, naming the reference as written; layout's own complaint
# about the placeholder is dropped (see _Collect).
REFUSED_URL = "data:,"

# What a reference is relative to: a folder in the job, or an allow-listed stylesheet's URL.
Base = Path | str

_MIME_BY_SUFFIX = {
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


# --- checks -------------------------------------------------------------------------


def parse_html(text: str | bytes, name: str = "document") -> Any:
    """Parse HTML with lxml, refusing documents nested deeper than MAX_DEPTH.

    huge_tree keeps libxml2 from silently dropping content below depth 256; the walk
    is iterative, so a 50,000-deep page costs a few milliseconds, not a crash.
    """
    if isinstance(text, str):
        # lxml refuses str input with an encoding declaration; hand it bytes instead.
        text = text.encode("utf-8")
        parser = lxml.html.HTMLParser(huge_tree=True, encoding="utf-8", remove_comments=True)
    else:
        parser = lxml.html.HTMLParser(huge_tree=True, remove_comments=True)
    if len(text) > MAX_SOURCE_BYTES:
        raise JobError(ErrorCode.INPUT_TOO_LARGE, f"{name} is larger than {MAX_SOURCE_BYTES} bytes")
    try:
        root = lxml.html.document_fromstring(text or b"<html></html>", parser=parser)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise JobError(
            ErrorCode.INPUT_INVALID, f"{name} could not be parsed as HTML: {exc}"
        ) from exc
    depth = 0
    for event, _ in lxml.etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > MAX_DEPTH:
            raise JobError(
                ErrorCode.INPUT_INVALID,
                f"{name} nests elements more than {MAX_DEPTH} levels deep",
                hint="Flatten the document structure and drop it again.",
            )
    return root


@contextmanager
def recursion_limit(limit: int) -> Iterator[None]:
    """Run the block with Python's recursion limit raised to at least `limit`, then put
    it back: layout and the DOCX walk recurse per level of a MAX_DEPTH-deep document."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def check_theme(theme: str) -> str:
    if theme not in THEMES:
        raise JobError(
            ErrorCode.INPUT_INVALID,
            f"unknown theme {theme!r}; allowed: {', '.join(THEMES)}",
            hint="Set theme to one of the built-in themes in job.json or spool.toml.",
        )
    return theme


def page_size_css(page_size: str) -> str:
    """The @page size value for `page_size` ('A4', 'letter landscape'...), from page.py's
    one table; JobError(input_invalid) naming the allowed values."""
    return parse_page_size(page_size).css


@functools.cache
def theme_css(theme: str) -> str:
    return (THEMES_DIR / f"{check_theme(theme)}.css").read_text(encoding="utf-8")


# --- resources ----------------------------------------------------------------------


def _mime_for(data: bytes, url: str) -> str:
    head = data[:512].lstrip()
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"<") and b"<svg" in data[:4096]:
        return "image/svg+xml"
    suffix = Path(urllib.parse.urlsplit(url).path).suffix.lower()
    return _MIME_BY_SUFFIX.get(suffix, "application/octet-stream")


def image_allowed(data: bytes, ctx: ConversionContext, url: str) -> bool:
    """False (with a warning) when a raster image exceeds the pixel cap.

    Pillow reads only the header here, so a huge image is refused before anything
    decodes it. Unknown formats pass: they are not raster images Pillow would expand.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Image.DecompressionBombError:
        # Pillow refuses to even report the size of an image this large.
        ctx.warn(
            f"image {_short(url)!r} not loaded: over the {ctx.options.max_image_pixels}-pixel cap"
        )
        return False
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return True
    cap = ctx.options.max_image_pixels
    if width * height > cap:
        ctx.warn(
            f"image {_short(url)!r} not loaded: {width}x{height} pixels is over the {cap}-pixel cap"
        )
        return False
    return True


def _short(url: str) -> str:
    return url if len(url) <= 60 else url[:57] + "..."


def _is_local_ref(url: str) -> bool:
    return url.startswith("#") or not url.strip()


class Inliner:
    """Turns references into data: URLs through fetch_bytes, with a per-document cache."""

    def __init__(self, ctx: ConversionContext, base: Path) -> None:
        self.ctx = ctx
        self.base = base
        self._cache: dict[tuple[str, Base], str | None] = {}
        # data: URL made here -> the reference as the document wrote it, for warnings.
        self.written: dict[str, str] = {}

    def data_url(self, url: str, base: Base | None = None, image: bool = True) -> str | None:
        url = url.strip()
        if url.startswith("data:"):
            # Already inline: only the pixel cap applies.
            try:
                data, _ = decode_data_url(url, self.ctx.options.max_fetch_bytes)
            except FetchRefused as exc:
                self.ctx.warn(f"resource {_short(url)!r} not loaded: {exc}")
                return None
            return url if not image or image_allowed(data, self.ctx, "data: URL") else None
        key = (url, base or self.base)
        if key not in self._cache:
            fetched = fetch_bytes(self.ctx, url, base or self.base)
            if fetched is None or (image and not image_allowed(fetched, self.ctx, url)):
                self._cache[key] = None
            else:
                mime = _mime_for(fetched, url)
                inline = f"data:{mime};base64," + base64.b64encode(fetched).decode()
                self.written[inline] = display_url(resolve_url(url, base or self.base))
                self._cache[key] = inline
        return self._cache[key]

    def css_text(self, url: str, base: Base) -> tuple[str, Base] | None:
        """Fetch a stylesheet; return its text and what its own urls are relative to."""
        if url.startswith("data:"):
            try:
                data, _ = decode_data_url(url, self.ctx.options.max_fetch_bytes)
            except FetchRefused as exc:
                self.ctx.warn(f"stylesheet {_short(url)!r} not loaded: {exc}")
                return None
            return data.decode("utf-8", "replace"), base
        fetched = fetch_bytes(self.ctx, url, base)
        if fetched is None:
            return None
        text = fetched.decode("utf-8", "replace").removeprefix("\ufeff")
        absolute = resolve_url(url, base)
        if is_network_url(absolute):
            # An allow-listed stylesheet's fonts and images live next to it, on its server.
            return text, absolute
        if isinstance(base, str):
            return None  # fetch_bytes refused it already; unreachable in practice
        try:
            return text, resolve_in_job(url, base, self.ctx.job_root).parent
        except FetchRefused:
            return None

    # CSS: token-level rewriting (tinycss2), so escapes like `\75rl(` cannot hide a URL.
    def css(self, text: str, base: Base, depth: int = 0) -> str:
        rules = tinycss2.parse_stylesheet(text, skip_comments=True)
        out: list[Any] = []
        for rule in rules:
            if rule.type == "at-rule" and rule.lower_at_keyword == "import":
                out.append(self._import(rule, base, depth))
                continue
            if rule.type == "at-rule" and rule.lower_at_keyword in ("charset", "namespace"):
                continue
            if rule.type == "error":
                continue
            if getattr(rule, "prelude", None):
                self._rewrite(rule.prelude, base)
            if getattr(rule, "content", None):
                self._rewrite(rule.content, base)
                if rule.type == "at-rule" and _font_face_refused(rule):
                    continue  # layout would warn again, by family, about the same file
            out.append(rule)
        serialized = [r if isinstance(r, str) else r.serialize() for r in out]
        return "\n".join(s for s in serialized if s)

    def style_attr(self, text: str, base: Path) -> str:
        nodes = tinycss2.parse_component_value_list(text, skip_comments=True)
        self._rewrite(nodes, base)
        return str(tinycss2.serialize(nodes)).strip()

    def _import(self, rule: Any, base: Base, depth: int) -> str:
        url = None
        rest: list[Any] = []
        for tok in rule.prelude:
            if url is None and tok.type in ("url", "string"):
                url = tok.value
            elif url is None and tok.type == "function" and tok.lower_name == "url":
                url = next((a.value for a in tok.arguments if a.type == "string"), None)
            elif url is not None:
                rest.append(tok)
        if not url:
            return ""
        if depth >= MAX_IMPORT_DEPTH:
            self.ctx.warn(f"stylesheet {_short(url)!r} not loaded: @import nested too deeply")
            return ""
        got = self.css_text(url, base)
        if got is None:
            return ""
        inner = self.css(got[0], got[1], depth + 1)
        media = tinycss2.serialize(rest).strip()
        if media and not media.lower().startswith(("layer", "supports")):
            return f"@media {media} {{\n{inner}\n}}"
        return inner

    def _rewrite(self, nodes: list[Any], base: Base) -> None:
        stack: list[list[Any]] = [nodes]
        while stack:
            for tok in stack.pop():
                kind = getattr(tok, "type", None)
                if kind == "url":
                    tok.value = self._css_url(tok.value, base)
                    # tinycss2 serialises tokens from `representation`, not `value`.
                    tok.representation = f"url({serialize_url(tok.value)})"
                elif kind == "function":
                    # Strings in url()/src() are URLs; in image-set() and image() too.
                    if tok.lower_name in _CSS_URL_FUNCTIONS:
                        for arg in tok.arguments:
                            if arg.type == "string":
                                arg.value = self._css_url(arg.value, base)
                                arg.representation = f'"{serialize_string_value(arg.value)}"'
                    stack.append(tok.arguments)
                elif kind in ("() block", "[] block", "{} block"):
                    stack.append(tok.content)

    def _css_url(self, url: str, base: Base) -> str:
        if _is_local_ref(url):
            return url
        # Fonts and images alike; the pixel cap test passes non-images through.
        return self.data_url(url, base) or REFUSED_URL


def _font_face_refused(rule: Any) -> bool:
    """A @font-face whose every source is a refused url() (no local() to fall back on)."""
    if rule.lower_at_keyword != "font-face":
        return False
    for decl in tinycss2.parse_declaration_list(rule.content, skip_whitespace=True):
        if decl.type != "declaration" or decl.lower_name != "src":
            continue
        urls: list[str] = []
        for tok in decl.value:
            if tok.type == "url":
                urls.append(tok.value)
            elif tok.type == "function" and tok.lower_name == "local":
                return False
            elif tok.type == "function" and tok.lower_name in _CSS_URL_FUNCTIONS:
                urls += [arg.value for arg in tok.arguments if arg.type == "string"]
        return bool(urls) and all(url == REFUSED_URL for url in urls)
    return False


# --- sanitising ---------------------------------------------------------------------


def _dangerous(value: str) -> bool:
    cleaned = _CONTROL.sub("", html_mod.unescape(value)).lower()
    return cleaned.startswith(_DANGEROUS_SCHEMES)


def sanitise(
    root: Any, ctx: ConversionContext, base: Path, inliner: Inliner | None = None
) -> Inliner:
    """Sanitise a parsed document in place and inline its resources."""
    inliner = inliner or Inliner(ctx, base)
    removed: set[str] = set()
    for el in list(root.iter()):
        if not isinstance(el.tag, str):
            # Processing instructions and entities have no business in the output.
            if el.getparent() is not None:
                el.getparent().remove(el)
            continue
        if el is not root and el.getroottree().getroot() is not root:
            continue  # inside something already removed: fetch nothing for it
        tag = lxml.etree.QName(el).localname.lower()
        if tag in _DROP_ELEMENTS:
            removed.add(f"<{tag}>")
            _drop(el)
            continue
        if tag in _UNWRAP_ELEMENTS:
            removed.add(f"<{tag}>")
            _unwrap(el)
            continue
        if tag == "meta" and el.get("http-equiv"):
            _drop(el)  # refresh/redirects and CSP games
            continue
        if tag == "link":
            rels = (el.get("rel") or "").lower().split()
            href = el.get("href") or ""
            if "stylesheet" in rels and href and not _dangerous(href):
                got = inliner.css_text(href, base)
                if got is not None:
                    style = lxml.etree.Element("style")
                    if el.get("media"):
                        style.set("media", el.get("media"))
                    style.text = inliner.css(got[0], got[1])
                    el.addprevious(style)
            # Other links (icons, prefetch, attachments WeasyPrint would embed) go.
            _drop(el)
            continue
        if tag == "style":
            el.text = inliner.css(el.text or "", base)
            continue
        for name in list(el.attrib):
            lname = name.lower()
            value = el.get(name) or ""
            if lname.startswith("on"):
                removed.add("event handlers")
                del el.attrib[name]
            elif lname in ("srcset", "imagesrcset"):
                del el.attrib[name]  # we inline src; a browser would fetch these
            elif lname == "style":
                el.set(name, inliner.style_attr(value, base))
            elif lname in _URL_ATTRS or lname.endswith("}href"):
                if _dangerous(value):
                    removed.add("javascript: URLs")
                    del el.attrib[name]
                elif lname in ("ping", "manifest", "codebase", "data"):
                    del el.attrib[name]
                elif (
                    lname in _FETCH_ATTRS
                    or (lname.endswith("href") and tag in ("image", "use", "feimage"))
                ) and not _is_local_ref(value):
                    url = inliner.data_url(value, base)
                    if url is None:
                        del el.attrib[name]
                    else:
                        el.set(name, url)
            elif lname == "rel" and "attachment" in value.lower():
                del el.attrib[name]
        if tag == "a":
            name_as_id(el)
        if tag == "source" and el.getparent() is not None:
            # <picture>/<video> sources would be fetched by a browser; the img stays.
            _drop(el)
    if removed:
        ctx.warn("removed from the HTML: " + ", ".join(sorted(removed)))
    return inliner


def name_as_id(a: Any) -> None:
    """The old `<a name="x">` anchor gets id="x" (an id it has wins), so every link
    target is an id: HTML anchors, PDF destinations and DOCX bookmarks alike."""
    name = a.get("name")
    if name and not a.get("id"):
        a.set("id", name)


def _drop(el: Any) -> None:
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


def _head(root: Any) -> Any:
    head = root.find("head")
    if head is None:
        head = lxml.etree.Element("head")
        root.insert(0, head)
    return head


def resource_css(ctx: ConversionContext) -> list[tuple[str, Path]]:
    """Every *.css directly under the job's resources/, in name order (applied last)."""
    folder = ctx.job_root / "resources"
    out: list[tuple[str, Path]] = []
    if not folder.is_dir() or folder.is_symlink():
        return out
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() != ".css" or path.is_symlink() or not path.is_file():
            continue
        data = fetch_bytes(ctx, path.name, folder)
        if data is not None:
            out.append((data.decode("utf-8", "replace").removeprefix("\ufeff"), folder))
    return out


def _add_style(root: Any, css: str, first: bool = False) -> None:
    head = _head(root)
    style = lxml.etree.Element("style")
    style.text = css
    if first:
        # After <meta charset>/<title>, before the document's own styles.
        index = 0
        for i, child in enumerate(head):
            if child.tag in ("meta", "title"):
                index = i + 1
        head.insert(index, style)
    else:
        head.append(style)


def _serialize(root: Any) -> bytes:
    out: bytes = lxml.html.tostring(root, doctype="<!DOCTYPE html>", encoding="utf-8")
    return out if out.endswith(b"\n") else out + b"\n"


def _ensure_charset(root: Any) -> None:
    head = _head(root)
    for meta in head.findall("meta"):
        if meta.get("charset") is not None:
            meta.set("charset", "utf-8")
            return
    meta = lxml.etree.Element("meta")
    meta.set("charset", "utf-8")
    head.insert(0, meta)


def standalone_html(
    text: str | bytes, ctx: ConversionContext, base: Path, with_theme: bool = False
) -> bytes:
    """A sanitised, self-contained copy of an HTML document (UTF-8 bytes)."""
    ctx.stage("parsing")
    root = parse_html(text)
    inliner = sanitise(root, ctx, base)
    if with_theme:
        _add_style(root, theme_css(ctx.options.theme), first=True)
    for css, folder in resource_css(ctx):
        _add_style(root, inliner.css(css, folder))
    _ensure_charset(root)
    ctx.stage("writing")
    return _serialize(root)


# --- PDF ----------------------------------------------------------------------------


@functools.cache
def _weasy_css(text: str) -> Any:
    # Theme and page-size stylesheets are parsed once per worker process.
    import weasyprint

    return weasyprint.CSS(string=text)


def _fetcher_class() -> Any:
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class SandboxFetcher(URLFetcher):  # type: ignore[misc]
        """WeasyPrint's only way out: the spoold fetcher, never urllib."""

        def __init__(self, ctx: ConversionContext, base: Path) -> None:
            super().__init__(allowed_protocols=("data", "file"), allow_redirects=False)
            self.ctx = ctx
            self.base = base

        def fetch(self, url: str, headers: Any = None) -> Any:
            if url.startswith("data:"):
                data, mime = decode_data_url(url, self.ctx.options.max_fetch_bytes)
            else:
                fetched = fetch_bytes(self.ctx, url, self.base)
                if fetched is None:
                    # WeasyPrint catches this, skips the resource and goes on.
                    raise FetchRefused(f"{_short(url)} refused by the spoold sandbox")
                data, mime = fetched, _mime_for(fetched, url)
            if mime.startswith("image/") and not image_allowed(data, self.ctx, url):
                raise FetchRefused(f"{_short(url)} is over the pixel cap")
            return URLFetcherResponse(url, body=data, headers={"Content-Type": mime})

    return SandboxFetcher


_SandboxFetcherType: Any = None


def _make_fetcher(ctx: ConversionContext, base: Path) -> Any:
    global _SandboxFetcherType
    if _SandboxFetcherType is None:
        _SandboxFetcherType = _fetcher_class()
    return _SandboxFetcherType(ctx, base)


class _Collect(logging.Handler):
    """WeasyPrint's warnings as job warnings, naming resources as the document did."""

    def __init__(self, ctx: ConversionContext, written: Mapping[str, str]) -> None:
        super().__init__(logging.WARNING)
        self.ctx = ctx
        self.written = written
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self._message(record)
        except Exception:  # a warning that cannot be formatted must not fail the job
            message = str(record.msg)
        if message is None:
            return
        self.count += 1
        if self.count <= 20:
            self.ctx.warn(f"layout: {message}"[:300])

    def _message(self, record: logging.LogRecord) -> str | None:
        """None for a resource refused before layout: the fetcher has said which and why."""
        args = record.args if isinstance(record.args, tuple) else ()
        if not args:
            return record.getMessage()
        if REFUSED_URL in args:
            return None
        shown = tuple(self._as_written(arg) for arg in args)
        try:
            text = str(record.msg) % shown
        except (TypeError, ValueError):
            return record.getMessage()
        # "Failed to load image at 'x': " -- some of WeasyPrint's errors have no text.
        return text.rstrip(": ")

    def _as_written(self, arg: object) -> object:
        if isinstance(arg, str) and arg[:5].lower() == "data:":
            return self.written.get(arg, display_url(arg))
        return arg


@contextmanager
def _weasy_warnings(ctx: ConversionContext, written: Mapping[str, str]) -> Iterator[None]:
    # WeasyPrint reports skipped resources and bad CSS through logging; surface them.
    logger = logging.getLogger("weasyprint")
    handler = _Collect(ctx, written)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _running_title(root: Any) -> None:
    title = root.findtext(".//title") or ""
    body = root.find("body")
    if body is None or not title.strip():
        return
    div = lxml.etree.Element("div")
    div.set("class", "spoold-running-title")
    div.set("aria-hidden", "true")
    div.text = title.strip()
    body.insert(0, div)


def render_pdf(text: str | bytes, ctx: ConversionContext, base: Path, output: Path) -> int:
    """Lay out an HTML document with the job's theme and write the PDF; return pages."""
    import weasyprint
    from weasyprint.text.fonts import FontConfiguration

    theme = theme_css(ctx.options.theme)
    size = page_size_css(ctx.options.page_size)
    margin = margins_css(ctx.options.margins, size)
    ctx.stage("parsing")
    root = parse_html(text)
    inliner = sanitise(root, ctx, base)
    for css, folder in resource_css(ctx):
        _add_style(root, inliner.css(css, folder))
    _ensure_charset(root)
    _running_title(root)
    html_bytes = _serialize(root)
    # Theme, then the job's page size and margins; CSS from the document and from
    # resources/ is author CSS, so it still wins over both.
    page = f"size: {size}" + (f"; margin: {margin}" if margin else "")
    stylesheets = [_weasy_css(theme), _weasy_css(f"@page {{ {page} }}")]
    ctx.stage("layout")
    try:
        with _weasy_warnings(ctx, inliner.written), recursion_limit(LAYOUT_RECURSION_LIMIT):
            doc = weasyprint.HTML(
                string=html_bytes.decode("utf-8"),
                base_url=base.resolve().as_uri() + "/",
                url_fetcher=_make_fetcher(ctx, base),
                media_type="print",
            )
            # A fresh font configuration per job: @font-face from one job must not
            # leak into the next job's layout (and make its output depend on history).
            # Presentational hints: `<img width>`, `<p align=center>` as people write
            # them in Markdown READMEs; author CSS still wins over them.
            rendered = doc.render(
                font_config=FontConfiguration(),
                stylesheets=stylesheets,
                presentational_hints=True,
            )
            ctx.stage("writing")
            rendered.write_pdf(target=str(output))
    except RecursionError as exc:
        raise JobError(
            ErrorCode.INPUT_INVALID, "the document is nested too deeply to lay out"
        ) from exc
    return len(rendered.pages)


class HtmlToHtml:
    source_type = "html"
    target = "html"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        output.write_bytes(standalone_html(source.read_bytes(), ctx, source.parent))
        return ConversionResult()


class HtmlToPdf:
    source_type = "html"
    target = "pdf"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        return ConversionResult(pages=render_pdf(source.read_bytes(), ctx, source.parent, output))


register(HtmlToHtml())
register(HtmlToPdf())
