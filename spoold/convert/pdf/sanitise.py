"""PDF in, PDF out: validated and sanitised with pypdf (no JavaScript, no automatic
actions, no embedded files), for pdf->pdf; `open_pdf` is shared with text recovery."""

from __future__ import annotations

import hashlib
from collections import Counter
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

from ...errors import ErrorCode, JobError
from ..base import ConversionContext, ConversionResult, register

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


register(PdfToPdf())
