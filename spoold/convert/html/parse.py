"""Reading an HTML document into a depth-checked lxml tree, and the recursion limit
that lets a document of the allowed depth be walked and laid out."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lxml.etree
import lxml.html

from ...errors import ErrorCode, JobError

# Deeper than this is no document a person wrote; WeasyPrint would recurse itself to death.
MAX_DEPTH = 256
# WeasyPrint recurses a few dozen frames per nesting level: at Python's default limit a
# 150-deep page fails, so layout runs under this limit (MAX_DEPTH needs about 3,000).
LAYOUT_RECURSION_LIMIT = 6000
MAX_SOURCE_BYTES = 64 * 1024 * 1024


def parse_html(text: str | bytes, name: str = "document") -> Any:
    """Parse HTML with lxml, refusing documents nested deeper than MAX_DEPTH.

    huge_tree keeps libxml2 from silently dropping content below depth 256; the depth
    walk is iterative, so a 50,000-deep page costs milliseconds, not a crash.
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
