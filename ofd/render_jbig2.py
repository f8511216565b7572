"""A small JBIG2 (ITU-T T.88) decoder for the bi-level pictures OFD e-invoices embed.

gomain e-invoices store their QR code as a JBIG2 file (MultiMedia Format="GBIG2"), and
Pillow has no JBIG2 codec (nor is there a maintained pure-Python one). What those files
use is the simplest part of the standard: one page made of immediate generic regions,
arithmetic (MQ) coded with template 0 and typical prediction (TPGDON). That is what is
decoded here; MMR coding, templates 1–3 and symbol/text/halftone/refinement regions are
refused with `JBIG2Error`, and the renderer draws its placeholder instead.

Pure Python, so sizes are capped (`MAX_PIXELS`): QR codes and seals are a few hundred
pixels square. Context bits follow the standard's numbering (T.88 Figure 3 / §6.2.5.3),
which matters because the TPGDON pseudo-pixel shares context 0x9B25 with a real one.
"""

from __future__ import annotations

import struct

from PIL import Image

MAGIC = b"\x97JB2\r\n\x1a\n"
MAX_PIXELS = 600_000  # per region and per page
MAX_SEGMENTS = 1_000

# T.88 Table E.1: Qe, next index after MPS, after LPS, switch MPS sense.
_QE = (
    (0x5601, 1, 1, 1), (0x3401, 2, 6, 0), (0x1801, 3, 9, 0), (0x0AC1, 4, 12, 0), (0x0521, 5, 29, 0),
    (0x0221, 38, 33, 0), (0x5601, 7, 6, 1), (0x5401, 8, 14, 0), (0x4801, 9, 14, 0), (0x3801, 10, 14, 0),
    (0x3001, 11, 17, 0), (0x2401, 12, 18, 0), (0x1C01, 13, 20, 0), (0x1601, 29, 21, 0), (0x5601, 15, 14, 1),
    (0x5401, 16, 14, 0), (0x5101, 17, 15, 0), (0x4801, 18, 16, 0), (0x3801, 19, 17, 0), (0x3401, 20, 18, 0),
    (0x3001, 21, 19, 0), (0x2801, 22, 19, 0), (0x2401, 23, 20, 0), (0x2201, 24, 21, 0), (0x1C01, 25, 22, 0),
    (0x1801, 26, 23, 0), (0x1601, 27, 24, 0), (0x1401, 28, 25, 0), (0x1201, 29, 26, 0), (0x1101, 30, 27, 0),
    (0x0AC1, 31, 28, 0), (0x09C1, 32, 29, 0), (0x08A1, 33, 30, 0), (0x0521, 34, 31, 0), (0x0441, 35, 32, 0),
    (0x02A1, 36, 33, 0), (0x0221, 37, 34, 0), (0x0141, 38, 35, 0), (0x0111, 39, 36, 0), (0x0085, 40, 37, 0),
    (0x0049, 41, 38, 0), (0x0025, 42, 39, 0), (0x0015, 43, 40, 0), (0x0009, 44, 41, 0), (0x0005, 45, 42, 0),
    (0x0001, 45, 43, 0), (0x5601, 46, 46, 0),
)

_PAGE_INFO, _END_OF_PAGE, _END_OF_STRIPE, _END_OF_FILE = 48, 49, 50, 51
_GENERIC_REGIONS = (36, 38, 39)  # intermediate, immediate, immediate lossless
_KNOWN_IGNORABLE = (52, 53, 62)  # profiles, tables, extension
_SLTP_CONTEXT_T0 = 0x9B25


class JBIG2Error(ValueError):
    """The data is not JBIG2, is damaged, or uses a part of T.88 this decoder does not cover."""


