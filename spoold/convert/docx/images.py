"""Pictures: fetched through the sandbox once each, checked against the pixel cap, sized
to fit."""

from __future__ import annotations

import io
import re
import urllib.parse
from pathlib import Path
from typing import Any

from docx.oxml.shape import CT_Inline
from docx.shared import Emu
from lxml.etree import SubElement

from ..base import ConversionContext
from ..fetcher import fetch_bytes
from .paragraphs import PLAIN, Fmt, Para
from .xml import WS, q

EMU_PER_PX = 9525  # 914400 EMU per inch / 96 CSS px per inch
# Formats Word shows as they are; others are converted to PNG.
NATIVE_FORMATS = ("PNG", "JPEG", "GIF", "BMP")
_PX = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(px)?\s*")


def _svg_skipped(short: str) -> str:
    return f"image {short!r} skipped: SVG images are not supported in DOCX output"


def display_size(
    width_attr: str | None, height_attr: str | None, px_w: int, px_h: int, box: tuple[int, int]
) -> tuple[int, int]:
    """(cx, cy) in EMU: the width/height attributes (px at 96 dpi, one given keeps the
    aspect ratio), else the pixel size; scaled down to fit `box` (EMU)."""

    def attr_px(value: str | None) -> int | None:
        m = _PX.fullmatch(value or "")
        return round(float(m.group(1))) if m and float(m.group(1)) >= 1 else None

    w_attr, h_attr = attr_px(width_attr), attr_px(height_attr)
    px_w, px_h = max(px_w, 1), max(px_h, 1)
    if w_attr and h_attr:
        w, h = w_attr, h_attr
    elif w_attr:
        w, h = w_attr, max(1, round(px_h * w_attr / px_w))
    elif h_attr:
        w, h = max(1, round(px_w * h_attr / px_h)), h_attr
    else:
        w, h = px_w, px_h  # one image pixel per CSS pixel, as a browser shows it
    cx, cy = w * EMU_PER_PX, h * EMU_PER_PX
    scale = min(1.0, box[0] / cx, box[1] / cy)
    return max(1, int(cx * scale)), max(1, int(cy * scale))


# A picture ready to place: (bytes Word can show, width px, height px); None: it failed.
Picture = tuple[bytes, int, int] | None


class Images:
    """The pictures of one conversion: each source is fetched, checked and embedded once.

    A document that shows the same picture twice gets one fetch (one manifest entry),
    one warning if it fails, and one media part that both drawings refer to.
    """

    def __init__(self, ctx: ConversionContext, base: Path, box: tuple[int, int]) -> None:
        self.ctx = ctx
        self.base = base
        self.box = box  # text width and height in EMU
        self.next_pic_id = 1
        self._pictures: dict[str, Picture] = {}  # by src as written
        # (part, src) -> (relationship id, file name): the body and the footnotes are
        # separate parts, each with its own relationship to the shared media part.
        self._related: dict[tuple[int, str], tuple[str, str]] = {}

    def place(self, el: Any, para: Para) -> None:
        """Append `<img>` el to para as an inline picture, or its alt text when it fails."""
        src = (el.get("src") or "").strip()
        alt = WS.sub(" ", el.get("alt") or "").strip()
        if not src:
            return
        if not self._place(el, src, alt, para) and alt:
            para.text(f"[{alt}]", Fmt(italic=True))

    def _place(self, el: Any, src: str, alt: str, para: Para) -> bool:
        short = src if len(src) <= 60 else src[:57] + "..."
        if src not in self._pictures:
            self._pictures[src] = self._load(src, short)
        picture = self._pictures[src]
        if picture is None:
            return False
        blob, px_w, px_h = picture
        width, height = display_size(el.get("width"), el.get("height"), px_w, px_h, self.box)
        related = self._relate(para.part, src, short, blob)
        if related is None:
            return False
        rel_id, filename = related
        inline = CT_Inline.new_pic_inline(
            self.next_pic_id, rel_id, filename, Emu(width), Emu(height)
        )
        doc_pr = inline.docPr
        doc_pr.set("id", str(self.next_pic_id))
        doc_pr.set("name", f"Picture {self.next_pic_id}")
        if alt:
            doc_pr.set("descr", alt)
        self.next_pic_id += 1
        r = para.run(PLAIN)
        SubElement(r, q("w:drawing")).append(inline)
        para.placed()
        return True

    def _load(self, src: str, short: str) -> Picture:
        """Fetch and check one source (warnings go to ctx)."""
        if src[:5].lower() != "data:" and urllib.parse.urlsplit(src).path.lower().endswith(".svg"):
            self.ctx.warn(_svg_skipped(short))
            return None
        data = fetch_bytes(self.ctx, src, self.base)
        return self._prepare(data, short) if data is not None else None

    def _relate(self, part: Any, src: str, short: str, blob: bytes) -> tuple[str, str] | None:
        """The part's relationship to the picture's media part, added on first use."""
        key = (id(part), src)
        if key not in self._related:
            try:
                rel_id, image = part.get_or_add_image(io.BytesIO(blob))
            except Exception as exc:  # python-docx's header parsers raise assorted errors
                self.ctx.warn(f"image {short!r} skipped: {type(exc).__name__}")
                self._pictures[src] = None
                return None
            self._related[key] = (rel_id, image.filename)
        return self._related[key]

    def _prepare(self, data: bytes, short: str) -> tuple[bytes, int, int] | None:
        """Check the pixel cap and return (bytes Word can show, width, height) or None."""
        from PIL import Image, UnidentifiedImageError

        head = data[:256].lstrip().lower()
        if head.startswith((b"<svg", b"<?xml")) or b"<svg" in head:
            self.ctx.warn(_svg_skipped(short))
            return None
        cap = self.ctx.options.max_image_pixels
        try:
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                if width * height > cap:
                    self.ctx.warn(
                        f"image {short!r} not loaded: {width}x{height} pixels is over the"
                        f" {cap}-pixel cap"
                    )
                    return None
                if (im.format or "") in NATIVE_FORMATS:
                    return data, width, height
                # WebP, TIFF and friends: Word (or python-docx) cannot place them; PNG can.
                out = io.BytesIO()
                im.seek(0)
                frame = im.convert("RGBA" if "A" in im.getbands() or im.mode == "P" else "RGB")
                frame.save(out, format="PNG")
                return out.getvalue(), width, height
        except Image.DecompressionBombError:
            self.ctx.warn(f"image {short!r} not loaded: over the {cap}-pixel cap")
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            self.ctx.warn(f"image {short!r} skipped: not an image format Word can show")
        return None
