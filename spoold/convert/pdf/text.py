"""PDF->HTML text recovery, what pdf->docx builds on.

It recovers what a PDF's content stream allows: text in reading order (pdfminer's layout
analysis), headings guessed from font size relative to the body text, lists from leading
markers, and raster images that pdfminer can hand over. Tables, columns and styling are
not recovered (docs/conversion.md).
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ErrorCode, JobError
from ..base import ConversionContext
from .sanitise import open_pdf

# Bounds on what PDF->HTML inlines, so a PDF full of images cannot blow up the output.
MAX_IMAGES = 200
MAX_IMAGE_BYTES_TOTAL = 40 * 1024 * 1024

# --- pdf -> html ----------------------------------------------------------------------

_BULLET = re.compile(r"^\s*([•●◦▪▫■□‣⁃∙·\-–—*]|\uf0b7|\uf0a7)\s+")
_NUMBERED = re.compile(r"^\s*(\(?\d{1,3}[.)]|\(?[a-zA-Z][.)]|[ivxlcIVXLC]{1,5}[.)])\s+")


@dataclass
class _Line:
    text: str
    size: float
    bold: bool


@dataclass
class _Block:
    kind: str  # "p", "h1".."h3", "ul", "ol", "img"
    text: str = ""
    items: list[str] = field(default_factory=list)


def _line_info(line: Any) -> _Line | None:
    from pdfminer.layout import LTChar

    sizes: Counter[float] = Counter()
    bold = 0
    total = 0
    for ch in line:
        if isinstance(ch, LTChar) and ch.get_text().strip():
            sizes[round(ch.size, 1)] += 1
            total += 1
            if "bold" in (ch.fontname or "").lower():
                bold += 1
    text = line.get_text().strip()
    if not text or not sizes:
        return None
    return _Line(text=text, size=sizes.most_common(1)[0][0], bold=bold * 2 > total)


def _heading_level(line: _Line, body: float) -> int:
    if len(line.text) > 200 or body <= 0:
        return 0
    ratio = line.size / body
    if ratio >= 1.6:
        return 1
    if ratio >= 1.3:
        return 2
    if ratio >= 1.15 or (
        line.bold and ratio >= 1.0 and len(line.text) < 80 and not line.text.endswith(".")
    ):
        return 3
    return 0


def _iter_layout(obj: Any) -> Iterator[Any]:
    from pdfminer.layout import LTFigure, LTImage, LTTextBox

    stack = [iter([obj])]
    while stack:
        try:
            item = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        if isinstance(item, LTTextBox | LTImage):
            yield item
        elif (isinstance(item, LTFigure) or hasattr(item, "__iter__")) and len(stack) < 64:
            # Figures nest; a hostile PDF must not nest us forever.
            stack.append(iter(item))


def _image_data_url(img: Any, ctx: ConversionContext) -> str | None:
    """Return the image as a data: URL, or None when pdfminer/Pillow cannot decode it."""
    from PIL import Image

    stream = img.stream
    try:
        filters = [str(f) for f in stream.get_filters()]
        names = [f[0] if isinstance(f, tuple) else f for f in filters]
        w, h = img.srcsize
        if not w or not h or int(w) * int(h) > ctx.options.max_image_pixels:
            return None
        if any("DCTDecode" in str(n) for n in names):
            raw = stream.get_rawdata()
            if raw is None:
                return None
            return "data:image/jpeg;base64," + base64.b64encode(raw).decode("ascii")
        data = stream.get_data()
        bits = img.bits or 8
        cs = str(img.colorspace[0]) if img.colorspace else ""
        if bits != 8:
            return None
        if "RGB" in cs and len(data) >= w * h * 3:
            pil = Image.frombytes("RGB", (w, h), data[: w * h * 3])
        elif "Gray" in cs and len(data) >= w * h:
            pil = Image.frombytes("L", (w, h), data[: w * h])
        else:
            return None
        buf = io.BytesIO()
        pil.save(buf, format="PNG", optimize=False)
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    except Exception:
        return None


_MARKER_ONLY = re.compile(
    r"^\s*([•●◦▪▫■□‣⁃∙·\-–—*]|\uf0b7|\uf0a7|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)])\s*$"
)
_PAGE_NUMBER = re.compile(r"^\W*(page\s*)?\d{1,4}(\s*(/|of)\s*\d{1,4})?\W*$", re.I)


def _page_units(page: Any) -> list[Any]:
    """One page as a list of units in reading order: lists of _Line (one per text box)
    and LTImage objects.

    List markers that the PDF draws apart from their text (WeasyPrint and browsers put
    them in the margin) are glued back onto the line they share a baseline with, and
    bare page numbers in the top or bottom margin are dropped.
    """
    from pdfminer.layout import LTImage, LTTextBox

    items = list(_iter_layout(page))
    boxes = [i for i in items if isinstance(i, LTTextBox)]
    lines = [(box, line) for box in boxes for line in box]
    markers = [(box, line) for box, line in lines if _MARKER_ONLY.match(line.get_text() or "")]
    prefix: dict[int, str] = {}
    skip: set[int] = set()
    for _, mline in markers:
        mid = (mline.y0 + mline.y1) / 2
        best = None
        for _, line in lines:
            if line is mline or id(line) in skip or _MARKER_ONLY.match(line.get_text() or ""):
                continue
            beside = line.x0 >= mline.x1 - 1 and line.y0 - 2 <= mid <= line.y1 + 2
            if beside and (best is None or line.x0 < best.x0):
                best = line
        if best is not None and id(best) not in prefix:
            prefix[id(best)] = mline.get_text().strip()
            skip.add(id(mline))
    height = float(page.height or 0)
    units: list[Any] = []
    for box in boxes:
        infos: list[_Line] = []
        for line in box:
            if id(line) in skip:
                continue
            info = _line_info(line)
            if info is None:
                continue
            if id(line) in prefix:
                info.text = f"{prefix[id(line)]} {info.text}"
            infos.append(info)
        in_margin = height and (box.y1 < height * 0.08 or box.y0 > height * 0.92)
        if in_margin and len(infos) == 1 and _PAGE_NUMBER.match(infos[0].text):
            continue
        if infos:
            units.append((box, infos))
    # Images go before the first text box that starts below them.
    for img in (i for i in items if isinstance(i, LTImage)):
        at = next(
            (n for n, u in enumerate(units) if isinstance(u, tuple) and u[0].y1 <= img.y1),
            len(units),
        )
        units.insert(at, img)
    return [u[1] if isinstance(u, tuple) else u for u in units]


def _blocks(source: Path, ctx: ConversionContext) -> list[_Block]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTImage

    pages = [_page_units(page) for page in extract_pages(str(source), laparams=LAParams())]
    # Body size: the size most characters are set in.
    sizes: Counter[float] = Counter()
    for units in pages:
        for unit in units:
            if isinstance(unit, list):
                for info in unit:
                    sizes[info.size] += len(info.text)
    body = sizes.most_common(1)[0][0] if sizes else 0.0
    blocks: list[_Block] = []
    images = 0
    image_bytes = 0
    for units in pages:
        for unit in units:
            if isinstance(unit, LTImage):
                if images >= MAX_IMAGES or image_bytes >= MAX_IMAGE_BYTES_TOTAL:
                    ctx.warn(f"only the first {images} images of the PDF were kept")
                    continue
                url = _image_data_url(unit, ctx)
                if url is None:
                    ctx.warn("some images in the PDF could not be extracted")
                    continue
                images += 1
                image_bytes += len(url)
                blocks.append(_Block("img", text=url))
            else:
                _text_blocks(unit, body, blocks)
    return blocks


def _text_blocks(box: list[_Line], body: float, blocks: list[_Block]) -> None:
    """Turn one pdfminer text box into blocks; a box never continues another's list."""
    para: list[str] = []
    current: _Block | None = None  # the heading or list this box is adding lines to

    def flush() -> None:
        if para:
            blocks.append(_Block("p", text=_join(para)))
            para.clear()

    for line in box:
        level = _heading_level(line, body)
        if level:
            flush()
            if current is not None and current.kind == f"h{level}":
                current.text = f"{current.text} {line.text}"  # a heading wrapped over lines
            else:
                current = _Block(f"h{level}", text=line.text)
                blocks.append(current)
            continue
        marker = _BULLET.match(line.text) or _NUMBERED.match(line.text)
        if marker:
            flush()
            kind = "ul" if _BULLET.match(line.text) else "ol"
            text = line.text[marker.end() :]
            if current is not None and current.kind == kind:
                current.items.append(text)
            elif blocks and blocks[-1].kind == kind:
                # Each list item often sits in its own text box: keep one list.
                current = blocks[-1]
                current.items.append(text)
            else:
                current = _Block(kind, items=[text])
                blocks.append(current)
            continue
        if current is not None and current.kind in ("ul", "ol") and not para:
            current.items[-1] = _join([current.items[-1], line.text])  # continuation line
            continue
        current = None
        para.append(line.text)
    flush()


