"""Hostile-input ZIP reader: the only way an uploaded OFD package becomes a `Package`.

Why not `zipfile`: it trusts header sizes, lets overlapping entries (the "better zip
bomb") through on this Python, silently keeps the last of duplicate names, and costs
~50 µs per entry. This reader parses the central directory itself, checks every name
and every size *before* inflating, then inflates each entry with zlib's `max_length`
bound so that no lying header can make it produce more than the caps allow.
Only stored (0) and deflate (8) entries are accepted, as OFD producers write no others.
"""

from __future__ import annotations

import operator
import re
import struct
import zlib
from dataclasses import dataclass

from ofd.errors import UnsafePackage
from ofd.package import Package

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Caps for one package. The defaults fit any real licence or e-invoice with wide margin."""

    max_archive_bytes: int = 50 * MiB
    max_entries: int = 2000
    max_entry_bytes: int = 50 * MiB
    max_total_bytes: int = 200 * MiB
    max_ratio: int = 200
    # Small entries (repetitive XML) may compress far better than max_ratio; only entries
    # larger than this are held to it, so the ratio cap bounds bombs, not honest files.
    ratio_min_bytes: int = 1 * MiB
    max_name_bytes: int = 1024
    allow_nested_archives: bool = False


_EOCD = struct.Struct("<4s4H2LH")  # 22 bytes
_Z64_LOCATOR = struct.Struct("<4sLQL")  # 20 bytes
_Z64_EOCD = struct.Struct("<4sQ2H2L4Q")  # 56 bytes
_CDH = struct.Struct("<4s6H3L5H2L")  # 46 bytes
_LFH = struct.Struct("<4s5H3L2H")  # 30 bytes
_SIG_LFH, _SIG_CDH, _SIG_EOCD = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"
_SIG_Z64_EOCD, _SIG_Z64_LOC = b"PK\x06\x06", b"PK\x06\x07"
_FLAG_ENCRYPTED, _FLAG_DESCRIPTOR, _FLAG_STRONG_ENC, _FLAG_UTF8, _FLAG_CD_ENC = 0x1, 0x8, 0x40, 0x800, 0x2000
# A data descriptor is 12 or 20 bytes, plus an optional 4-byte signature.
_DESCRIPTOR_SIZES = frozenset({12, 16, 20, 24})
_ARCHIVE_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08", b"\x1f\x8b", b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07")
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Fast path: no backslash, colon or control character and no empty segment.
_PLAIN_NAME = re.compile(r"(?:[^/\\:\x00-\x1f\x7f]+/)*[^/\\:\x00-\x1f\x7f]+/?")


@dataclass(slots=True)
class _Entry:
    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    offset: int
    data_start: int = 0


def _corrupt(reason: str) -> UnsafePackage:
    return UnsafePackage("corrupt_zip", reason=reason)


def _find_eocd(data: bytes) -> int:
    """Offset of the end-of-central-directory record whose comment reaches the file's end."""
    floor = max(0, len(data) - _EOCD.size - 0xFFFF)
    pos = data.rfind(_SIG_EOCD, floor)
    while pos >= 0:
        if pos + _EOCD.size <= len(data):
            (comment_len,) = struct.unpack_from("<H", data, pos + 20)
            if pos + _EOCD.size + comment_len == len(data):
                return pos
        pos = data.rfind(_SIG_EOCD, floor, pos)
    raise _corrupt("no end-of-central-directory record")


def _directory_bounds(data: bytes, limits: Limits) -> tuple[int, int, int]:
    """(count, cd_offset, cd_end) from the EOCD record, following a ZIP64 locator if used."""
    eocd = _find_eocd(data)
    _, disk, cd_disk, n_here, n_total, cd_size, cd_off, _ = _EOCD.unpack_from(data, eocd)
    cd_end_expected = eocd
    if n_total == 0xFFFF or cd_size == 0xFFFFFFFF or cd_off == 0xFFFFFFFF:
        loc = eocd - _Z64_LOCATOR.size
        if loc < 0 or data[loc : loc + 4] != _SIG_Z64_LOC:
            raise _corrupt("ZIP64 locator missing")
        _, _, z64_off, _ = _Z64_LOCATOR.unpack_from(data, loc)
        if z64_off + _Z64_EOCD.size > loc or data[z64_off : z64_off + 4] != _SIG_Z64_EOCD:
            raise _corrupt("ZIP64 end record missing")
        _, _, _, _, disk, cd_disk, n_here, n_total, cd_size, cd_off = _Z64_EOCD.unpack_from(data, z64_off)
        cd_end_expected = z64_off
    if disk != 0 or cd_disk != 0 or n_here != n_total:
        raise _corrupt("multi-disk archive")
    if n_total > limits.max_entries:
        raise UnsafePackage("too_many_entries", count=n_total, limit=limits.max_entries)
    if cd_off + cd_size != cd_end_expected:
        raise _corrupt("central directory size/offset inconsistent")
    return n_total, cd_off, cd_end_expected


