"""An OFD package in memory: an ordered map of entry name -> bytes, and its zip form.

The writer builds one, the signer adds entries to it, the safe reader returns one.
Entry names are package paths without the leading "/" (``Doc_0/Document.xml``).
Zipping is deterministic (fixed entry order and timestamps) so the same licence
and time give the same bytes.

The zip is written here with struct + zlib rather than `zipfile`: `zipfile.writestr`
costs ~25 µs of bookkeeping per entry (a header written twice, seeks, a compressor
object), more than deflating a licence's small XML files.  The output is byte for byte
what `zipfile` writes for the same entries (tests compare them): local headers with
sizes and CRC up front (no data descriptors), version 2.0, Unix attributes 0644,
UTF-8 flag only for non-ASCII names.  Archives this writer emits stay far below the
Zip64 limits; larger ones are refused rather than written wrong.
"""

from __future__ import annotations

import struct
import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, TypeVar

T = TypeVar("T")

OFD_NS = "http://www.ofdspec.org/2016"
OFD = "{%s}" % OFD_NS  # Clark-notation prefix for lxml
NSMAP = {"ofd": OFD_NS}

# Entries that are already compressed (images) or small binary DER: deflating them costs
# ~0.5 ms per licence for < 1 % size, and inflating them costs every verification again.
_STORED = (".jpg", ".jpeg", ".png", ".gif", ".esl", ".dat")

# zip stores local time at 2-second resolution from 1980 on.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

_LOCAL = struct.Struct("<4s2B4HL2L2H")  # local file header, as zipfile.structFileHeader
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # central directory header (structCentralDir)
_END = struct.Struct("<4s4H2LH")  # end of central directory (structEndArchive)
_VERSION = 20  # 2.0: deflate
_UNIX = 3  # "version made by" host system
_ATTR = 0o644 << 16  # -rw-r--r--
_UTF8_NAME = 0x800
_STORE, _DEFLATE = 0, 8
_ZIP32_MAX = (1 << 31) - 1  # zipfile switches to Zip64 above this; we never need to


class PackageTooLarge(ValueError):
    """The package would need Zip64 (an entry or the archive beyond 2 GiB)."""


class ContentMemo:
    """A small LRU of ``f(data)`` keyed by the bytes themselves (equal content, not identity).

    The licence's structural files (Document.xml, PublicRes.xml, CustomTags.xml, ...) and
    the issuer's Seal.esl are the same in every document, so their deflate stream and
    digests are computed once per process.  Keys are whole contents, so a hit can only
    be the same bytes; entries above ``max_bytes`` are computed but never kept.
    """

    def __init__(self, fn: Callable[[bytes], T], max_entries: int = 64, max_bytes: int = 64 * 1024):
        self._fn, self._max_entries, self._max_bytes = fn, max_entries, max_bytes
        self._d: dict[bytes, T] = {}
        self._lock = threading.Lock()

    def __contains__(self, data: bytes) -> bool:
        """Whether ``data`` is remembered (no computation, no change of recency)."""
        return data in self._d

    def __call__(self, data: bytes) -> T:
        if len(data) > self._max_bytes:
            return self._fn(data)
        with self._lock:
            hit = self._d.pop(data, None)
            if hit is not None:
                self._d[data] = hit  # most recently used last
                return hit
        out = self._fn(data)
        with self._lock:
            if len(self._d) >= self._max_entries:
                del self._d[next(iter(self._d))]  # least recently used
            self._d[data] = out
        return out


def _deflate_crc(data: bytes, level: int) -> tuple[bytes, int]:
    """(raw deflate stream, CRC-32): the very stream zipfile writes (compressobj, wbits -15)."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(), zlib.crc32(data)


_DEFAULT_LEVEL = 6
_deflate_default = ContentMemo(lambda data: _deflate_crc(data, _DEFAULT_LEVEL))


def _deflate(data: bytes, level: int) -> tuple[bytes, int]:
    return _deflate_default(data) if level == _DEFAULT_LEVEL else _deflate_crc(data, level)


def _dos_time(ts: datetime | None) -> tuple[int, int]:
    y, mo, d, h, mi, s = _ZIP_EPOCH if ts is None else (max(ts.year, 1980), ts.month, ts.day, ts.hour, ts.minute, ts.second)
    return h << 11 | mi << 5 | s // 2, (y - 1980) << 9 | mo << 5 | d


def zip_entries(files: dict[str, bytes], timestamp: datetime | None = None, compresslevel: int = _DEFAULT_LEVEL) -> bytes:
    """The zip archive of ``files`` in order: images and DER stored, everything else deflated."""
    dostime, dosdate = _dos_time(timestamp)
    local: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for name, data in files.items():
        name = name.split("\0", 1)[0]  # as zipfile.ZipInfo does
        try:
            raw_name, flags = name.encode("ascii"), 0
        except UnicodeEncodeError:
            raw_name, flags = name.encode("utf-8"), _UTF8_NAME
        if name.lower().endswith(_STORED):
            method, body, crc = _STORE, data, zlib.crc32(data)
        else:
            method, (body, crc) = _DEFLATE, _deflate(data, compresslevel)
        size, csize = len(data), len(body)
        if max(size, csize, offset) > _ZIP32_MAX:
            raise PackageTooLarge(f"{name}: entry or archive beyond 2 GiB / 条目或文件超过 2 GiB")
        local += (
            _LOCAL.pack(b"PK\x03\x04", _VERSION, 0, flags, method, dostime, dosdate, crc, csize, size, len(raw_name), 0),
            raw_name,
            body,
        )
        central += (
            _CENTRAL.pack(b"PK\x01\x02", _VERSION, _UNIX, _VERSION, 0, flags, method, dostime, dosdate, crc,
                          csize, size, len(raw_name), 0, 0, 0, 0, _ATTR, offset),
            raw_name,
        )
        offset += _LOCAL.size + len(raw_name) + csize
    cd = b"".join(central)
    n = len(files)
    if n > 0xFFFF or offset + len(cd) > _ZIP32_MAX:
        raise PackageTooLarge(f"{n} entries or beyond 2 GiB: too large to zip / {n} 个条目或超过 2 GiB，无法打包")
    return b"".join(local) + cd + _END.pack(b"PK\x05\x06", 0, 0, n, n, len(cd), offset, 0)


@dataclass
class Package:
    files: dict[str, bytes] = field(default_factory=dict)
    # Timestamp written into every zip entry; None = 1980-01-01 (fully reproducible).
    timestamp: datetime | None = None

    def __contains__(self, name: str) -> bool:
        return name.lstrip("/") in self.files

    def __getitem__(self, name: str) -> bytes:
        return self.files[name.lstrip("/")]

    def __setitem__(self, name: str, data: bytes) -> None:
        self.files[name.lstrip("/")] = bytes(data)

    def names(self) -> list[str]:
        return list(self.files)

    def copy(self) -> "Package":
        return Package(dict(self.files), self.timestamp)

    def to_bytes(self, compresslevel: int = _DEFAULT_LEVEL) -> bytes:
        return zip_entries(self.files, self.timestamp, compresslevel)
