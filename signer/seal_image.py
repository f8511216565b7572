"""The round red seal picture (公章样式) put into an issuer's SES_Seal.

Drawn with Pillow: a double red rim, the authority's name set along the upper arc,
a five-pointed star in the middle and a short caption below it, on a transparent
background. Deterministic for the same inputs (seal bytes end up signed).
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

SEAL_RED = (218, 24, 24, 255)
FONT_FILES = (
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
)
SC_FACE_INDEX = 2  # Simplified Chinese face inside the Noto CJK collections


class SealImageError(RuntimeError):
    pass


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    for path in FONT_FILES:
        try:
            return ImageFont.truetype(path, size, index=SC_FACE_INDEX)
        except OSError:
            continue
    raise SealImageError("no CJK font found: install Debian package fonts-noto-cjk")


def _star(cx: float, cy: float, r_outer: float) -> list[tuple[float, float]]:
    r_inner = r_outer * math.sin(math.radians(18)) / math.sin(math.radians(126))
    pts = []
    for i in range(10):
        r = r_outer if i % 2 == 0 else r_inner
        a = math.radians(-90 + i * 36)
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def _glyph(ch: str, size: int) -> Image.Image:
    font = _font(size)
    box = font.getbbox(ch)
    w, h = box[2] - box[0], box[3] - box[1]
    img = Image.new("RGBA", (max(w, 1) + 4, max(h, 1) + 4), (0, 0, 0, 0))
    ImageDraw.Draw(img).text((2 - box[0], 2 - box[1]), ch, font=font, fill=SEAL_RED)
    return img


def draw_seal(name: str, caption: str = "电子印章", *, px: int = 600) -> Image.Image:
    """A square RGBA image of ``px`` pixels: rim, ``name`` around the top, star, ``caption``."""
    if not name.strip():
        raise SealImageError("seal name is empty")
    img = Image.new("RGBA", (px, px), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    c = px / 2
    rim = px * 0.02
    d.ellipse((rim, rim, px - rim, px - rim), outline=SEAL_RED, width=int(px * 0.035))
    d.polygon(_star(c, c, px * 0.16), fill=SEAL_RED)

    # The name along the upper arc, characters upright towards the centre, spread over ~240°.
    chars = list(name.strip())
    size = int(px * (0.13 if len(chars) <= 12 else 0.10 if len(chars) <= 18 else 0.08))
    span = min(250.0, 20.0 * len(chars) + 40.0)
    radius = px / 2 - rim - px * 0.05 - size / 2
    for i, ch in enumerate(chars):
        ang = -90 - span / 2 + (span * (i + 0.5) / len(chars))  # degrees, 0 = east, clockwise on screen
        g = _glyph(ch, size).rotate(-(ang + 90), resample=Image.BICUBIC, expand=True)
        x = c + radius * math.cos(math.radians(ang)) - g.width / 2
        y = c + radius * math.sin(math.radians(ang)) - g.height / 2
        img.alpha_composite(g, (int(round(x)), int(round(y))))

    if caption:
        f = _font(int(px * 0.075))
        w = d.textlength(caption, font=f)
        d.text((c - w / 2, c + px * 0.2), caption, font=f, fill=SEAL_RED)
    return img


def seal_png(name: str, caption: str = "电子印章", *, px: int = 400) -> bytes:
    """PNG bytes, palette-quantised: the picture travels inside every signed licence's seal."""
    buf = io.BytesIO()
    img = draw_seal(name, caption, px=px).quantize(colors=16, method=Image.Quantize.FASTOCTREE)
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
