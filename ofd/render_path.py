"""Geometry for the OFD renderer: affine matrices, ST_Array, AbbreviatedData (GB/T 33190 §3.5).

Everything here reads untrusted attribute text, so every parser is lazy and capped:
a 1e6-element DeltaX is read only as far as the glyphs need, `g N v` is expanded only
up to that count, and path data stops at `MAX_PATH_POINTS` (the caller records a
warning). Curves and arcs are flattened into polylines in object space; the backends
(Pillow, SVG) only ever see straight segments in page millimetres.
"""

from __future__ import annotations

import math
import re
from itertools import islice
from typing import Iterator

Matrix = tuple[float, float, float, float, float, float]  # a b c d e f: x' = a x + c y + e, y' = b x + d y + f
Point = tuple[float, float]
Subpath = tuple[list[Point], bool]  # points, closed
Box = tuple[float, float, float, float]  # x y w h

IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
MAX_PATH_POINTS = 100_000  # per PathObject after flattening; real files stay under a few thousand
CURVE_STEPS = 12  # segments per Bézier: smooth at 600 dpi for the sizes pages use
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_TOKEN = re.compile(r"[A-Za-z]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def multiply(first: Matrix, then: Matrix) -> Matrix:
    """The matrix applying `first`, then `then`."""
    a, b, c, d, e, f = first
    A, B, C, D, E, F = then
    return (a * A + b * C, a * B + b * D, c * A + d * C, c * B + d * D, e * A + f * C + E, e * B + f * D + F)


def translate(x: float, y: float) -> Matrix:
    return (1.0, 0.0, 0.0, 1.0, x, y)


def apply(m: Matrix, x: float, y: float) -> Point:
    return (m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5])


def scale_of(m: Matrix) -> float:
    """Linear size factor of `m` (sqrt |det|): turns line widths and font sizes into page units."""
    return math.sqrt(abs(m[0] * m[3] - m[1] * m[2])) or 0.0


def is_axis_aligned(m: Matrix, eps: float = 1e-9) -> bool:
    return abs(m[1]) < eps and abs(m[2]) < eps


def invert(m: Matrix) -> Matrix | None:
    a, b, c, d, e, f = m
    det = a * d - b * c
    if abs(det) < 1e-12:
        return None
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return (ia, ib, ic, id_, -(e * ia + f * ic), -(e * ib + f * id_))


def parse_matrix(text: str | None) -> Matrix | None:
    """CTM "a b c d e f"; None when absent or not six finite numbers (treated as no CTM)."""
    if not text:
        return None
    vals = [float(v) for v in islice(_NUMBER.findall(text.replace(",", " ")), 7)]
    if len(vals) != 6 or not all(math.isfinite(v) and abs(v) < 1e7 for v in vals):
        return None
    return tuple(vals)  # type: ignore[return-value]


def parse_numbers(text: str | None, limit: int) -> list[float]:
    """At most `limit` numbers of a whitespace/comma list (Boundary, PhysicalBox...).

    Stops at the first non-finite or absurd (|v| ≥ 1e9) value, so a bad entry shortens
    the list instead of shifting the numbers after it into the wrong places.
    """
    out: list[float] = []
    for m in _NUMBER.finditer(text or ""):
        if len(out) >= limit:
            break
        v = float(m.group())
        if not (math.isfinite(v) and abs(v) < 1e9):
            break
        out.append(v)
    return out


def iter_delta(text: str | None) -> Iterator[float]:
    """ST_Array of DeltaX/DeltaY with the `g N v` compression (N repeats of v), lazily."""
    if not text:
        return
    tokens = iter(re.finditer(r"\S+", text))
    for m in tokens:
        tok = m.group()
        if tok == "g":
            count_m, value_m = next(tokens, None), next(tokens, None)
            if count_m is None or value_m is None:
                return
            try:
                count, value = int(float(count_m.group())), float(value_m.group())
            except ValueError:
                return
            if not math.isfinite(value):
                return
            for _ in range(max(0, count)):  # consumers stop early: no list of N is ever built
                yield value
        else:
            try:
                value = float(tok)
            except ValueError:
                return
            if not math.isfinite(value):
                return
            yield value


