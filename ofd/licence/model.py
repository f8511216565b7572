"""The 特种作业操作证 e-licence (C 0210-2021): record in, validated licence out.

`LicenceRecord` is what an issuing system sends (JSON; photo as base64). It only
parses types, so it doubles as the FastAPI request schema. `Licence` is the
validated, complete, immutable licence with defaults filled and e-licence metadata
derived; build it with `validate_record` / `Licence.from_record` (every field problem
is reported at once, bilingual) or, when reading an OFD back, `Licence.from_metadata`.

Rules and why (C 0210's own field table was not available, docs STANDARDS.md §1):
- validity 6 years from 有效期开始日期 (later end dates refused, shorter allowed);
  review due 3 years after the start (may be later, up to the end: the 6-year
  review interval for 10 years' clean work); "same day N years later", 29 Feb -> 28 Feb.
- 初领日期 <= 有效期开始日期, not in the future, holder at least 18 then (Order 30 §4).
- the ID number's sex digit must agree with 性别; 15-digit IDs are refused (idcard.py).
- 证照编号 defaults to "T" + ID number (prefix from ``number_prefix=`` or env
  ECERT_LICENCE_PREFIX); it is the identifier's serial, so only 0-9 and A-Z.
- 证照类型代码 of this licence is not published (§1.5): ``type_code=`` or env
  ECERT_TYPE_CODE, else the development placeholder `PLACEHOLDER_TYPE_CODE`
  (`Licence.is_development` tells the writer to mark the document as a specimen).
- an already expired licence is refused when issuing unless ``allow_expired=True``.

Metadata keys (`METADATA_FIELDS`) are the GB/T 36903 pinyin codes used in practice
(ZZMC, ZZBH, ...; §2.2); items specific to this licence use the ``KZ_`` extension
prefix. Dates are ``YYYY-MM-DD``. The photo itself is not metadata: its format,
pixel size and SM3 digest are, so a reader can tell the embedded image is the one issued.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from keys.sm3 import sm3

from .catalogue import Catalogue, default_catalogue
from .errors import ConfigError, FieldError, LicenceError, field_error
from .idcard import IdInfo, mask_id_number, validate_id_number
from .identifier import make_identifier, parse_identifier
from .photo import MAX_PHOTO_BYTES, inspect_photo
from .text import clean_name, clean_text
from .uscc import uscc_problem, validate_uscc

TITLE = "特种作业操作证"
HOLDER_ID_TYPE_CODE = "111"  # GB/T 36903 持证主体代码类型代码: 公民身份号码
HOLDER_ID_TYPE = "公民身份号码"
VALIDITY_YEARS = 6
REVIEW_YEARS = 3
MIN_AGE = 18
ENV_TYPE_CODE = "ECERT_TYPE_CODE"
ENV_NUMBER_PREFIX = "ECERT_LICENCE_PREFIX"
DEFAULT_NUMBER_PREFIX = "T"
# Development placeholder: USCC 000000000000000000 (all zeros, valid check char) + sequence 999.
# Obviously not a real defining body; replace via ECERT_TYPE_CODE once the official code is known.
PLACEHOLDER_TYPE_CODE = "000000000000000000999"
BEIJING = timezone(timedelta(hours=8))
_LICENCE_NUMBER = re.compile(r"[0-9A-Z]{1,64}")
_ITEM_CODE = re.compile(r"[0-9A-Z]{1,4}(\.[0-9A-Z]{1,4})?")


def beijing_today() -> date:
    """Dates on the licence are China dates, whatever the server's time zone."""
    return datetime.now(BEIJING).date()


def add_years(d: date, years: int) -> date:
    """Same calendar day ``years`` later; 29 February becomes 28 February."""
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return d.replace(year=d.year + years, day=28)


# ---------------------------------------------------------------- field types


