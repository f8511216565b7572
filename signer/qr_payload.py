"""Signed QR payload of a licence (issue 5 §1): compact, versioned, verifiable offline.

Printed QR text:  ``<portal>/v#EC1:<digits>``. A phone camera opens the portal; the
fragment never reaches the server, and the portal's script (or any SDK holding the
trust list) verifies the payload offline. ``EC1:<digits>`` alone is the bare payload.

Payload bytes = CBOR body || raw SM2 signature r||s (64 bytes). The signature is over
``DOMAIN || body`` with the issuer's signing key (default signer ID): the domain tag keeps
a QR signature from ever being mistaken for an OFD or certificate signature by the same key.

Why these encodings (measured, ``bench/qr_bench.py`` and tests/test_qr_payload.py):

* Digits, not base45: the payload sits in a URL, and base45's alphabet has a space and
  ``%`` which URLs mangle. A big-endian integer written in decimal is URL-safe, goes in QR
  numeric mode at 10 bits per 3 digits (8.03 bits a byte against base45's 8.25 in
  alphanumeric mode) and decodes with one C ``int()`` call. A leading 0x01 byte keeps
  leading zero bytes. zxing-cpp splits the text into byte (URL) / numeric segments itself.
* CBOR array with positional items (no keys) via ``cbor2`` (C extension: ~1 µs to decode).
* 作业类别 / 操作项目 of the national catalogue (bundled with every verifier) as the item code
  ("5.7"); a province's own item as its name. Other Chinese text (name, province items) as
  GB 18030 byte strings: 2 bytes a character against UTF-8's 3. Fixed 0-9A-Z codes (type
  code, issuer USCC) packed base 36. So a 22-character name with the longest 操作项目 still
  fits a version-10 QR at level M behind a 34-character portal URL.
* Dates as days since 1970-01-01, the signing time as minutes since the epoch (UTC):
  minute precision is what a revocation cut-off needs.
* The holder's ID number appears only masked (``Licence.masked_id``: 6 leading and
  4 trailing characters kept). Where the licence number contains it (the default
  "T" + ID number) the payload writes ``*`` in its place, so licence number and
  identifier are shown masked, exactly as ``Licence.public_view`` shows them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import cbor2

from keys import sm2
from keys.x509 import Certificate, key_id
from ofd.licence.identifier import ALPHABET, ROOT
from ofd.licence.model import REVIEW_YEARS, VALIDITY_YEARS, add_years

FORMAT = "EC"  # ecert special-operation certificate
VERSION = 1
PREFIX = f"{FORMAT}{VERSION}:"
DOMAIN = b"ecert-qr-v1\x00"
PATH = "/v#"
SIG_LEN = 64
KID_LEN = 8
MAX_TEXT = 2000  # characters of QR text accepted at all (a version-40 QR holds 7,089 digits)
MAX_QR_VERSION = 10  # the printed symbol fits this at level M (tests: long name, longest item, 34-char portal)
ID_MARK = "*"  # stands for the holder's ID number inside the licence number
_EPOCH = date(1970, 1, 1)
_EPOCH_DT = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TEXT_CODEC = "gb18030"
_MASK_STARS = 8
_PORTAL = re.compile(r"https?://[^\s#?]+")


class QRPayloadError(ValueError):
    """The QR text cannot be made or read; ``code`` is stable, messages bilingual."""

    def __init__(self, code: str, message_en: str, message_zh: str):
        self.code, self.message_en, self.message_zh = code, message_en, message_zh
        super().__init__(f"{message_en} / {message_zh}")


@dataclass(frozen=True)
class QRData:
    """The data items a QR carries (the ID number masked everywhere)."""

    kid: str  # hex, 16 characters
    signed_at: datetime  # UTC, whole minutes
    type_code: str
    issuer_code: str
    licence_number: str  # masked form, e.g. T110105********1234
    identifier_version: int
    identifier_check: str
    name: str
    masked_id: str  # 110105********1234
    category: str
    item: str
    valid_from: date
    valid_until: date
    review_due: date
    reviewed_on: date | None
    unknown_code: str | None = None  # a catalogue code this verifier does not know (names then empty)

    @property
    def identifier(self) -> str:
        """GB/T 36904 identifier as `Licence.public_view` shows it (serial masked, real check char)."""
        return ".".join((ROOT, self.type_code, self.issuer_code, self.licence_number,
                         f"{self.identifier_version:03d}", self.identifier_check))

    def to_dict(self) -> dict[str, str]:
        """For ``Report.licence``: strings, dates as YYYY-MM-DD, like `Licence.public_view`."""
        out = {
            "kid": self.kid, "signed_at": self.signed_at.isoformat(timespec="minutes")[:16] + "Z",
            "type_code": self.type_code, "issuer_code": self.issuer_code, "licence_number": self.licence_number, "name": self.name,
            "masked_id": self.masked_id, "category": self.category, "item": self.item,
            "valid_from": self.valid_from.isoformat(), "valid_until": self.valid_until.isoformat(),
            "review_due": self.review_due.isoformat(), "identifier": self.identifier,
        }
        if self.reviewed_on is not None:
            out["reviewed_on"] = self.reviewed_on.isoformat()
        if self.unknown_code is not None:
            out["catalogue_code"] = self.unknown_code
        return out


# --------------------------------------------------------------------------- making

def qr_data(lic, cert_der: bytes, when: datetime | None = None) -> QRData:
    """The QR data items of a validated `ofd.licence.model.Licence`, signed by ``cert_der``'s key."""
    when = (when or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(second=0, microsecond=0)
    masked = lic.masked_id()
    number = lic.licence_number.replace(lic.id_number, masked)
    check = lic.identifier.rsplit(".", 1)[1]
    return QRData(
        kid=key_id(cert_der), signed_at=when, type_code=lic.type_code, issuer_code=lic.issuer_code,
        licence_number=number, identifier_version=lic.version, identifier_check=check, name=lic.name,
        masked_id=masked, category=lic.category, item=lic.item, valid_from=lic.valid_from,
        valid_until=lic.valid_until, review_due=lic.review_due, reviewed_on=lic.reviewed_on,
    )


def _days(d: date | None) -> int | None:
    return None if d is None else (d - _EPOCH).days


def _pack36(s: str) -> bytes:
    """A fixed-length 0-9A-Z code (USCC, type code) as a base-36 integer: 21 chars -> 14 bytes."""
    n = int(s, 36)
    return n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")


@functools.lru_cache(maxsize=256)  # a few issuers and one type code: decode each once
def _unpack36(b: bytes, length: int, what: str) -> str:
    n = int.from_bytes(b, "big")
    out = []
    for _ in range(length):
        n, r = divmod(n, 36)
        out.append(ALPHABET[r])
    if n:
        raise _bad("item", f"{what}: packed code out of range", f"{what}：编码超出范围")
    return "".join(reversed(out))


def _code(s: str, length: int) -> bytes | str:
    return _pack36(s) if len(s) == length and s.isascii() and s.isalnum() and s.upper() == s else s


def _item(d: QRData) -> tuple[str | bytes, str | bytes | None]:
    """(item, category): a national item as its code alone ("1.2"); a province's item as its
    name, with its category's code when that category is national, else the category's name."""
    cat = _national()
    code = cat.items.get((d.category, d.item))
    if code:
        return code, None
    return d.item.encode(_TEXT_CODEC), cat.categories.get(d.category) or d.category.encode(_TEXT_CODEC)


def encode_body(d: QRData) -> bytes:
    """Positional CBOR array (version 1 layout; the order is the format)."""
    number = d.licence_number.replace(d.masked_id, ID_MARK) if len(d.masked_id) == 18 else d.licence_number
    minutes = int((d.signed_at - _EPOCH_DT).total_seconds()) // 60
    item, category = _item(d)
    return cbor2.dumps([
        bytes.fromhex(d.kid), minutes, _code(d.type_code, 21), _code(d.issuer_code, 18), number,
        d.identifier_version, d.identifier_check, d.name.encode(_TEXT_CODEC), d.masked_id[:6] + d.masked_id[-4:],
        item, category, _days(d.valid_from),
        (d.valid_until - add_years(d.valid_from, VALIDITY_YEARS)).days,
        (d.review_due - add_years(d.valid_from, REVIEW_YEARS)).days,
        _days(d.reviewed_on),
    ])


def signed_message(body: bytes) -> bytes:
    return DOMAIN + body


def to_digits(data: bytes) -> str:
    """Bytes as one decimal integer, a 0x01 byte in front so leading zero bytes survive."""
    return str(int.from_bytes(b"\x01" + data, "big"))


def encode_payload(d: QRData, key: sm2.PrivateKey) -> str:
    """``EC1:<digits>`` for ``d`` signed with ``key`` (the private key of the certificate ``d.kid`` names)."""
    body = encode_body(d)
    sig = sm2.to_raw(key.sign(signed_message(body)))
    return PREFIX + to_digits(body + sig)


def make_qr_text(lic, identity_or_key, cert_der: bytes | None = None, *, portal: str,
                 when: datetime | None = None) -> str:
    """The text printed as the licence's QR: ``<portal>/v#EC1:<digits>``.

    ``identity_or_key`` is a `signer.ofd_sign.SigningIdentity` (its key and certificate are
    used) or an `sm2.PrivateKey` with ``cert_der``. ``when`` is the signing time (default now).
    """
    key = getattr(identity_or_key, "key", identity_or_key)
    cert_der = cert_der or getattr(identity_or_key, "cert_der", None)
    if not isinstance(key, sm2.PrivateKey) or not cert_der:
        raise QRPayloadError("bad_signer", "an SM2 private key and its certificate are needed to sign the QR",
                             "签署二维码需要 SM2 私钥及其证书")
    if Certificate.load(cert_der).public_key != key.public_key:  # else every QR made would fail to verify
        raise QRPayloadError("bad_signer", "the signing key does not belong to the certificate given",
                             "签名私钥与所给证书不匹配")
    if not _PORTAL.fullmatch(portal or ""):
        raise QRPayloadError("bad_portal", f"portal must be an http(s) URL without '#', spaces or a query: {portal!r}",
                             f"门户地址应为不含“#”、空格和查询串的 http(s) 地址：{portal!r}")
    return portal.rstrip("/") + PATH + encode_payload(qr_data(lic, cert_der, when), key)


# --------------------------------------------------------------------------- reading

def _bad(code: str, en: str, zh: str) -> QRPayloadError:
    return QRPayloadError(code, en, zh)


def split_text(text: str) -> str:
    """The bare payload of a printed URL (the part after ``#``) or of a bare payload."""
    if not isinstance(text, str):
        raise _bad("type", "QR text must be a string", "二维码内容必须是文本")
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise _bad("too_long", f"QR text too long ({len(text)} characters, limit {MAX_TEXT})",
                   f"二维码内容过长（{len(text)} 个字符，上限 {MAX_TEXT}）")
    if "#" in text:
        text = text.rsplit("#", 1)[1]
    return text


def from_text(text: str) -> tuple[bytes, bytes]:
    """(CBOR body, raw 64-byte signature) from the printed URL or the bare payload."""
    payload = split_text(text)
    if not payload.startswith(PREFIX):
        head = payload.split(":", 1)[0][:12] if ":" in payload else payload[:12]
        if head.startswith(FORMAT) and head[len(FORMAT):].isdigit():
            raise _bad("version", f"unsupported payload version {head!r} (this verifier reads {PREFIX!r})",
                       f"不支持的二维码版本 {head!r}（本程序支持 {PREFIX!r}）")
        raise _bad("prefix", f"not an ecert licence QR (expected the prefix {PREFIX!r})",
                   f"不是本系统的证照二维码（应以 {PREFIX!r} 开头）")
    digits = payload[len(PREFIX):]
    # int() alone would also take signs, spaces, "_" and non-ASCII digits: refuse those first
    # (cheaper than str.isdigit over ~400 characters, which matters at thousands a second).
    if not (digits and digits.isascii() and digits[0] in "123456789" and digits[-1] in "0123456789"
            and "_" not in digits):
        raise _bad("encoding", "payload must be decimal digits after the prefix", "二维码前缀后应为十进制数字")
    try:
        n = int(digits)
    except ValueError:
        raise _bad("encoding", "payload must be decimal digits after the prefix", "二维码前缀后应为十进制数字") from None
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    if raw[0] != 1:  # the 0x01 marker byte (no leading zero digit either: one spelling per payload)
        raise _bad("encoding", "payload digits are not a valid encoding (leading byte or zeros wrong)",
                   "二维码数字编码无效")
    raw = raw[1:]
    if len(raw) < SIG_LEN + KID_LEN + 16:
        raise _bad("truncated", f"payload too short ({len(raw)} bytes): truncated", f"二维码数据过短（{len(raw)} 字节），内容不完整")
    return raw[:-SIG_LEN], raw[-SIG_LEN:]


_LAYOUT = (  # (name, CBOR types allowed) in body order
    ("kid", bytes), ("signed_at", int), ("type_code", (bytes, str)), ("issuer_code", (bytes, str)),
    ("licence_number", str), ("identifier_version", int), ("identifier_check", str), ("name", bytes),
    ("masked_id", str), ("item", (str, bytes)), ("category", (str, bytes, type(None))), ("valid_from", int),
    ("valid_until", int), ("review_due", int), ("reviewed_on", (int, type(None))),
)
_TYPES = tuple(t for _, t in _LAYOUT)


_MAX_DAYS = 80000  # 1970 .. 2189 for every date of the payload
_MAX_MINUTES = _MAX_DAYS * 24 * 60


def _date(days: int, what: str) -> date:
    if not 0 <= days <= _MAX_DAYS:  # 1970 .. 2189
        raise _bad("item", f"{what}: day number {days} out of range", f"{what}：日期超出范围")
    return _EPOCH + timedelta(days=days)


def _text(b: bytes, what: str) -> str:
    try:
        return b.decode(_TEXT_CODEC)
    except UnicodeDecodeError:
        raise _bad("item", f"{what}: not valid GB 18030 text", f"{what}：不是有效的 GB 18030 文本") from None


def _names(item: str | bytes, category: str | bytes | None) -> tuple[str, str, str | None]:
    """(category, item, unknown code) back from `_item`'s encoding. A code this verifier's
    catalogue lacks (a newer catalogue?) is returned, not refused: the signature still counts."""
    cat = _national()
    if isinstance(item, str):
        if category is not None:
            raise _bad("item", "a catalogue item code comes without a category", "操作项目代码不应附带作业类别")
        names = cat.by_item.get(item)
        return (names[0], names[1], None) if names else ("", "", item)
    if isinstance(category, str):
        name = cat.by_category.get(category)
        return (name, _text(item, "item"), None) if name else ("", _text(item, "item"), category)
    if category is None:
        raise _bad("item", "an operation item name comes without its category", "操作项目名称缺少作业类别")
    return _text(category, "category"), _text(item, "item"), None


def decode_body(body: bytes) -> QRData:
    """Parse the CBOR body strictly; QRPayloadError names the first problem."""
    try:
        items = cbor2.loads(body)
    except Exception as exc:  # cbor2 raises CBORDecodeError, ValueError, ...: all mean the same here
        raise _bad("cbor", f"payload is not valid CBOR ({type(exc).__name__})", "二维码数据不是有效的 CBOR 编码") from None
    if not isinstance(items, list) or len(items) != len(_LAYOUT):
        raise _bad("structure", f"payload must be an array of {len(_LAYOUT)} items", f"二维码数据应为 {len(_LAYOUT)} 项的数组")
    if not all(map(isinstance, items, _TYPES)) or bool in map(type, items):
        name = next(n for (n, t), v in zip(_LAYOUT, items) if not isinstance(v, t) or isinstance(v, bool))
        raise _bad("item", f"item {name} has the wrong type", f"数据项 {name} 类型错误")
    if cbor2.dumps(items) != body:
        raise _bad("structure", "payload is not in canonical CBOR form", "二维码数据不是规范 CBOR 编码")
    (kid, minutes, type_code, issuer, number, ver, check, name, short_id, item, cat, vf, vu, rd, ro) = items
    if len(kid) != KID_LEN or len(short_id) != 10 or len(check) != 1 or not 1 <= ver <= 999:
        raise _bad("item", "key id, masked ID number or identifier version malformed", "密钥标识、脱敏身份号码或版本号格式错误")
    if not 0 <= minutes <= _MAX_MINUTES:  # the dates' range: beyond it `datetime` itself overflows (year 9999)
        raise _bad("item", f"signing time: minute number {minutes} out of range", "签名时间超出范围")
    if not -4000 <= vu <= 0 or not -4000 <= rd <= 4000:
        raise _bad("item", "validity or review date out of range", "有效期或复审日期超出范围")
    masked = short_id[:6] + "*" * _MASK_STARS + short_id[6:]
    category, item_name, unknown = _names(item, cat)
    valid_from = _date(vf, "valid_from")
    return QRData(
        kid=kid.hex(), signed_at=_EPOCH_DT + timedelta(minutes=minutes),
        type_code=_unpack36(type_code, 21, "type_code") if isinstance(type_code, bytes) else type_code,
        issuer_code=_unpack36(issuer, 18, "issuer_code") if isinstance(issuer, bytes) else issuer,
        licence_number=number.replace(ID_MARK, masked), identifier_version=ver, identifier_check=check,
        name=_text(name, "name"), masked_id=masked, category=category, item=item_name, valid_from=valid_from,
        valid_until=add_years(valid_from, VALIDITY_YEARS) + timedelta(days=vu),
        review_due=add_years(valid_from, REVIEW_YEARS) + timedelta(days=rd),
        reviewed_on=None if ro is None else _date(ro, "reviewed_on"), unknown_code=unknown,
    )


@dataclass(frozen=True)
class _Codes:
    items: dict[tuple[str, str], str]  # (category, item) -> item code
    by_item: dict[str, tuple[str, str]]
    categories: dict[str, str]  # category name -> code
    by_category: dict[str, str]


@functools.lru_cache(maxsize=1)
def _national() -> _Codes:
    """Codes of the bundled catalogue (national + common extras). Every verifier ships it, so a
    national item travels as its code ("1.2": 4 bytes instead of ~40 of names); codes are
    part of format version 1 and must never be renumbered."""
    from ofd.licence.catalogue import COMMON, load_catalogue

    cats = load_catalogue(COMMON).categories
    items = {(c.name, i.name): i.code for c in cats for i in c.items}
    return _Codes(items, {v: k for k, v in items.items()}, {c.name: c.code for c in cats},
                  {c.code: c.name for c in cats})


# --------------------------------------------------------------------------- sizes

@dataclass(frozen=True)
class QRSize:
    payload_bytes: int  # body + signature
    text_chars: int  # the whole printed text
    version: int  # QR version at the given level
    ec_level: str


def qr_size(text: str, ec_level: str = "M") -> QRSize:
    """How big the printed symbol of ``text`` is (encoded by the same zxing-cpp path the layout uses)."""
    from ofd.qr import qr_matrix

    body, sig = from_text(text)
    return QRSize(len(body) + len(sig), len(text), qr_matrix(text, ec_level).version, ec_level)
