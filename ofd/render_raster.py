"""Pillow backend of the OFD renderer: page millimetres → pixels on a white RGB canvas.

The walker in ofd/render.py sends straight-line subpaths, positioned glyphs and images
(unit square + matrix), all in page mm. Everything here is bounded by the canvas: paths
are clipped before rasterising, glyph sizes are capped, images are resampled only where
visible, and every operation is charged to a work budget (`WORK_PER_PIXEL` × canvas) so
a hostile page full of full-page translucent fills ends instead of stalling a worker.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

from PIL import Image, ImageChops, ImageDraw

from ofd.render_path import (
    Box,
    Matrix,
    Subpath,
    clip_polygon,
    clip_polyline,
    invert,
    is_axis_aligned,
    multiply,
    rect_bounds,
)
from ofd.render_text import FONT_LOCK, MAX_FONT_PX, FontChoice, pil_font

RGBA = tuple[int, int, int, int]
WORK_PER_PIXEL = 40  # pixels touched per canvas pixel: 200k full-page fills must not hang a worker
BILEVEL = "ecert.bilevel"  # Image.info key: two-colour picture, scale without smoothing
_CACHED_GLYPH_HALF_PX = 400  # glyphs up to 200 px are cached as masks


class RasterSink:
    """Pillow backend: page mm × dpi/25.4 → pixels, on a white RGB canvas."""

    def __init__(self, width_mm: float, height_mm: float, dpi: float) -> None:
        self.k = dpi / 25.4
        self.img = Image.new("RGB", (max(1, round(width_mm * self.k)), max(1, round(height_mm * self.k))), "white")
        self.draw = ImageDraw.Draw(self.img)
        self.work = WORK_PER_PIXEL * self.img.width * self.img.height + 4_000_000
        self.note: Callable[[str], None] = lambda message: None

    def _px(self, subpaths: list[Subpath]) -> list[tuple[list[tuple[float, float]], bool]]:
        k = self.k
        return [([(x * k, y * k) for x, y in pts], closed) for pts, closed in subpaths]

    def spend(self, pixels: float) -> bool:
        """Charge drawing work (pixels touched) to the page budget; False once it is used up."""
        self.work -= pixels
        if self.work >= 0:
            return True
        self.note(f"the page needs more drawing work than {WORK_PER_PIXEL}× its area; the rest is not drawn")
        return False

    def _bounds(self, x0: float, y0: float, x1: float, y1: float, pad: int = 1) -> tuple[int, int, int, int] | None:
        """Integer pixel box clipped to the canvas, charged to the budget; None when empty or over budget."""
        W, H = self.img.size
        b = (max(0, int(math.floor(x0))), max(0, int(math.floor(y0))),
             min(W, int(math.ceil(x1)) + pad), min(H, int(math.ceil(y1)) + pad))
        if b[0] >= b[2] or b[1] >= b[3]:
            return None
        return b if self.spend((b[2] - b[0]) * (b[3] - b[1])) else None

    def _through_mask(self, bounds, color: RGBA, paint: Callable[[ImageDraw.ImageDraw, int, int], None]) -> None:
        """Translucent drawing: paint an alpha mask of the area, then paste the colour through it."""
        x0, y0, x1, y1 = bounds
        mask = Image.new("L", (x1 - x0, y1 - y0), 0)
        paint(ImageDraw.Draw(mask), x0, y0)
        self.img.paste(color[:3], (x0, y0), mask)

    def path(self, subpaths, fill, stroke, width, evenodd) -> None:
        px = self._px(subpaths)
        W, H = self.img.size
        w = max(1, min(round(width * self.k), 2 * max(W, H)))
        view = (-2.0 * w - 2, -2.0 * w - 2, W + 2.0 * w + 2, H + 2.0 * w + 2)  # geometry beyond is invisible
        polys = [c for c in (clip_polygon(pts, view) for pts, _ in px if len(pts) > 2) if len(c) > 2] \
            if fill is not None and fill[3] else []
        runs = [run for pts, closed in px for run in clip_polyline(pts + pts[:1] if closed else pts, view)] \
            if stroke is not None and stroke[3] else []
        xs = [x for pts in polys + runs for x, _ in pts]
        ys = [y for pts in polys + runs for _, y in pts]
        bounds = self._bounds(min(xs) - w, min(ys) - w, max(xs) + w, max(ys) + w) if xs else None
        if bounds is None:
            return
        if polys and not self.spend(sum(map(len, polys)) * (bounds[3] - bounds[1]) / 8):
            return  # the rasteriser visits every edge on every scanline
        if len(polys) == 1 and fill[3] == 255:
            self.draw.polygon(polys[0], fill=fill[:3])
        elif polys:
            self._fill_region(bounds, polys, fill)
        if runs:
            def lines(d: ImageDraw.ImageDraw, ox: int, oy: int, ink) -> None:
                for run in runs:
                    d.line([(x - ox, y - oy) for x, y in run], fill=ink, width=w, joint="curve" if w > 2 else None)

            if stroke[3] == 255:
                lines(self.draw, 0, 0, stroke[:3])
            else:
                self._through_mask(bounds, stroke, lambda d, ox, oy: lines(d, ox, oy, stroke[3]))

    def _fill_region(self, bounds, polys, color: RGBA) -> None:
        """Several subpaths: holes by even-odd (XOR), which also matches nonzero glyph-like outlines."""
        x0, y0, x1, y1 = bounds
        region = Image.new("1", (x1 - x0, y1 - y0), 0)
        for pts in polys:
            one = Image.new("1", region.size, 0)
            ImageDraw.Draw(one).polygon([(x - x0, y - y0) for x, y in pts], fill=1)
            region = ImageChops.logical_xor(region, one)
        alpha = color[3]
        self.img.paste(color[:3], (x0, y0), region.convert("L").point(lambda v: alpha if v else 0))

    def text(self, glyphs, font: FontChoice, size, fill, stroke, turn=None) -> None:
        """Glyph origins on the baseline; `turn` (a b c d, unit scale) rotates/shears each glyph."""
        color = fill or stroke
        px = min(size * self.k, MAX_FONT_PX)
        if px < 0.5 or not color[3]:
            return
        k, (W, H) = self.k, self.img.size
        half = int(round(px * 2))
        for x, y, ch in glyphs:
            x, y = x * k, y * k
            if ch.isspace() or not (-2 * px < x < W + 2 * px and -2 * px < y < H + 2 * px):
                continue
            if not self.spend(px * px):
                return
            glyph = _glyph_mask(font, half, ch) if half <= _CACHED_GLYPH_HALF_PX else _glyph_mask.__wrapped__(font, half, ch)
            if glyph is not None:
                self._paste_glyph(x, y, glyph, color, turn)

    def _paste_glyph(self, x: float, y: float, glyph, color: RGBA, turn) -> None:
        mask, left, top = glyph
        if turn is None:
            pos = (int(round(x)) + left, int(round(y)) + top)
        else:  # map the upright mask through `turn` about the glyph origin
            inv = invert((*turn, 0.0, 0.0))
            if inv is None:
                return
            w, h = mask.size
            corners = [(turn[0] * u + turn[2] * v, turn[1] * u + turn[3] * v)
                       for u in (left, left + w) for v in (top, top + h)]
            bx0, by0 = math.floor(min(c[0] for c in corners)), math.floor(min(c[1] for c in corners))
            bx1, by1 = math.ceil(max(c[0] for c in corners)), math.ceil(max(c[1] for c in corners))
            a, b, c, d, _, _ = inv  # output pixel → offset from the origin → upright mask pixel
            coeffs = (a, c, a * bx0 + c * by0 - left, b, d, b * bx0 + d * by0 - top)
            mask = mask.transform((bx1 - bx0, by1 - by0), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
            pos = (int(round(x)) + bx0, int(round(y)) + by0)
        if color[3] < 255:
            alpha = color[3]
            mask = mask.point(lambda v: v * alpha // 255)
        self.img.paste(color[:3], pos, mask)

    def image(self, img: Image.Image, raw, m: Matrix, alpha: int, clip: Box | None, multiply_blend: bool) -> None:
        k = self.k
        M = multiply(m, (k, 0.0, 0.0, k, 0.0, 0.0))  # unit square → pixels
        x, y, w, h = rect_bounds(M, 1.0, 1.0)
        if clip is not None:
            cx, cy, cw, ch = (v * k for v in clip)
            x, y, w, h = max(x, cx), max(y, cy), min(x + w, cx + cw) - max(x, cx), min(y + h, cy + ch) - max(y, cy)
        bounds = self._bounds(x, y, x + w, y + h, pad=0)  # an image must not spill over its frame
        if bounds is None or alpha <= 0 or w <= 0 or h <= 0:
            return
        upright = _upright(img, M)
        patch = self._scaled(*upright, bounds) if upright else self._warped(img, M, bounds)
        if patch is None:
            return
        mask = patch.getchannel("A") if patch.mode == "RGBA" else None
        if alpha < 255:
            mask = mask.point(lambda v: v * alpha // 255) if mask is not None else Image.new("L", patch.size, alpha)
        rgb = patch.convert("RGB") if patch.mode != "RGB" else patch
        if multiply_blend:  # seals are ink: white paper shows through, text under the seal stays legible
            rgb = ImageChops.multiply(self.img.crop(bounds), rgb)
        self.img.paste(rgb, bounds[:2], mask)

    @staticmethod
    def _scaled(img: Image.Image, M: Matrix, bounds) -> Image.Image | None:
        """Upright image (the usual case): crop and resample just the visible part, antialiased."""
        x0, y0, x1, y1 = bounds
        sw, sh = img.size
        box = (
            min(max((x0 - M[4]) / M[0] * sw, 0.0), sw), min(max((y0 - M[5]) / M[3] * sh, 0.0), sh),
            min(max((x1 - M[4]) / M[0] * sw, 0.0), sw), min(max((y1 - M[5]) / M[3] * sh, 0.0), sh),
        )
        if box[2] <= box[0] or box[3] <= box[1]:
            return None
        return img.resize((x1 - x0, y1 - y0), _resampling(img), box=box)

    @staticmethod
    def _warped(img: Image.Image, M: Matrix, bounds) -> Image.Image | None:
        """Rotated, sheared or flipped image: a general affine resample of the visible part."""
        inv = invert(M)
        if inv is None:
            return None
        x0, y0, x1, y1 = bounds
        src = img.convert("RGBA") if img.mode != "RGBA" else img
        per_px = min(math.hypot(M[0], M[1]) / src.width, math.hypot(M[2], M[3]) / src.height)
        if 0 < per_px < 0.5:  # downscale: box-reduce first, bilinear alone would alias
            src = src.reduce(max(1, min(int(1 / per_px), min(src.size))))
        sw, sh = src.size
        a, b, c, d, e, f = inv  # pixel (x0 + u, y0 + v) → unit square → source pixels
        coeffs = (a * sw, c * sw, (a * x0 + c * y0 + e) * sw, b * sh, d * sh, (b * x0 + d * y0 + f) * sh)
        return src.transform((x1 - x0, y1 - y0), Image.Transform.AFFINE, coeffs, _resampling(img))


@lru_cache(maxsize=16384)
def _glyph_mask(font: FontChoice, half_px: int, ch: str) -> tuple[Image.Image, int, int] | None:
    """Coverage mask of one glyph and its offset from the baseline origin (FreeType is the slow part)."""
    pil = pil_font(font, half_px / 2)
    with FONT_LOCK:
        try:
            left, top, right, bottom = (int(v) for v in pil.getbbox(ch, anchor="ls"))
        except (OSError, ValueError):
            return None
        if right <= left or bottom <= top:
            return None
        mask = Image.new("L", (right - left, bottom - top), 0)
        ImageDraw.Draw(mask).text((-left, -top), ch, font=pil, fill=255, anchor="ls")
    return mask, left, top


def _resampling(img: Image.Image) -> Image.Resampling:
    return Image.Resampling.NEAREST if img.info.get(BILEVEL) else Image.Resampling.BILINEAR


def _upright(img: Image.Image, M: Matrix) -> tuple[Image.Image, Matrix] | None:
    """For quarter turns and flips: the re-oriented image and its positive axis-aligned matrix."""
    a, b, c, d, e, f = M
    if abs(a) < 1e-9 and abs(d) < 1e-9 and abs(b) > 1e-9 and abs(c) > 1e-9:  # x follows v, y follows u
        img, (a, b, c, d) = img.transpose(Image.Transpose.TRANSPOSE), (c, 0.0, 0.0, b)
    elif not is_axis_aligned(M):
        return None
    if a < 0:
        img, a, e = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), -a, e + a
    if d < 0:
        img, d, f = img.transpose(Image.Transpose.FLIP_TOP_BOTTOM), -d, f + d
    return (img, (a, 0.0, 0.0, d, e, f)) if a > 0 and d > 0 else None