def _decode_name(raw: bytes, flags: int, limits: Limits) -> str:
    if len(raw) > limits.max_name_bytes:
        raise UnsafePackage("bad_name", entry=raw[:64].decode("utf-8", "replace") + "…", reason="name too long")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        if flags & _FLAG_UTF8:
            raise UnsafePackage("bad_name", entry=raw.decode("utf-8", "replace"), reason="invalid UTF-8") from None
    try:  # Chinese producers without the UTF-8 flag write GBK names
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        raise UnsafePackage("bad_name", entry=raw.decode("latin-1"), reason="undecodable name") from None


def check_entry_name(name: str) -> bool:
    """Raise UnsafePackage unless `name` is a plain relative path; True if it names a directory."""
    if _PLAIN_NAME.fullmatch(name) and "/." not in "/" + name:
        return name.endswith("/")
    shown = name.replace("\x00", "\\x00")
    if "\x00" in name:
        raise UnsafePackage("bad_name", entry=shown, reason="NUL character")
    if _CONTROL.search(name):
        raise UnsafePackage("bad_name", entry=shown, reason="control character")
    if "\\" in name:
        raise UnsafePackage("backslash_name", entry=shown)
    if name.startswith("/"):
        raise UnsafePackage("absolute_name", entry=shown)
    if not name:
        raise UnsafePackage("bad_name", entry=shown, reason="empty name")
    if _DRIVE.match(name):
        raise UnsafePackage("drive_letter", entry=shown)
    if ":" in name:
        raise UnsafePackage("bad_name", entry=shown, reason="colon")
    is_dir = name.endswith("/")
    parts = (name[:-1] if is_dir else name).split("/")
    for part in parts:
        if part == "..":
            raise UnsafePackage("path_traversal", entry=shown)
        if part in ("", "."):
            raise UnsafePackage("bad_name", entry=shown, reason="empty or '.' path segment")
    return is_dir


def _zip64_sizes(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 0x0001:
            body, i = extra[pos + 4 : pos + 4 + size], 0
            try:
                if usize == 0xFFFFFFFF:
                    (usize,), i = struct.unpack_from("<Q", body, i), i + 8
                if csize == 0xFFFFFFFF:
                    (csize,), i = struct.unpack_from("<Q", body, i), i + 8
                if offset == 0xFFFFFFFF:
                    (offset,) = struct.unpack_from("<Q", body, i)
            except struct.error:
                raise _corrupt("truncated ZIP64 extra field") from None
            break
        pos += 4 + size
    return usize, csize, offset


def _read_directory(data: bytes, limits: Limits) -> tuple[list[_Entry], int]:
    """Parse and vet the central directory (names, flags, methods, declared sizes); return it and its offset."""
    count, cd_start, cd_end = _directory_bounds(data, limits)
    pos = cd_start
    entries: list[_Entry] = []
    seen: set[str] = set()
    total = 0
    unpack, head = _CDH.unpack_from, _CDH.size
    for _ in range(count):
        if pos + head > cd_end:
            raise _corrupt("bad central directory header")
        (sig, _, _, flags, method, _, _, crc, csize, usize, nlen, elen, clen, _, _, _, offset) = unpack(data, pos)
        if sig != _SIG_CDH:
            raise _corrupt("bad central directory header")
        name_end = pos + head + nlen
        if name_end + elen + clen > cd_end:
            raise _corrupt("central directory entry overruns the directory")
        raw = data[pos + head : name_end]
        if 0xFFFFFFFF in (usize, csize, offset):
            usize, csize, offset = _zip64_sizes(data[name_end : name_end + elen], usize, csize, offset)
        pos = name_end + elen + clen
        name = _decode_name(raw, flags, limits)
        is_dir = check_entry_name(name)
        if name in seen:
            raise UnsafePackage("duplicate_name", entry=name)
        seen.add(name)
        if flags & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENC | _FLAG_CD_ENC):
            raise UnsafePackage("encrypted", entry=name)
        if method not in (0, 8):
            raise UnsafePackage("unsupported_compression", entry=name, method=method)
        if is_dir:
            if usize or csize > 2:  # an empty deflate stream is 2 bytes
                raise _corrupt(f"directory entry '{name}' has content")
        if usize > limits.max_entry_bytes:
            raise UnsafePackage("too_large", entry=name, what=f"entry '{name}'", size=usize, limit=limits.max_entry_bytes)
        total += usize
        if total > limits.max_total_bytes:
            raise UnsafePackage("too_large", what="total uncompressed", size=total, limit=limits.max_total_bytes)
        if usize > limits.ratio_min_bytes and usize > csize * limits.max_ratio:
            raise UnsafePackage("ratio", entry=name, ratio=usize / max(csize, 1), limit=limits.max_ratio)
        entries.append(_Entry(name, raw, flags, method, crc, csize, usize, offset))
    if pos != cd_end:
        raise _corrupt("central directory has trailing bytes")
    _check_file_dir_clash(seen)
    return entries, cd_start