class _MQDecoder:
    """T.88 Annex E arithmetic decoder (software conventions of E.3, as in most decoders)."""

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data, self.end, self.bp = data, end, start
        self.chigh, self.clow, self.ct = (data[start] if start < end else 0xFF), 0, 0
        self._byte_in()
        self.chigh = ((self.chigh << 7) & 0xFFFF) | ((self.clow >> 9) & 0x7F)
        self.clow = (self.clow << 7) & 0xFFFF
        self.ct -= 7
        self.a = 0x8000

    def _byte_in(self) -> None:
        data, bp, end = self.data, self.bp, self.end
        cur = data[bp] if bp < end else 0xFF
        nxt = data[bp + 1] if bp + 1 < end else 0xFF
        if cur == 0xFF:
            if nxt > 0x8F:
                self.clow += 0xFF00
                self.ct = 8
            else:
                self.bp = bp + 1
                self.clow += nxt << 9
                self.ct = 7
        else:
            self.bp = bp + 1
            self.clow += (data[bp + 1] << 8) if bp + 1 < end else 0xFF00
            self.ct = 8
        if self.clow > 0xFFFF:
            self.chigh += self.clow >> 16
            self.clow &= 0xFFFF

    def decode(self, cx: bytearray, i: int) -> int:
        """One binary decision in context `i` (state index << 1 | MPS)."""
        state = cx[i]
        index, mps = state >> 1, state & 1
        qe, nmps, nlps, switch = _QE[index]
        self.a -= qe
        if self.chigh < qe:  # LPS path (with conditional exchange)
            if self.a < qe:
                self.a, d, index = qe, mps, nmps
            else:
                self.a, d = qe, 1 - mps
                if switch:
                    mps = d
                index = nlps
        else:
            self.chigh -= qe
            if self.a & 0x8000:
                return mps
            if self.a < qe:
                d = 1 - mps
                if switch:
                    mps = d
                index = nlps
            else:
                d, index = mps, nmps
        while True:  # renormalise
            if self.ct == 0:
                self._byte_in()
            self.a <<= 1
            self.chigh = ((self.chigh << 1) & 0xFFFF) | ((self.clow >> 15) & 1)
            self.clow = (self.clow << 1) & 0xFFFF
            self.ct -= 1
            if self.a & 0x8000:
                break
        cx[i] = (index << 1) | mps
        return d


def _generic_region_t0(data: bytes, start: int, end: int, width: int, height: int, tpgdon: bool,
                       at: tuple[int, ...]) -> list[bytearray]:
    """T.88 §6.2.5.7 generic region decoding, template 0, arithmetic: rows of 0/1 pixels."""
    pad = 4 + max(abs(v) for v in at[0::2])  # room for x-4..x+3 and the AT pixels on both sides
    rows = [bytearray(width + 2 * pad) for _ in range(height + 2)]  # two blank rows above row 0
    mq, cx = _MQDecoder(data, start, end), bytearray(1 << 16)
    a1x, a1y, a2x, a2y, a3x, a3y, a4x, a4y = at
    ltp = 0
    for y in range(height):
        cur, up1, up2 = rows[y + 2], rows[y + 1], rows[y]
        if tpgdon:
            ltp ^= mq.decode(cx, _SLTP_CONTEXT_T0)
            if ltp:  # typical line: a copy of the one above
                cur[:] = up1
                continue
        ra1, ra2, ra3, ra4 = rows[y + 2 + a1y], rows[y + 2 + a2y], rows[y + 2 + a3y], rows[y + 2 + a4y]
        for x in range(pad, pad + width):
            ctx = (cur[x - 1] | cur[x - 2] << 1 | cur[x - 3] << 2 | cur[x - 4] << 3 | ra1[x + a1x] << 4
                   | up1[x + 2] << 5 | up1[x + 1] << 6 | up1[x] << 7 | up1[x - 1] << 8 | up1[x - 2] << 9
                   | ra2[x + a2x] << 10 | ra3[x + a3x] << 11
                   | up2[x + 1] << 12 | up2[x] << 13 | up2[x - 1] << 14 | ra4[x + a4x] << 15)
            cur[x] = mq.decode(cx, ctx)
    return [row[pad : pad + width] for row in rows[2:]]


