"""Clearly fake but valid licence records and portrait photos, for examples, tests and benchmarks.

The people do not exist: ID numbers are synthetic with correct GB 11643 check digits, and
portraits are drawn with Pillow. Used by scripts/make_examples.py, tests/ and bench/ so
that one generator serves all three.
"""

from __future__ import annotations

import io
import random
from datetime import date

from PIL import Image, ImageDraw

from .idcard import id_check_char


def id_number(region: str, birth: str, seq: int, female: bool) -> str:
    """An 18-character ID number: 6-digit region, yyyymmdd birth, a serial whose parity is the sex."""
    seq3 = seq * 2 + (0 if female else 1)
    first17 = f"{region}{birth}{seq3 % 1000:03d}"
    return first17 + id_check_char(first17)


def portrait(seed: int = 0, fmt: str = "JPEG", size: tuple[int, int] = (300, 400)) -> bytes:
    """A passport-style placeholder portrait (face, hair, shoulders); varies with ``seed``."""
    rnd = random.Random(seed)
    w, h = size
    img = Image.new("RGB", size, (rnd.randint(200, 235), rnd.randint(215, 240), 245))
    d = ImageDraw.Draw(img)
    skin = (rnd.randint(200, 235), rnd.randint(160, 195), rnd.randint(130, 160))
    d.rectangle((w * 0.2, h * 0.75, w * 0.8, h), fill=(rnd.randint(20, 90), rnd.randint(40, 90), rnd.randint(90, 140)))
    d.rectangle((w * 0.42, h * 0.62, w * 0.58, h * 0.78), fill=skin)
    d.ellipse((w * 0.28, h * 0.22, w * 0.72, h * 0.65), fill=skin)
    d.chord((w * 0.27, h * 0.17, w * 0.73, h * 0.5), 180, 360, fill=(rnd.randint(10, 60),) * 3)
    for x in (0.4, 0.55):
        d.ellipse((w * x, h * 0.4, w * x + 14, h * 0.4 + 10), fill=(30, 30, 30))
    d.arc((w * 0.42, h * 0.5, w * 0.58, h * 0.58), 20, 160, fill=(150, 60, 60), width=3)
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=82)
    return buf.getvalue()


def record(issuer_code: str, issuer_name: str, seq: int = 1, **over) -> dict:
    """A valid record (电工作业 / 低压电工作业, valid from 2023-03-01); ``over`` replaces fields."""
    rec = {
        "name": "王测试",
        "sex": "男",
        "id_number": id_number("110105", "19850312", seq, female=False),
        "category": "电工作业",
        "item": "低压电工作业",
        "first_issue_date": date(2020, 3, 1),
        "valid_from": date(2023, 3, 1),
        "issuer_name": issuer_name,
        "issuer_code": issuer_code,
        "photo": portrait(seed=seq),
    }
    rec.update(over)
    return rec
