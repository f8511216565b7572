"""Fonts of the licence: referenced by standard Chinese names, measured with Noto CJK metrics.

Decision: the OFD *references* 宋体/SimSun and 黑体/SimHei, as Chinese e-invoices do
(the vendor samples in shared/samples declare 宋体, 楷体, Courier New with no FontFile),
instead of embedding a font subset:

* Readers substitute these names: Windows-based OFD viewers have SimSun/SimHei, our
  renderer (ofd/render_text.py via `face_for`) maps them to Noto Serif/Sans CJK SC.
  (Plain fontconfig does not: on Debian `fc-match SimSun` gives DejaVu Serif.)  easyofd,
  the independent test reader, draws every text object with one font of its own
  whatever is declared, so embedding would change nothing there.
* Embedding a per-document subset costs tens of ms (fontTools on a 20 MB CFF font) and
  a fixed subset wide enough for any holder name (通用规范汉字表, 8,105 hanzi) weighs
  megabytes per licence; either breaks the throughput or the size budget.
* Every glyph is still placed exactly: the writer gets per-glyph advances (DeltaX), so
  the layout does not depend on which face the reader substitutes.

Advances are fixed tables, not read from a font at run time, so the same record gives
the same bytes on any machine: ideographs and other wide / ambiguous-width characters
(incl. the name dot ·) take 1 em; printable ASCII takes the Noto CJK SC advance (the
face our renderer maps the name to; tests check the tables against the installed fonts).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

NOTO_DIR = Path("/usr/share/fonts/opentype/noto")  # Debian fonts-noto-cjk
NOTO_SC_INDEX = 2  # face index of the Simplified Chinese font inside the .ttc (JP KR SC TC HK)

# Advance of U+0020..U+007E in 1/1000 em, from the fonts' hmtx tables (upm 1000).
_SERIF_ASCII = (
    256, 308, 376, 574, 550, 923, 779, 196, 364, 364, 478, 580, 327, 346, 327, 352, 557, 471, 558, 557,
    555, 558, 558, 549, 558, 562, 327, 327, 580, 580, 580, 432, 912, 718, 670, 691, 770, 652, 629, 741,
    853, 405, 402, 731, 625, 975, 796, 767, 641, 767, 715, 567, 659, 797, 714, 1053, 700, 687, 605, 344,
    352, 344, 580, 563, 435, 557, 638, 538, 629, 546, 388, 566, 663, 332, 311, 607, 334, 974, 661, 596,
    638, 607, 462, 473, 367, 653, 548, 838, 564, 552, 498, 374, 316, 374, 580,
)  # Noto Serif CJK SC Regular
_SANS_ASCII = (
    224, 323, 474, 555, 555, 921, 680, 278, 338, 338, 467, 555, 278, 347, 278, 392, 555, 555, 555, 555,
    555, 555, 555, 555, 555, 555, 278, 278, 555, 555, 555, 474, 946, 608, 657, 638, 688, 589, 552, 689,
    728, 293, 535, 646, 543, 812, 723, 742, 633, 742, 635, 596, 599, 721, 575, 878, 573, 531, 603, 338,
    392, 338, 555, 559, 606, 563, 618, 510, 620, 554, 325, 564, 607, 275, 275, 552, 284, 926, 610, 606,
    620, 620, 388, 468, 377, 607, 521, 802, 498, 521, 475, 338, 270, 338, 555,
)  # Noto Sans CJK SC Regular


@dataclass(frozen=True, eq=False)  # identity hash: faces are singletons and key hot caches
class FontFace:
    """A referenced font: the names written into PublicRes.xml and how we measure it."""

    font_name: str  # OFD FontName, as e-invoices write it
    family_name: str  # OFD FamilyName: the English name, a second chance for readers
    serif: bool
    noto_file: str  # the face a renderer should use for it (fonts-noto-cjk)
    ascii_em1000: tuple[int, ...]

    def advance_em(self, ch: str) -> float:
        return _advance_em(self, ch)

    def advances(self, text: str, size: float) -> list[float]:
        """Per-character advances in mm at font ``size`` (mm)."""
        return [_advance_em(self, ch) * size for ch in text]

    def width(self, text: str, size: float) -> float:
        return sum(_advance_em(self, ch) for ch in text) * size

    @property
    def noto_path(self) -> Path:
        return NOTO_DIR / self.noto_file


SONG = FontFace("宋体", "SimSun", True, "NotoSerifCJK-Regular.ttc", _SERIF_ASCII)
HEI = FontFace("黑体", "SimHei", False, "NotoSansCJK-Regular.ttc", _SANS_ASCII)

# Names a renderer may meet in our files and in vendors' (e-invoices use 楷体/KaiTi and
# Courier New too); Noto has no Kai face, the serif one is the closest.
_ALIASES: dict[str, FontFace] = {
    name.casefold(): face
    for face, names in (
        (SONG, ("宋体", "SimSun", "NSimSun", "新宋体", "STSong", "华文宋体", "楷体", "KaiTi", "仿宋", "FangSong")),
        (HEI, ("黑体", "SimHei", "微软雅黑", "Microsoft YaHei", "STHeiti", "华文黑体")),
    )
    for name in names
}


@lru_cache(maxsize=8192)
def _advance_em(face: FontFace, ch: str) -> float:
    cp = ord(ch)
    if 0x20 <= cp <= 0x7E:
        return face.ascii_em1000[cp - 0x20] / 1000
    if unicodedata.east_asian_width(ch) in ("W", "F", "A"):
        return 1.0
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0.0
    return 0.6  # other narrow characters (Latin with diacritics...): a safe middle


def face_for(font_name: str | None, family_name: str | None = None) -> FontFace | None:
    """The face a renderer should draw a referenced OFD font with, or None if unknown."""
    for n in (font_name, family_name):
        if n:
            face = _ALIASES.get(n.strip().casefold())
            if face is not None:
                return face
    return None