def deltas(text: str | None, needed: int) -> list[float]:
    """The first `needed` advances of a DeltaX/DeltaY (fewer if the array is shorter)."""
    return list(islice(iter_delta(text), max(0, needed)))


# --- AbbreviatedData ---------------------------------------------------------------

_ARITY = {"S": 2, "M": 2, "L": 2, "Q": 4, "B": 6, "A": 7, "C": 0}


def _quad(p0: Point, p1: Point, p2: Point) -> list[Point]:
    out = []
    for i in range(1, CURVE_STEPS + 1):
        t = i / CURVE_STEPS
        u = 1 - t
        out.append((u * u * p0[0] + 2 * u * t * p1[0] + t * t * p2[0], u * u * p0[1] + 2 * u * t * p1[1] + t * t * p2[1]))
    return out


def _cubic(p0: Point, p1: Point, p2: Point, p3: Point) -> list[Point]:
    out = []
    for i in range(1, CURVE_STEPS + 1):
        t = i / CURVE_STEPS
        u = 1 - t
        a, b, c, d = u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t
        out.append((a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0], a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]))
    return out


def _arc(p0: Point, rx: float, ry: float, angle: float, large: bool, sweep: bool, p1: Point) -> list[Point]:
    """SVG-style endpoint arc (the OFD `A` operator uses the same parameters), flattened."""
    if p0 == p1:
        return []
    rx, ry = abs(rx), abs(ry)
    if rx == 0 or ry == 0:
        return [p1]
    phi = math.radians(angle % 360)
    cos_p, sin_p = math.cos(phi), math.sin(phi)
    dx, dy = (p0[0] - p1[0]) / 2, (p0[1] - p1[1]) / 2
    x1, y1 = cos_p * dx + sin_p * dy, -sin_p * dx + cos_p * dy
    lam = (x1 * x1) / (rx * rx) + (y1 * y1) / (ry * ry)
    if lam > 1:
        rx, ry = rx * math.sqrt(lam), ry * math.sqrt(lam)
    num = rx * rx * ry * ry - rx * rx * y1 * y1 - ry * ry * x1 * x1
    den = rx * rx * y1 * y1 + ry * ry * x1 * x1
    coef = math.sqrt(max(0.0, num / den)) if den else 0.0
    if large == sweep:
        coef = -coef
    cx1, cy1 = coef * rx * y1 / ry, -coef * ry * x1 / rx
    cx = cos_p * cx1 - sin_p * cy1 + (p0[0] + p1[0]) / 2
    cy = sin_p * cx1 + cos_p * cy1 + (p0[1] + p1[1]) / 2
    t1 = math.atan2((y1 - cy1) / ry, (x1 - cx1) / rx)
    t2 = math.atan2((-y1 - cy1) / ry, (-x1 - cx1) / rx)
    dt = t2 - t1
    if sweep and dt < 0:
        dt += 2 * math.pi
    elif not sweep and dt > 0:
        dt -= 2 * math.pi
    steps = max(4, min(64, int(abs(dt) / (math.pi / 16)) + 1))
    out = []
    for i in range(1, steps + 1):
        t = t1 + dt * i / steps
        ex, ey = rx * math.cos(t), ry * math.sin(t)
        out.append((cos_p * ex - sin_p * ey + cx, sin_p * ex + cos_p * ey + cy))
    out[-1] = p1
    return out


def parse_abbreviated(text: str | None, max_points: int = MAX_PATH_POINTS) -> tuple[list[Subpath], bool]:
    """AbbreviatedData → (subpaths in object space, truncated?).

    Unknown operators and short operand lists end the path (what is drawn so far stays):
    a damaged path must not take the page down with it.
    """
    subpaths: list[Subpath] = []
    current: list[Point] = []
    start = pos = (0.0, 0.0)
    count = 0
    tokens = _TOKEN.finditer(text or "")
    op: str | None = None
    pending: list[float] = []

    def flush(closed: bool) -> None:
        nonlocal current
        if len(current) > 1:
            subpaths.append((current, closed))
        current = []

    for m in tokens:
        tok = m.group()
        if tok.isalpha():
            op, pending = tok, []
            if op == "C":
                if current:
                    current.append(current[0])
                    flush(True)
                    pos = start
                op = None
            elif op not in _ARITY:
                break
            continue
        if op is None:
            continue  # stray number: ignore, like readers do
        pending.append(float(tok))
        if len(pending) < _ARITY[op]:
            continue
        v, pending = pending, []
        if not all(math.isfinite(x) and abs(x) < 1e7 for x in v):
            break
        if op in ("S", "M"):
            flush(False)
            start = pos = (v[0], v[1])
            current = [pos]
            count += 1
            continue
        if not current:
            current = [pos]
        if op == "L":
            new = [(v[0], v[1])]
        elif op == "Q":
            new = _quad(pos, (v[0], v[1]), (v[2], v[3]))
        elif op == "B":
            new = _cubic(pos, (v[0], v[1]), (v[2], v[3]), (v[4], v[5]))
        else:  # "A"
            new = _arc(pos, v[0], v[1], v[2], v[3] != 0, v[4] != 0, (v[5], v[6]))
        current.extend(new)
        if new:
            pos = new[-1]
        count += len(new)
        if count >= max_points:
            flush(False)
            return subpaths, True
    flush(False)
    return subpaths, False


