"""The default template's styles.xml, parsed only when a document needs its elements.

The template's styles.xml is 350 KB; parsing and serialising it cost about 12 ms per
document, while almost every document only needs the ids of the styles (known once per
process) and at most appends a few styles ("toc N" for a contents list). Until a job
reads or changes a style element, the part hands out bytes: the template's, as
python-docx would serialise the parsed part, plus those of the styles appended, each
made once per process by appending it to a parsed copy. `style_ids` and `ensure_style`
are how the writer asks, whichever part a document has (a reference.docx's is parsed
as usual).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.oxml import serialize_part_xml
from docx.oxml import parse_xml
from docx.parts.styles import StylesPart
from docx.styles import BabelFish
from docx.styles.styles import Styles

from .styles import StyleSpec, define_style, styles_ids

_END = b"</w:styles>"


@dataclass(frozen=True)
class Appended:
    """A style appended to the template's styles.xml: its bytes there, and its id."""

    xml: bytes
    style_id: str


@dataclass(frozen=True)
class TemplateStyles:
    """styles.xml of spoold's default template, known once per process: its bytes as
    python-docx serialises the parsed part, style_ids of it, and appended styles."""

    blob: bytes
    ids: dict[str, str]
    appended: dict[StyleSpec, Appended | None] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, blob: bytes) -> TemplateStyles:
        element = parse_xml(blob)
        # The bytes a job's parsed, unchanged part would serialise to (XmlPart.blob).
        return cls(serialize_part_xml(element), styles_ids(Styles(element)))

    def append(self, spec: StyleSpec) -> Appended | None:
        """What define_style(spec, tune=False) appends to the template's styles.xml;
        None if it does more than append.

        A style the template lacks goes at the end of the part and depends on the
        template's styles alone (ensure_style keeps styles based on an appended one out),
        so its bytes are the same whichever other styles were appended before it.
        """
        if spec not in self.appended:
            styles = Styles(parse_xml(self.blob))
            define_style(SimpleNamespace(styles=styles), spec, tune=False)
            xml = serialize_part_xml(styles.element)
            head = self.blob[: -len(_END)]
            appended = xml.startswith(head) and xml.endswith(_END)
            self.appended[spec] = (
                Appended(xml[len(head) : -len(_END)], styles[spec.name].style_id)
                if appended
                else None
            )
        return self.appended[spec]


class TemplateStylesPart(StylesPart):
    """The default template's styles.xml, parsed on the first read of its element.

    Until then its blob is the template's plus the styles appended with `ensure_style`
    (in the order they were added), byte for byte what the parsed part would give.
    """

    def __init__(self, partname: Any, content_type: str, package: Any, template: TemplateStyles):
        self.template = template
        self.added: dict[str, Appended] = {}  # by python-docx's internal name
        self._parsed: Any = None
        super().__init__(partname, content_type, cast(Any, None), package)

    @property
    def parsed(self) -> bool:
        return self._parsed is not None

    # python-docx's XmlPart reads and sets `_element`; the parse waits for the first read.
    @property  # type: ignore[override]
    def _element(self) -> Any:
        if self._parsed is None:
            self._parsed = parse_xml(self._unparsed_blob())
        return self._parsed

    @_element.setter
    def _element(self, element: Any) -> None:
        self._parsed = element

    @property
    def blob(self) -> bytes:
        if self._parsed is None:
            return self._unparsed_blob()
        return bytes(super().blob)

    def _unparsed_blob(self) -> bytes:
        if not self.added:
            return self.template.blob
        added = b"".join(a.xml for a in self.added.values())
        return self.template.blob[: -len(_END)] + added + _END


def _unparsed(doc: Any) -> TemplateStylesPart | None:
    part = doc.part.part_related_by(RT.STYLES)
    return part if isinstance(part, TemplateStylesPart) and not part.parsed else None


def style_ids(doc: Any) -> dict[str, str]:
    """Style id per name in STYLES, for the styles of the kind this writer expects."""
    part = _unparsed(doc)
    if part is not None:
        return dict(part.template.ids)  # the default template's, without parsing it
    return styles_ids(doc.styles)


def ensure_style(doc: Any, spec: StyleSpec) -> str:
    """Define `spec` in the document unless it has a style of that name (as
    define_style with tune=False); return the style's id."""
    part = _unparsed(doc)
    name = BabelFish.ui2internal(spec.name)  # how python-docx looks a name up
    if part is not None and name in part.added:
        return part.added[name].style_id  # define_style would find it and leave it
    appended = None
    if part is not None and BabelFish.ui2internal(spec.base) not in part.added:
        appended = part.template.append(spec)
    if part is None or appended is None:
        define_style(doc, spec, tune=False)  # on the parsed part
        return str(doc.styles[spec.name].style_id)
    part.added[name] = appended
    return appended.style_id
