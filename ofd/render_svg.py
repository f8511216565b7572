"""SVG backend of the OFD renderer: page millimetres as user units, one element per drawing.

Glyphs keep their individual OFD positions (x/y lists), images and seals are embedded as
data URIs (the original bytes when a browser can show them, else PNG), seals blend with
`multiply` like ink on paper. Fonts are named by CSS family lists ending in a generic
family, since the viewer, not us, picks the face.
"""

from __future__ import annotations

import base64
import io
from xml.sax.saxutils import escape, quoteattr

from PIL import Image

from ofd.render_path import Box, Matrix
from ofd.render_raster import RGBA
from ofd.render_text import FontChoice


class SvgSink:
    """SVG backend: page mm as user units; glyphs positioned one by one like in the OFD."""

    def __init__(self, width_mm: float, height_mm: float) -> None:
        self.parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{_n(width_mm)}mm" height="{_n(height_mm)}mm" viewBox="0 0 {_n(width_mm)} {_n(height_mm)}">',
            f'<rect width="{_n(width_mm)}" height="{_n(height_mm)}" fill="#fff"/>',
        ]
        self.clips = 0

    def finish(self) -> str:
        return "\n".join(self.parts + ["</svg>\n"])

    def path(self, subpaths, fill, stroke, width, evenodd) -> None:
        d = " ".join(
            "M" + " L".join(f"{_n(x)} {_n(y)}" for x, y in pts) + (" Z" if closed else "") for pts, closed in subpaths
        )
        attrs = _paint("fill", fill) + _paint("stroke", stroke)
        if stroke is not None:
            attrs += f' stroke-width="{_n(max(width, 0.05))}" stroke-linejoin="round"'
        if evenodd:
            attrs += ' fill-rule="evenodd"'
        self.parts.append(f'<path d="{d}"{attrs}/>')

    def text(self, glyphs, font: FontChoice, size, fill, stroke, turn=None) -> None:
        kept = [(x, y, ch) for x, y, ch in glyphs if _xml_char(ch)]
        if not kept or size <= 0:
            return
        if turn is not None:  # one <text> per glyph, rotated about its origin
            for x, y, ch in kept:
                self.parts.append(self._text_element([(0.0, 0.0, ch)], font, size, fill, stroke,
                                                     f' transform="matrix({" ".join(_n(v) for v in (*turn, x, y))})"'))
            return
        self.parts.append(self._text_element(kept, font, size, fill, stroke, ""))

    def _text_element(self, kept, font: FontChoice, size, fill, stroke, transform: str) -> str:
        xs = " ".join(_n(x) for x, _, _ in kept)
        ys = " ".join(_n(y) for _, y, _ in kept)
        weight = ' font-weight="bold"' if font.bold else ""
        return (
            f'<text xml:space="preserve" x="{xs}" y="{ys}"{transform} font-family={quoteattr(font.css_family)} '
            f'font-size="{_n(size)}"{weight}{_paint("fill", fill)}{_paint("stroke", stroke)}>'
            f'{escape("".join(ch for _, _, ch in kept))}</text>'
        )

    def image(self, img: Image.Image, raw, m: Matrix, alpha: int, clip: Box | None, multiply_blend: bool) -> None:
        mime = _browser_mime(raw) if raw else None
        if mime is None:
            buf = io.BytesIO()
            img.save(buf, "PNG")
            raw, mime = buf.getvalue(), "image/png"
        href = f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"
        extra = (f' opacity="{_n(alpha / 255)}"' if alpha < 255 else "") + (
            ' style="mix-blend-mode:multiply"' if multiply_blend else "")
        element = (f'<image x="0" y="0" width="1" height="1" preserveAspectRatio="none" '
                   f'transform="matrix({" ".join(_n(v) for v in m)})"{extra} xlink:href="{href}"/>')
        if clip is not None:
            self.clips += 1
            cid = f"clip{self.clips}"
            x, y, w, h = clip
            element = (f'<clipPath id="{cid}"><rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}"/></clipPath>'
                       f'<g clip-path="url(#{cid})">{element}</g>')
        self.parts.append(element)


def _n(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".") if v == v else "0"


def _paint(attr: str, c: RGBA | None) -> str:
    if c is None:
        return f' {attr}="none"'
    out = f' {attr}="#{c[0]:02x}{c[1]:02x}{c[2]:02x}"'
    return out + (f' {attr}-opacity="{_n(c[3] / 255)}"' if c[3] < 255 else "")


def _xml_char(ch: str) -> bool:
    cp = ord(ch)
    return cp in (0x9, 0xA, 0xD) or 0x20 <= cp <= 0xD7FF or 0xE000 <= cp <= 0xFFFD or cp >= 0x10000


def _browser_mime(raw: bytes) -> str | None:
    if raw.startswith(b"\x89PNG"):
        return "image/png"
    if raw.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if raw.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return None