def transform_subpaths(subpaths: list[Subpath], m: Matrix) -> list[Subpath]:
    a, b, c, d, e, f = m
    return [([(a * x + c * y + e, b * x + d * y + f) for x, y in pts], closed) for pts, closed in subpaths]



Rect = tuple[float, float, float, float]  # x0 y0 x1 y1


def clip_polygon(pts: list[Point], rect: Rect) -> list[Point]:
    """Sutherland–Hodgman: the part of a filled polygon inside `rect`.

    Rasterisers walk every scanline a polygon spans, so a hostile coordinate of 1e8 px
    would stall them; clipped first, the work is bounded by the canvas.
    """
    x0, y0, x1, y1 = rect
    edges = (
        (lambda p: p[0] >= x0, lambda p, q: _cross_x(p, q, x0)),
        (lambda p: p[0] <= x1, lambda p, q: _cross_x(p, q, x1)),
        (lambda p: p[1] >= y0, lambda p, q: _cross_y(p, q, y0)),
        (lambda p: p[1] <= y1, lambda p, q: _cross_y(p, q, y1)),
    )
    out = pts
    for inside, cross in edges:
        if not out:
            break
        src, out = out, []
        prev = src[-1]
        for cur in src:
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
            prev = cur
    return out


def clip_polyline(pts: list[Point], rect: Rect) -> list[list[Point]]:
    """Liang–Barsky on each segment: the visible runs of a stroked polyline."""
    runs: list[list[Point]] = []
    current: list[Point] = []
    for p, q in zip(pts, pts[1:]):
        seg = _clip_segment(p, q, rect)
        if seg is None:
            if current:
                runs.append(current)
                current = []
            continue
        a, b = seg
        if current and current[-1] == a:
            current.append(b)
        else:
            if current:
                runs.append(current)
            current = [a, b]
    if current:
        runs.append(current)
    return runs


def _cross_x(p: Point, q: Point, x: float) -> Point:
    t = (x - p[0]) / (q[0] - p[0])
    return (x, p[1] + t * (q[1] - p[1]))


def _cross_y(p: Point, q: Point, y: float) -> Point:
    t = (y - p[1]) / (q[1] - p[1])
    return (p[0] + t * (q[0] - p[0]), y)


def _clip_segment(p: Point, q: Point, rect: Rect) -> tuple[Point, Point] | None:
    x0, y0, x1, y1 = rect
    dx, dy = q[0] - p[0], q[1] - p[1]
    t0, t1 = 0.0, 1.0
    for denom, num in ((-dx, p[0] - x0), (dx, x1 - p[0]), (-dy, p[1] - y0), (dy, y1 - p[1])):
        if denom == 0:
            if num < 0:
                return None
            continue
        t = num / denom
        if denom < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return None
    if t0 == 0.0 and t1 == 1.0:
        return p, q
    return (p[0] + t0 * dx, p[1] + t0 * dy), (p[0] + t1 * dx, p[1] + t1 * dy)


def rect_bounds(m: Matrix, w: float, h: float, x: float = 0.0, y: float = 0.0) -> Box:
    """Page-space bounding box of the rectangle (x, y, w, h) under `m`."""
    pts = [apply(m, px, py) for px, py in ((x, y), (x + w, y), (x, y + h), (x + w, y + h))]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