def _date_in(v: Any) -> Any:
    """Only real dates or 'YYYY-MM-DD' (GB/T 7408): no timestamps, no datetimes."""
    if isinstance(v, datetime):
        raise PydanticCustomError("date_format", "date must be YYYY-MM-DD, not a date-time")
    if isinstance(v, date):
        return v
    if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v.strip()):
        try:
            return date.fromisoformat(v.strip())
        except ValueError:
            raise PydanticCustomError("date_invalid", "not a calendar date") from None
    raise PydanticCustomError("date_format", "date must be YYYY-MM-DD")


_MAX_B64 = 4 * (MAX_PHOTO_BYTES // 3 + 1) + 4096  # base64 of the largest photo, plus line breaks


def _photo_in(v: Any) -> Any:
    """Raw bytes from Python; a base64 string (optionally a data: URL) from JSON."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if not isinstance(v, str):
        raise PydanticCustomError("photo_base64", "photo must be a base64 string")
    if len(v) > _MAX_B64:
        raise PydanticCustomError("too_large", f"file too large (limit {MAX_PHOTO_BYTES} bytes)")
    s = v.strip()
    if s.startswith("data:"):
        s = s.partition(",")[2]
    try:
        return base64.b64decode("".join(s.split()), validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError("photo_base64", "photo is not valid base64") from None


RecordDate = Annotated[date, BeforeValidator(_date_in)]
PhotoBytes = Annotated[
    bytes,
    BeforeValidator(_photo_in),
    PlainSerializer(lambda b: base64.b64encode(b).decode("ascii"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "contentEncoding": "base64", "contentMediaType": "image/*",
                    "description": "照片 JPEG/PNG, base64; ≤ 512 KiB, 100×125 – 1200×1600 px"}),
]
Text = Annotated[str, Field(max_length=200)]


class _DataItems(BaseModel):
    """The data items common to the incoming record and the licence."""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field(description="姓名")
    sex: Literal["男", "女"] = Field(description="性别")
    id_number: Text = Field(description="公民身份号码 (18 位)")
    category: Text = Field(description="作业类别, e.g. 电工作业")
    item: Text = Field(description="操作项目, e.g. 低压电工作业")
    first_issue_date: RecordDate = Field(description="初领日期")
    valid_from: RecordDate = Field(description="有效期开始日期")
    reviewed_on: RecordDate | None = Field(None, description="实际复审日期")
    issuer_name: Text = Field(description="发证机关")
    issuer_code: Text = Field(description="发证机关统一社会信用代码 (18 位)")
    photo: PhotoBytes = Field(description="照片 (JPEG/PNG)")
    version: int = Field(1, ge=1, le=999, description="版本号 (证照标识)")


class LicenceRecord(_DataItems):
    """What an issuing system sends; optional items get their defaults in `Licence`."""

    valid_until: RecordDate | None = Field(None, description="有效期结束日期; default valid_from + 6 years")
    review_due: RecordDate | None = Field(None, description="应复审日期; default valid_from + 3 years")
    licence_number: Text | None = Field(None, description='证照编号; default "T" + id_number')
    issue_date: RecordDate | None = Field(None, description="颁发日期; default valid_from")


# (metadata key, Chinese name, Licence attribute). One table drives both directions.
METADATA_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("ZZMC", "证照名称", "title"),
    ("ZZLXDM", "证照类型代码", "type_code"),
    ("ZZBH", "证照编号", "licence_number"),
    ("ZZBS", "证照标识", "identifier"),
    ("ZZBFJG", "证照颁发机构", "issuer_name"),
    ("ZZBFJGDM", "证照颁发机构代码", "issuer_code"),
    ("ZZBFRQ", "证照颁发日期", "issue_date"),
    ("CZZT", "持证主体", "name"),
    ("CZZTDM", "持证主体代码", "id_number"),
    ("CZZTDMLX", "持证主体代码类型", "holder_id_type"),
    ("CZZTDMLXDM", "持证主体代码类型代码", "holder_id_type_code"),
    ("ZZYXQQSRQ", "证照有效期起始日期", "valid_from"),
    ("ZZYXQJZRQ", "证照有效期截止日期", "valid_until"),
    ("KZ_XB", "性别", "sex"),
    ("KZ_ZYLB", "作业类别", "category"),
    ("KZ_ZYLBDM", "作业类别代码", "category_code"),
    ("KZ_CZXM", "操作项目", "item"),
    ("KZ_CZXMDM", "操作项目代码", "item_code"),
    ("KZ_CLRQ", "初领日期", "first_issue_date"),
    ("KZ_YFSRQ", "应复审日期", "review_due"),
    ("KZ_SJFSRQ", "实际复审日期", "reviewed_on"),  # omitted when there is none
    ("KZ_ZPGS", "照片格式", "photo_format"),
    ("KZ_ZPCC", "照片像素尺寸", "photo_size_px"),  # "宽x高", e.g. "358x441"
    ("KZ_ZPSM3", "照片SM3摘要", "photo_sm3"),  # lower-case hex
)


class Licence(_DataItems):
    """A validated, complete, immutable licence. Build with `from_record` / `from_metadata`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    valid_until: RecordDate = Field(description="有效期结束日期")
    review_due: RecordDate = Field(description="应复审日期")
    licence_number: str = Field(description="证照编号")
    issue_date: RecordDate = Field(description="颁发日期")
    title: str = Field(TITLE, description="证照名称")
    type_code: str = Field(description="证照类型代码 (21)")
    identifier: str = Field(description="证照标识 (GB/T 36904)")
    holder_id_type_code: str = Field(HOLDER_ID_TYPE_CODE, description="持证主体代码类型代码")
    holder_id_type: str = Field(HOLDER_ID_TYPE, description="持证主体代码类型")
    category_code: str = Field(description="作业类别代码")
    item_code: str = Field(description="操作项目代码")
    photo_format: Literal["JPEG", "PNG"]
    photo_size_px: tuple[int, int] = Field(description="(width, height)")
    photo_sm3: str = Field(description="SM3 of the photo bytes, hex")

    @classmethod
    def from_record(
        cls,
        rec: LicenceRecord | Mapping[str, Any],
        *,
        type_code: str | None = None,
        catalogue: Catalogue | None = None,
        today: date | None = None,
        allow_expired: bool = False,
        number_prefix: str | None = None,
    ) -> Licence:
        """Validate and complete a record; LicenceError lists every problem."""
        values, errors = _parse_record(rec)
        return _Builder(values, errors, today or beijing_today()).issue(
            type_code=resolve_type_code(type_code),
            catalogue=catalogue or default_catalogue(),
            allow_expired=allow_expired,
            number_prefix=resolve_number_prefix(number_prefix),
        )

    @classmethod
    def from_metadata(cls, md: Mapping[str, str], photo: bytes | None = None) -> Licence:
        """Rebuild a licence from its metadata (the reader's side of `metadata`).

        Time-independent checks only (an old licence stays readable), and the category
        and item are taken as recorded, so a licence issued with a province's extra
        catalogue items reads anywhere. The identifier must match the other items and,
        when ``photo`` is given, its digest, format and size must match the metadata.
        """
        return _Builder.from_metadata(md, photo)

    def metadata(self) -> dict[str, str]:
        """The e-licence metadata for OFD DocInfo/CustomDatas, keyed by `METADATA_FIELDS` codes."""
        out = {}
        for key, _, attr in METADATA_FIELDS:
            v = getattr(self, attr)
            if v is None:
                continue
            out[key] = f"{v[0]}x{v[1]}" if attr == "photo_size_px" else str(v)  # date -> YYYY-MM-DD
        return out

    def masked_id(self) -> str:
        """ID number with the birth date and sequence hidden, for logs and the QR payload."""
        return mask_id_number(self.id_number)

    def mask(self, text: str) -> str:
        """``text`` with the holder's ID number masked wherever it occurs (licence number, identifier)."""
        return text.replace(self.id_number, self.masked_id())

    def public_view(self) -> dict[str, str]:
        """The data items for a report, log or QR: the ID number masked everywhere it appears
        (the default licence number and hence the identifier's serial contain it)."""
        md, number, masked = self.metadata(), self.id_number, self.masked_id()
        return {attr: md[key].replace(number, masked) for key, _, attr in METADATA_FIELDS if key in md and not key.startswith("KZ_ZP")}

    @property
    def is_development(self) -> bool:
        """True when issued under the placeholder type code: not a real licence."""
        return self.type_code == PLACEHOLDER_TYPE_CODE

    def face_items(self) -> list[tuple[str, str]]:
        """(label, text) pairs printed on the licence face, in reading order."""
        return [
            ("姓名", self.name), ("性别", self.sex), ("公民身份号码", self.id_number),
            ("作业类别", self.category), ("操作项目", self.item),
            ("初领日期", self.first_issue_date.isoformat()),
            ("有效期", f"{self.valid_from.isoformat()} 至 {self.valid_until.isoformat()}"),
            ("应复审日期", self.review_due.isoformat()),
            ("实际复审日期", self.reviewed_on.isoformat() if self.reviewed_on else ""),
            ("发证机关", self.issuer_name), ("证号", self.licence_number),
        ]

    def status(self, on: date | None = None) -> Literal["not_yet_valid", "valid", "review_overdue", "expired"]:
        """Validity on a day (default: today in China); a recorded review clears "review_overdue"."""
        on = on or beijing_today()
        if on < self.valid_from:
            return "not_yet_valid"
        if on > self.valid_until:
            return "expired"
        if on > self.review_due and self.reviewed_on is None:
            return "review_overdue"
        return "valid"


def validate_record(data: Mapping[str, Any] | LicenceRecord, **opts: Any) -> Licence:
    """Validate an incoming record (dict from JSON, or LicenceRecord); raises LicenceError."""
    return Licence.from_record(data, **opts)


# ---------------------------------------------------------------- configuration


@lru_cache(maxsize=64)
def _type_code_problem(tc: str) -> str | None:
    if not (isinstance(tc, str) and len(tc) == 21 and tc[18:].isdigit() and tc[18:].isascii()):
        return "must be 21 characters: an 18-character USCC and 3 digits"
    p = uscc_problem(tc[:18])
    return f"first 18 characters: USCC {p[2]}" if p else None


def resolve_type_code(explicit: str | None = None) -> str:
    """The 证照类型代码: argument, else $ECERT_TYPE_CODE, else the placeholder."""
    tc = explicit if explicit is not None else os.environ.get(ENV_TYPE_CODE, "").strip() or PLACEHOLDER_TYPE_CODE
    problem = _type_code_problem(tc)
    if problem:
        raise ConfigError(f"证照类型代码 {tc!r} 无效（应为18位统一社会信用代码加3位数字）", f"type code {tc!r} is invalid: {problem}")
    return tc


def resolve_number_prefix(explicit: str | None = None) -> str:
    """Prefix of the default licence number: argument, else $ECERT_LICENCE_PREFIX, else "T"."""
    p = explicit if explicit is not None else os.environ.get(ENV_NUMBER_PREFIX, DEFAULT_NUMBER_PREFIX)
    if not re.fullmatch(r"[0-9A-Z]{0,8}", p):
        raise ConfigError(f"证照编号前缀 {p!r} 无效（0-8位大写字母或数字）", f"licence number prefix {p!r} is invalid (0-8 of 0-9A-Z)")
    return p


# ---------------------------------------------------------------- record parsing

_ZH_TYPE_MESSAGES = {
    "missing": "必填项缺失",
    "extra_forbidden": "未知字段",
    "string_type": "应为字符串",
    "string_too_long": "内容过长",
    "literal_error": "取值应为“男”或“女”",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "greater_than_equal": "取值过小",
    "less_than_equal": "取值过大",
    "date_format": "日期格式应为 YYYY-MM-DD",
    "date_invalid": "不是有效的日历日期",
    "photo_base64": "不是有效的 Base64 编码图像",
    "too_large": "文件过大",
}


def _pydantic_errors(field: str, exc: ValidationError) -> list[FieldError]:
    out = []
    for e in exc.errors(include_url=False):
        zh = _ZH_TYPE_MESSAGES.get(e["type"], "格式无效")
        out.append(field_error(field, e["type"], zh, e["msg"]))
    return out


@lru_cache(maxsize=None)
def _adapter(name: str) -> TypeAdapter:
    info = LicenceRecord.model_fields[name]
    return TypeAdapter(Annotated[(info.annotation, *info.metadata)]) if info.metadata else TypeAdapter(info.annotation)


def _parse_record(rec: LicenceRecord | Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """Field-by-field type parsing, so one bad field does not hide the others' problems."""
    if isinstance(rec, LicenceRecord):
        return dict(rec), []
    if not isinstance(rec, Mapping):
        raise LicenceError([field_error("record", "not_object", "应为 JSON 对象", "must be a JSON object")])
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    fields = LicenceRecord.model_fields
    for key in rec:
        if key not in fields:
            shown = str(key)[:40]
            errors.append(field_error(shown, "extra_forbidden", "未知字段", "unknown field"))
    for name, info in fields.items():
        if rec.get(name) is None:  # absent or JSON null
            if info.is_required():
                errors.append(field_error(name, "missing", "必填项缺失", "is required"))
            else:
                values[name] = info.get_default()
            continue
        try:
            values[name] = _adapter(name).validate_python(rec[name])
        except ValidationError as exc:
            errors.extend(_pydantic_errors(name, exc))
    return values, errors


# ---------------------------------------------------------------- semantic checks

# Issuer and catalogue texts repeat on every licence an issuer signs: their (pure) checks
# are remembered, which matters when reading licences back at verification rates.
# Failures raise and are never cached. Only str keys reach them (`has` ran first).


@lru_cache(maxsize=256)
def _issuer_name(text: str) -> str:
    return clean_text(text, "issuer_name", min_len=2, max_len=100)


@lru_cache(maxsize=256)
def _issuer_code(text: str) -> str:
    return validate_uscc(text)


@lru_cache(maxsize=1024)
def _catalogue_text(text: str, field: str) -> str:
    return clean_text(text, field, max_len=60)


class _Builder:
    """Runs every check it can on the parsed values and collects all errors."""

    def __init__(self, values: dict[str, Any], errors: list[FieldError], today: date):
        self.v = dict(values)
        self.errors = list(errors)
        self.today = today
        self.out: dict[str, Any] = {}

    def has(self, *names: str) -> bool:
        return all(self.v.get(n) is not None for n in names)

    def err(self, field: str, code: str, zh: str, en: str) -> None:
        self.errors.append(field_error(field, code, zh, en))

    def attempt(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except LicenceError as exc:
            self.errors.extend(exc.errors)
            return None

    # -- person, issuer, photo

    def person(self) -> IdInfo | None:
        if self.has("name"):
            self.out["name"] = self.attempt(lambda: clean_name(self.v["name"]))
        info = self.attempt(lambda: validate_id_number(self.v["id_number"], today=self.today)) if self.has("id_number") else None
        if info:
            self.out["id_number"] = info.number
            if self.has("sex") and self.v["sex"] != info.sex:
                self.err("sex", "id_mismatch", f"与公民身份号码不符（号码第17位表示“{info.sex}”）", f"does not match the ID number (its 17th digit means {info.sex})")
        self.out["sex"] = self.v.get("sex")
        return info

    def issuer(self) -> None:
        if self.has("issuer_name"):
            self.out["issuer_name"] = self.attempt(lambda: _issuer_name(self.v["issuer_name"]))
        if self.has("issuer_code"):
            self.out["issuer_code"] = self.attempt(lambda: _issuer_code(self.v["issuer_code"].strip()))

    def photo(self) -> None:
        if not self.has("photo"):
            return
        info = self.attempt(lambda: inspect_photo(self.v["photo"]))
        if info:
            self.out.update(photo=self.v["photo"], photo_format=info.format, photo_size_px=info.size, photo_sm3=sm3(self.v["photo"]).hex())

    # -- dates

    def dates(self, *, issuing: bool, allow_expired: bool, birth: date | None) -> None:
        v, out = self.v, self.out
        if not self.has("valid_from", "first_issue_date"):
            return
        start, first = v["valid_from"], v["first_issue_date"]
        until = v.get("valid_until") or add_years(start, VALIDITY_YEARS)
        review = v.get("review_due") or add_years(start, REVIEW_YEARS)
        issued = v.get("issue_date") or start
        reviewed = v.get("reviewed_on")
        out.update(valid_from=start, first_issue_date=first, valid_until=until, review_due=review, issue_date=issued, reviewed_on=reviewed)
        if until <= start:
            self.err("valid_until", "not_after_start", "应晚于有效期开始日期", "must be after valid_from")
        elif until > add_years(start, VALIDITY_YEARS):
            self.err("valid_until", "too_long", f"有效期不得超过{VALIDITY_YEARS}年", f"validity may not exceed {VALIDITY_YEARS} years")
        if review <= start:
            self.err("review_due", "not_after_start", "应晚于有效期开始日期", "must be after valid_from")
        elif review > until:
            self.err("review_due", "after_end", "不得晚于有效期结束日期", "must not be after valid_until")
        if first > start:
            self.err("first_issue_date", "after_valid_from", "不得晚于有效期开始日期", "must not be after valid_from")
        if birth and first < add_years(birth, MIN_AGE):
            self.err("first_issue_date", "underage", f"持证人初领时未满{MIN_AGE}周岁", f"the holder was under {MIN_AGE} on that date")
        if issued < first:
            self.err("issue_date", "before_first_issue", "不得早于初领日期", "must not be before first_issue_date")
        if issued > until:
            self.err("issue_date", "after_end", "不得晚于有效期结束日期", "must not be after valid_until")
        if reviewed and reviewed < start:
            self.err("reviewed_on", "before_start", "不得早于有效期开始日期", "must not be before valid_from")
        if reviewed and reviewed > until:
            self.err("reviewed_on", "after_end", "不得晚于有效期结束日期", "must not be after valid_until")
        if not issuing:
            return
        for field, d in (("first_issue_date", first), ("reviewed_on", reviewed), ("issue_date", v.get("issue_date"))):
            if d and d > self.today:
                self.err(field, "future", "不得晚于今天", "must not be in the future")
        if until < self.today and not allow_expired:
            self.err("valid_until", "expired", "证照已过期，不能颁发", "the licence has already expired; it cannot be issued")

    # -- numbers

    def licence_number(self, prefix: str | None) -> None:
        given = self.v.get("licence_number")
        if given is None:
            if prefix is not None and self.out.get("id_number"):
                self.out["licence_number"] = prefix + self.out["id_number"]
            return
        n = given.strip()
        if not _LICENCE_NUMBER.fullmatch(n):
            self.err("licence_number", "format", "应为1至64位大写字母或数字（用作证照标识流水号）", "must be 1-64 upper-case letters or digits (it is the identifier's serial)")
        else:
            self.out["licence_number"] = n

    def finish(self, type_code: str, version: int) -> Licence:
        out = self.out
        if not self.errors:
            out["identifier"] = self.attempt(lambda: make_identifier(type_code, out["issuer_code"], out["licence_number"], version))
        if self.errors:
            raise LicenceError(self.errors)
        return Licence(**out, type_code=type_code, version=version)

    # -- the two entry points

    def issue(self, *, type_code: str, catalogue: Catalogue, allow_expired: bool, number_prefix: str) -> Licence:
        info = self.person()
        self.issuer()
        self.photo()
        if self.has("category", "item"):
            pair = self.attempt(lambda: catalogue.match(self.v["category"], self.v["item"]))
            if pair:
                (cat, item) = pair
                self.out.update(category=cat.name, category_code=cat.code, item=item.name, item_code=item.code)
        elif self.has("category") and self.v["category"] not in catalogue:
            # the item is missing or unusable: still name an unknown category now, not on the next try
            self.attempt(lambda: catalogue.match(self.v["category"], ""))
        self.dates(issuing=True, allow_expired=allow_expired, birth=info.birth_date if info else None)
        self.licence_number(number_prefix)
        return self.finish(type_code, self.v.get("version", 1))

    @classmethod
    def from_metadata(cls, md: Mapping[str, str], photo: bytes | None) -> Licence:
        if not isinstance(md, Mapping):
            raise LicenceError([field_error("metadata", "not_object", "应为键值对", "must be a mapping")])
        attr = {a: md.get(k) for k, _, a in METADATA_FIELDS}
        required = [k for k, _, a in METADATA_FIELDS if not (isinstance(attr[a], str) and attr[a].strip()) and a != "reviewed_on"]
        if required:
            raise LicenceError([field_error(f"metadata.{k}", "missing", "元数据缺失", "metadata item missing") for k in required])
        b = cls({}, [], beijing_today())
        if attr["title"] != TITLE:
            b.err("title", "not_this_licence", f"证照名称应为“{TITLE}”", f"title must be {TITLE!r}")
        if (attr["holder_id_type_code"], attr["holder_id_type"]) != (HOLDER_ID_TYPE_CODE, HOLDER_ID_TYPE):
            b.err("holder_id_type_code", "unsupported", "持证主体代码类型应为 111 公民身份号码", "holder id type must be 111 (citizen ID number)")
        problem = _type_code_problem(attr["type_code"])
        if problem:
            b.err("type_code", "format", "应为18位统一社会信用代码加3位数字", problem)
        ident = b.attempt(lambda: parse_identifier(attr["identifier"]))
        for field in ("valid_from", "first_issue_date", "valid_until", "review_due", "issue_date", "reviewed_on"):
            raw = attr[field]
            if not raw:  # only the optional reviewed_on can be absent here
                continue
            try:
                b.v[field] = _date_in(raw)
            except PydanticCustomError:
                b.err(field, "date_format", "日期格式应为 YYYY-MM-DD", "date must be YYYY-MM-DD")
        for field in ("name", "sex", "id_number", "issuer_name", "issuer_code", "licence_number"):
            b.v[field] = attr[field]
        if attr["sex"] not in ("男", "女"):
            b.err("sex", "literal_error", "取值应为“男”或“女”", "must be 男 or 女")
        info = b.person()
        b.issuer()
        b.read_category(attr)
        b.read_photo(attr, photo)
        b.dates(issuing=False, allow_expired=True, birth=info.birth_date if info else None)
        b.licence_number(None)
        lic = b.finish(attr["type_code"], int(ident.version) if ident else 1)
        if lic.identifier != attr["identifier"]:
            raise LicenceError([field_error("identifier", "mismatch", "与证照类型代码、颁发机构代码、证照编号不一致", "does not match the type code, issuer code and licence number")])
        return lic

    def read_category(self, attr: dict[str, Any]) -> None:
        for name_f, code_f in (("category", "category_code"), ("item", "item_code")):
            name = self.attempt(lambda: _catalogue_text(attr[name_f], name_f))
            if not _ITEM_CODE.fullmatch(attr[code_f]):
                self.err(code_f, "format", "代码格式无效", "code is malformed")
            self.out.update({name_f: name, code_f: attr[code_f]})

    def read_photo(self, attr: dict[str, Any], photo: bytes | None) -> None:
        size = re.fullmatch(r"(\d{1,5})x(\d{1,5})", attr["photo_size_px"])
        if attr["photo_format"] not in ("JPEG", "PNG") or not size or not re.fullmatch(r"[0-9a-f]{64}", attr["photo_sm3"]):
            self.err("photo", "metadata", "照片元数据（格式、尺寸、摘要）无效", "photo metadata (format, size, digest) is malformed")
            return
        expected = dict(photo_format=attr["photo_format"], photo_size_px=(int(size[1]), int(size[2])), photo_sm3=attr["photo_sm3"])
        if photo is None:
            self.out.update(photo=b"", **expected)
            return
        self.v["photo"] = photo
        self.photo()
        if self.out.get("photo_sm3") and any(self.out[k] != expected[k] for k in expected):
            self.err("photo", "mismatch", "照片与证照元数据记录的不一致", "the photo does not match the one recorded in the metadata")
