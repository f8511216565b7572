"""QR code (GB/T 18284, ISO/IEC 18004) for the licence face, via zxing-cpp.

The symbol is computed once as a module matrix (``qr_matrix``); the page then draws it
either as a vector ``PathObject`` (``qr_path_data``: one filled rectangle per run of dark
modules in a row) or as a 1-bit PNG (``qr_png``) shown by an
``ImageObject``.  C 0210 cites GB/T 18284, so the code must decode with any phone
reader: error-correction level M by default, a 4-module quiet zone always.

The licence uses the PNG (measured for a 255-character payload, version 10-M, 57x57):
PNG at 4 px/module 75 µs and 1.0 kB; the path 310 µs and 37.6 kB of XML (7.6 kB
deflated, plus the time to deflate it).  Both decode from a 200 dpi raster (tests).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import zxingcpp

from .writer import OFDWriteError, num

QUIET_ZONE = 4  # modules, ISO/IEC 18004 §6.3.8
EC_LEVELS = ("L", "M", "Q", "H")


class QRError(OFDWriteError):
    """The QR text cannot be encoded (empty, too long, bad parameters)."""

    CATALOGUE = {
        "empty": ("The QR text is empty.", "二维码内容为空。"),
        "too_long": (
            "The QR text cannot be encoded ({length} characters, level {ec_level}): {reason}.",
            "二维码内容无法编码（{length} 个字符，纠错等级 {ec_level}）：{reason}。",
        ),
        "bad_param": ("Invalid QR parameter {what} = {value!r}.", "二维码参数 {what} 无效：{value!r}。"),
    }


@dataclass(frozen=True)
class QRMatrix:
    """Dark modules of one QR symbol, without quiet zone (``dark[row, col]``)."""

    dark: np.ndarray  # bool, shape (size, size)
    version: int
    ec_level: str
    mask: int  # data mask pattern 0-7 (ISO/IEC 18004 §7.8.2)

    @property
    def size(self) -> int:
        return int(self.dark.shape[0])

    @property
    def size_with_quiet_zone(self) -> int:
        return self.size + 2 * QUIET_ZONE

    def rows(self) -> list[str]:
        """Rows as '#'/'.' strings (debugging, tests)."""
        return ["".join("#" if v else "." for v in row) for row in self.dark]


def qr_matrix(text: str, ec_level: str = "M") -> QRMatrix:
    """Encode ``text`` (UTF-8; zxing-cpp picks the modes) as a QR Code model 2.

    zxing-cpp (libzint inside) spends ~85 % of its time choosing the data mask, with
    scalar C code over 8 full symbols.  For symbols up to 64 modules wide (version <= 11,
    the licence uses <= 10) we ask it for mask 0 and choose the mask ourselves with the
    same ISO/IEC 18004 penalty rules, bit-parallel in numpy (~3x faster end to end);
    tests check the result is identical, module for module, to zxing-cpp's own choice.
    """
    if not isinstance(text, str) or not text:
        raise QRError("empty")
    if ec_level not in EC_LEVELS:
        raise QRError("bad_param", what="ec_level", value=ec_level)
    dark = _zxing_modules(text, ec_level, data_mask=0)
    version = (dark.shape[0] - 17) // 4
    if dark.shape[0] <= 64:
        dark, mask = _best_mask(dark, version, ec_level)
    else:
        dark = _zxing_modules(text, ec_level)
        mask = _read_mask(dark, ec_level)
    return QRMatrix(dark=dark, version=version, ec_level=ec_level, mask=mask)


def _zxing_modules(text: str, ec_level: str, **options: int) -> np.ndarray:
    try:
        bc = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=ec_level, **options)
    except Exception as exc:  # zxing raises ValueError/RuntimeError subclasses of its own
        raise QRError("too_long", length=len(text), ec_level=ec_level, reason=str(exc)) from exc
    return np.asarray(bc.to_image(scale=1, add_quiet_zones=False)) < 128


# ---- data mask selection (ISO/IEC 18004:2015 §7.8.2-7.8.3) ----------------------------

_EC_BITS = {"L": 1, "M": 0, "Q": 3, "H": 2}  # format information error-correction indicator


def _alignment_centres(version: int) -> list[int]:
    if version == 1:
        return []
    n = version // 7 + 2
    step = 26 if version == 32 else (version * 4 + n * 2 + 1) // (n * 2 - 2) * 2
    size = 17 + 4 * version
    return [6] + sorted(size - 7 - i * step for i in range(n - 1))


@lru_cache(maxsize=40)
def _geometry(version: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The 8 mask patterns restricted to the data region, and the format-info cells.

    Function patterns (finders + separators + format areas, timing, alignment, version
    info) are never masked.  Format cells are listed per bit 0..14, both copies.
    """
    size = 17 + 4 * version
    fn = np.zeros((size, size), dtype=bool)
    fn[:9, :9] = fn[:9, size - 8 :] = fn[size - 8 :, :9] = True
    fn[6, :] = fn[:, 6] = True
    centres = _alignment_centres(version)
    for r in centres:
        for c in centres:
            if (r, c) not in ((6, 6), (6, centres[-1]), (centres[-1], 6)):
                fn[r - 2 : r + 3, c - 2 : c + 3] = True
    if version >= 7:
        fn[size - 11 : size - 8, :6] = fn[:6, size - 11 : size - 8] = True
    i, j = np.indices((size, size))  # i = row, j = column
    patterns = np.stack(
        [
            (i + j) % 2 == 0, i % 2 == 0, j % 3 == 0, (i + j) % 3 == 0,
            (i // 2 + j // 3) % 2 == 0, (i * j) % 2 + (i * j) % 3 == 0,
            ((i * j) % 2 + (i * j) % 3) % 2 == 0, ((i + j) % 2 + (i * j) % 3) % 2 == 0,
        ]
    ) & ~fn
    near = [(k, 8) for k in range(6)] + [(7, 8), (8, 8), (8, 7)] + [(8, 5 - k) for k in range(6)]
    far = [(8, size - 1 - k) for k in range(8)] + [(size - 7 + k, 8) for k in range(7)]
    cells = near + far
    return patterns, (np.array([r for r, _ in cells]), np.array([c for _, c in cells]))


@lru_cache(maxsize=4)
def _format_bits(ec_level: str) -> np.ndarray:
    """(8, 30) bools: the 15-bit BCH(15,5) format word for each mask, written twice."""
    out = np.zeros((8, 30), dtype=bool)
    for mask in range(8):
        data = (_EC_BITS[ec_level] << 3) | mask
        rem = data << 10
        for bit in range(14, 9, -1):
            if rem >> bit & 1:
                rem ^= 0x537 << (bit - 10)
        word = ((data << 10) | rem) ^ 0x5412
        out[mask] = [(word >> k) & 1 for k in range(15)] * 2
    return out


def _best_mask(masked0: np.ndarray, version: int, ec_level: str) -> tuple[np.ndarray, int]:
    """The symbol under the mask with the lowest penalty, and that mask.

    The 8 candidates are scored as 64-bit line words: packing commutes with XOR, so the
    words of candidate k are those of the unmasked symbol XOR those of pattern k, with the
    format cells then overwritten (both tables made once per version and level).
    """
    patterns, (fr, fc) = _geometry(version)
    pattern_words, keep, format_words = _word_tables(version, ec_level)
    unmasked = masked0 ^ patterns[0]
    words = ((_lines_as_words(unmasked[None]) ^ pattern_words) & keep) | format_words
    best = int(np.argmin(_penalties(words, unmasked.shape[0])))  # first of equals, like zxing-cpp/zint
    dark = unmasked ^ patterns[best]
    dark[fr, fc] = _format_bits(ec_level)[best]
    return dark, best


@lru_cache(maxsize=160)
def _word_tables(version: int, ec_level: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line words (see `_lines_as_words`) of the 8 patterns, of everything but the format
    cells, and of the 8 format words in their cells."""
    patterns, (fr, fc) = _geometry(version)
    n = patterns.shape[1]
    cells = np.zeros((1, n, n), dtype=bool)
    cells[0, fr, fc] = True
    fmt = np.zeros((8, n, n), dtype=bool)
    fmt[:, fr, fc] = _format_bits(ec_level)
    return _lines_as_words(patterns), ~_lines_as_words(cells), _lines_as_words(fmt)


def _lines_as_words(c: np.ndarray) -> np.ndarray:
    """(k, n, n) bools -> (k, 2n) uint64: the n rows then the n columns, bit j = module j (n <= 64)."""
    k, n, _ = c.shape
    packed = np.packbits(np.concatenate([c, c.transpose(0, 2, 1)], axis=1), axis=2, bitorder="little")
    buf = np.zeros((k, 2 * n, 8), dtype=np.uint8)
    buf[:, :, : packed.shape[2]] = packed
    return buf.view("<u8")[:, :, 0]


_U = [np.uint64(i) for i in range(11)]  # shift counts as numpy scalars, made once


def _penalties(r: np.ndarray, n: int) -> list[int]:
    """ISO/IEC 18004 penalty N1..N4 of each candidate, from its line words ``r`` (k, 2n).

    Rows and columns are scored at once.  Out-of-symbol modules count as light for the
    1:1:3:1:1 rule (as zxing-cpp/zint do).
    """
    u = _U
    full = np.uint64((1 << n) - 1)
    same = ~(r ^ (r >> u[1])) & np.uint64((1 << (n - 1)) - 1)  # bit j: module j == module j+1
    run5 = same & (same >> u[1]) & (same >> u[2]) & (same >> u[3])  # 5 equal modules start at j
    run_start = ~((same << u[1]) & full)
    n1 = np.bitwise_count(run5).sum(1, dtype=np.int64) + 2 * np.bitwise_count(run5 & run_start).sum(1, dtype=np.int64)
    light = ~r & full
    finder = r & (light >> u[1]) & (r >> u[2]) & (r >> u[3]) & (r >> u[4]) & (light >> u[5]) & (r >> u[6])
    finder &= np.uint64((1 << (n - 6)) - 1)
    before = ~(((r << u[1]) | (r << u[2]) | (r << u[3]) | (r << u[4])) & full)
    after = ~((r >> u[7]) | (r >> u[8]) | (r >> u[9]) | (r >> u[10]))
    n3 = 40 * np.bitwise_count(finder & (before | after)).sum(1, dtype=np.int64)
    rows = r[:, :n]
    h = same[:, :n]  # horizontal equal pairs, rows only
    v = ~(rows[:, :-1] ^ rows[:, 1:])
    n2 = 3 * np.bitwise_count(h[:, :-1] & h[:, 1:] & v).sum(1, dtype=np.int64)  # 2x2 blocks
    dark = np.bitwise_count(rows).sum(1, dtype=np.int64)
    n4 = 10 * (np.abs(100.0 * dark / (n * n) - 50.0) / 5.0).astype(np.int64)
    return (n1 + n2 + n3 + n4).tolist()


def _read_mask(dark: np.ndarray, ec_level: str) -> int:
    """The mask of a finished symbol, from its format information (first copy)."""
    patterns, (fr, fc) = _geometry((dark.shape[0] - 17) // 4)
    word = dark[fr, fc]
    return int(next(m for m in range(8) if (_format_bits(ec_level)[m] == word).all()))


def _runs(dark: np.ndarray) -> list[tuple[int, int, int]]:
    """Horizontal runs of dark modules as (row, col_start, col_end), found with numpy.

    Merging equal runs of adjacent rows into taller rectangles saves only ~12 % of the
    path and costs more time than it saves in zip size, so runs stay one module high.
    """
    size = dark.shape[0]
    padded = np.zeros((size, size + 2), dtype=np.int8)
    padded[:, 1:-1] = dark
    edges = np.diff(padded, axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)  # row-major order pairs each start with its end
    return list(zip(rows.tolist(), starts.tolist(), ends.tolist()))


@lru_cache(maxsize=64)
def _coords(module_mm: float, n: int) -> tuple[str, ...]:
    """Preformatted coordinates i*module_mm for i in 0..n (formatting dominates the cost)."""
    return tuple(num(i * module_mm) for i in range(n + 1))


def qr_path_data(m: QRMatrix, module_mm: float) -> str:
    """OFD AbbreviatedData drawing the dark modules, in the object's own space (mm).

    The origin is the top-left corner of the quiet zone, so the PathObject Boundary is
    ``x y S S`` with ``S = m.size_with_quiet_zone * module_mm``. Fill it with
    ``Fill="true" Stroke="false"`` (non-zero rule; rectangles never overlap).
    """
    if not module_mm > 0:
        raise QRError("bad_param", what="module_mm", value=module_mm)
    c = _coords(module_mm, m.size + 2 * QUIET_ZONE)[QUIET_ZONE:]
    return " ".join(
        [f"M {c[a]} {c[r]} L {c[b]} {c[r]} L {c[b]} {c[r + 1]} L {c[a]} {c[r + 1]} C" for r, a, b in _runs(m.dark)]
    )


_PNG_ZLIB_LEVEL = 1  # measured (v10): level 1 81 µs / 1016 B, 6: 213 µs / 832 B, 9: 263 µs / 834 B


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def qr_png(m: QRMatrix, scale: int = 4) -> bytes:
    """1-bit greyscale PNG of the symbol with its quiet zone, ``scale`` pixels per module.

    Several pixels per module keep the edges crisp in readers that smooth images when
    scaling (bilinear), which a 1-pixel-per-module image would blur.  Encoded directly
    (packbits + zlib) because Pillow's PNG path costs ~10x more for this tiny image.
    """
    if not isinstance(scale, int) or scale < 1:
        raise QRError("bad_param", what="scale", value=scale)
    n = m.size_with_quiet_zone
    light = np.ones((n, n), dtype=bool)  # np.pad would cost 4x the rest of the array work
    light[QUIET_ZONE : n - QUIET_ZONE, QUIET_ZONE : n - QUIET_ZONE] = ~m.dark
    packed = np.packbits(light.repeat(scale, axis=1), axis=1)  # 1 bit per pixel, 1 = white
    rows = np.zeros((light.shape[0], packed.shape[1] + 1), dtype=np.uint8)  # filter byte 0 per row
    rows[:, 1:] = packed
    raw = rows.repeat(scale, axis=0)  # repeat packed rows: 8x cheaper than repeating pixels
    h, w = raw.shape[0], light.shape[1] * scale
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), _PNG_ZLIB_LEVEL))
        + _png_chunk(b"IEND", b"")
    )
