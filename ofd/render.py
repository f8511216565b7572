"""OFD page → picture (PNG via Pillow, or SVG): what a person sees when they open the file.

One walker interprets a page the way GB/T 33190 lays it out (STANDARDS.md §3.5) —
templates (background, then page, then foreground), layers in order, PageBlocks and
CompositeObjects, then annotation appearances and finally the seals of the signatures
(StampAnnot, picture from the seal inside Seal.esl or SignedValue.dat) — and hands
straight lines, glyph runs and images in page millimetres to a backend: `RasterSink`
(Pillow, ofd/render_raster.py) or `SvgSink` (ofd/render_svg.py). Keeping the OFD semantics in one place means PNG and SVG can
never disagree about where something is.

Uploads are hostile: page pixels, nesting depth, objects, glyphs and path points are
capped; images that cannot be decoded (unknown formats, JBIG2 beyond the subset of
render_jbig2) become grey placeholders and unreadable seal pictures a red placeholder
seal, each with a note in `doc.warnings`. Structural errors of the package surface as the reader's `OFDError`.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable

from lxml import etree
from PIL import Image

from ofd.errors import OFDError
from ofd.reader import OFDDocument, PageRef, open_ofd
from ofd.render_jbig2 import MAGIC as JBIG2_MAGIC
from ofd.render_jbig2 import JBIG2Error, decode_jbig2
from ofd.render_path import (
    IDENTITY,
    MAX_PATH_POINTS,
    Box,
    Matrix,
    apply,
    deltas,
    is_axis_aligned,
    multiply,
    parse_abbreviated,
    parse_matrix,
    parse_numbers,
    rect_bounds,
    scale_of,
    transform_subpaths,
    translate,
)
from ofd.render_raster import BILEVEL, RGBA, RasterSink
from ofd.render_svg import SvgSink
from ofd.render_text import FontChoice, advance_em, embedded_font, system_font
from ofd.signatures_xml import SignatureXml, parse_signature_xml
from ofd.xmlsafe import child, children, local_name

Glyph = tuple[float, float, str]

MAX_PIXELS = 40_000_000  # one page at A4 600 dpi is 35 MP
MIN_DPI, MAX_DPI = 1.0, 2400.0
MAX_DEPTH = 8  # PageBlock / CompositeObject nesting
MAX_OBJECTS = 200_000  # graphic units per page
# Objects drawn through CompositeGraphicUnits per page. Units that draw each other several
# times multiply (10 uses a level, 8 levels: 10^8), and each costs ~80 µs to place, so
# without this a 2 KiB Res file held a worker for 16 s before MAX_OBJECTS stopped it.
MAX_COMPOSITE_OBJECTS = 10_000
MAX_GLYPHS = 200_000  # per page
MAX_PAGE_POINTS = 500_000  # flattened path points per page
MAX_IMAGE_PIXELS = 25_000_000  # decoded size of one embedded picture (an A4 scan at 300 dpi is 8.7 MP)
SEAL_RED: RGBA = (220, 20, 20, 255)
_BLACK: RGBA = (0, 0, 0, 255)
_PLACEHOLDER_FILL: RGBA = (225, 225, 225, 255)
_PLACEHOLDER_LINE: RGBA = (150, 150, 150, 255)
_LAYER_ORDER = {"Background": 0, "Body": 1, "Custom": 1, "Foreground": 2}


class RenderError(OFDError):
    """The request cannot be rendered (the document itself was readable)."""

    CATALOGUE = {
        "bad_page": (
            "Page {page} does not exist: the document has {count} page(s).",
            "第 {page} 页不存在：文档共 {count} 页。",
        ),
        "bad_dpi": (
            "Resolution {dpi} dpi is not allowed (use {low:g}–{high:g}).",
            "分辨率 {dpi} dpi 不允许（范围 {low:g}–{high:g}）。",
        ),
        "too_large": (
            "The page would be {width}×{height} pixels, more than {limit} megapixels: lower the dpi.",
            "页面将为 {width}×{height} 像素，超过 {limit} 百万像素，请降低分辨率。",
        ),
    }


@dataclass(frozen=True)
class _Style:
    """What a DrawParam (and an object's own attributes) decide; None = not set."""

    fill: RGBA | None = None
    stroke: RGBA | None = None
    line_width: float | None = None


# ================================================================= the walker


class _Walker:
    """Interprets one page for one sink; caches decoded images, fonts and DrawParams."""

    def __init__(self, doc: OFDDocument, sink, *, dpi: float, with_stamps: bool) -> None:
        self.doc, self.sink, self.dpi, self.with_stamps = doc, sink, dpi, with_stamps
        sink.note = self.note
        self.objects = self.glyphs = self.points = self.composite_objects = 0
        self._fonts: dict[tuple[int, bool], FontChoice] = {}
        self._images: dict[int, tuple[Image.Image | None, bytes | None]] = {}
        self._params: dict[int, _Style] = {}
        self._noted: set[str] = set()

    def note(self, message: str) -> None:
        if message not in self._noted:
            self._noted.add(message)
            self.doc.warnings.append(f"render: {message}")

    # --- page structure ---------------------------------------------------------------

    def draw_page(self, page: PageRef, box: Box) -> None:
        origin = translate(-box[0], -box[1])
        root = page.xml
        back, front = [], []
        for t in children(root, "Template"):
            ref = self.doc.templates.get(_int(t.get("TemplateID")))
            if ref is None:
                self.note(f"page {page.id}: template {t.get('TemplateID')!r} is not defined")
                continue
            zorder = t.get("ZOrder") or ref.zorder or "Background"
            (front if zorder == "Foreground" else back).append(ref)
        for ref in back:
            self.draw_content(ref.xml, origin)
        self.draw_content(root, origin)
        for ref in front:
            self.draw_content(ref.xml, origin)
        self.draw_annotations(page, origin)
        if self.with_stamps:
            self.draw_stamps(page, origin)

    def draw_content(self, page_root: etree._Element, m: Matrix) -> None:
        content = child(page_root, "Content")
        if content is None:
            return
        layers = sorted(children(content, "Layer"), key=lambda el: _LAYER_ORDER.get(el.get("Type") or "Body", 1))
        for layer in layers:
            self.draw_children(layer, m, self.param(layer.get("DrawParam"), _Style()), 255, 0)

    def draw_children(self, container: etree._Element, m: Matrix, style: _Style, alpha: int, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.note(f"objects nested deeper than {MAX_DEPTH} levels are not drawn")
            return
        for el in container:
            if not isinstance(el.tag, str):
                continue
            self.objects += 1
            if self.objects > MAX_OBJECTS:
                self.note(f"more than {MAX_OBJECTS} objects on the page; the rest is not drawn")
                return
            name = local_name(el)
            if name == "PageBlock":
                self.draw_children(el, m, style, alpha, depth + 1)
            elif name in _OBJECT_DRAWERS and (el.get("Visible") or "true").strip().lower() != "false":
                own_alpha = alpha * _clamp(_float(el.get("Alpha"), 255.0)) // 255
                _OBJECT_DRAWERS[name](self, el, m, style, own_alpha, depth)

    def object_matrix(self, el: etree._Element, parent: Matrix, default_ctm: Matrix | None = None) -> tuple[Matrix, Box]:
        """Object space → page mm: CTM, then the Boundary's origin, then the parent's matrix."""
        b = parse_numbers(el.get("Boundary"), 4)
        box = (b[0], b[1], b[2], b[3]) if len(b) == 4 else (0.0, 0.0, 0.0, 0.0)
        ctm = parse_matrix(el.get("CTM")) or default_ctm or IDENTITY
        return multiply(ctm, multiply(translate(box[0], box[1]), parent)), box

    def object_style(self, el: etree._Element, inherited: _Style) -> _Style:
        style = _merge(inherited, self.param(el.get("DrawParam"), _Style()))
        lw = el.get("LineWidth")
        fill, stroke = child(el, "FillColor"), child(el, "StrokeColor")
        return replace(
            style,
            line_width=_float(lw, style.line_width) if lw else style.line_width,
            fill=(self.color(fill) or style.fill) if fill is not None else style.fill,
            stroke=(self.color(stroke) or style.stroke) if stroke is not None else style.stroke,
        )

    # --- graphic units ------------------------------------------------------------------

    def draw_path(self, el: etree._Element, parent: Matrix, inherited: _Style, alpha: int, depth: int) -> None:
        m, _ = self.object_matrix(el, parent)
        style = self.object_style(el, inherited)
        budget = MAX_PAGE_POINTS - self.points
        if budget <= 0:
            self.note(f"more than {MAX_PAGE_POINTS} path points on the page; the rest is not drawn")
            return
        subpaths, cut = parse_abbreviated(_text_of(child(el, "AbbreviatedData")), min(budget, MAX_PATH_POINTS))
        if cut:
            self.note(f"path {el.get('ID')}: too many points; drawn up to the cap")
        self.points += sum(len(p) for p, _ in subpaths)
        if not subpaths:
            return
        do_fill = _bool(el.get("Fill"), False)
        do_stroke = _bool(el.get("Stroke"), True)
        fill = _with_alpha(style.fill or _BLACK, alpha) if do_fill else None
        stroke = _with_alpha(style.stroke or _BLACK, alpha) if do_stroke else None
        if fill is None and stroke is None:
            return
        width = (style.line_width if style.line_width is not None else 0.353) * scale_of(m)
        evenodd = (el.get("Rule") or "").strip().lower() == "even-odd"
        self.sink.path(transform_subpaths(subpaths, m), fill, stroke, width, evenodd)

    def draw_text(self, el: etree._Element, parent: Matrix, inherited: _Style, alpha: int, depth: int) -> None:
        m, _ = self.object_matrix(el, parent)
        style = self.object_style(el, inherited)
        size = _float(el.get("Size"), 0.0)
        if not 0 < size < 1e4:
            return
        bold = _float(el.get("Weight"), 400) >= 700
        font = self.font(_int(el.get("Font")), bold)
        fill = _with_alpha(style.fill or _BLACK, alpha) if _bool(el.get("Fill"), True) else None
        stroke = _with_alpha(style.stroke or _BLACK, alpha) if _bool(el.get("Stroke"), False) else None
        if fill is None and stroke is None:
            return
        glyphs: list[Glyph] = []
        x = y = None
        for code in children(el, "TextCode"):
            x = _float(code.get("X"), x) if code.get("X") else x
            y = _float(code.get("Y"), y) if code.get("Y") else y
            text = code.text or ""
            if x is None or y is None or not text:
                continue
            room = MAX_GLYPHS - self.glyphs - len(glyphs)
            if room <= 0:
                self.note(f"more than {MAX_GLYPHS} glyphs on the page; the rest is not drawn")
                break
            text = text[:room]
            dx, dy = deltas(code.get("DeltaX"), len(text)), deltas(code.get("DeltaY"), len(text))
            natural = not code.get("DeltaX") and not code.get("DeltaY")  # DeltaY alone = vertical text
            for i, ch in enumerate(text):
                glyphs.append((*apply(m, x, y), ch))
                x += dx[i] if i < len(dx) else (advance_em(font, ch) * size if natural or dx else 0.0)
                y += dy[i] if i < len(dy) else 0.0
        self.glyphs += len(glyphs)
        k = scale_of(m)
        if glyphs and k > 0:
            turn = None if is_axis_aligned(m) and m[0] > 0 and m[3] > 0 else (m[0] / k, m[1] / k, m[2] / k, m[3] / k)
            self.sink.text(glyphs, font, size * k, fill, stroke, turn)

    def draw_image(self, el: etree._Element, parent: Matrix, inherited: _Style, alpha: int, depth: int) -> None:
        b = parse_numbers(el.get("Boundary"), 4)
        size = (b[2], b[3]) if len(b) == 4 else (0.0, 0.0)
        m, box = self.object_matrix(el, parent, default_ctm=(size[0], 0.0, 0.0, size[1], 0.0, 0.0))
        rid = _int(el.get("ResourceID"))
        img, raw = self.image(rid)
        clip = rect_bounds(multiply(translate(box[0], box[1]), parent), box[2], box[3]) if box[2] > 0 and box[3] > 0 else None
        if img is None:
            self.placeholder(m)
            return
        self.sink.image(img, raw, m, alpha, clip, False)

    def draw_composite(self, el: etree._Element, parent: Matrix, inherited: _Style, alpha: int, depth: int) -> None:
        unit = self.doc.composite_units.get(_int(el.get("ResourceID")))
        content = child(unit, "Content") if unit is not None else None
        if content is None:
            self.note(f"composite object {el.get('ID')}: unit {el.get('ResourceID')!r} is not defined")
            return
        self.composite_objects += len(content)
        if self.composite_objects > MAX_COMPOSITE_OBJECTS:
            self.note(f"composite graphic units expand to more than {MAX_COMPOSITE_OBJECTS} objects; the rest is not drawn")
            return
        m, _ = self.object_matrix(el, parent)
        self.draw_children(content, m, self.object_style(el, inherited), alpha, depth + 1)

    def placeholder(self, m: Matrix) -> None:
        square = [[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]]
        cross = [[(0.0, 0.0), (1.0, 1.0)], [(1.0, 0.0), (0.0, 1.0)]]
        self.sink.path(transform_subpaths([(square[0], True)], m), _PLACEHOLDER_FILL, _PLACEHOLDER_LINE, 0.2, False)
        self.sink.path(transform_subpaths([(c, False) for c in cross], m), None, _PLACEHOLDER_LINE, 0.2, False)

    # --- annotations and seals ------------------------------------------------------------

    def draw_annotations(self, page: PageRef, origin: Matrix) -> None:
        files = self.doc.annotations.get(page.id)  # one file (or a list, in older readers) per page
        for path in [files] if isinstance(files, str) else files or []:
            if path not in self.doc.package.files:
                continue
            for annot in children(self.doc.xml(path, "PageAnnot"), "Annot"):
                appearance = child(annot, "Appearance")
                if appearance is None or (annot.get("Visible") or "true").strip().lower() == "false":
                    continue
                m, _ = self.object_matrix(appearance, origin)
                self.draw_children(appearance, m, _Style(), 255, 1)

    def draw_stamps(self, page: PageRef, origin: Matrix) -> None:
        for entry in self.doc.signatures:
            sx = parse_signature_xml(self.doc, entry)
            stamps = [s for s in sx.stamp_annots if s.page_ref == page.id]
            if not stamps:
                continue
            picture, raw, name = self.seal_picture(sx)
            for st in stamps:
                x, y, w, h = st.boundary
                m = multiply((w, 0.0, 0.0, h, x, y), origin)
                cx, cy, cw, ch = st.clip if st.clip else (0.0, 0.0, w, h)
                clip = rect_bounds(origin, cw, ch, x + cx, y + cy)
                if picture is not None:
                    self.sink.image(picture, raw, m, 255, clip, True)
                else:
                    self.placeholder_seal(m, name)

    def seal_picture(self, sx: SignatureXml) -> tuple[Image.Image | None, bytes | None, str]:
        """The seal's picture (decoded), its raw bytes when a browser can show them, its name."""
        from signer.ses import SESError, parse_seal, parse_signed_value

        seal, problems = None, []
        sources = [(sx.seal_path, parse_seal)] if sx.seal_path in self.doc.package.files else []
        sources.append((sx.signed_value_path, lambda der: parse_signed_value(der).seal))  # seal inside the signature
        for path, parse in sources:
            try:
                seal = parse(self.doc.read(path))
                break
            except (SESError, OFDError) as exc:
                problems.append(getattr(exc, "code", type(exc).__name__))
        if seal is None:
            self.note(f"{sx.path}: no seal picture ({', '.join(problems)})")
            return None, None, ""
        pic, kind = seal.picture, (seal.picture_type or "").strip().lower()
        if pic[:2] == b"PK" or kind == "ofd":
            return self.nested_ofd(pic, sx.path), None, seal.name
        img = _decode_image(pic)
        if img is None:
            self.note(f"{sx.path}: seal picture type {kind or '?'} cannot be drawn; placeholder used")
        return img, pic if img is not None else None, seal.name

    def nested_ofd(self, data: bytes, where: str) -> Image.Image | None:
        """Vendors (gomain e-invoices) store the seal picture as a one-page OFD: render it."""
        try:
            return _render_seal_ofd(data, min(max(self.dpi, 150.0), 600.0))
        except OFDError as exc:
            self.note(f"{where}: seal picture (OFD) unreadable ({exc.code})")
            return None

    def placeholder_seal(self, m: Matrix, name: str) -> None:
        ring = [(0.5 + 0.47 * math.cos(t * math.pi / 32), 0.5 + 0.47 * math.sin(t * math.pi / 32)) for t in range(65)]
        k = scale_of(m)
        self.sink.path(transform_subpaths([(ring, True)], m), None, SEAL_RED, max(0.4, 0.03 * k), False)
        label = (name or "电子印章")[:24]
        size = min(0.16, 0.8 / max(1, len(label)))
        x0 = 0.5 - size * len(label) / 2
        glyphs = [(*apply(m, x0 + i * size, 0.5 + size * 0.35), ch) for i, ch in enumerate(label)]
        self.sink.text(glyphs, system_font("黑体", None), size * k, SEAL_RED, None)

    # --- resources ----------------------------------------------------------------------

    def font(self, font_id: int, bold: bool) -> FontChoice:
        key = (font_id, bold)
        if key not in self._fonts:
            res = self.doc.fonts.get(font_id)
            if res is None:
                self.note(f"font {font_id} is not defined; a default face is used")
                self._fonts[key] = system_font(None, None, bold=bold)
            else:
                choice = system_font(res.name, res.family, serif=res.serif, fixed=res.fixed_width, bold=bold or res.bold)
                if res.file and res.file in self.doc.package.files:
                    choice = embedded_font(self.doc.read(res.file), res.name, choice)
                self._fonts[key] = choice
        return self._fonts[key]

    def image(self, rid: int) -> tuple[Image.Image | None, bytes | None]:
        if rid not in self._images:
            media = self.doc.media.get(rid)
            img = raw = None
            if media is None or not media.path or media.path not in self.doc.package.files:
                self.note(f"image resource {rid} is missing; placeholder drawn")
            else:
                raw = self.doc.read(media.path)
                oversized: list[str] = []
                img = _decode_image(raw, oversized.append)
                if oversized:
                    self.note(f"image {media.path} is {oversized[0]}: not decoded; placeholder drawn")
                elif img is None:
                    self.note(f"image {media.path} ({media.format or 'unknown format'}) cannot be decoded; placeholder drawn")
            self._images[rid] = (img, raw if img is not None else None)
        return self._images[rid]

    def param(self, ref: str | None, base: _Style) -> _Style:
        """DrawParam `ref` (following Relative, cycle-safe) merged over `base`."""
        if not ref:
            return base
        chain, pid = [], _int(ref)
        while pid in self.doc.draw_params and pid not in chain and len(chain) < MAX_DEPTH:
            chain.append(pid)
            pid = _int(self.doc.draw_params[pid].get("Relative"))
        style = base
        for pid in reversed(chain):
            el = self.doc.draw_params[pid]
            if pid not in self._params:
                fill, stroke = child(el, "FillColor"), child(el, "StrokeColor")
                self._params[pid] = _Style(
                    self.color(fill) if fill is not None else None,
                    self.color(stroke) if stroke is not None else None,
                    _float(el.get("LineWidth"), None) if el.get("LineWidth") else None,
                )
            style = _merge(style, self._params[pid])
        return style

    def color(self, el: etree._Element, depth: int = 0) -> RGBA | None:
        """CT_Color → RGBA; shadings give their first colour; None when unreadable."""
        value = el.get("Value")
        alpha = _clamp(_float(el.get("Alpha"), 255.0))
        space = self.doc.colorspaces.get(_int(el.get("ColorSpace"))) if el.get("ColorSpace") else None
        if value is None and el.get("Index") is not None and space is not None and space.element is not None:
            palette = child(space.element, "Palette")
            cvs = children(palette, "CV") if palette is not None else []
            idx = _int(el.get("Index"))
            value = cvs[idx].text if 0 <= idx < len(cvs) else None
        if value is None:
            if depth > 2:
                return None
            for sub in el.iter():
                if sub is not el and local_name(sub) == "Color" and sub.get("Value") is not None:
                    return self.color(sub, depth + 1)
            return None
        nums = []
        tokens = value.replace(",", " ").split()[:4]
        if len(tokens) == 1 and tokens[0].startswith("#") and len(tokens[0]) == 7:  # "#RRGGBB"
            tokens = ["#" + tokens[0][i : i + 2] for i in (1, 3, 5)]
        for tok in tokens:
            try:
                nums.append(float(int(tok[1:], 16)) if tok.startswith("#") else float(tok))
            except ValueError:
                return None
        kind = (space.type if space else "RGB").upper()
        bits = space.bits if space and 1 <= space.bits <= 16 else 8
        nums = [v * 255.0 / (2**bits - 1) for v in nums] if bits != 8 else nums
        if kind == "GRAY" and nums:
            rgb = (nums[0],) * 3
        elif kind == "CMYK" and len(nums) >= 4:
            c, mg, yl, k = (min(max(v, 0.0), 255.0) / 255.0 for v in nums[:4])
            rgb = tuple(255.0 * (1 - v) * (1 - k) for v in (c, mg, yl))
        elif len(nums) >= 3:
            rgb = tuple(nums[:3])
        else:
            return None
        r, g, b = (_clamp(v) for v in rgb)
        return (r, g, b, alpha)


_OBJECT_DRAWERS: dict[str, Callable] = {
    "PathObject": _Walker.draw_path,
    "TextObject": _Walker.draw_text,
    "ImageObject": _Walker.draw_image,
    "CompositeObject": _Walker.draw_composite,
}


# ================================================================= small helpers


@lru_cache(maxsize=32)
def _render_seal_ofd(data: bytes, dpi: float) -> Image.Image | None:
    """First page of a seal picture that is itself an OFD; cached, since one issuer's seal recurs."""
    inner = open_ofd(data)
    return render_page(inner, 0, dpi=dpi, with_stamps=False) if inner.pages else None



def _float(text, default):
    try:
        v = float(text)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


def _int(text) -> int:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return -1


def _bool(text: str | None, default: bool) -> bool:
    t = (text or "").strip().lower()
    return default if not t else t in ("true", "1")


def _clamp(v: float) -> int:
    return int(min(max(v, 0.0), 255.0) + 0.5)


def _with_alpha(c: RGBA, alpha: int) -> RGBA:
    return (c[0], c[1], c[2], c[3] * alpha // 255)


def _merge(base: _Style, over: _Style) -> _Style:
    return _Style(
        over.fill if over.fill is not None else base.fill,
        over.stroke if over.stroke is not None else base.stroke,
        over.line_width if over.line_width is not None else base.line_width,
    )


def _text_of(el: etree._Element | None) -> str:
    return (el.text or "") if el is not None else ""


def _decode_image(data: bytes, oversized: Callable[[str], None] | None = None) -> Image.Image | None:
    """PNG/JPEG/GIF/BMP/TIFF/JBIG2... → RGB or RGBA; None for anything that cannot (safely) be decoded.

    A picture over MAX_IMAGE_PIXELS is judged from its header alone (a few KiB of PNG can
    declare 50 megapixels); ``oversized`` is told its size, for the document's warnings."""
    if data.startswith(JBIG2_MAGIC):
        try:
            img = decode_jbig2(data).convert("RGB")
        except JBIG2Error:
            return None
        img.info[BILEVEL] = True
        return img
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_IMAGE_PIXELS:
            if oversized is not None:
                oversized(f"{img.width}×{img.height} pixels ({img.width * img.height / 1e6:.1f} megapixels, "
                          f"over the {MAX_IMAGE_PIXELS // 1_000_000} megapixel limit)")
            return None
        img.load()
    except Exception:  # noqa: BLE001 — Pillow signals bad data with many exception types
        return None
    bilevel = img.getcolors(2) is not None  # QR codes, scans of stamps: keep their edges sharp
    if img.mode not in ("RGB", "RGBA"):
        has_alpha = img.mode in ("LA", "PA", "La") or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
    img.info[BILEVEL] = bilevel
    return img


# ================================================================= public API


def page_count(doc: OFDDocument) -> int:
    return len(doc.pages)


def page_box(doc: OFDDocument, index: int) -> Box:
    """The page's PhysicalBox (its own Area overrides the document's), in mm."""
    page = _page(doc, index)
    area = child(page.xml, "Area")
    box_el = child(area, "PhysicalBox") if area is not None else None
    vals = parse_numbers(box_el.text if box_el is not None else None, 4)
    if len(vals) == 4 and vals[2] > 0 and vals[3] > 0 and all(abs(v) < 1e5 for v in vals):
        return vals[0], vals[1], vals[2], vals[3]
    return doc.physical_box


def _page(doc: OFDDocument, index: int) -> PageRef:
    if not isinstance(index, int) or not 0 <= index < len(doc.pages):
        raise RenderError("bad_page", page=index + 1 if isinstance(index, int) else index, count=len(doc.pages))
    return doc.pages[index]


def _check_size(box: Box, dpi: float) -> None:
    if not isinstance(dpi, (int, float)) or not math.isfinite(dpi) or not MIN_DPI <= dpi <= MAX_DPI:
        raise RenderError("bad_dpi", dpi=dpi, low=MIN_DPI, high=MAX_DPI)
    k = dpi / 25.4
    width, height = round(box[2] * k), round(box[3] * k)
    if width * height > MAX_PIXELS:
        raise RenderError("too_large", width=width, height=height, limit=MAX_PIXELS // 1_000_000)


def render_page(doc: OFDDocument, index: int = 0, *, dpi: float = 150, with_stamps: bool = True) -> Image.Image:
    """Page `index` (0-based) as an RGB image at `dpi`; seals drawn when `with_stamps`.

    Raises RenderError (bad page, bad dpi, too many pixels) or the reader's OFDError.
    """
    page = _page(doc, index)
    box = page_box(doc, index)
    _check_size(box, dpi)
    sink = RasterSink(box[2], box[3], dpi)
    _Walker(doc, sink, dpi=dpi, with_stamps=with_stamps).draw_page(page, box)
    return sink.img


def render_svg(doc: OFDDocument, index: int = 0, *, with_stamps: bool = True) -> str:
    """Page `index` as a standalone SVG document (images and seals as data URIs)."""
    page = _page(doc, index)
    box = page_box(doc, index)
    sink = SvgSink(box[2], box[3])
    _Walker(doc, sink, dpi=300, with_stamps=with_stamps).draw_page(page, box)
    return sink.finish()


def render_png(data: bytes, *, page: int = 0, dpi: float = 150) -> bytes:
    """Open untrusted OFD bytes and return page `page` (0-based) as PNG bytes."""
    img = render_page(open_ofd(data), page, dpi=dpi)
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=3)
    return buf.getvalue()
