"""The reproducible zip: the package's members in name order, fixed dates, same deflate.

python-docx's save deflates every part with the clock's timestamps; here its package
writer hands the parts over in memory and they are zipped once, deterministically.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any, cast

from docx.opc.pkgwriter import PackageWriter

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Raw deflate (level 6, as zipfile does it) and CRC of members that repeat from job to
# job: the template's styles, theme and settings are most of a small document's zip
# time, and a new compressor alone costs about 0.1 ms (zlib allocates and clears 256 KB
# of state). Keyed by content, so a cached member gives exactly the bytes a fresh deflate
# would.
DEFLATE_LEVEL = 6
_DEFLATE_CACHE_MAX_BYTES = 32 * 1024 * 1024
_DEFLATE_CACHE: dict[bytes, tuple[bytes, int]] = {}
# Members that differ from document to document: not worth keeping.
_PER_DOCUMENT_MEMBERS = frozenset(
    {
        "word/document.xml",
        "word/_rels/document.xml.rels",
        "word/footnotes.xml",
        "word/endnotes.xml",
        "word/numbering.xml",
        "docProps/core.xml",
    }
)


class _Members:
    """A stand-in for python-docx's zip writer that keeps the package's members in memory.

    python-docx's save deflates every part, and the fixed-order zip would then inflate and
    deflate them all again; collecting the blobs skips both.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self.blobs: dict[str, bytes] = {}

    def write(self, pack_uri: Any, blob: bytes | str) -> None:
        name = str(pack_uri.membername)
        self.names.append(name)
        self.blobs[name] = blob.encode("utf-8") if isinstance(blob, str) else bytes(blob)

    def close(self) -> None:
        pass


def package_members(doc: Any) -> tuple[list[str], dict[str, bytes]]:
    """The members python-docx's save would zip, as (names in write order, name -> bytes)."""
    package = doc.part.package
    parts = list(package.parts)
    for part in parts:
        part.before_marshal()
    members = _Members()
    # PackageWriter.write, minus the zip it opens itself (its helpers are untyped).
    writer: Any = PackageWriter
    writer._write_content_types_stream(members, parts)
    writer._write_pkg_rels(members, package.rels)
    writer._write_parts(members, parts)
    return members.names, members.blobs


def _deflate(data: bytes) -> bytes:
    comp = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -15)
    return comp.compress(data) + comp.flush()


def _cached_deflate(name: str, data: bytes) -> tuple[bytes, int] | None:
    """(raw deflate, CRC-32) of a member that repeats between documents; None for the
    others."""
    if name in _PER_DOCUMENT_MEMBERS or name.startswith("word/media/"):
        return None
    known = _DEFLATE_CACHE.get(data)
    if known is None:
        known = (_deflate(data), zlib.crc32(data))
        size = len(data) + len(known[0])
        cached = sum(len(k) + len(v[0]) for k, v in _DEFLATE_CACHE.items())
        while _DEFLATE_CACHE and cached + size > _DEFLATE_CACHE_MAX_BYTES:
            oldest = next(iter(_DEFLATE_CACHE))  # first in, first out
            cached -= len(oldest) + len(_DEFLATE_CACHE.pop(oldest)[0])
        if size <= _DEFLATE_CACHE_MAX_BYTES:
            _DEFLATE_CACHE[data] = known
    return known


class _Precompressed:
    """Plays zipfile's compressor for one member whose deflate is already known."""

    def __init__(self, packed: bytes) -> None:
        self.packed = packed

    def compress(self, data: bytes) -> bytes:
        packed, self.packed = self.packed, b""
        return packed

    def flush(self) -> bytes:
        return b""


def fixed_zip(names: list[str], blobs: Mapping[str, bytes]) -> bytes:
    """Zip the members with fixed timestamps, order and compression."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(names):
            data = blobs[name]
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0
            info.external_attr = 0
            known = _cached_deflate(name, data)
            if known is None:
                dst.writestr(info, data, compresslevel=DEFLATE_LEVEL)
                continue
            # What writestr does, with the deflate and CRC taken from the cache (zipfile
            # writes the header from its sizes and CRC when the member is closed).
            info._compresslevel = DEFLATE_LEVEL  # type: ignore[attr-defined]
            info.file_size = len(data)
            with dst.open(info, "w") as dest:
                member = cast(Any, dest)
                member._compressor = _Precompressed(known[0])
                member.write(b"")
                member._file_size, member._crc = len(data), known[1]
    return out.getvalue()


def docx_bytes(doc: Any) -> bytes:
    """The document as a reproducible .docx file."""
    return fixed_zip(*package_members(doc))
