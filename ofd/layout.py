"""The licence face (照面) of the 特种作业操作证 as one OFD page.

The layout follows the card: title, labelled fields on the left, photo and QR code on the
right, the issuer at the bottom with the seal over it (``SEAL_BOX_MM``, where the signer
puts the StampAnnot).  Field values are indexed by CustomTags (one element per record
attribute) so a machine can find e.g. the holder's name on the page, and the record's
metadata goes into DocInfo/CustomDatas.  Geometry is in page mm, y downwards.

The record is duck-typed: any object with the attributes of ``ofd.licence.model``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from importlib import metadata as _md
from typing import Any, Callable, Sequence

from keys.sm3 import sm3

from .fonts import HEI, SONG, FontFace
from .package import Package
from .qr import qr_matrix, qr_png
from .writer import OFDBuilder, OFDWriteError, num

PAGE_SIZE_MM: tuple[float, float] = (190.0, 120.0)
PAGE_ID: int = 1  # first ID the builder issues; StampAnnot PageRef and CustomTag PageRef use it
SEAL_BOX_MM: tuple[float, float, float, float] = (68.0, 81.0, 34.0, 34.0)  # round seal over the end of the issuer name
PHOTO_BOX_MM = (146.0, 26.0, 30.0, 40.0)  # 3:4, like a 1-inch ID photo
QR_BOX_MM = (146.0, 71.0, 30.0, 30.0)
QR_EC_LEVEL = "M"
TAG_NAMESPACE = "urn:ecert:c0210:licence-face:1"
BEIJING = timezone(timedelta(hours=8))

TITLE = "中华人民共和国特种作业操作证"
TITLE_SIZE = 7.0
LABEL_SIZE = 3.6
VALUE_SIZE = 4.2
MIN_VALUE_SIZE = 2.4
LABEL_X, VALUE_X, VALUE_RIGHT = 14.0, 40.0, 140.0
SEX_LABEL_X, SEX_VALUE_X = 100.0, 112.0
FIRST_BASELINE, ROW_STEP = 30.0, 8.4

SPECIMEN = "样证 SPECIMEN"  # drawn when the licence says it is a development one (placeholder type code)
SPECIMEN_X = 150.0
SPECIMEN_INK = (200, 30, 30)
INK = None  # OFD's default fill colour is black: no FillColor element needed
LABEL_INK = (70, 70, 70)
FRAME_INK = (24, 64, 128)


class LicenceLayoutError(OFDWriteError):
    """The record cannot be laid out (missing attribute, value that cannot fit)."""

    CATALOGUE = {
        "missing_field": ("The licence record has no '{field}'.", "证照数据缺少“{field_zh}”（{field}）。"),
        "bad_created": ("created must be a datetime, got {value}.", "创建时间应为 datetime，实际为 {value}。"),
        "too_long": (
            "'{field}' is too long to print on the licence ({length} characters).",
            "“{field_zh}”过长，无法打印在证照上（{length} 个字符）。",
        ),
    }


@dataclass(frozen=True)
class _Row:
    label: str
    fields: tuple[str, ...]  # record attributes shown (and tagged) by this row's value
    value: Callable[[Any], str | None]


def _fmt_date(v: Any) -> str | None:
    if v is None or v == "":
        return None
    return v.isoformat() if isinstance(v, (date, datetime)) else str(v)


def _attr(name: str) -> Callable[[Any], str | None]:
    return lambda lic: _text(getattr(lic, name))


def _date(name: str) -> Callable[[Any], str | None]:
    return lambda lic: _fmt_date(getattr(lic, name))


def _text(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def _validity(lic: Any) -> str:
    return f"{_fmt_date(lic.valid_from)} 至 {_fmt_date(lic.valid_until)}"


# Row 0 holds 姓名 and 性别 side by side (drawn separately below).
ROWS: tuple[_Row, ...] = (
    _Row("姓名", ("name",), _attr("name")),
    _Row("证号", ("licence_number",), _attr("licence_number")),
    _Row("公民身份号码", ("id_number",), _attr("id_number")),
    _Row("作业类别", ("category",), _attr("category")),
    _Row("操作项目", ("item",), _attr("item")),
    _Row("初领日期", ("first_issue_date",), _date("first_issue_date")),
    _Row("有效期", ("valid_from", "valid_until"), _validity),
    _Row("应复审日期", ("review_due",), _date("review_due")),
    _Row("实际复审日期", ("reviewed_on",), _date("reviewed_on")),
    _Row("签发机关", ("issuer_name",), _attr("issuer_name")),
)
SEX_LABEL = "性别"
_FIELD_ZH = {f: r.label for r in ROWS for f in r.fields} | {"sex": SEX_LABEL, "photo": "照片", "identifier": "证照标识"}


def doc_id_for(identifier: str) -> str:
    """DocID: 32 hex chars of SM3 over the licence identifier (stable across re-issues of a file)."""
    return sm3(b"ecert/DocID\x00", identifier.encode("utf-8")).hex()[:32]


@lru_cache(maxsize=1)
def _creator_version() -> str | None:
    try:
        return _md.version("ecert")
    except _md.PackageNotFoundError:
        return None


_BREAK_AFTER = frozenset("·　 -/）)、，")


def _split(text: str, n: int) -> list[str]:
    """``text`` in ``n`` near-equal lines, moving each cut up to 3 characters to follow a
    separator (the · of a minority name, a space, a closing bracket) when there is one."""
    cuts: list[int] = []
    for k in range(1, n):
        ideal = round(len(text) * k / n)
        near = sorted(range(ideal - 3, ideal + 4), key=lambda c: abs(c - ideal))
        cut = next((c for c in near if (cuts[-1] if cuts else 0) < c < len(text) and text[c - 1] in _BREAK_AFTER), ideal)
        cuts.append(cut)
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if a < b]


@lru_cache(maxsize=4096)
def _fit(face: FontFace, text: str, size: float, max_width: float, max_lines: int, line_gap: float) -> tuple[float, tuple[tuple[str, tuple[float, ...]], ...]]:
    """Font size and lines so ``text`` fits ``max_width``: shrink first, then wrap (≤ max_lines).

    Cached: labels and most values (categories, items, issuers, dates) repeat across records.
    """
    width_em = face.width(text, 1.0)
    for n in range(1, max_lines + 1):
        chunks = _split(text, n)
        widest = max(face.width(c, 1.0) for c in chunks)
        s = min(size if n == 1 else min(size, line_gap / (1.15 * (n - 1) + 1.0)), max_width / widest)
        if s >= MIN_VALUE_SIZE or (n == 1 and width_em * size <= max_width):
            return s, tuple((c, tuple(face.advances(c, s))) for c in chunks)
    raise ValueError("too long")


def _text_obj(b: OFDBuilder, font_ids: dict[FontFace, int], face: FontFace, text: str, *, x: float, baseline: float,
              size: float, max_width: float, ink=INK, weight: int | None = None, max_lines: int = 1,
              field: str = "") -> int:
    try:
        s, lines = _fit(face, text, size, max_width, max_lines, ROW_STEP - 1.0)
    except ValueError:
        raise LicenceLayoutError("too_long", field=field, field_zh=_FIELD_ZH.get(field, field), length=len(text)) from None
    if len(lines) > 1:  # centre the block of lines on the row's baseline band
        baseline -= (len(lines) - 1) * s * 1.15 / 2 - 0.3
    return b.add_text(PAGE_ID, lines, font=font_ids[face], size=s, x=x, baseline=baseline,
                      line_height=s * 1.15, fill=ink, weight=weight)


def _frame(b: OFDBuilder) -> None:
    w, h = PAGE_SIZE_MM

    def rect(x0: float, y0: float, x1: float, y1: float) -> str:
        x0s, y0s, x1s, y1s = num(x0), num(y0), num(x1), num(y1)
        return f"M {x0s} {y0s} L {x1s} {y0s} L {x1s} {y1s} L {x0s} {y1s} C"

    b.add_path(PAGE_ID, rect(0.6, 0.6, w - 6.2, h - 6.2), boundary=(2.4, 2.4, w - 4.8, h - 4.8), stroke=FRAME_INK, line_width=0.8)
    b.add_path(PAGE_ID, rect(0.3, 0.3, w - 9.3, h - 9.3), boundary=(4.2, 4.2, w - 8.4, h - 8.4), stroke=FRAME_INK, line_width=0.25)
    b.add_path(PAGE_ID, f"M 0 0.2 L {num(w - 28)} 0.2", boundary=(14, 20.2, w - 28, 0.4), stroke=FRAME_INK, line_width=0.3)
    x, y, pw, ph = PHOTO_BOX_MM
    b.add_path(PAGE_ID, rect(0.2, 0.2, pw + 0.6, ph + 0.6), boundary=(x - 0.4, y - 0.4, pw + 0.8, ph + 0.8), stroke=LABEL_INK, line_width=0.2)


def _photo_box(size_px: Sequence[int] | None) -> tuple[float, float, float, float]:
    """The photo fitted into PHOTO_BOX_MM keeping its aspect ratio, centred."""
    x, y, w, h = PHOTO_BOX_MM
    try:
        pw, ph = (float(v) for v in size_px)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return PHOTO_BOX_MM
    if pw <= 0 or ph <= 0:
        return PHOTO_BOX_MM
    scale = min(w / pw, h / ph)
    fw, fh = pw * scale, ph * scale
    return (x + (w - fw) / 2, y + (h - fh) / 2, fw, fh)


def _need(lic: Any, name: str) -> Any:
    try:
        return getattr(lic, name)
    except AttributeError:
        raise LicenceLayoutError("missing_field", field=name, field_zh=_FIELD_ZH.get(name, name)) from None


@dataclass(frozen=True)
class _Template:
    builder: OFDBuilder  # page, fonts, frame, title, labels: the same on every licence
    fonts: dict[FontFace, int]


@lru_cache(maxsize=1)
def _template() -> _Template:
    """The document-independent part of the page, built once per process and forked per licence."""
    b = OFDBuilder(PAGE_SIZE_MM, tag_namespace=TAG_NAMESPACE, tag_root="Licence")
    page = b.add_page()
    assert page == PAGE_ID
    fonts = {face: b.add_font(face.font_name, face.family_name, serif=face.serif) for face in (SONG, HEI)}
    _frame(b)
    tw = HEI.width(TITLE, TITLE_SIZE)
    _text_obj(b, fonts, HEI, TITLE, x=(PAGE_SIZE_MM[0] - tw) / 2, baseline=16.0, size=TITLE_SIZE,
              max_width=PAGE_SIZE_MM[0], ink=FRAME_INK, weight=700)
    for i, row in enumerate(ROWS):
        _text_obj(b, fonts, HEI, row.label, x=LABEL_X, baseline=FIRST_BASELINE + i * ROW_STEP, size=LABEL_SIZE,
                  max_width=VALUE_X - LABEL_X - 1, ink=LABEL_INK)
    _text_obj(b, fonts, HEI, SEX_LABEL, x=SEX_LABEL_X, baseline=FIRST_BASELINE, size=LABEL_SIZE, max_width=12,
              ink=LABEL_INK)
    return _Template(b, fonts)


def build_licence_package(lic: Any, *, qr_text: str, created: datetime) -> Package:
    """The unsigned OFD package of one licence; same record + qr_text + created = same bytes.

    ``created`` (naive = Beijing time) gives DocInfo/CreationDate and the zip entry times;
    ``qr_text`` is what the QR code says (the signer's payload URL).
    """
    for name in ("identifier", "title", "metadata", "photo", "photo_format", "sex"):
        _need(lic, name)
    for row in ROWS:
        for f in row.fields:
            _need(lic, f)
    if not isinstance(created, datetime):
        raise LicenceLayoutError("bad_created", value=repr(created)[:40])
    if created.tzinfo is not None:  # CreationDate and zip times are China local time, like the licence dates
        created = created.astimezone(BEIJING).replace(tzinfo=None)
    tpl = _template()
    b = tpl.builder.fork()
    b.set_doc_info(
        doc_id=doc_id_for(str(lic.identifier)),
        created=created,
        title=str(lic.title),
        author=_text(lic.issuer_name),
        creator="ecert",
        creator_version=_creator_version(),
    )
    photo_res = b.add_image(bytes(lic.photo), str(lic.photo_format))
    qr_res = b.add_image(qr_png(qr_matrix(qr_text, QR_EC_LEVEL)), "PNG")

    for i, row in enumerate(ROWS):
        value = row.value(lic)
        if value:
            oid = _text_obj(b, tpl.fonts, SONG, value, x=VALUE_X, baseline=FIRST_BASELINE + i * ROW_STEP,
                            size=VALUE_SIZE, max_width=(SEX_LABEL_X - 2 if i == 0 else VALUE_RIGHT) - VALUE_X,
                            max_lines=2, field=row.fields[0])
            for f in row.fields:
                b.tag(f, PAGE_ID, oid)
    sex = _text(lic.sex)
    if sex:
        b.tag("sex", PAGE_ID, _text_obj(b, tpl.fonts, SONG, sex, x=SEX_VALUE_X, baseline=FIRST_BASELINE,
                                        size=VALUE_SIZE, max_width=VALUE_RIGHT - SEX_VALUE_X, field="sex"))
    if getattr(lic, "is_development", False):  # placeholder type code: must never pass for a real licence
        _text_obj(b, tpl.fonts, HEI, SPECIMEN, x=SPECIMEN_X, baseline=16.0, size=3.2, max_width=PAGE_SIZE_MM[0] - SPECIMEN_X - 6,
                  ink=SPECIMEN_INK, weight=700)
    photo_box = _photo_box(getattr(lic, "photo_size_px", None))
    b.tag("photo", PAGE_ID, b.add_image_object(PAGE_ID, photo_res, photo_box, name="photo"))
    b.tag("qr", PAGE_ID, b.add_image_object(PAGE_ID, qr_res, QR_BOX_MM, name="qr"))

    for key, value in lic.metadata().items():
        b.add_custom_data(key, value)
    return b.build(timestamp=created)


def licence_ofd_bytes(lic: Any, *, qr_text: str, created: datetime) -> bytes:
    """Unsigned OFD file bytes (deterministic zip) of one licence."""
    return build_licence_package(lic, qr_text=qr_text, created=created).to_bytes()
