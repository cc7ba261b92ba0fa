"""The document the writer starts from: spoold's default template or a reference.docx,
and its page setup (page_size, margins)."""

from __future__ import annotations

import functools
import io
import zipfile
from pathlib import Path
from typing import Any

import docx
from docx.enum.section import WD_ORIENT
from docx.opc.constants import CONTENT_TYPE as CT
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.package import Unmarshaller
from docx.opc.part import PartFactory
from docx.opc.pkgreader import PackageReader
from docx.oxml import parse_xml
from docx.oxml.ns import qn
from docx.package import Package
from docx.parts.story import StoryPart
from docx.shared import Length, Twips

from ...errors import ErrorCode, JobError
from ...spool.pages import THEME_MARGINS, margins_mm, parse_page_size
from ..base import ConversionContext, ConvertOptions
from ..html.authored import PageSetup
from .styles import STYLES, define_style
from .template_styles import TemplateStyles, TemplateStylesPart

# A reference.docx is a zip: refuse bombs before python-docx inflates every part.
MAX_REFERENCE_MEMBERS = 2000
MAX_REFERENCE_BYTES = 200 * 1024 * 1024
DEFAULT_MARGIN_TWIPS = 1440  # 1 in, Word's own default
# Relationships the reference's (removed) body may have used.
_BODY_RELTYPES = {
    RT.IMAGE,
    RT.HYPERLINK,
    RT.OLE_OBJECT,
    RT.PACKAGE,
    RT.CHART,
    RT.DIAGRAM_COLORS,
    RT.DIAGRAM_DATA,
    RT.DIAGRAM_LAYOUT,
    RT.DIAGRAM_QUICK_STYLE,
    RT.COMMENTS,
}


def start_document(ctx: ConversionContext) -> Any:
    """A fresh python-docx Document for this job, page set up, styles defined."""
    ref = ctx.options.reference_docx
    if ref is not None:
        doc = load_reference(ctx, Path(ref))
    else:
        doc = open_default_template()
        set_page_size(doc, ctx.options.page_size)
    set_margins(doc, ctx.options, "reference.docx" if ref is not None else ctx.options.page_size)
    return doc


@functools.cache
def default_template() -> bytes:
    """python-docx's template with spoold's styles, built once per process."""
    doc = docx.Document()
    for spec in STYLES:
        define_style(doc, spec, tune=True)
    section = doc.sections[0]
    for side in ("top_margin", "bottom_margin", "left_margin", "right_margin"):
        setattr(section, side, Twips(DEFAULT_MARGIN_TWIPS))
    # The template's preview image shows python-docx's sample page, not ours.
    pkg_rels = doc.part.package.rels
    for rid, rel in list(pkg_rels.items()):
        if rel.reltype == RT.THUMBNAIL:
            del pkg_rels[rid]
    buf = io.BytesIO()
    doc.save(buf)
    # Stored, not deflated: inflating ~1 MB of styles costs more than reading it (once per
    # process now: open_default_template). The parts are the same either way.
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    return out.getvalue()


@functools.cache
def _template_package() -> tuple[Any, TemplateStyles]:
    """The default template read once per process: its parts' bytes and relationships
    (python-docx's PackageReader, which nothing changes), and its styles.xml."""
    reader_type: Any = PackageReader  # untyped in python-docx
    reader = reader_type.from_file(io.BytesIO(default_template()))
    styles = next(blob for _, ct, _, blob in reader.iter_sparts() if ct == CT.WML_STYLES)
    return reader, TemplateStyles.of(styles)


def open_default_template() -> Any:
    """A fresh Document of the default template: what `docx.Document(template)` gives,
    without reading the zip again and with styles.xml parsed only when a job uses it."""
    reader, styles = _template_package()

    def new_part(partname: Any, content_type: str, reltype: str, blob: bytes, package: Any) -> Any:
        if content_type == CT.WML_STYLES:
            return TemplateStylesPart(partname, content_type, package, styles)
        return PartFactory(partname, content_type, reltype, blob, package)

    package = Package()
    unmarshaller: Any = Unmarshaller  # what Package.open does, with the cached reader
    unmarshaller.unmarshal(reader, package, new_part)
    return package.main_document_part.document


