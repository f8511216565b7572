"""Electronic-seal ASN.1: GB/T 38540-2020 (V4), its V5 revision, and GM/T 0031-2014 (V1).

One place for the SES structures (docs/STANDARDS.md §4): the asn1crypto schemas, the
version-neutral views (`Seal`, `SignedValue`) the verifier reads, and the V4 builders
the signer uses. We emit V4 only, with no optional fields; we parse V1/V4/V5 as vendors
write them.

Hostile input is the normal case for a verifier, so every parse goes through
`check_der` first: one complete, definite-length, minimally-encoded DER value, no
trailing bytes, bounded depth and size. asn1crypto (which is BER-lenient and silently
accepts extra SEQUENCE elements) then only has to check the schema. Every failure is
one typed `SESError`.

Verification speed (issue 4): an issuer's seal is the same bytes inside every
SignedValue it makes, so seals accepted once are remembered (`_KnownSeals`); a
SignedValue of the common V4/V5 shape around a known seal is then walked and decoded
by hand, only outside the seal (`_plain_signed_value`). Anything else takes the full
path, and tests/test_verify_fast_paths.py proves both give the same values and errors.

Vendor tolerances, and nothing more (each one seen in real files or in ofdrw's parser):
  * optional fields (SES_SealInfo/TBS_Sign extDatas, SES_Signature/V5 seal timeStamp)
    both untagged and `[0] EXPLICIT`;
  * V1: OCTET STRING where BIT STRING is expected, GeneralizedTime where UTCTime is
    expected, IA5String entries in certList (iOFD 2.1.1 writes `"1"`);
  * V1 timeInfo is free text inside a BIT STRING (ofdrw: "yyyy-MM-dd HH:mm:ss",
    local time, read as China Standard Time; iOFD: ISO 8601).

The per-licence builders (`build_tbs_sign_v4`, `build_signed_value_v4`) assemble DER
by hand around the pre-encoded seal: microseconds instead of an asn1crypto round trip
(tests prove byte equality with the asn1crypto encoding).
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from asn1crypto import core

from keys import sm2
from keys.oids import SM3_WITH_SM2

__all__ = [
    "SESError", "check_der", "der_children", "MAX_DER_SIZE",
    "BitOrOctets", "AnyTime", "CertEntryV1", "CertListV1",
    "ExtData", "ExtensionDatas", "SESHeader", "CertDigestObj", "CertInfoList", "CertDigestList",
    "SESESPropertyInfoV4", "SESESPictrueInfo", "SESSealInfoV4", "SESealV4", "TBSSignV4",
    "SESSignatureV4", "SESealV5", "TBSSignV5", "SESSignatureV5",
    "SESESPropertyInfoV1", "SESSealInfoV1", "SESSignInfoV1", "SESealV1", "TBSSignV1", "SESSignatureV1",
    "Seal", "SignedValue", "parse_seal", "parse_signed_value",
    "detect_seal_version", "detect_signed_value_version",
    "build_seal_v4", "build_tbs_sign_v4", "build_signed_value_v4",
]

MAX_DER_SIZE = 16 * 1024 * 1024  # Seal.esl / SignedValue.dat in the wild are < 100 KiB
MAX_DEPTH = 32                    # SES nests 6 deep; certificates are opaque OCTET STRINGs
MAX_ELEMENTS = 100_000            # bounds the walk on hostile input (real files: < 200)
CHINA_TZ = timezone(timedelta(hours=8), "CST")


class SESError(ValueError):
    """Malformed or unsupported SES data. `code` is stable for programs; the messages are for people.

    Codes: not_bytes, empty, too_large, truncated, trailing_data, indefinite_length,
    bad_length, bad_tag, too_deep, bad_der, bad_structure, unknown_version, not_ses,
    bad_time, bad_argument.
    """

    def __init__(self, code: str, message_en: str, message_zh: str):
        super().__init__(f"{code}: {message_en} / {message_zh}")
        self.code = code
        self.message_en = message_en
        self.message_zh = message_zh


# --------------------------------------------------------------------------- strict DER framing

def _header(buf: bytes, i: int, end: int, top: bool) -> tuple[int, int, int]:
    """(tag, content_start, content_end) of the TLV at i, which must fit before end."""
    if i + 2 > end:
        raise SESError("truncated", "DER data ends inside a tag/length header", "DER 数据在标签/长度处被截断")
    tag = buf[i]
    if tag & 0x1F == 0x1F:
        raise SESError("bad_tag", f"high-tag-number form at offset {i} is not used by SES", f"偏移 {i} 处出现不支持的高位标签")
    first = buf[i + 1]
    j = i + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise SESError("indefinite_length", f"indefinite length at offset {i} (BER, not DER)", f"偏移 {i} 处为不定长编码（BER，非 DER）")
    else:
        k = first & 0x7F
        if k > 4:
            raise SESError("bad_length", f"length of {k} bytes at offset {i} overflows", f"偏移 {i} 处长度字段过长（{k} 字节）")
        if j + k > end:
            raise SESError("truncated", "DER data ends inside a length field", "DER 数据在长度字段处被截断")
        length = int.from_bytes(buf[j:j + k], "big")
        if buf[j] == 0 or length < 0x80:
            raise SESError("bad_length", f"non-minimal length encoding at offset {i}", f"偏移 {i} 处长度编码非最短形式")
        j += k
    if j + length > end:
        if top:
            raise SESError("truncated", f"value at offset {i} needs {j + length - end} more bytes", f"偏移 {i} 处数据被截断，缺少 {j + length - end} 字节")
        raise SESError("bad_length", f"length at offset {i} overruns its enclosing value", f"偏移 {i} 处长度超出外层结构")
    return tag, j, j + length


def _check_primitive(buf: bytes, tag: int, s: int, e: int) -> None:
    n = e - s
    if tag == 0x02 and (n == 0 or (n > 1 and (buf[s] == 0 and buf[s + 1] < 0x80 or buf[s] == 0xFF and buf[s + 1] >= 0x80))):
        raise SESError("bad_der", f"INTEGER at offset {s} is empty or not minimally encoded", f"偏移 {s} 处整数为空或非最短编码")
    if tag == 0x01 and (n != 1 or buf[s] not in (0, 0xFF)):
        raise SESError("bad_der", f"BOOLEAN at offset {s} is not DER", f"偏移 {s} 处布尔值不符合 DER")
    if tag == 0x05 and n:
        raise SESError("bad_der", f"NULL at offset {s} has content", f"偏移 {s} 处 NULL 含有内容")
    if tag == 0x03 and (n == 0 or buf[s] > 7 or (n == 1 and buf[s])):
        raise SESError("bad_der", f"BIT STRING at offset {s} has a bad unused-bits byte", f"偏移 {s} 处位串的未用位数非法")
    if tag == 0x06 and (n == 0 or buf[e - 1] & 0x80 or any(buf[k] == 0x80 and (k == s or not buf[k - 1] & 0x80) for k in range(s, e))):
        raise SESError("bad_der", f"OBJECT IDENTIFIER at offset {s} is malformed", f"偏移 {s} 处对象标识符格式错误")


def check_der(der, what: str = "DER") -> bytes:
    """Validate strict DER framing of one complete value; return it as bytes.

    Walks every constructed value (iteratively, depth-bounded) and checks the
    primitive encodings asn1crypto would otherwise accept in BER form.
    """
    buf = _der_bytes(der, what)
    tag, s, e = _top(buf, what)
    _walk(buf, tag, s, e, what)
    return buf


def _der_bytes(der, what: str) -> bytes:
    if not isinstance(der, (bytes, bytearray, memoryview)):
        raise SESError("not_bytes", f"{what} must be bytes, not {type(der).__name__}", f"{what} 必须是字节串")
    buf = bytes(der)
    n = len(buf)
    if n == 0:
        raise SESError("empty", f"{what} is empty", f"{what} 为空")
    if n > MAX_DER_SIZE:
        raise SESError("too_large", f"{what} is {n} bytes, over the {MAX_DER_SIZE} limit", f"{what} 过大（{n} 字节）")
    return buf


def _top(buf: bytes, what: str) -> tuple[int, int, int]:
    """(tag, content_start, content_end) of the one value that must fill `buf` exactly."""
    n = len(buf)
    tag, s, e = _header(buf, 0, n, True)
    if e != n:
        raise SESError("trailing_data", f"{n - e} trailing bytes after the {what} value", f"{what} 之后有 {n - e} 个多余字节")
    return tag, s, e


def _walk(buf: bytes, tag: int, s: int, e: int, what: str) -> tuple[int, int]:
    """Check every element of the value (tag, s, e); return (elements, deepest constructed depth)."""
    stack = [(tag, s, e, 0)]
    count = deepest = 0
    while stack:
        tag, s, e, depth = stack.pop()
        count += 1
        if count > MAX_ELEMENTS:
            raise SESError("too_large", f"{what} has more than {MAX_ELEMENTS} elements", f"{what} 元素超过 {MAX_ELEMENTS} 个")
        constructed = tag & 0x20
        if tag & 0xC0 == 0:  # universal class: only SEQUENCE/SET are constructed in DER
            if bool(constructed) != (tag & 0x1F in (0x10, 0x11)):
                raise SESError("bad_der", f"universal tag 0x{tag:02x} at offset {s} has the wrong form", f"偏移 {s} 处通用标签 0x{tag:02x} 构造形式错误")
            if not constructed:
                _check_primitive(buf, tag, s, e)
                continue
        elif not constructed:
            continue
        if depth >= MAX_DEPTH:
            raise SESError("too_deep", f"{what} nests deeper than {MAX_DEPTH} levels", f"{what} 嵌套超过 {MAX_DEPTH} 层")
        if depth > deepest:
            deepest = depth
        i = s
        while i < e:
            ctag, cs, ce = _header(buf, i, e, False)
            stack.append((ctag, cs, ce, depth + 1))
            i = ce
    return count, deepest


def der_children(buf: bytes, start: int = 0) -> list[tuple[int, int, int, int]]:
    """(tag, tlv_start, content_start, content_end) of each element of the constructed value at start.

    Only for bytes already accepted by `check_der`.
    """
    _, s, e = _header(buf, start, len(buf), True)
    out = []
    i = s
    while i < e:
        tag, cs, ce = _header(buf, i, e, False)
        out.append((tag, i, cs, ce))
        i = ce
    return out


# --------------------------------------------------------------------------- asn1crypto schemas

class _Strict(core.Sequence):
    """A SEQUENCE that rejects elements beyond its schema (asn1crypto keeps them silently)."""

    def _parse_children(self, recurse=False):
        super()._parse_children(recurse)
        if len(self.children) > len(self._fields):
            raise ValueError(f"{type(self).__name__}: {len(self.children) - len(self._fields)} unexpected trailing element(s)")


class BitOrOctets(core.Choice):
    """BIT STRING carrying whole bytes; V1 vendors write OCTET STRING instead (ofdrw tolerates it)."""

    _alternatives = [("bit", core.OctetBitString), ("octet", core.OctetString)]


class AnyTime(core.Choice):
    """V1 UTCTime; vendors write GeneralizedTime instead (ofdrw tolerates it)."""

    _alternatives = [("utc", core.UTCTime), ("generalized", core.GeneralizedTime)]


class ExtData(_Strict):
    _fields = [
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class ExtensionDatas(core.SequenceOf):
    _child_spec = ExtData


class SESHeader(_Strict):
    _fields = [("id", core.IA5String), ("version", core.Integer), ("vid", core.IA5String)]


class CertDigestObj(_Strict):
    _fields = [("type", core.PrintableString), ("value", core.OctetString)]


class CertInfoList(core.SequenceOf):
    _child_spec = core.OctetString


class CertDigestList(core.SequenceOf):
    _child_spec = CertDigestObj


def _cert_list_spec(info):
    """SES_CertList is a CHOICE of two SEQUENCE OFs, told apart only by certListType."""
    kind = info["cert_list_type"].native
    if kind == 1:
        return CertInfoList
    if kind == 2:
        return CertDigestList
    raise ValueError(f"certListType {kind} is neither 1 (certs) nor 2 (cert digests)")


class SESESPropertyInfoV4(_Strict):
    _fields = [
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("cert_list_type", core.Integer),
        ("cert_list", core.Any),
        ("create_date", core.GeneralizedTime),
        ("valid_start", core.GeneralizedTime),
        ("valid_end", core.GeneralizedTime),
    ]
    _spec_callbacks = {"cert_list": _cert_list_spec}


class SESESPictrueInfo(_Strict):  # sic: "Pictrue", as in the standard's ASN.1 and ofdrw
    _fields = [
        ("type", core.IA5String),
        ("data", core.OctetString),
        ("width", core.Integer),
        ("height", core.Integer),
    ]


def _with(fields: list, **specs) -> list:
    """A copy of an asn1crypto field list with some field types replaced (versions differ in a few fields)."""
    return [(f[0], specs[f[0]], *f[2:]) if f[0] in specs else f for f in fields]


_EXT_DATAS = [  # ofdrw writes extDatas untagged; other implementations use [0] EXPLICIT
    ("ext_datas", ExtensionDatas, {"optional": True}),
    ("ext_datas_tagged", ExtensionDatas, {"explicit": 0, "optional": True}),
]


class SESSealInfoV4(_Strict):
    _fields = [
        ("header", SESHeader),
        ("es_id", core.IA5String),
        ("property", SESESPropertyInfoV4),
        ("picture", SESESPictrueInfo),
    ] + _EXT_DATAS


class SESealV4(_Strict):
    _fields = [
        ("e_seal_info", SESSealInfoV4),
        ("cert", core.OctetString),
        ("sign_alg_id", core.ObjectIdentifier),
        ("signed_value", core.OctetBitString),
    ]


_TIME_STAMP = [  # ofdrw: [0] EXPLICIT BIT STRING; the Chingliu verifier and ofd-go: untagged
    ("time_stamp", core.OctetBitString, {"optional": True}),
    ("time_stamp_tagged", core.OctetBitString, {"explicit": 0, "optional": True}),
]


class SESealV5(_Strict):
    """V5 ("GM/T 0031-2025" in ofdrw): the V4 layout plus an optional timeStamp."""

    _fields = SESealV4._fields + _TIME_STAMP


class TBSSignV4(_Strict):
    _fields = [
        ("version", core.Integer),
        ("eseal", SESealV4),
        ("time_info", core.GeneralizedTime),
        ("data_hash", core.OctetBitString),
        ("property_info", core.IA5String),
    ] + _EXT_DATAS  # ofdrw tags this one [0] EXPLICIT; the Chingliu verifier reads it untagged


class SESSignatureV4(_Strict):
    _fields = [
        ("to_sign", TBSSignV4),
        ("cert", core.OctetString),
        ("signature_alg_id", core.ObjectIdentifier),
        ("signature", core.OctetBitString),
    ] + _TIME_STAMP


class TBSSignV5(TBSSignV4):
    _fields = _with(TBSSignV4._fields, eseal=SESealV5)


class SESSignatureV5(SESSignatureV4):
    _fields = _with(SESSignatureV4._fields, to_sign=TBSSignV5)


class CertEntryV1(core.Choice):
    """V1 certList entry: a DER certificate; iOFD 2.1.1 writes an IA5String ("1") instead."""

    _alternatives = [("cert", core.OctetString), ("text", core.IA5String)]


class CertListV1(core.SequenceOf):
    _child_spec = CertEntryV1


class SESESPropertyInfoV1(_Strict):
    _fields = [
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("cert_list", CertListV1),
        ("create_date", AnyTime),
        ("valid_start", AnyTime),
        ("valid_end", AnyTime),
    ]


class SESSealInfoV1(_Strict):
    _fields = _with(SESSealInfoV4._fields, property=SESESPropertyInfoV1)


class SESSignInfoV1(_Strict):
    _fields = [
        ("cert", core.OctetString),
        ("signature_algorithm", core.ObjectIdentifier),
        ("sign_data", BitOrOctets),
    ]


class SESealV1(_Strict):
    _fields = [("e_seal_info", SESSealInfoV1), ("sign_info", SESSignInfoV1)]


class TBSSignV1(_Strict):
    _fields = [
        ("version", core.Integer),
        ("eseal", SESealV1),
        ("time_info", BitOrOctets),
        ("data_hash", BitOrOctets),
        ("property_info", core.IA5String),
        ("cert", core.OctetString),
        ("signature_algorithm", core.ObjectIdentifier),
    ]


class SESSignatureV1(_Strict):
    _fields = [("to_sign", TBSSignV1), ("signature", BitOrOctets)]


# --------------------------------------------------------------------------- version-neutral views

@dataclass(frozen=True)
class Seal:
    """A parsed electronic seal (Seal.esl), whatever its version.

    `signed_part` is exactly what the seal maker signed: DER(SES_SealInfo) for V4/V5,
    DER(SEQUENCE{sealInfo, cert, signatureAlgorithm}) for V1 (STANDARDS §4.2).
    """

    version: int
    raw: bytes
    es_id: str
    vid: str
    seal_type: int
    name: str
    cert_list_type: int
    certs: list[bytes]
    cert_digests: list[tuple[str, bytes]]
    create_date: datetime
    valid_start: datetime
    valid_end: datetime
    picture_type: str
    picture: bytes
    picture_size_mm: tuple[int, int]
    maker_cert: bytes
    sign_alg: str
    maker_signature: bytes
    signed_part: bytes
    header_version: int = 0
    ext_datas: tuple[tuple[str, bool, bytes], ...] = ()
    timestamp: bytes | None = None  # V5 only


@dataclass(frozen=True)
class SignedValue:
    """A parsed SignedValue.dat (SES_Signature), whatever its version.

    `tbs_der` is exactly what the signer signed; `seal_raw` is the embedded seal as it
    appears there (compare it with Seal.esl byte for byte). `time_info` is None only for
    a V1 timeInfo text we cannot read (`time_info_raw` keeps it).
    """

    version: int
    raw: bytes
    seal: Seal
    seal_raw: bytes
    time_info: datetime | None
    time_info_raw: bytes
    data_hash: bytes
    property_info: str
    signer_cert: bytes
    sign_alg: str
    signature: bytes
    tbs_der: bytes
    timestamp: bytes | None
    tbs_version: int = 0
    ext_datas: tuple[tuple[str, bool, bytes], ...] = ()


# --------------------------------------------------------------------------- parsing

def _structure_error(what_en: str, what_zh: str, exc: Exception) -> SESError:
    detail = str(exc).replace("\n", " ")[:200] or type(exc).__name__
    return SESError("bad_structure", f"{what_en} does not match its ASN.1 schema: {detail}",
                    f"{what_zh}不符合 ASN.1 结构定义：{detail}")


def _octets(value) -> bytes:
    """Bytes of a BIT STRING (must have no unused bits) or OCTET STRING, or a Choice of them."""
    if isinstance(value, core.Choice):
        value = value.chosen
    if isinstance(value, core.OctetBitString) and value.contents[0]:
        raise ValueError("BIT STRING with unused bits where whole bytes are expected")
    return bytes(value.native)


def _utc(value, what: str) -> datetime:
    if isinstance(value, core.Choice):
        value = value.chosen
    dt = value.native
    if not isinstance(dt, datetime) or dt.tzinfo is None:
        raise SESError("bad_time", f"{what} is not a UTC time ({value.contents!r})",
                       f"{what} 不是带时区的时间（{value.contents!r}）")
    return dt.astimezone(timezone.utc)


def _ext_datas(obj) -> tuple[tuple[str, bool, bytes], ...]:
    plain, tagged = obj["ext_datas"], obj["ext_datas_tagged"]
    if not isinstance(plain, core.Void) and not isinstance(tagged, core.Void):
        raise ValueError("extDatas given both untagged and [0]-tagged")
    ext = tagged if isinstance(plain, core.Void) else plain
    if isinstance(ext, core.Void):
        return ()
    return tuple((e["extn_id"].dotted, bool(e["critical"].native), bytes(e["extn_value"].native)) for e in ext)


def _time_stamp(obj) -> bytes | None:
    plain, tagged = obj["time_stamp"], obj["time_stamp_tagged"]
    if not isinstance(plain, core.Void) and not isinstance(tagged, core.Void):
        raise ValueError("timeStamp given both untagged and [0]-tagged")
    ts = tagged if isinstance(plain, core.Void) else plain
    return None if isinstance(ts, core.Void) else _octets(ts)


def _seal_version(buf: bytes, start: int) -> int:
    """STANDARDS §4.3: 2 elements = V1; 4 = V4 unless header.version is 5; 5 = V5."""
    kids = der_children(buf, start) if buf[start] == 0x30 else []
    if not kids or kids[0][0] != 0x30:
        raise SESError("unknown_version", "not an electronic seal: SEQUENCE{SES_SealInfo, ...} expected",
                       "不是电子印章：应为以印章信息开头的 SEQUENCE")
    if len(kids) == 2:
        return 1
    if len(kids) == 5:
        return 5
    if len(kids) == 4:
        return 5 if _header_version(buf, kids[0][1]) == 5 else 4
    raise SESError("unknown_version", f"electronic seal with {len(kids)} elements matches no known version (2, 4 or 5)",
                   f"电子印章含 {len(kids)} 个元素，不符合任何已知版本（2、4 或 5 个）")


def _header_version(buf: bytes, seal_info_start: int) -> int | None:
    info = der_children(buf, seal_info_start)
    if not info or info[0][0] != 0x30:
        return None
    header = der_children(buf, info[0][1])
    if len(header) < 2 or header[1][0] != 0x02:
        return None
    _, _, s, e = header[1]
    return int.from_bytes(buf[s:e], "big", signed=True)


def detect_seal_version(der) -> int:
    """1, 4 or 5 for a Seal.esl (SESeal); SESError otherwise."""
    return _seal_version(check_der(der, "Seal"), 0)


def _signed_value_version(buf: bytes) -> int:
    kids = der_children(buf, 0) if buf[0] == 0x30 else []
    if len(kids) == 2 and kids[0][0] == kids[1][0] == 0x02:
        raise SESError("not_ses", "SignedValue is a bare SM2 signature SEQUENCE{r, s}, not an SES_Signature",
                       "签名值是裸 SM2 签名 SEQUENCE{r, s}，不是电子签章数据（SES_Signature）")
    if kids and kids[0][0] == 0x06:
        raise SESError("not_ses", "SignedValue is a CMS/GB/T 35275 ContentInfo, not an SES_Signature",
                       "签名值是 GB/T 35275 密码消息（ContentInfo），不是电子签章数据（SES_Signature）")
    if not kids or kids[0][0] != 0x30:
        raise SESError("not_ses", "SignedValue is not an SES_Signature (SEQUENCE{TBS_Sign, ...} expected)",
                       "签名值不是电子签章数据（应为以 TBS_Sign 开头的 SEQUENCE）")
    if len(kids) == 2:
        return 1
    if len(kids) in (4, 5):
        tbs = der_children(buf, kids[0][1])
        if len(tbs) < 2 or tbs[1][0] != 0x30:
            raise SESError("bad_structure", "TBS_Sign has no embedded seal", "待签章数据中没有电子印章")
        version = _seal_version(buf, tbs[1][1])
        if version == 1:
            raise SESError("unknown_version", "a V4/V5 SES_Signature embeds a V1 seal", "V4/V5 电子签章数据中嵌入了 V1 印章")
        return version
    raise SESError("unknown_version", f"SES_Signature with {len(kids)} elements matches no known version (2, 4 or 5)",
                   f"电子签章数据含 {len(kids)} 个元素，不符合任何已知版本")


def detect_signed_value_version(der) -> int:
    """1, 4 or 5 for a SignedValue.dat (SES_Signature); SESError (code not_ses for raw/CMS) otherwise."""
    return _signed_value_version(check_der(der, "SignedValue"))


def _seal_from(obj, raw: bytes, version: int) -> Seal:
    info = obj["e_seal_info"]
    header, prop, pic = info["header"], info["property"], info["picture"]
    if version == 1:
        sign_info = obj["sign_info"]
        maker_cert_obj, alg, sig = sign_info["cert"], sign_info["signature_algorithm"], sign_info["sign_data"]
        signed_part = _wrap_seq(info.dump(), maker_cert_obj.dump(), alg.dump())
        cert_list_type = 1
        certs = [bytes(c.chosen.native) for c in prop["cert_list"] if c.name == "cert"]
        digests: list[tuple[str, bytes]] = []
        timestamp = None
    else:
        maker_cert_obj, alg, sig = obj["cert"], obj["sign_alg_id"], obj["signed_value"]
        signed_part = info.dump()
        cert_list_type = prop["cert_list_type"].native
        cert_list = prop["cert_list"]
        if cert_list_type == 1:
            certs, digests = [bytes(c.native) for c in cert_list], []
        else:
            certs, digests = [], [(d["type"].native, bytes(d["value"].native)) for d in cert_list]
        timestamp = _time_stamp(obj) if version == 5 else None
    return Seal(
        version=version,
        raw=raw,
        es_id=info["es_id"].native,
        vid=header["vid"].native,
        seal_type=prop["type"].native,
        name=prop["name"].native,
        cert_list_type=cert_list_type,
        certs=certs,
        cert_digests=digests,
        create_date=_utc(prop["create_date"], "createDate"),
        valid_start=_utc(prop["valid_start"], "validStart"),
        valid_end=_utc(prop["valid_end"], "validEnd"),
        picture_type=pic["type"].native,
        picture=bytes(pic["data"].native),
        picture_size_mm=(pic["width"].native, pic["height"].native),
        maker_cert=bytes(maker_cert_obj.native),
        sign_alg=alg.dotted,
        maker_signature=_octets(sig),
        signed_part=signed_part,
        header_version=header["version"].native,
        ext_datas=_ext_datas(info),
        timestamp=timestamp,
    )


_SEAL_CLASSES = {1: SESealV1, 4: SESealV4, 5: SESealV5}
_SIGNATURE_CLASSES = {1: SESSignatureV1, 4: SESSignatureV4, 5: SESSignatureV5}


def parse_seal(der) -> Seal:
    """Parse a Seal.esl (SESeal V1, V4 or V5). Raises SESError on anything malformed."""
    buf = check_der(der, "Seal")
    version = _seal_version(buf, 0)
    try:
        return _seal_from(_SEAL_CLASSES[version].load(buf, strict=True), buf, version)
    except SESError:
        raise
    except Exception as exc:  # asn1crypto reports schema mismatches as assorted exceptions
        raise _structure_error(f"V{version} electronic seal", f"V{version} 电子印章", exc) from None


_V1_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})?")
_V1_GENERALIZED = re.compile(r"(\d{14})(\.\d+)?Z")


def _v1_time_info(raw: bytes) -> datetime | None:
    """V1 timeInfo is free text in a BIT STRING; vendors differ. None when unreadable.

    ofdrw writes "yyyy-MM-dd HH:mm:ss" in the signer's local time, read here as China
    Standard Time (UTC+8); iOFD writes ISO 8601 with "Z"; some write a DER time.
    """
    try:
        if raw[:1] in (b"\x17", b"\x18"):
            return _utc(AnyTime.load(raw, strict=True), "timeInfo")
        text = raw.decode("ascii").strip()
        if _V1_ISO.fullmatch(text):
            dt = datetime.fromisoformat(text.replace(" ", "T"))
            return (dt if dt.tzinfo else dt.replace(tzinfo=CHINA_TZ)).astimezone(timezone.utc)
        m = _V1_GENERALIZED.fullmatch(text)
        if m:
            return datetime.strptime(m.group(1), "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    except (ValueError, UnicodeDecodeError, SESError):
        pass
    return None


class _KnownSeals:
    """Seals already accepted inside a SignedValue (strict DER and schema), by their exact bytes.

    An issuer's seal is the same ~10-20 KiB in every document it signs; remembering it
    lets `parse_signed_value` check and parse only the few hundred bytes around it.
    Bounded in count and entry size; Seal is immutable, so sharing it is safe.
    """

    MAX_ENTRIES = 64
    MAX_SEAL_BYTES = 128 * 1024  # real seals are < 100 KiB

    def __init__(self) -> None:
        self._seals: dict[bytes, tuple[Seal, int, int]] = {}  # raw -> (seal, elements, deepest)
        self._lock = threading.Lock()

    def get(self, raw: bytes) -> tuple[Seal, int, int] | None:
        return self._seals.get(raw)

    def seal(self, raw: bytes, version: int) -> Seal:
        known = self._seals.get(raw)
        if known is not None and known[0].version == version:
            return known[0]
        return _seal_from(_SEAL_CLASSES[version].load(raw, strict=True), raw, version)

    def remember(self, seal: Seal) -> None:
        raw = seal.raw
        if seal.version == 1 or len(raw) > self.MAX_SEAL_BYTES or raw in self._seals:
            return
        tag, s, e = _top(raw, "Seal")
        count, deepest = _walk(raw, tag, s, e, "Seal")
        with self._lock:
            while len(self._seals) >= self.MAX_ENTRIES:
                del self._seals[next(iter(self._seals))]
            self._seals[raw] = (seal, count, deepest)


_KNOWN_SEALS = _KnownSeals()


def _signed_value_from(obj, buf: bytes, version: int) -> SignedValue:
    tbs = obj["to_sign"]
    eseal = tbs["eseal"]
    seal_raw = eseal.dump()
    seal = _KNOWN_SEALS.seal(seal_raw, version)
    if version == 1:
        time_info_raw = _octets(tbs["time_info"])
        time_info = _v1_time_info(time_info_raw)
        cert, alg, timestamp, ext = tbs["cert"], tbs["signature_algorithm"], None, ()
    else:
        time_info_raw = bytes(tbs["time_info"].contents)
        time_info = _utc(tbs["time_info"], "timeInfo")
        cert, alg, timestamp, ext = obj["cert"], obj["signature_alg_id"], _time_stamp(obj), _ext_datas(tbs)
    return SignedValue(
        version=version,
        raw=buf,
        seal=seal,
        seal_raw=seal_raw,
        time_info=time_info,
        time_info_raw=time_info_raw,
        data_hash=_octets(tbs["data_hash"]),
        property_info=tbs["property_info"].native,
        signer_cert=bytes(cert.native),
        sign_alg=alg.dotted,
        signature=_octets(obj["signature"]),
        tbs_der=tbs.dump(),
        timestamp=timestamp,
        tbs_version=tbs["version"].native,
        ext_datas=ext,
    )


# The common V4/V5 shape: SES_Signature{TBS_Sign, cert, alg, signature}, no timeStamp, and
# TBS_Sign{version, eseal, GeneralizedTime, dataHash, propertyInfo}, no extDatas.
_PLAIN_SIGNATURE_TAGS = (0x30, 0x04, 0x06, 0x03)
_PLAIN_TBS_TAGS = (0x02, 0x30, 0x18, 0x03, 0x16)
_WHOLE_SECONDS_UTC = re.compile(rb"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z")


@functools.lru_cache(maxsize=64)
def _oid_dotted(tlv: bytes) -> str:
    return core.ObjectIdentifier.load(tlv, strict=True).dotted


def _plain_signed_value(buf: bytes) -> SignedValue | None:
    """Fast path of `parse_signed_value` for the common shape around a known seal; None otherwise.

    Same checks as the full path (strict DER of every byte outside the seal, the same
    schema, the same field decoding) but by hand; anything unusual, malformed or new
    returns None and the full path decides, so results and errors never differ.
    """
    try:
        tag, _, _ = _top(buf, "SignedValue")
        kids = der_children(buf) if tag == 0x30 else ()
        if tuple(k[0] for k in kids) != _PLAIN_SIGNATURE_TAGS:
            return None
        tbs = der_children(buf, kids[0][1])
        if tuple(k[0] for k in tbs) != _PLAIN_TBS_TAGS:
            return None
        _, seal_at, _, seal_e = tbs[1]
        if seal_e - seal_at > _KnownSeals.MAX_SEAL_BYTES:  # never kept: no need to copy and hash it
            return None
        seal_raw = buf[seal_at:seal_e]
        known = _KNOWN_SEALS.get(seal_raw)
        if known is None:
            return None
        seal, elements, deepest = known
        # What `check_der` would still check here: the headers were read strictly above, the
        # seal (at depth 2) is byte-identical to one it accepted, the rest are primitives.
        if elements + 9 > MAX_ELEMENTS or 2 + deepest >= MAX_DEPTH:
            return None
        for ptag, _, ps_, pe_ in (tbs[0], tbs[2], tbs[3], tbs[4], kids[1], kids[2], kids[3]):
            _check_primitive(buf, ptag, ps_, pe_)
        (_, _, vs, ve), _, (_, _, ts, te), (_, _, hs, he), (_, _, ps, pe) = tbs
        (_, tbs_at, _, tbs_e), (_, _, cs, ce), (_, alg_at, _, alg_e), (_, _, gs, ge) = kids
        when = _WHOLE_SECONDS_UTC.fullmatch(buf, ts, te)
        if when is None or buf[hs] or buf[gs]:  # other time forms; BIT STRINGs with unused bits
            return None
        time_info = datetime(*map(int, when.groups()), tzinfo=timezone.utc)
        property_info = buf[ps:pe].decode("ascii")
        sign_alg = _oid_dotted(buf[alg_at:alg_e])
    except (SESError, ValueError):  # UnicodeDecodeError, impossible dates: the full path reports them
        return None
    return SignedValue(
        version=seal.version,
        raw=buf,
        seal=seal,
        seal_raw=seal_raw,
        time_info=time_info,
        time_info_raw=buf[ts:te],
        data_hash=buf[hs + 1:he],
        property_info=property_info,
        signer_cert=buf[cs:ce],
        sign_alg=sign_alg,
        signature=buf[gs + 1:ge],
        tbs_der=buf[tbs_at:tbs_e],
        timestamp=None,
        tbs_version=int.from_bytes(buf[vs:ve], "big", signed=True),
        ext_datas=(),
    )


def parse_signed_value(der) -> SignedValue:
    """Parse a SignedValue.dat (SES_Signature V1, V4 or V5).

    SESError code "not_ses" when it is a bare SM2 signature or a GB/T 35275 CMS
    message (the verifier handles those); other codes for malformed data.
    """
    buf = _der_bytes(der, "SignedValue")
    sv = _plain_signed_value(buf) or _full_signed_value(buf)
    _KNOWN_SEALS.remember(sv.seal)
    return sv


def _full_signed_value(buf: bytes) -> SignedValue:
    """Every byte through `check_der`, then the asn1crypto schema of its version."""
    check_der(buf, "SignedValue")
    version = _signed_value_version(buf)
    try:
        return _signed_value_from(_SIGNATURE_CLASSES[version].load(buf, strict=True), buf, version)
    except SESError:
        raise
    except Exception as exc:
        raise _structure_error(f"V{version} SES_Signature", f"V{version} 电子签章数据", exc) from None


# --------------------------------------------------------------------------- building (V4 only)

def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(b),)) + b


def _wrap_seq(*parts: bytes) -> bytes:
    """DER SEQUENCE of already-encoded elements, joined once (the seal inside is ~17 KiB)."""
    return b"".join((b"\x30", _der_len(sum(len(p) for p in parts)), *parts))


def _bad_argument(en: str, zh: str) -> SESError:
    return SESError("bad_argument", en, zh)


def _generalized_time(dt, what: str) -> bytes:
    """DER GeneralizedTime content at whole seconds ("YYYYMMDDHHMMSSZ"): same on every run and platform."""
    if not isinstance(dt, datetime) or dt.tzinfo is None:
        raise _bad_argument(f"{what} must be a timezone-aware datetime", f"{what} 必须是带时区的时间")
    u = dt.astimezone(timezone.utc)
    return f"{u.year:04d}{u.month:02d}{u.day:02d}{u.hour:02d}{u.minute:02d}{u.second:02d}Z".encode()


def _ascii(text, what: str) -> bytes:
    if not isinstance(text, str):
        raise _bad_argument(f"{what} must be a string", f"{what} 必须是字符串")
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise _bad_argument(f"{what} must be ASCII (IA5String): {text!r}", f"{what} 必须是 ASCII 字符（IA5String）") from None


def _one_der_value(data, what: str) -> bytes:
    """Cheap top-level check that data is one DER SEQUENCE (no full walk: per-licence hot path)."""
    if not isinstance(data, (bytes, bytearray)) or len(data) < 2 or data[0] != 0x30:
        raise _bad_argument(f"{what} must be DER bytes of a SEQUENCE", f"{what} 必须是 DER 编码的 SEQUENCE")
    data = bytes(data)
    try:
        _, _, end = _header(data, 0, len(data), True)
    except SESError as exc:
        raise _bad_argument(f"{what}: {exc.message_en}", f"{what}：{exc.message_zh}") from None
    if end != len(data):
        raise _bad_argument(f"{what} has {len(data) - end} trailing bytes", f"{what} 末尾有 {len(data) - end} 个多余字节")
    return data


@functools.lru_cache(maxsize=64)
def _checked_v4_seal(seal_der: bytes) -> bytes:
    """Full parse once per distinct seal (an issuer signs thousands of licences with one)."""
    try:
        version = parse_seal(seal_der).version
    except SESError as exc:
        raise _bad_argument(f"seal_der is not a valid seal: {exc.message_en}", f"seal_der 不是有效的电子印章：{exc.message_zh}") from None
    if version != 4:
        raise _bad_argument(f"ecert emits V4 only; seal_der is V{version}", f"仅支持生成 V4 签章，seal_der 为 V{version} 印章")
    return seal_der


_INT_4 = b"\x02\x01\x04"
_SM3_WITH_SM2_DER = core.ObjectIdentifier(SM3_WITH_SM2).dump()


def build_tbs_sign_v4(*, seal_der: bytes, time_info: datetime, data_hash: bytes, property_info: str) -> bytes:
    """DER TBS_Sign{4, eseal, timeInfo, dataHash, propertyInfo}, the seal bytes embedded verbatim.

    time_info is encoded at whole seconds. data_hash is SM3(Signature.xml bytes).
    """
    if not isinstance(seal_der, (bytes, bytearray)):
        raise _bad_argument("seal_der must be bytes", "seal_der 必须是字节串")
    seal_der = _checked_v4_seal(bytes(seal_der))
    if not isinstance(data_hash, (bytes, bytearray)) or not data_hash:
        raise _bad_argument("data_hash must be non-empty bytes", "data_hash 必须是非空字节串")
    t = _generalized_time(time_info, "time_info")
    pi = _ascii(property_info, "property_info")
    return _wrap_seq(_INT_4, seal_der, b"\x18", _der_len(len(t)), t, b"\x03", _der_len(len(data_hash) + 1), b"\x00",
                     bytes(data_hash), b"\x16", _der_len(len(pi)), pi)


def build_signed_value_v4(*, tbs_der: bytes, signer_cert: bytes, signature: bytes) -> bytes:
    """DER SES_Signature{toSign, cert, SM3withSM2, signature} with no timeStamp.

    signature is the signer's SM2 signature over tbs_der (DER SEQUENCE{r, s}).
    """
    tbs_der = _one_der_value(tbs_der, "tbs_der")
    signer_cert = _one_der_value(signer_cert, "signer_cert")
    if not isinstance(signature, (bytes, bytearray)) or not signature:
        raise _bad_argument("signature must be non-empty bytes", "signature 必须是非空字节串")
    return _wrap_seq(tbs_der, b"\x04", _der_len(len(signer_cert)), signer_cert, _SM3_WITH_SM2_DER,
                     b"\x03", _der_len(len(signature) + 1), b"\x00", bytes(signature))


def build_seal_v4(*, es_id: str, vid: str, seal_type: int, name: str, certs: list[bytes],
                  create_date: datetime, valid_start: datetime, valid_end: datetime,
                  picture_type: str, picture: bytes, picture_size_mm: tuple[int, int],
                  maker_cert: bytes, maker_key: sm2.PrivateKey) -> bytes:
    """DER SESeal V4 (GB/T 38540): certListType 1 (signer certificates), no extDatas.

    The maker signs DER(SES_SealInfo) with SM2/SM3 and the default ID. Times are whole
    seconds, UTC. The result is parsed back before it is returned.
    """
    for text, what in ((es_id, "es_id"), (vid, "vid"), (picture_type, "picture_type")):
        _ascii(text, what)
    if not isinstance(name, str) or not name:
        raise _bad_argument("name must be a non-empty string", "印章名称不能为空")
    if not isinstance(seal_type, int) or isinstance(seal_type, bool):
        raise _bad_argument("seal_type must be an integer", "印章类型必须是整数")
    if not isinstance(certs, (list, tuple)) or not certs:
        raise _bad_argument("certs must list at least one signer certificate", "签章人证书列表不能为空")
    for c in certs:
        _one_der_value(c, "certs[]")
    _one_der_value(maker_cert, "maker_cert")
    if not isinstance(picture, (bytes, bytearray)) or not picture:
        raise _bad_argument("picture must be non-empty bytes", "印章图片不能为空")
    size = tuple(picture_size_mm) if isinstance(picture_size_mm, (list, tuple)) else ()
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise _bad_argument("picture_size_mm must be two positive integers (width, height)", "印章尺寸必须是两个正整数（宽，高，毫米）")
    if not isinstance(maker_key, sm2.PrivateKey):
        raise _bad_argument("maker_key must be a keys.sm2.PrivateKey", "制章者私钥类型错误")
    times = [_generalized_time(t, n) for t, n in ((create_date, "create_date"), (valid_start, "valid_start"), (valid_end, "valid_end"))]
    if times[1] >= times[2]:
        raise _bad_argument("valid_start must be before valid_end", "印章有效起始日期必须早于终止日期")
    gt = [core.GeneralizedTime.load(b"\x18" + _der_len(len(t)) + t) for t in times]
    info = SESSealInfoV4({
        "header": {"id": "ES", "version": 4, "vid": vid},
        "es_id": es_id,
        "property": {
            "type": seal_type, "name": name, "cert_list_type": 1,
            "cert_list": CertInfoList([bytes(c) for c in certs]),
            "create_date": gt[0], "valid_start": gt[1], "valid_end": gt[2],
        },
        "picture": {"type": picture_type, "data": bytes(picture), "width": size[0], "height": size[1]},
    })
    info_der = info.dump()
    seal = SESealV4({
        "e_seal_info": SESSealInfoV4.load(info_der),
        "cert": bytes(maker_cert),
        "sign_alg_id": SM3_WITH_SM2,
        "signed_value": maker_key.sign(info_der),
    }).dump()
    parse_seal(seal)
    return seal