def _check_file_dir_clash(names: set[str]) -> None:
    """'a' as a file and 'a/b' as another entry cannot both exist on any file system."""
    parents: set[str] = set()
    for name in names:
        path = name.rstrip("/")
        if path != name:  # a directory entry is a parent too
            parents.add(path)
        while (cut := path.rfind("/")) > 0:
            path = path[:cut]
            if path in parents:
                break
            parents.add(path)
    clash = parents & names
    if clash:
        raise UnsafePackage("duplicate_name", entry=min(clash))


_by_offset = operator.attrgetter("offset")


def _locate_data(data: bytes, entries: list[_Entry], cd_start: int) -> None:
    """Check local headers against the directory; entries must tile the file with no overlap or gap."""
    expected, prev_descriptor = 0, False
    unpack, head = _LFH.unpack_from, _LFH.size
    for e in sorted(entries, key=_by_offset):
        gap = e.offset - expected
        if gap < 0:
            raise UnsafePackage("overlapping_entries", entry=e.name)
        if gap and not (prev_descriptor and gap in _DESCRIPTOR_SIZES):
            raise UnsafePackage("hidden_data", size=gap, offset=expected)
        if e.offset + head > cd_start:
            raise _corrupt(f"bad local header for '{e.name}'")
        sig, _, lflags, lmethod, _, _, lcrc, lcsize, lusize, nlen, elen = unpack(data, e.offset)
        if sig != _SIG_LFH:
            raise _corrupt(f"bad local header for '{e.name}'")
        start = e.offset + head
        if data[start : start + nlen] != e.raw_name:
            raise _corrupt(f"local name differs from directory name for '{e.name}'")
        if lflags & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENC):
            raise UnsafePackage("encrypted", entry=e.name)
        if lmethod != e.method:
            raise _corrupt(f"local and directory compression differ for '{e.name}'")
        if not lflags & _FLAG_DESCRIPTOR and 0xFFFFFFFF not in (lcsize, lusize):
            if (lcrc, lcsize, lusize) != (e.crc, e.csize, e.usize):
                raise UnsafePackage("size_mismatch", entry=e.name)
        e.data_start = start + nlen + elen
        expected = e.data_start + e.csize
        if expected > cd_start:
            raise _corrupt(f"data of '{e.name}' runs into the central directory")
        prev_descriptor = bool(e.flags & _FLAG_DESCRIPTOR)
    gap = cd_start - expected
    if gap and not (prev_descriptor and gap in _DESCRIPTOR_SIZES):
        raise UnsafePackage("hidden_data", size=gap, offset=expected)


def _inflate(data: bytes, e: _Entry, budget: int) -> bytes:
    """Entry content, never producing more than min(declared size, budget) + 1 bytes."""
    raw = memoryview(data)[e.data_start : e.data_start + e.csize]
    if e.method == 0:
        if e.csize != e.usize:
            raise UnsafePackage("size_mismatch", entry=e.name)
        out = bytes(raw)
    else:
        cap = min(e.usize, budget)
        inflater = zlib.decompressobj(-15)
        try:
            out = inflater.decompress(raw, cap + 1)
        except zlib.error as exc:
            raise _corrupt(f"bad deflate data in '{e.name}' ({exc})") from None
        if len(out) > cap:
            raise UnsafePackage("size_mismatch", entry=e.name)
        if not inflater.eof:
            raise _corrupt(f"truncated deflate data in '{e.name}'")
        if len(out) != e.usize:
            raise UnsafePackage("size_mismatch", entry=e.name)
    if zlib.crc32(out) != e.crc:
        raise UnsafePackage("bad_crc", entry=e.name)
    return out


def read_package(data: bytes, limits: Limits = Limits()) -> Package:
    """Vet and unpack an untrusted OFD/zip archive into a `Package` (directory entries dropped).

    Raises `UnsafePackage` for anything hostile or broken; never returns partial content.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    if not data:
        raise UnsafePackage("empty")
    if len(data) > limits.max_archive_bytes:
        raise UnsafePackage("too_large", what="archive", size=len(data), limit=limits.max_archive_bytes)
    if data[:4] not in (_SIG_LFH, _SIG_EOCD):
        raise UnsafePackage("not_zip")
    entries, cd_start = _read_directory(data, limits)
    _locate_data(data, entries, cd_start)
    files: dict[str, bytes] = {}
    budget = limits.max_total_bytes
    for e in entries:
        if e.name.endswith("/"):
            continue
        out = _inflate(data, e, min(budget, limits.max_entry_bytes))
        budget -= len(out)
        if not limits.allow_nested_archives and out.startswith(_ARCHIVE_MAGICS):
            raise UnsafePackage("nested_archive", entry=e.name)
        files[e.name] = out
    return Package(files=files)
