"""A ZIP written as a stream to disk: one file in memory at a time, the central directory spooled.

Python's `zipfile` keeps a `ZipInfo` per entry until it closes (~400 bytes each: 40 MB for
100,000 licences, growing with the job); here each central-directory record goes to a spool
file as its entry is written and is copied behind the entries at the end, so memory stays
flat however many entries. Entries are stored (an OFD is already deflated), CRC and sizes
known before the local header, so no data descriptors; Zip64 records appear only when the
archive needs them (>= 65,535 entries or offsets >= 4 GiB). The archive is written to
``<target>.part`` and renamed into place, so a reader never sees half a ZIP.
"""

from __future__ import annotations

import os
import struct
import tempfile
import time
import zlib
from pathlib import Path

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_END64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<IIQI")
MAX32, MAX16 = 0xFFFFFFFF, 0xFFFF


class ZipStream:
    """``add(name, data)`` entries in order, then ``close()``; ``abort()`` leaves nothing behind.

    ``zip64_from`` / ``entries64_from`` are the thresholds at which Zip64 fields are used
    (the format's limits; lower only to test those records)."""

    def __init__(self, target: Path, *, zip64_from: int = MAX32, entries64_from: int = MAX16):
        self.target = Path(target)
        self.tmp = self.target.with_name(self.target.name + ".part")
        self._f = self.tmp.open("wb")
        self._cd = tempfile.TemporaryFile(dir=self.target.parent)
        self._n = self._cd_size = 0
        self._zip64_from, self._entries64_from = zip64_from, entries64_from
        t = time.gmtime()
        self._dos_time = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
        self._dos_date = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday

    def add(self, name: str, data: bytes) -> None:
        self._entry(name, zlib.crc32(data), len(data), [data])

    def add_file(self, name: str, path: Path) -> None:
        """The file's bytes as entry ``name``, read in blocks twice (CRC, then copy): flat memory."""
        crc = size = 0
        with Path(path).open("rb") as f:
            while block := f.read(1 << 20):
                crc, size = zlib.crc32(block, crc), size + len(block)
            f.seek(0)
            self._entry(name, crc, size, iter(lambda: f.read(1 << 20), b""))

    def _entry(self, name: str, crc: int, size: int, blocks) -> None:
        if size >= MAX32:
            raise ValueError(f"{name}: a single entry of 4 GiB or more is not supported")
        raw = name.encode("utf-8")
        flags = 0 if raw.isascii() else 0x800
        offset = self._f.tell()
        self._f.write(_LOCAL.pack(0x04034B50, 20, flags, 0, self._dos_time, self._dos_date, crc, size, size, len(raw), 0))
        self._f.write(raw)
        for block in blocks:
            self._f.write(block)
        extra = b""
        if offset >= self._zip64_from:
            extra, offset = struct.pack("<HHQ", 1, 8, offset), MAX32
        record = _CENTRAL.pack(0x02014B50, (3 << 8) | 45, 45 if extra else 20, flags, 0, self._dos_time, self._dos_date,
                               crc, size, size, len(raw), len(extra), 0, 0, 0, 0o100644 << 16, offset)
        self._cd.write(record + raw + extra)
        self._cd_size += len(record) + len(raw) + len(extra)
        self._n += 1

    def close(self) -> Path:
        cd_offset = self._f.tell()
        self._cd.seek(0)
        while block := self._cd.read(1 << 20):
            self._f.write(block)
        self._cd.close()
        end64 = self._n >= self._entries64_from or cd_offset >= self._zip64_from or self._cd_size >= self._zip64_from
        if end64:
            at = self._f.tell()
            self._f.write(_END64.pack(0x06064B50, 44, 45, 45, 0, 0, self._n, self._n, self._cd_size, cd_offset))
            self._f.write(_LOCATOR64.pack(0x07064B50, 0, at, 1))
        n = MAX16 if end64 else self._n
        self._f.write(_END.pack(0x06054B50, 0, 0, n, n, MAX32 if end64 else self._cd_size,
                                MAX32 if end64 else cd_offset, 0))
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.tmp, self.target)
        return self.target

    def abort(self) -> None:
        self._cd.close()
        self._f.close()
        self.tmp.unlink(missing_ok=True)