def _segments(data: bytes):
    """(type, page, data start, data end) of each segment, sequential or random-access organisation."""
    pos, random_access = 0, False
    if data.startswith(MAGIC):
        flags = data[8] if len(data) > 8 else 0
        random_access = not flags & 1
        pos = 9 + (0 if flags & 2 else 4)
    headers = []
    while pos < len(data) and len(headers) < MAX_SEGMENTS:
        if pos + 6 > len(data):
            raise JBIG2Error("truncated segment header")
        number, flags = struct.unpack_from(">IB", data, pos)
        pos += 5
        kind = flags & 0x3F
        count = data[pos] >> 5
        if count == 7:
            count = struct.unpack_from(">I", data, pos)[0] & 0x1FFFFFFF
            pos += 4 + (count + 8) // 8
        else:
            pos += 1
        pos += count * (1 if number <= 256 else 2 if number <= 65536 else 4)
        page_size = 4 if flags & 0x40 else 1
        if pos + page_size + 4 > len(data):
            raise JBIG2Error("truncated segment header")
        page = int.from_bytes(data[pos : pos + page_size], "big")
        length = struct.unpack_from(">I", data, pos + page_size)[0]
        pos += page_size + 4
        if length == 0xFFFFFFFF:
            raise JBIG2Error("segments of unknown length are not supported")
        headers.append((kind, page, length))
        if not random_access:
            yield kind, page, pos, pos + length
            pos += length
        if kind == _END_OF_FILE:
            break
    for kind, page, length in headers if random_access else ():
        yield kind, page, pos, pos + length
        pos += length


def _combine(page: list[bytearray], region: list[bytearray], x0: int, y0: int, op: int) -> None:
    for dy, row in enumerate(region):
        y = y0 + dy
        if not 0 <= y < len(page):
            continue
        target = page[y]
        for dx, v in enumerate(row):
            x = x0 + dx
            if 0 <= x < len(target):
                t = target[x]
                target[x] = (t | v, t & v, t ^ v, 1 - (t ^ v), v)[op] if op <= 4 else t | v


def decode_jbig2(data: bytes) -> Image.Image:
    """The first page of a JBIG2 file (or embedded stream) as an 'L' image, black ink on white."""
    try:
        return _decode(data)
    except (IndexError, struct.error) as exc:
        raise JBIG2Error(f"truncated or damaged data ({exc})") from None


def _decode(data: bytes) -> Image.Image:
    page: list[bytearray] | None = None
    width = height = 0
    default = 0
    regions = []
    for kind, _page, start, end in _segments(data):
        if end > len(data):
            raise JBIG2Error("segment data runs past the end")
        if kind == _PAGE_INFO:
            width, height, _xres, _yres, flags = struct.unpack_from(">IIIIB", data, start)
            default = (flags >> 2) & 1
        elif kind in _GENERIC_REGIONS:
            regions.append((start, end))
        elif kind in (_END_OF_PAGE, _END_OF_FILE):
            break
        elif kind not in (_END_OF_STRIPE, *_KNOWN_IGNORABLE):
            raise JBIG2Error(f"segment type {kind} (symbol, text, halftone or refinement coding) is not supported")
    if not regions:
        raise JBIG2Error("no generic region")
    decoded = []
    for start, end in regions:
        w, h, x, y, rflags, gflags = struct.unpack_from(">IIIIBB", data, start)
        if not 0 < w * h <= MAX_PIXELS:
            raise JBIG2Error(f"region {w}×{h} is larger than {MAX_PIXELS} pixels")
        if gflags & 1 or (gflags >> 1) & 3 or gflags & 0x10:
            raise JBIG2Error("only arithmetic coding with template 0 is supported")
        at = struct.unpack_from(">8b", data, start + 18)
        if any(dy > 0 or (dy == 0 and dx >= 0) or dy < -2 for dx, dy in zip(at[0::2], at[1::2])):
            raise JBIG2Error("adaptive template pixel outside the decoded area")
        decoded.append((_generic_region_t0(data, start + 26, end, w, h, bool(gflags & 8), at), x, y, rflags & 7))
    if height == 0xFFFFFFFF or height == 0:  # striped page of unknown height: as tall as its content
        height = max(y + len(r) for r, _, y, _ in decoded)
    if width == 0:
        width = max(x + len(r[0]) for r, x, _, _ in decoded)
    if not 0 < width * height <= MAX_PIXELS:
        raise JBIG2Error(f"page {width}×{height} is larger than {MAX_PIXELS} pixels")
    page = [bytearray([default]) * width for _ in range(height)]
    for region, x, y, op in decoded:
        _combine(page, region, x, y, op)
    img = Image.frombytes("L", (width, height), b"".join(bytes(row) for row in page))
    return img.point(lambda v: 0 if v else 255)
