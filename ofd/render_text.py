"""Fonts for the OFD renderer: embedded FontFile when Pillow can load it, else a Noto CJK face.

OFD files mostly *name* fonts (宋体, 楷体, 黑体, SimSun, Courier New...) and rely on the
reader to substitute (see ofd/fonts.py for why our own licence does too). The mapping
here follows the same idea as fontconfig's Noto CJK rules: Song/Kai/Fang-Song and other
serif names → Noto Serif CJK SC, Hei/YaHei/Arial-like names → Noto Sans CJK SC, Courier
and fixed-width fonts → Noto Sans Mono CJK SC. A missing font never fails a render:
the last resort is Pillow's built-in font.
"""

from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass
from functools import lru_cache

from PIL import ImageFont

from ofd.fonts import NOTO_DIR, NOTO_SC_INDEX, face_for

MONO_SC_INDEX = 7  # "Noto Sans Mono CJK SC" inside NotoSansCJK-*.ttc
MAX_FONT_PX = 2000  # larger glyphs are drawn at this size: FreeType time grows with it
# Cached Pillow fonts are shared by every render; one FreeType face must not rasterise in two
# threads at once (the portal renders in a thread pool), so glyph work holds this lock.
FONT_LOCK = threading.Lock()

_MONO_HINTS = ("courier", "mono", "consol", "fixed", "等宽")
_SANS_HINTS = ("黑", "hei", "yahei", "雅黑", "arial", "helvetica", "sans", "gothic", "verdana", "tahoma", "calibri", "圆")
_SERIF_HINTS = ("宋", "楷", "kai", "仿", "fang", "song", "ming", "明", "times", "serif", "roman")


@dataclass(frozen=True)
class FontChoice:
    """The face a TextObject is drawn with: a system file or embedded bytes, plus SVG names."""

    key: str  # cache key: file path + index, or digest of the embedded bytes
    path: str | None
    data: bytes | None
    index: int
    css_family: str  # CSS font-family list for the SVG backend
    bold: bool = False


def _css(name: str, generic: str, noto: str) -> str:
    safe = "".join(ch for ch in name if ch not in "'\"<>&;\\{}")[:60]
    return ", ".join(f"'{n}'" for n in (safe, noto) if n) + f", {generic}"


def system_font(name: str | None, family: str | None, *, serif: bool = False, fixed: bool = False,
                bold: bool = False) -> FontChoice:
    """The Noto CJK SC face standing in for a named (not embedded) font."""
    face = face_for(name, family)
    text = f"{name or ''} {family or ''}".casefold()
    if face is not None:
        kind = "serif" if face.serif else "sans"
    elif fixed or any(h in text for h in _MONO_HINTS):
        kind = "mono"
    elif any(h in text for h in _SANS_HINTS):
        kind = "sans"
    elif serif or any(h in text for h in _SERIF_HINTS):
        kind = "serif"
    else:
        kind = "serif"  # 宋体 is the Chinese default face
    weight = "Bold" if bold else "Regular"
    file, index, noto, generic = {
        "serif": (f"NotoSerifCJK-{weight}.ttc", NOTO_SC_INDEX, "Noto Serif CJK SC", "serif"),
        "sans": (f"NotoSansCJK-{weight}.ttc", NOTO_SC_INDEX, "Noto Sans CJK SC", "sans-serif"),
        "mono": (f"NotoSansCJK-{weight}.ttc", MONO_SC_INDEX, "Noto Sans Mono CJK SC", "monospace"),
    }[kind]
    path = str(NOTO_DIR / file)
    return FontChoice(f"{path}#{index}", path, None, index, _css(name or family or "", generic, noto), bold)


def embedded_font(data: bytes, name: str | None, fallback: FontChoice) -> FontChoice:
    """`fallback` with the embedded bytes swapped in, if FreeType can open them."""
    key = "embedded:" + hashlib.blake2b(data, digest_size=16).hexdigest()
    if _load(key, None, data, 0, 20) is None:
        return fallback
    return FontChoice(key, None, data, 0, fallback.css_family, fallback.bold)


@lru_cache(maxsize=256)
def _load(key: str, path: str | None, data: bytes | None, index: int, half_px: int):
    try:
        src = io.BytesIO(data) if data is not None else path
        return ImageFont.truetype(src, max(1, half_px) / 2, index=index)
    except (OSError, ValueError):
        return None


@lru_cache(maxsize=64)
def _default(half_px: int):
    return ImageFont.load_default(max(1, half_px) / 2)


def pil_font(choice: FontChoice, px: float):
    """A Pillow font of `choice` at `px` pixels (rounded to half pixels for the cache)."""
    half = max(1, min(int(round(px * 2)), MAX_FONT_PX * 2))
    if choice.data is not None:
        font = _load(choice.key, None, choice.data, 0, half)
    else:
        font = _load(choice.key, choice.path, None, choice.index, half)
    return font if font is not None else _default(half)


@lru_cache(maxsize=65536)
def _advance(choice: FontChoice, ch: str) -> float:
    try:
        with FONT_LOCK:
            return pil_font(choice, 100).getlength(ch) / 100
    except (OSError, ValueError):
        return 0.5


def advance_em(choice: FontChoice, ch: str) -> float:
    """Natural advance of `ch` in em: used where a TextCode gives no DeltaX."""
    return _advance(choice, ch)