def _join(lines: list[str]) -> str:
    out = ""
    for line in lines:
        if out.endswith("-") and not out.endswith(" -") and line[:1].islower():
            out = out[:-1] + line  # re-join a word hyphenated at the line end
        else:
            out = f"{out} {line}" if out else line
    return out


def pdf_to_html(source: Path, ctx: ConversionContext) -> str:
    """Extract a PDF into simple HTML (headings, paragraphs, lists, images as data: URLs)."""
    reader = open_pdf(source)
    ctx.stage("parsing")
    meta: dict[str, Any] = dict(reader.metadata or {})
    title = str(meta.get("/Title") or "").strip() or source.stem
    author = str(meta.get("/Author") or "").strip()
    keywords = str(meta.get("/Keywords") or "").strip()
    try:
        blocks = _blocks(source, ctx)
    except JobError:
        raise
    except RecursionError as exc:
        raise JobError(ErrorCode.INPUT_INVALID, f"{source.name} is nested too deeply") from exc
    except Exception as exc:
        raise JobError(
            ErrorCode.CONVERSION_FAILED,
            f"could not extract text from {source.name}: {type(exc).__name__}: {exc}"[:300],
        ) from exc
    if not any(b.kind != "img" for b in blocks):
        ctx.warn(f"{source.name} has no extractable text (a scan? OCR is not supported)")
    esc = html.escape
    head = [
        '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
    ]
    if author:
        head.append(f'<meta name="author" content="{esc(author)}">')
    if keywords:
        head.append(f'<meta name="keywords" content="{esc(keywords)}">')
    body: list[str] = []
    for b in blocks:
        if b.kind == "img":
            body.append(f'<p><img src="{b.text}" alt=""></p>')
        elif b.kind in ("ul", "ol"):
            lis = "".join(f"<li>{esc(t)}</li>" for t in b.items)
            body.append(f"<{b.kind}>{lis}</{b.kind}>")
        else:
            body.append(f"<{b.kind}>{esc(b.text)}</{b.kind}>")
    return (
        "<!DOCTYPE html>\n<html><head>\n"
        + "\n".join(head)
        + "\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
