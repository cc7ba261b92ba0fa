"""Which encoding an HTML file is in, decided the way browsers decide it (WHATWG order):

1. a byte order mark (UTF-8, UTF-16LE, UTF-16BE);
2. a charset in `<meta charset>` or `<meta http-equiv=content-type content="...;
   charset=...">` within the first 1024 bytes (the HTML standard's prescan). Labels mean
   what the Encoding Standard says (webencodings): "iso-8859-1" and "ascii" are
   windows-1252, a declared UTF-16 is UTF-8;
3. UTF-8 when the bytes are valid UTF-8 (a file saved today without a declaration);
4. windows-1252, the web's fallback for older Western files.

libxml2's own fallback is Latin-1, which garbles every UTF-8 page without <meta charset>.
"""

from __future__ import annotations

import codecs
import re

import webencodings  # type: ignore[import-untyped]

PRESCAN_BYTES = 1024
FALLBACK = "windows-1252"

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16le"),
    (codecs.BOM_UTF16_BE, "utf-16be"),
)
_SPACE = b"\t\n\f\r "
# One attribute as the prescan reads it: a name (which may start with "="), then an
# optional value, quoted (up to the closing quote) or bare (up to space or ">").
_ATTRIBUTE = re.compile(
    rb"[\t\n\f\r /]*(?P<name>[^\t\n\f\r />][^\t\n\f\r /=>]*)"
    rb"(?:[\t\n\f\r ]*=[\t\n\f\r ]*(?P<value>\"[^\"]*\"?|'[^']*'?|[^\t\n\f\r >]*))?"
)
_CONTENT_CHARSET = re.compile(
    rb"charset[\t\n\f\r ]*=[\t\n\f\r ]*(?:\"([^\"]*)\"|'([^']*)'|([^\t\n\f\r ;\"'][^\t\n\f\r ;]*))",
    re.I,
)
_META = re.compile(rb"<meta[\t\n\f\r /]", re.I)
_TAG = re.compile(rb"</?[a-zA-Z]")
# windows-1252 as the Encoding Standard has it: the five bytes Python's cp1252 leaves
# undefined are the C1 controls of the same number, not decoding errors.
_WINDOWS_1252 = "".join(
    chr(b) if (c := bytes([b]).decode("cp1252", "replace")) == "\ufffd" else c for b in range(256)
)


def decode_html(data: bytes) -> str:
    """The text of an HTML file, in the encoding `html_encoding` finds (BOM removed)."""
    encoding, bom = _bom(data)
    data = data[bom:]
    if encoding is None:
        encoding = html_encoding(data)
    if encoding == "windows-1252":
        return str(codecs.charmap_decode(data, "strict", _WINDOWS_1252)[0])
    text: str = webencodings.lookup(encoding).codec_info.decode(data, "replace")[0]
    return text


def html_encoding(data: bytes) -> str:
    """The WHATWG name of the encoding `data` is read in ('utf-8', 'windows-1252'...)."""
    encoding, _ = _bom(data)
    if encoding is None:
        encoding = prescan(data[:PRESCAN_BYTES])
    if encoding is None:
        encoding = "utf-8" if _is_utf8(data) else FALLBACK
    return encoding


def prescan(head: bytes) -> str | None:
    """The encoding a <meta> in `head` declares, per the HTML standard's prescan."""
    pos = 0
    while pos < len(head):
        if head.startswith(b"<!--", pos):
            end = head.find(b"-->", pos + 2)
            pos = len(head) if end < 0 else end + 3
        elif _META.match(head, pos):
            found, pos = _meta(head, pos + 5)
            if found is not None:
                return found
        elif _TAG.match(head, pos):
            pos = _skip_tag(head, pos)
        elif head.startswith((b"<!", b"</", b"<?"), pos):
            end = head.find(b">", pos)
            pos = len(head) if end < 0 else end + 1
        else:
            pos += 1
    return None


def _meta(head: bytes, pos: int) -> tuple[str | None, int]:
    """The encoding one <meta>'s attributes declare, and where the tag ends."""
    seen: set[bytes] = set()
    got_pragma = False
    need_pragma: bool | None = None
    charset: str | None = None
    attributes, end = _attributes(head, pos)
    for name, value in attributes:
        if name in seen:
            continue
        seen.add(name)
        if name == b"http-equiv":
            got_pragma = got_pragma or value.lower() == b"content-type"
        elif name == b"content" and charset is None:
            charset = _content_charset(value)
            need_pragma = True if charset is not None else need_pragma
        elif name == b"charset" and charset is None:
            charset = _lookup(value)
            need_pragma = False
    if charset is None or need_pragma is None or (need_pragma and not got_pragma):
        return None, end
    if charset in ("utf-16le", "utf-16be"):
        return "utf-8", end  # a file that can declare it in ASCII is not UTF-16
    return (FALLBACK if charset == "x-user-defined" else charset), end


def _attributes(head: bytes, pos: int) -> tuple[list[tuple[bytes, bytes]], int]:
    """(lower-case name, value) of each attribute from `pos`, and where they end."""
    out: list[tuple[bytes, bytes]] = []
    while m := _ATTRIBUTE.match(head, pos):
        value = m.group("value") or b""
        if value[:1] in (b'"', b"'"):
            value = value[1:-1] if len(value) > 1 and value[-1:] == value[:1] else value[1:]
        out.append((m.group("name").lower(), value))
        pos = m.end()
    return out, pos


def _skip_tag(head: bytes, pos: int) -> int:
    """Past another tag's name and attributes, so a "<meta" in a value is not read."""
    while pos < len(head) and head[pos] not in _SPACE and head[pos : pos + 1] != b">":
        pos += 1
    attributes, end = _attributes(head, pos)
    return end if attributes else pos + 1


def _content_charset(content: bytes) -> str | None:
    m = _CONTENT_CHARSET.search(content)
    if m is None:
        return None
    return _lookup(next(g for g in m.groups() if g is not None))


def _lookup(label: bytes) -> str | None:
    encoding = webencodings.lookup(label.decode("ascii", "replace"))
    # "replacement" (ISO-2022-KR, HZ...) would turn the whole file into one U+FFFD:
    # treat it as no declaration and let the bytes decide.
    if encoding is None or encoding.name == "replacement":
        return None
    return str(encoding.name)


def _bom(data: bytes) -> tuple[str | None, int]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None, 0


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
