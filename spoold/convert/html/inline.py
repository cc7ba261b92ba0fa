"""Resources as data: URLs: every image, stylesheet, font and CSS url() a document names
is read through the one sandboxed fetcher (spoold.convert.fetcher) and inlined, so the
result points nowhere outside itself. What cannot be read is a warning, and the
reference becomes REFUSED_URL or is dropped.
"""

from __future__ import annotations

import base64
import io
import urllib.parse
from pathlib import Path
from typing import Any

import tinycss2  # type: ignore[import-untyped]
from tinycss2.serializer import (  # type: ignore[import-untyped]
    serialize_string_value,
    serialize_url,
)

from ..base import ConversionContext
from ..fetcher import (
    FetchRefused,
    decode_data_url,
    display_url,
    fetch_bytes,
    is_network_url,
    resolve_in_job,
    resolve_url,
)

# @import chains deeper than this are cut (and cycles with them).
MAX_IMPORT_DEPTH = 8

# What a refused CSS url() becomes: an empty resource, so the file points nowhere. The
# fetcher has already warned, naming the reference as written; layout's own complaint
# about the placeholder is dropped (see weasy.LayoutWarnings).
REFUSED_URL = "data:,"

# What a reference is relative to: a folder in the job, or an allow-listed stylesheet's URL.
Base = Path | str

_CSS_URL_FUNCTIONS = {"url", "src", "image-set", "-webkit-image-set", "image"}
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


def mime_for(data: bytes, url: str) -> str:
    """The media type of a fetched resource: its magic bytes, else its suffix."""
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
            f"image {short_url(url)!r} not loaded: over the {ctx.options.max_image_pixels}-pixel cap"
        )
        return False
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return True
    cap = ctx.options.max_image_pixels
    if width * height > cap:
        ctx.warn(
            f"image {short_url(url)!r} not loaded: {width}x{height} pixels is over the {cap}-pixel cap"
        )
        return False
    return True


def short_url(url: str) -> str:
    """A URL cut to a length a warning can carry."""
    return url if len(url) <= 60 else url[:57] + "..."


def is_local_ref(url: str) -> bool:
    """A reference into the document itself (or none): nothing to fetch."""
    return url.startswith("#") or not url.strip()


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
                self.ctx.warn(f"resource {short_url(url)!r} not loaded: {exc}")
                return None
            return url if not image or image_allowed(data, self.ctx, "data: URL") else None
        key = (url, base or self.base)
        if key not in self._cache:
            fetched = fetch_bytes(self.ctx, url, base or self.base)
            if fetched is None or (image and not image_allowed(fetched, self.ctx, url)):
                self._cache[key] = None
            else:
                mime = mime_for(fetched, url)
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
                self.ctx.warn(f"stylesheet {short_url(url)!r} not loaded: {exc}")
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
        if "(" not in text and "/*" not in text:
            # No function, so no url() to rewrite: Markdown's table alignments, most
            # authors' styles. A parse and serialise costs 0.1 ms per attribute.
            return text.strip()
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
            self.ctx.warn(f"stylesheet {short_url(url)!r} not loaded: @import nested too deeply")
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
        if is_local_ref(url):
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
