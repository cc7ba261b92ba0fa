"""The encoding of an HTML file: BOM, then a <meta> charset in the first 1024 bytes, then
UTF-8 if the bytes are valid UTF-8, else windows-1252 (docs/conversion.md "HTML input").

Each case is a real file converted by the real converters; the text is read back with
pdftotext, python-docx and lxml, as a reader would see it.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path

import docx
import lxml.html
import pytest

from spoold.convert import ConversionContext, get_converter, load_converters

from .conftest import pdftotext

load_converters()

WORDS = "naïve — café ✓"


def convert(source: Path, target: str) -> Path:
    out = source.with_suffix(f".{target}")
    converter = get_converter("html", target)
    assert converter is not None
    converter.convert(source, out, ConversionContext(job_root=source.parent))
    return out


def docx_text(path: Path) -> str:
    return "\n".join(p.text for p in docx.Document(str(path)).paragraphs)


def html_text(path: Path) -> str:
    data = path.read_bytes()
    assert b'<meta charset="utf-8">' in data, "the HTML output declares what it is"
    return str(lxml.html.document_fromstring(data.decode("utf-8")).text_content())


def page(body: bytes, head: bytes = b"") -> bytes:
    return (
        b"<html><head>" + head + b"<title>t</title></head><body><p>" + body + b"</p></body></html>"
    )


Write = Callable[[bytes], Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    def write(data: bytes) -> Path:
        path = tmp_path / "page.html"
        path.write_bytes(data)
        return path

    return write


def test_utf8_without_a_declaration_reads_as_utf8_in_every_output(write: Write) -> None:
    source = write(page(WORDS.encode("utf-8")))
    assert WORDS in pdftotext(convert(source, "pdf"))
    assert WORDS in docx_text(convert(source, "docx"))
    assert WORDS in html_text(convert(source, "html"))


def test_windows_1252_without_a_declaration_still_reads_right(write: Write) -> None:
    # Not valid UTF-8 (é is one byte), so the fallback: windows-1252, where 0x93/0x94
    # are curly quotes and 0x80 the euro sign (Latin-1 would make them control codes).
    source = write(page(b"caf\xe9 \x93quoted\x94 \x80 5"))
    expected = "café “quoted” € 5"
    assert expected in pdftotext(convert(source, "pdf"))
    assert expected in docx_text(convert(source, "docx"))
    assert expected in html_text(convert(source, "html"))


@pytest.mark.parametrize(
    ("head", "body", "expected"),
    [
        # Valid UTF-8 bytes, but the file says windows-1252: the declaration wins.
        (b'<meta charset="windows-1252">', "été".encode(), "Ã©tÃ©"),
        (
            b'<meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-2">',
            "Łódź".encode("iso-8859-2"),
            "Łódź",
        ),
        (b"<META CHARSET='KOI8-R'>", "привет".encode("koi8-r"), "привет"),
        # Labels mean what browsers take them to mean: "iso-8859-1" is windows-1252.
        (b'<meta charset="iso-8859-1">', b"\x93quoted\x94", "“quoted”"),
    ],
    ids=["meta-charset", "http-equiv", "koi8-r", "latin1-label"],
)
def test_a_declared_charset_wins(write: Write, head: bytes, body: bytes, expected: str) -> None:
    source = write(page(body, head))
    assert expected in docx_text(convert(source, "docx"))
    assert expected in html_text(convert(source, "html"))


def test_a_declared_charset_wins_in_the_pdf(write: Write) -> None:
    source = write(page("été".encode(), b'<meta charset="windows-1252">'))
    assert "Ã©tÃ©" in pdftotext(convert(source, "pdf"))


@pytest.mark.parametrize(
    ("bom", "codec"),
    [
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ],
)
def test_a_byte_order_mark_wins_over_a_declaration(write: Write, bom: bytes, codec: str) -> None:
    text = page(WORDS.encode(), b'<meta charset="windows-1252">').decode("utf-8")
    source = write(bom + text.encode(codec))
    assert WORDS in docx_text(convert(source, "docx"))
    assert WORDS in html_text(convert(source, "html"))


@pytest.mark.parametrize(
    "head",
    [
        # Only the first 1024 bytes are searched for a declaration.
        b" " * 1024 + b'<meta charset="koi8-r">',
        # A declaration inside a comment or an attribute value is no declaration.
        b'<!-- <meta charset="koi8-r"> -->',
        b"<link title='<meta charset=\"koi8-r\">'>",
        # content= without http-equiv=content-type is not a declaration either.
        b'<meta content="text/html; charset=koi8-r">',
        # Labels browsers refuse to decode at all, and unknown ones, do not count.
        b'<meta charset="iso-2022-kr">',
        b'<meta charset="no-such-encoding">',
    ],
    ids=[
        "after-1024-bytes",
        "in-a-comment",
        "in-an-attribute",
        "content-without-pragma",
        "replacement-label",
        "unknown-label",
    ],
)
def test_what_is_not_a_declaration_is_ignored(write: Write, head: bytes) -> None:
    source = write(page(WORDS.encode(), head))
    assert WORDS in docx_text(convert(source, "docx"))
