"""PDF in: pdf->pdf (validated and sanitised with pypdf) and PDF->HTML text recovery.

`pdf_to_html` is what pdf->docx builds on. It recovers what a PDF's content stream
allows: text in reading order (pdfminer's layout analysis), headings guessed from font
size relative to the body text, lists from leading markers, and raster images that
pdfminer can hand over. Tables, columns and styling are not recovered (docs/conversion.md).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pypdf import PdfReader, PdfWriter
from pypdf.errors import PyPdfError
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    PdfObject,
)

from ..errors import ErrorCode, JobError
from .base import ConversionContext, ConversionResult, register

# Bounds on what PDF->HTML inlines, so a PDF full of images cannot blow up the output.
MAX_IMAGES = 200
MAX_IMAGE_BYTES_TOTAL = 40 * 1024 * 1024

# Action types that run code, start programs or reach outside the document.
_BAD_ACTIONS = {
    "/JavaScript",
    "/Launch",
    "/ImportData",
    "/SubmitForm",
    "/GoToE",
    "/Rendition",
    "/RichMediaExecute",
}


def open_pdf(source: Path) -> PdfReader:
    """Open and validate a PDF, or raise JobError(input_invalid) saying why."""
    try:
        reader = PdfReader(source, strict=False)
        if reader.is_encrypted:
            # An empty user password still lets anyone open it; anything else is locked.
            try:
                ok = bool(reader.decrypt(""))
            except Exception:
                ok = False
            if not ok:
                raise JobError(
                    ErrorCode.INPUT_INVALID,
                    f"{source.name} is password-protected",
                    hint="Remove the password (save an unprotected copy) and drop it again.",
                )
        pages = len(reader.pages)
    except JobError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise JobError(
            ErrorCode.INPUT_INVALID,
            f"{source.name} is not a readable PDF ({type(exc).__name__}: {exc})"[:300],
            hint="Check that the file is a complete PDF and drop it again.",
        ) from exc
    if pages == 0:
        raise JobError(ErrorCode.INPUT_INVALID, f"{source.name} has no pages")
    return reader


# --- pdf -> pdf ---------------------------------------------------------------------


@dataclass
class _Removed:
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, what: str) -> None:
        self.counts[what] += 1


def _direct(obj: PdfObject | None) -> PdfObject | None:
    """The object an indirect reference points to; a direct object as it is."""
    return obj.get_object() if isinstance(obj, IndirectObject) else obj


def _is_bad_action(obj: PdfObject | None) -> bool:
    action = _direct(obj)
    return isinstance(action, DictionaryObject) and (
        str(action.get("/S")) in _BAD_ACTIONS or "/JS" in action
    )


def _clean_dict(d: DictionaryObject, removed: _Removed) -> None:
    for key in ("/AA", "/OpenAction"):
        if key in d:
            del d[key]
            removed.add("automatic actions (/AA, /OpenAction)")
    for key in ("/A", "/Next", "/PA"):
        if key in d and _is_bad_action(d[key]):
            kind = str(_direct(d[key]).get("/S", "/JavaScript"))  # type: ignore[union-attr]
            del d[key]
            removed.add(f"{kind.lstrip('/')} actions")
    if "/JS" in d and str(d.get("/S")) in _BAD_ACTIONS:
        del d["/JS"]
        removed.add("JavaScript actions")
    if "/Annots" in d:
        annots = _direct(d["/Annots"])
        if isinstance(annots, ArrayObject):
            kept = [a for a in annots if not _is_attachment(a)]
            if len(kept) != len(annots):
                for _ in range(len(annots) - len(kept)):
                    removed.add("file attachment annotations")
                d[NameObject("/Annots")] = ArrayObject(kept)


def _is_attachment(annot: PdfObject) -> bool:
    a = _direct(annot)
    return isinstance(a, DictionaryObject) and str(a.get("/Subtype")) == "/FileAttachment"


def _walk(root: PdfObject, removed: _Removed) -> None:
    # Iterative walk over the whole object graph: actions hide in annotations, outline
    # items, form fields and name trees alike, and recursion would let a deep PDF crash us.
    seen: set[int] = set()
    stack: list[PdfObject] = [root]
    while stack:
        obj = stack.pop()
        if isinstance(obj, IndirectObject):
            key = obj.idnum
            if key in seen:
                continue
            seen.add(key)
            try:
                resolved = obj.get_object()
            except Exception:
                continue
            if resolved is None:
                continue
            obj = resolved
        if isinstance(obj, DictionaryObject):
            _clean_dict(obj, removed)
            stack.extend(v for k, v in obj.items() if k not in ("/Parent", "/P"))
        elif isinstance(obj, ArrayObject):
            stack.extend(obj)


def _drop_unreachable(writer: PdfWriter) -> None:
    """Null every object not reachable from the catalog or the info dictionary.

    Removed scripts and attachments would otherwise still be written as orphans
    (pypdf's own orphan pass only drops objects nothing at all refers to, not chains).
    """
    objects = writer._objects
    reachable: set[int] = set()
    stack: list[Any] = []
    for start in (writer._root_object, writer._info):
        ref = getattr(start, "indirect_reference", None)
        if isinstance(ref, IndirectObject):
            stack.append(ref)
    while stack:
        obj = stack.pop()
        if isinstance(obj, IndirectObject):
            if obj.pdf is not writer or obj.idnum in reachable:
                continue
            reachable.add(obj.idnum)
            if 0 < obj.idnum <= len(objects):
                stack.append(objects[obj.idnum - 1])
        elif isinstance(obj, DictionaryObject):
            stack.extend(obj.values())
        elif isinstance(obj, ArrayObject):
            stack.extend(obj)
    for i in range(len(objects)):
        if i + 1 not in reachable:
            objects[i] = None


def sanitise_pdf(reader: PdfReader, input_sha256: bytes) -> tuple[PdfWriter, list[str]]:
    """Copy the document without scripts, automatic actions and embedded files."""
    writer = PdfWriter(clone_from=reader)
    removed = _Removed()
    root = writer._root_object
    names = _direct(root.get("/Names"))
    if isinstance(names, DictionaryObject):
        for key, label in (
            ("/JavaScript", "document JavaScript"),
            ("/EmbeddedFiles", "embedded files"),
        ):
            if key in names:
                del names[key]
                removed.add(label)
    if "/AcroForm" in root:
        form = _direct(root["/AcroForm"])
        if isinstance(form, DictionaryObject) and "/XFA" in form:
            # XFA forms carry their own scripts; the AcroForm fields stay.
            del form["/XFA"]
            removed.add("XFA form scripts")
    _walk(root, removed)
    if "/Collection" in root:  # a portfolio presents embedded files, now gone
        del root["/Collection"]
    _drop_unreachable(writer)
    # A deterministic file identifier: same input, same bytes out.
    digest = ByteStringObject(input_sha256[:16])
    writer._ID = ArrayObject([digest, digest])
    warnings = [f"removed from the PDF: {what} ({n})" for what, n in sorted(removed.counts.items())]
    return writer, warnings


class PdfToPdf:
    source_type = "pdf"
    target = "pdf"

    def convert(self, source: Path, output: Path, ctx: ConversionContext) -> ConversionResult:
        ctx.stage("parsing")
        data = source.read_bytes()
        reader = open_pdf(source)
        ctx.stage("writing")
        try:
            writer, warnings = sanitise_pdf(reader, hashlib.sha256(data).digest())
            with output.open("wb") as fh:
                writer.write(fh)
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise JobError(
                ErrorCode.CONVERSION_FAILED,
                f"could not rewrite {source.name}: {type(exc).__name__}: {exc}"[:300],
            ) from exc
        for w in warnings:
            ctx.warn(w)
        return ConversionResult(pages=len(reader.pages))


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


register(PdfToPdf())
