"""Reading an HTML document: bytes to text, text to a depth-checked lxml tree.

The encoding is decided here, once, by the WHATWG order (charset.py), and lxml is always
handed UTF-8 it is told is UTF-8: libxml2's own guess for a page without a declaration
is Latin-1, which garbles every UTF-8 page that lacks <meta charset>.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lxml.etree
import lxml.html

from ...errors import ErrorCode, JobError
from .charset import decode_html

# Deeper than this is no document a person wrote; WeasyPrint would recurse itself to death.
MAX_DEPTH = 256
# WeasyPrint recurses a few dozen frames per nesting level: at Python's default limit a
# 150-deep page fails, so layout runs under this limit (MAX_DEPTH needs about 3,000).
LAYOUT_RECURSION_LIMIT = 6000
MAX_SOURCE_BYTES = 64 * 1024 * 1024


def parse_html(text: str | bytes, name: str = "document") -> Any:
    """Parse HTML with lxml, refusing documents nested deeper than MAX_DEPTH.

    Bytes are decoded first (BOM, then <meta> charset, then UTF-8 if valid, else
    windows-1252). huge_tree keeps libxml2 from silently dropping content below depth
    256; the depth walk is iterative, so a 50,000-deep page costs milliseconds, not a crash.
    """
    if len(text) > MAX_SOURCE_BYTES:  # checked before decoding a huge file
        raise JobError(ErrorCode.INPUT_TOO_LARGE, f"{name} is larger than {MAX_SOURCE_BYTES} bytes")
    if isinstance(text, bytes):
        text = decode_html(text)
    # lxml refuses str input with an encoding declaration; hand it bytes instead, with
    # the encoding fixed so a <meta charset> in the text cannot switch it again.
    data = text.encode("utf-8")
    if len(data) > MAX_SOURCE_BYTES:
        raise JobError(ErrorCode.INPUT_TOO_LARGE, f"{name} is larger than {MAX_SOURCE_BYTES} bytes")
    parser = lxml.html.HTMLParser(huge_tree=True, encoding="utf-8", remove_comments=True)
    try:
        root = lxml.html.document_fromstring(data or b"<html></html>", parser=parser)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise JobError(
            ErrorCode.INPUT_INVALID, f"{name} could not be parsed as HTML: {exc}"
        ) from exc
    _check_depth(root, name)
    return root


def _check_depth(root: Any, name: str) -> None:
    depth = 0
    for event, _ in lxml.etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > MAX_DEPTH:
            raise JobError(
                ErrorCode.INPUT_INVALID,
                f"{name} nests elements more than {MAX_DEPTH} levels deep",
                hint="Flatten the document structure and drop it again.",
            )


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
