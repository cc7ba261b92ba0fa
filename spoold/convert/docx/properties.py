"""Document properties (docProps/core.xml) from the HTML head and the job's metadata."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from ..base import metadata_text
from .xml import WS, xml_safe

# Core dates when the document gives none: never the clock, so output is reproducible.
FIXED_DATE = dt.datetime(2000, 1, 1, 0, 0, 0)
# Word's limit; python-docx refuses longer core property values.
MAX_PROPERTY_CHARS = 255
_ALIASES = {"authors": "author", "tags": "keywords", "language": "lang"}


def parse_date(value: str) -> dt.datetime | None:
    """An ISO date or date-time (naive UTC), or None when it is not one Word can store."""
    value = value.strip()
    if not value:
        return None
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})", value)
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        if not m:
            return None
        try:
            parsed = dt.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed if 1900 <= parsed.year <= 9999 else None


def document_metadata(root: Any, options_metadata: Mapping[str, Any]) -> dict[str, str]:
    """The head's title, meta tags and lang, overridden by the job's `metadata` option."""
    meta = _head_metadata(root)
    for key, value in options_metadata.items():
        k = str(key).lower()
        meta[_ALIASES.get(k, k)] = metadata_text(value).strip()
    return meta


def _head_metadata(root: Any) -> dict[str, str]:
    meta: dict[str, str] = {}
    title = root.find(".//head/title")
    if title is not None and (title.text or "").strip():
        meta["title"] = WS.sub(" ", title.text_content()).strip()
    for el in root.iterfind(".//head/meta"):
        name = (el.get("name") or "").strip().lower()
        content = (el.get("content") or "").strip()
        if not content:
            continue
        if name in ("author", "keywords", "subject", "description"):
            meta[name] = content
        elif name in ("dcterms.created", "date", "dc.date"):
            meta["date"] = content
    lang = (root.get("lang") or "").strip()
    if lang:
        meta["lang"] = lang
    return meta


def set_properties(doc: Any, meta: Mapping[str, str]) -> None:
    def cap(s: str) -> str:
        return xml_safe(s)[:MAX_PROPERTY_CHARS]

    cp = doc.core_properties
    cp.title = cap(meta.get("title", ""))
    cp.author = cap(meta.get("author", ""))
    cp.keywords = cap(meta.get("keywords", ""))
    cp.subject = cap(meta.get("subject") or meta.get("description", ""))
    cp.comments = cap(meta.get("description", ""))
    cp.category = cap(meta.get("category", ""))
    cp.language = cap(meta.get("lang", ""))
    cp.last_modified_by = "spoold"
    cp.revision = 1
    when = parse_date(meta.get("date", "")) or FIXED_DATE
    cp.created = when
    cp.modified = when
    cp.last_printed = when
