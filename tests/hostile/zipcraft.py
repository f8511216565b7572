"""ZIP bytes written by hand, so a test can lie in any header field (which `zipfile` refuses to do),
and `exercise`, which opens a package and touches every lazily parsed part."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ofd.errors import OFDError
from ofd.reader import open_ofd
from ofd.signatures_xml import parse_signature_xml

MiB = 1024 * 1024


@dataclass
class E:
    """One entry; any field left None is written truthfully."""

    name: bytes
    data: bytes = b""
    method: int = 8
    flags: int = 0x800
    usize: int | None = None  # declared sizes/crc; None = true value
    csize: int | None = None
    crc: int | None = None
    offset: int | None = None  # central directory's local-header offset; None = true


def raw_zip(entries: list[E], count: int | None = None, gap: bytes = b"") -> bytes:
    """ZIP bytes with every header field under the caller's control."""
    local, central = bytearray(), bytearray()
    for e in entries:
        body = zlib.compress(e.data, 9)[2:-4] if e.method == 8 else e.data
        crc = zlib.crc32(e.data) if e.crc is None else e.crc
        usize = len(e.data) if e.usize is None else e.usize
        csize = len(body) if e.csize is None else e.csize
        offset = len(local) if e.offset is None else e.offset
        fields = (20, e.flags, e.method, 0, 0x21, crc, csize, usize, len(e.name), 0)
        local += struct.pack("<4s5H3L2H", b"PK\x03\x04", *fields) + e.name + body + gap
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0, offset) + e.name
    n = len(entries) if count is None else count
    zip64 = b""
    if n > 0xFFFF:  # ZIP64 end record + locator, classic record saturated
        end = len(local) + len(central)
        zip64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(central), len(local))
        zip64 += struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
        n = 0xFFFF
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(central), len(local), 0)
    return bytes(local + central + zip64 + eocd)


def stored_zip(files: dict[str, bytes]) -> bytes:
    """Honest, uncompressed ZIP of ``files`` (fast: the fuzzers rebuild one per input)."""
    return raw_zip([E(name.encode("utf-8", "surrogatepass"), data, method=0) for name, data in files.items()])


def exercise(data: bytes) -> None:
    """Open and touch every lazily parsed part; only OFDError may escape."""
    try:
        doc = open_ofd(data)
        doc.fonts, doc.media, doc.templates, doc.annotations, doc.custom_tags, doc.attachments
        doc.custom_datas, doc.doc_info
        doc.check_composite_cycles()
        for page in doc.pages:
            doc.load_page_res(page)
        for entry in doc.signatures:
            parse_signature_xml(doc, entry)
    except OFDError:
        pass
