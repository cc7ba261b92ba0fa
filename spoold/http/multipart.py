"""A multipart/form-data body streamed into files, part by part (python-multipart's
parser): `file` (the main document), `resources` (a zip), `reference` (a DOCX) and
`options` (JSON text). Parts are written where the upload says (Sink), never held whole
in memory; their count and the size of `options` are bounded."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import ApiError

MAX_PARTS = 8
MAX_OPTIONS_BYTES = 64 * 1024
FILE_FIELDS = ("file", "resources", "reference")
FIELDS = (*FILE_FIELDS, "options")


@dataclass
class Part:
    field: str
    filename: str | None
    content_type: str
    size: int = 0
    sink: BinaryIO | None = None  # a file part's open file
    text: bytearray = dataclasses.field(default_factory=bytearray)  # `options`


class FormReader:
    """Feeds chunks to the parser; `open_sink(field, filename, content_type)` gives the
    file a file part is written to. Raises ApiError (413, 422) on a bad form."""

    def __init__(self, boundary: bytes, open_sink: Callable[[Part], BinaryIO]) -> None:
        self.open_sink = open_sink
        self.parts: dict[str, Part] = {}
        self.count = 0
        self._headers: dict[str, str] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._current: Part | None = None
        callbacks: Any = {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._part_end,
        }
        self.parser = MultipartParser(boundary, callbacks)

    def feed(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except ApiError:
            raise
        except Exception as exc:  # the parser's own errors: a malformed body
            raise ApiError(400, f"malformed multipart body: {exc}") from None

    def finish(self) -> None:
        try:
            self.parser.finalize()
        except Exception as exc:
            raise ApiError(400, f"malformed multipart body: {exc}") from None
        if self._current is not None:
            raise ApiError(400, "the multipart body ends inside a part")

    def _part_begin(self) -> None:
        self.count += 1
        if self.count > MAX_PARTS:
            raise ApiError(413, f"more than {MAX_PARTS} form parts")
        self._headers = {}

    def _header_end(self) -> None:
        name = self._field.decode("latin-1").strip().lower()
        self._headers[name] = self._value.decode("utf-8", "replace").strip()
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", ""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if name not in FIELDS:
            raise ApiError(422, f"unknown form field {name!r}; allowed: {', '.join(FIELDS)}")
        if name in self.parts:
            raise ApiError(422, f"form field {name!r} is given twice")
        raw_filename = params.get(b"filename")
        filename = raw_filename.decode("utf-8", "replace") if raw_filename is not None else None
        ctype = parse_options_header(self._headers.get("content-type", ""))[0].decode("latin-1")
        part = Part(name, filename, ctype.lower())
        if name in FILE_FIELDS:
            part.sink = self.open_sink(part)
        self.parts[name] = part
        self._current = part

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self._current
        if part is None:
            return
        part.size += end - start
        if part.sink is not None:
            part.sink.write(data[start:end])
            return
        if part.size > MAX_OPTIONS_BYTES:
            raise ApiError(413, f"'options' is larger than {MAX_OPTIONS_BYTES // 1024} KB")
        part.text.extend(data[start:end])

    def _part_end(self) -> None:
        self._current = None