def set_page_size(doc: Any, page_size: str) -> None:
    size = parse_page_size(page_size)
    section = doc.sections[0]
    if size.landscape:
        section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width = Twips(mm_to_twips(size.width_mm))
    section.page_height = Twips(mm_to_twips(size.height_mm))


def set_margins(doc: Any, options: ConvertOptions, page: str) -> None:
    """Apply the `margins` option; 'theme' keeps the template's or reference's margins."""
    section = doc.sections[0]
    width = Length(section.page_width or Twips(12240)).mm
    height = Length(section.page_height or Twips(15840)).mm
    sides = margins_mm(options.margins, width, height, page)
    if sides is None:
        return
    top, right, bottom, left = (Twips(mm_to_twips(mm)) for mm in sides)
    section.top_margin, section.right_margin = top, right
    section.bottom_margin, section.left_margin = bottom, left


def apply_page_setup(doc: Any, options: ConvertOptions, setup: PageSetup) -> None:
    """A document laid out with its own styles: its `@page` size and margins (without a
    reference.docx; the `margins` option, when set, still wins)."""
    if options.reference_docx is not None:
        return
    section = doc.sections[0]
    if setup.size is not None:
        width, height = setup.size
        section.orientation = WD_ORIENT.LANDSCAPE if width > height else WD_ORIENT.PORTRAIT
        section.page_width = Twips(mm_to_twips(width))
        section.page_height = Twips(mm_to_twips(height))
    if setup.margins is not None and options.margins == THEME_MARGINS:
        top, right, bottom, left = (Twips(mm_to_twips(mm)) for mm in setup.margins)
        section.top_margin, section.right_margin = top, right
        section.bottom_margin, section.left_margin = bottom, left


def _invalid_reference(why: str) -> JobError:
    return JobError(
        ErrorCode.INPUT_INVALID,
        f"reference.docx is not a valid Word document: {why}"[:300],
        hint="Save the reference document from Word (or LibreOffice) as .docx and drop it again.",
    )


def load_reference(ctx: ConversionContext, path: Path) -> Any:
    """Open reference.docx: its styles, numbering and page setup stay, its body goes."""
    if not path.is_absolute():
        path = ctx.job_root / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _invalid_reference(f"cannot read {path.name} ({exc.strerror or exc})") from exc
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_REFERENCE_MEMBERS:
                raise _invalid_reference(f"more than {MAX_REFERENCE_MEMBERS} parts")
            if sum(i.file_size for i in infos) > MAX_REFERENCE_BYTES:
                raise _invalid_reference(f"unpacks to more than {MAX_REFERENCE_BYTES} bytes")
        doc = docx.Document(io.BytesIO(data))
    except JobError:
        raise
    except Exception as exc:  # python-docx raises many types for broken packages
        raise _invalid_reference(f"{type(exc).__name__}: {exc}") from exc
    for spec in STYLES:
        try:
            define_style(doc, spec, tune=False)
        except Exception as exc:
            why = f"its styles cannot be used ({type(exc).__name__}: {exc})"
            raise _invalid_reference(why) from exc
    body = doc.element.body
    children = list(body)
    last_sect = children[-1] if children and children[-1].tag == qn("w:sectPr") else None
    for child in children:
        if child is not last_sect:
            body.remove(child)
    _prune_reference_rels(doc)
    return doc


def _prune_reference_rels(doc: Any) -> None:
    part = doc.part
    used = set(part.element.xpath("//@r:*"))
    for rid, rel in list(part.rels.items()):
        if rel.reltype in _BODY_RELTYPES and rid not in used:
            del part.rels[rid]
        elif rel.reltype in (RT.FOOTNOTES, RT.ENDNOTES):
            # Keep only the separators: the notes belonged to the removed body.
            target = rel.target_part
            root = parse_xml(target.blob)
            for note in list(root):
                if note.get(qn("w:type")) in (None, "normal"):
                    root.remove(note)
            new = StoryPart(target.partname, target.content_type, root, target.package)
            del part.rels[rid]
            part.relate_to(new, rel.reltype)


def mm_to_twips(mm: float) -> int:
    """Word's unit (1/20 pt): 1440 per inch."""
    return round(mm * 1440 / 25.4)
