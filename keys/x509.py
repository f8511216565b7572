"""SM2 X.509 v3 certificates: build, parse, and verify chains (RFC 5280 profile, GM/T 0015).

Certificates are signed with SM2-with-SM3 (1.2.156.10197.1.501, parameters absent) over the
DER TBSCertificate with the default signer ID "1234567812345678", signature DER SEQUENCE{r,s},
which is what OpenSSL, GmSSL, BouncyCastle and ofdrw produce and expect. Subjects are
C=CN, O=<organisation>, organizationIdentifier=<统一社会信用代码>, CN=<name>, UTF8String.

Parsing is lenient where vendors differ harmlessly (serial sign, NULL algorithm parameters,
missing keyCertSign on a trust anchor) and strict where it matters (structure, SM2 point on
the curve, duplicate extensions, unknown critical extensions). Chain checking is RFC 5280
path validation reduced to what an SM2 seal/signature verifier needs: name + AKI/SKI
linkage, signatures, validity at a given time, CA flag, keyCertSign, pathLen, leaf usage.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from asn1crypto import keys as ak
from asn1crypto import pem as apem
from asn1crypto import x509 as ax

from . import sm2
from .oids import EC_PUBLIC_KEY, SM2_CURVE, SM3_WITH_SM2
from .sm3 import sm3
from .uscc import uscc_problem

MAX_PATH = 8  # certificates in a chain, leaf and anchor included
_SEARCH_BUDGET = 64  # path-building steps: bounds work on hostile intermediate sets
_UB_NAME = 64  # ub-common-name / ub-organization-name (X.520)

# Extensions whose semantics we either enforce or may safely ignore when critical.
_UNDERSTOOD = frozenset(
    {
        "basic_constraints",
        "key_usage",
        "extended_key_usage",
        "key_identifier",
        "authority_key_identifier",
        "subject_alt_name",
        "issuer_alt_name",
        "certificate_policies",
        "crl_distribution_points",
        "authority_information_access",
        "netscape_certificate_type",
    }
)

USAGES = {
    # usage: (keyUsage bits, CA)
    "signing": (frozenset({"digital_signature", "non_repudiation"}), False),
    "seal_maker": (frozenset({"digital_signature"}), False),
    "ca": (frozenset({"key_cert_sign", "crl_sign"}), True),
}


class CertificateError(ValueError):
    """Malformed certificate or invalid request to build one; message in English and Chinese."""

    def __init__(self, message_en: str, message_zh: str = ""):
        self.message_en, self.message_zh = message_en, message_zh or message_en
        super().__init__(f"{message_en} ({self.message_zh})" if message_zh else message_en)


# --------------------------------------------------------------------------- small helpers

# Extensions whose values drive chain and usage decisions: never skipped when malformed.
_USED = frozenset({"basic_constraints", "key_usage", "extended_key_usage", "key_identifier", "authority_key_identifier"})


def _utc(t: datetime, what: str) -> datetime:
    """Timezone-aware UTC, whole seconds. Naive datetimes are taken as UTC."""
    if not isinstance(t, datetime):
        raise CertificateError(f"{what} must be a datetime, got {type(t).__name__}", f"{what} 必须是 datetime 类型")
    t = t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)
    return t.replace(microsecond=0)


def _time(t: datetime) -> ax.Time:
    # RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
    return ax.Time(name="utc_time" if 1950 <= t.year < 2050 else "general_time", value=t)


def _unarmor(data: bytes) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CertificateError(f"certificate must be bytes, got {type(data).__name__}", "证书必须是字节串")
    data = bytes(data)
    if apem.detect(data):
        try:
            label, _, der = apem.unarmor(data)
        except Exception as exc:
            raise CertificateError(f"malformed PEM: {exc}", "PEM 格式错误") from None
        if label not in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"):
            raise CertificateError(f"PEM block is {label!r}, not CERTIFICATE", f"PEM 块类型为 {label}，不是证书")
        return der
    return data


def key_id(cert_der: bytes) -> str:
    """ecert key id: first 8 bytes of SM3 over the certificate DER, lowercase hex (PEM accepted)."""
    return sm3(_unarmor(cert_der))[:8].hex()


def _ski(point: bytes) -> bytes:
    """Subject key identifier: leftmost 160 bits of SM3(subjectPublicKey) (RFC 7093 style, SM3)."""
    return sm3(point)[:20]


def check_uscc(uscc: str) -> str:
    """Validate a 统一社会信用代码 (GB 32100-2015, ``keys.uscc``) for a certificate subject."""
    problem = uscc_problem(uscc)
    if problem:
        _code, zh, en = problem
        raise CertificateError(f"USCC {en}: {uscc!r}", f"统一社会信用代码{zh}")
    return uscc


def _text(value: str | None, what: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CertificateError(f"{what} must be a non-empty string", f"{what} 不能为空")
    value = value.strip()
    if len(value) > _UB_NAME or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise CertificateError(
            f"{what} must be at most {_UB_NAME} printable characters", f"{what} 最多 {_UB_NAME} 个可打印字符"
        )
    return value


def subject_name(common_name: str, organization: str | None = None, uscc: str | None = None) -> ax.Name:
    """C=CN, O, organizationIdentifier (USCC), CN — in that order, UTF8String except C."""
    atvs = [("country_name", "printable_string", "CN")]
    org = _text(organization, "organization", required=False)
    if org:
        atvs.append(("organization_name", "utf8_string", org))
    if uscc is not None:
        atvs.append(("organization_identifier", "utf8_string", check_uscc(uscc)))
    atvs.append(("common_name", "utf8_string", _text(common_name, "common_name", required=True)))
    rdns = [
        ax.RelativeDistinguishedName([ax.NameTypeAndValue({"type": t, "value": ax.DirectoryString(name=k, value=v)})])
        for t, k, v in atvs
    ]
    return ax.Name(name="", value=ax.RDNSequence(rdns))


_SHORT = {
    "country_name": "C",
    "state_or_province_name": "ST",
    "locality_name": "L",
    "organization_name": "O",
    "organizational_unit_name": "OU",
    "organization_identifier": "organizationIdentifier",
    "common_name": "CN",
    "serial_number": "serialNumber",
    "email_address": "emailAddress",
}


def _name_fields(name: ax.Name) -> list[tuple[str, str]]:
    out = []
    for rdn in name.chosen:
        for atv in rdn:
            value = atv["value"].native
            out.append((atv["type"].native, value if isinstance(value, str) else repr(value)))
    return out


# --------------------------------------------------------------------------- Certificate

@dataclass(frozen=True, eq=False)
class Certificate:
    """An immutable, fully parsed X.509 certificate. Create it with `Certificate.load`."""

    der: bytes
    tbs_der: bytes
    signature: bytes
    signature_algorithm: str
    version: int
    serial: int
    subject_der: bytes
    issuer_der: bytes
    subject_cn: str
    subject_org: str | None
    subject_uscc: str | None
    issuer_cn: str
    subject_text: str
    issuer_text: str
    not_before: datetime
    not_after: datetime
    key_algorithm: str  # dotted OID of the SPKI algorithm (EC_PUBLIC_KEY for SM2)
    is_ca: bool
    path_length: int | None
    key_usage: frozenset[str]
    has_key_usage: bool  # False: no keyUsage extension (RFC 5280: unrestricted)
    ext_key_usage: frozenset[str]
    ski: bytes | None
    aki: bytes | None
    unknown_critical: tuple[str, ...]
    ignored_extensions: tuple[str, ...]  # malformed non-critical extensions, skipped
    kid: str
    _public_key: sm2.PublicKey | None = field(repr=False)
    _subject_key: str = field(repr=False)  # RFC 5280 7.1 normalised names (asn1crypto `hashable`)
    _issuer_key: str = field(repr=False)
    asn1: ax.Certificate = field(repr=False)

    @classmethod
    def load(cls, der_or_pem: bytes) -> "Certificate":
        """Parse one certificate (DER or PEM); CertificateError names what is wrong.

        Parsed certificates are immutable, so the same bytes give the same (cached) object:
        a verifier sees the same few issuer certificates in thousands of documents."""
        return _parse_cached(_unarmor(der_or_pem))

    @classmethod
    def load_all(cls, data: bytes) -> list["Certificate"]:
        """Every CERTIFICATE block of a PEM bundle (or a single DER certificate)."""
        if isinstance(data, (bytes, bytearray)) and apem.detect(bytes(data)):
            try:
                blocks = list(apem.unarmor(bytes(data), multiple=True))
            except Exception as exc:
                raise CertificateError(f"malformed PEM: {exc}", "PEM 格式错误") from None
            return [_parse(der) for label, _, der in blocks if label in ("CERTIFICATE", "X509 CERTIFICATE")]
        return [cls.load(data)]

    @property
    def public_key(self) -> sm2.PublicKey:
        if self._public_key is None:
            raise CertificateError(
                f"certificate key is not SM2 (algorithm {self.key_algorithm})",
                f"证书公钥不是 SM2 密钥（算法 {self.key_algorithm}）",
            )
        return self._public_key

    @property
    def is_sm2(self) -> bool:
        return self._public_key is not None

    @property
    def is_self_issued(self) -> bool:
        return self._issuer_key == self._subject_key

    def to_pem(self) -> bytes:
        return apem.armor("CERTIFICATE", self.der)

    def valid_at(self, t: datetime) -> bool:
        """RFC 5280 validity: notBefore <= t <= notAfter (both inclusive)."""
        return self.not_before <= _utc(t, "t") <= self.not_after

    def __eq__(self, other):
        return isinstance(other, Certificate) and self.der == other.der

    def __hash__(self):
        return hash(self.der)

    def __repr__(self):
        return f"<Certificate kid={self.kid} subject={self.subject_text!r} serial={self.serial:x}>"


@functools.lru_cache(maxsize=512)
def _parse_cached(der: bytes) -> Certificate:
    return _parse(der)


def _parse(der: bytes) -> Certificate:
    if not der:
        raise CertificateError("empty certificate", "证书为空")
    try:
        cert = ax.Certificate.load(der, strict=True)
        tbs = cert["tbs_certificate"]
        # Parse what we use now, so later accesses cannot fail; extension values are parsed one by
        # one in _from_asn1 (vendor certificates carry malformed non-critical ones).
        for part in (tbs["serial_number"], tbs["subject"], tbs["issuer"], tbs["validity"],
                     tbs["subject_public_key_info"], cert["signature_value"]):
            part.native
        return _from_asn1(der, cert, tbs)
    except CertificateError:
        raise
    except Exception as exc:  # asn1crypto raises ValueError/TypeError/KeyError/... on bad DER
        raise CertificateError(f"malformed X.509 certificate: {exc}", "X.509 证书格式错误") from None


def _from_asn1(der: bytes, cert: ax.Certificate, tbs: ax.TbsCertificate) -> Certificate:
    sig_alg = cert["signature_algorithm"]["algorithm"].dotted
    if tbs["signature"]["algorithm"].dotted != sig_alg:
        raise CertificateError(
            "signatureAlgorithm differs from the TBSCertificate signature field", "证书签名算法与待签名部分声明不一致"
        )
    subject, issuer = tbs["subject"], tbs["issuer"]
    subj_fields, iss_fields = _name_fields(subject), _name_fields(issuer)

    def last(fields, attr):
        values = [v for t, v in fields if t == attr]
        return values[-1] if values else None

    def text(fields):
        return ", ".join(f"{_SHORT.get(t, t)}={v}" for t, v in fields)

    spki = tbs["subject_public_key_info"]
    key_alg = spki["algorithm"]["algorithm"].dotted
    public_key = None
    if key_alg == EC_PUBLIC_KEY and isinstance(spki["algorithm"]["parameters"].chosen, ak.ObjectIdentifier) and (
        spki["algorithm"]["parameters"].chosen.dotted == SM2_CURVE
    ):
        try:
            public_key = sm2.PublicKey.from_bytes(bytes(spki["public_key"]))
        except sm2.SM2Error as exc:
            raise CertificateError(f"certificate public key: {exc}", "证书公钥不是有效的 SM2 公钥") from None

    exts: dict[str, tuple[bool, object]] = {}
    malformed: list[str] = []
    for ext in tbs["extensions"]:
        name = ext["extn_id"].native
        if name in exts or name in malformed:
            raise CertificateError(f"extension {name} appears twice", f"扩展项 {name} 重复出现")
        critical = bool(ext["critical"].native)
        try:
            value = ext["extn_value"].native
        except Exception:
            # A malformed critical extension cannot be honoured; a non-critical one is ignored
            # (RFC 5280 lets a relying party ignore non-critical extensions it cannot process).
            if critical or name in _USED:
                raise
            malformed.append(name)
            continue
        exts[name] = (critical, value)

    bc = exts.get("basic_constraints", (False, None))[1] or {}
    ku = exts.get("key_usage", (False, None))[1]
    aki = exts.get("authority_key_identifier", (False, None))[1] or {}
    version = {"v1": 1, "v2": 2, "v3": 3}.get(tbs["version"].native)
    if version is None:
        raise CertificateError(f"unknown certificate version {tbs['version'].native}", "未知的证书版本")
    return Certificate(
        der=der,
        tbs_der=tbs.dump(),
        signature=bytes(cert["signature_value"].native),
        signature_algorithm=sig_alg,
        version=version,
        serial=tbs["serial_number"].native,
        subject_der=subject.dump(),
        issuer_der=issuer.dump(),
        subject_cn=last(subj_fields, "common_name") or "",
        subject_org=last(subj_fields, "organization_name"),
        subject_uscc=last(subj_fields, "organization_identifier"),
        issuer_cn=last(iss_fields, "common_name") or "",
        subject_text=text(subj_fields),
        issuer_text=text(iss_fields),
        not_before=tbs["validity"]["not_before"].native.astimezone(timezone.utc),
        not_after=tbs["validity"]["not_after"].native.astimezone(timezone.utc),
        key_algorithm=key_alg,
        is_ca=bool(bc.get("ca")),
        path_length=bc.get("path_len_constraint"),
        key_usage=frozenset(ku or ()),
        has_key_usage=ku is not None,
        ext_key_usage=frozenset(exts.get("extended_key_usage", (False, None))[1] or ()),
        ski=exts.get("key_identifier", (False, None))[1],
        aki=aki.get("key_identifier"),
        unknown_critical=tuple(n for n, (crit, _) in exts.items() if crit and n not in _UNDERSTOOD),
        ignored_extensions=tuple(malformed),
        kid=sm3(der)[:8].hex(),
        _public_key=public_key,
        _subject_key=subject.hashable,
        _issuer_key=issuer.hashable,
        asn1=cert,
    )


def _as_cert(c: bytes | Certificate) -> Certificate:
    return c if isinstance(c, Certificate) else Certificate.load(c)


# --------------------------------------------------------------------------- building

def _extensions(usage: str, ski: bytes, aki: bytes | None, path_length: int | None) -> list[dict]:
    bits, ca = USAGES[usage]
    bc = ax.BasicConstraints({"ca": True, "path_len_constraint": path_length} if ca else {"ca": False})
    exts = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": bc},
        {"extn_id": "key_usage", "critical": True, "extn_value": set(bits)},
        {"extn_id": "key_identifier", "critical": False, "extn_value": ski},
    ]
    if aki is not None:
        exts.append({"extn_id": "authority_key_identifier", "critical": False, "extn_value": {"key_identifier": aki}})
    return exts


def _serial(serial: int | None) -> int:
    if serial is None:
        return (1 << 127) | secrets.randbits(127)  # 128-bit, positive, 17 DER octets
    if not isinstance(serial, int) or isinstance(serial, bool) or not 0 < serial < (1 << 159):
        raise CertificateError("serial must be a positive integer of at most 20 octets", "证书序列号必须为不超过 20 字节的正整数")
    return serial


def _sign(
    issuer_name: ax.Name,
    issuer_key: sm2.PrivateKey,
    subject: ax.Name,
    subject_key: sm2.PublicKey,
    not_before: datetime,
    not_after: datetime,
    serial: int | None,
    extensions: list[dict],
) -> bytes:
    """Assemble the TBSCertificate, sign it with SM2-with-SM3, and self-check the result."""
    nb, na = _utc(not_before, "not_before"), _utc(not_after, "not_after")
    if nb >= na:
        raise CertificateError("not_before must be earlier than not_after", "证书生效时间必须早于失效时间")
    tbs = ax.TbsCertificate(
        {
            "version": "v3",
            "serial_number": _serial(serial),
            "signature": {"algorithm": SM3_WITH_SM2},
            "issuer": issuer_name,
            "validity": {"not_before": _time(nb), "not_after": _time(na)},
            "subject": subject,
            "subject_public_key_info": ak.PublicKeyInfo.load(subject_key.to_der()),
            "extensions": extensions,
        }
    )
    tbs_der = tbs.dump()
    signature = issuer_key.sign(tbs_der)
    der = ax.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": {"algorithm": SM3_WITH_SM2}, "signature_value": signature}
    ).dump()
    # Verify-after-sign: a faulty signer must never publish a bad (or key-leaking) certificate.
    if not issuer_key.public_key.verify(tbs_der, signature):
        raise CertificateError("internal error: the new certificate signature does not verify", "内部错误：新证书签名验证失败")
    return der


def build_root(
    key: sm2.PrivateKey,
    common_name: str,
    *,
    organization: str | None = None,
    uscc: str | None = None,
    not_before: datetime,
    not_after: datetime,
    serial: int | None = None,
    path_length: int | None = None,
) -> bytes:
    """A self-signed root CA certificate (DER): CA:TRUE, keyCertSign+cRLSign, SKI, all critical but SKI."""
    name = subject_name(common_name, organization, uscc)
    exts = _extensions("ca", _ski(key.public_key.point), None, path_length)
    return _sign(name, key, name, key.public_key, not_before, not_after, serial, exts)


def issue_certificate(
    issuer_cert: bytes | Certificate,
    issuer_key: sm2.PrivateKey,
    subject_key: sm2.PublicKey,
    *,
    common_name: str,
    organization: str | None = None,
    uscc: str | None = None,
    not_before: datetime,
    not_after: datetime,
    usage: str = "signing",
    serial: int | None = None,
    path_length: int | None = 0,
) -> bytes:
    """A certificate (DER) for ``subject_key`` signed by the CA ``issuer_cert``/``issuer_key``.

    usage: "signing" (digitalSignature+nonRepudiation), "seal_maker" (digitalSignature),
    "ca" (intermediate CA, pathLen ``path_length``). Refuses a non-CA issuer, a key that
    does not match the issuer certificate, and a validity ending after the issuer's.
    """
    if usage not in USAGES:
        raise CertificateError(f"usage must be one of {sorted(USAGES)}, got {usage!r}", f"不支持的证书用途：{usage}")
    if not isinstance(subject_key, sm2.PublicKey):
        raise CertificateError("subject_key must be an sm2.PublicKey", "主体公钥必须是 SM2 公钥")
    issuer = _as_cert(issuer_cert)
    if not issuer.is_sm2 or issuer.public_key != issuer_key.public_key:
        raise CertificateError(
            "issuer_key does not match the issuer certificate's public key", "签发者私钥与签发者证书公钥不匹配"
        )
    if not issuer.is_ca or (issuer.has_key_usage and "key_cert_sign" not in issuer.key_usage):
        raise CertificateError(
            f"issuer certificate is not a CA allowed to sign certificates: {issuer.subject_text}",
            f"签发者证书不是可签发证书的 CA：{issuer.subject_text}",
        )
    if _utc(not_after, "not_after") > issuer.not_after:
        raise CertificateError(
            f"not_after {not_after.isoformat()} is after the issuer certificate expires ({issuer.not_after.isoformat()})",
            "证书失效时间晚于签发者证书失效时间",
        )
    exts = _extensions(usage, _ski(subject_key.point), issuer.ski, path_length)
    subject = subject_name(common_name, organization, uscc)
    return _sign(issuer.asn1["tbs_certificate"]["subject"], issuer_key, subject, subject_key, not_before, not_after, serial, exts)


# --------------------------------------------------------------------------- verification

def verify_signed_by(cert: bytes | Certificate, issuer: bytes | Certificate) -> bool:
    """True iff ``issuer``'s SM2 key signed ``cert``'s TBSCertificate with SM2-with-SM3. Never raises."""
    try:
        cert, issuer = _as_cert(cert), _as_cert(issuer)
    except (CertificateError, TypeError):
        return False
    return _signed_by(cert, issuer)


@functools.lru_cache(maxsize=1024)
def _signed_by(cert: Certificate, issuer: Certificate) -> bool:
    """Memoised: a pure function of the two certificates (hashed and compared by their DER)."""
    try:
        if cert.signature_algorithm != SM3_WITH_SM2 or not issuer.is_sm2:
            return False
        return issuer.public_key.verify(cert.tbs_der, cert.signature)
    except (CertificateError, sm2.SM2Error, TypeError):
        return False


_MESSAGES = {
    "malformed": ("certificate is malformed: {detail}", "证书格式错误：{detail}"),
    "untrusted": ("no path to a trusted root from {subject}", "无法从 {subject} 构建到受信任根证书的路径"),
    "bad_signature": ("signature of {subject} does not verify with its issuer's key", "{subject} 的签名无法用签发者公钥验证"),
    "expired": ("{subject} expired at {detail}", "{subject} 已于 {detail} 过期"),
    "not_yet_valid": ("{subject} is not valid before {detail}", "{subject} 在 {detail} 之前尚未生效"),
    "not_ca": ("{subject} issued a certificate but is not a CA (basicConstraints CA:TRUE missing)", "{subject} 不是 CA 证书却签发了证书"),
    "key_usage": ("{subject} lacks key usage {detail}", "{subject} 缺少密钥用途 {detail}"),
    "path_length": ("{subject} allows at most {detail} CA certificates below it", "{subject} 的路径长度约束为 {detail}，已被超出"),
    "unsupported_algorithm": ("{subject} uses an algorithm other than SM2/SM3: {detail}", "{subject} 使用了非 SM2/SM3 算法：{detail}"),
    "unsupported_extension": ("{subject} has an unsupported critical extension: {detail}", "{subject} 含有不支持的关键扩展：{detail}"),
}


@dataclass(frozen=True)
class ChainError:
    code: str
    message_en: str
    message_zh: str
    subject: str

    @classmethod
    def make(cls, code: str, subject: str, detail: object = "") -> "ChainError":
        en, zh = _MESSAGES[code]
        return cls(code, en.format(subject=subject, detail=detail), zh.format(subject=subject, detail=detail), subject)


@dataclass
class ChainResult:
    ok: bool
    chain: list[Certificate]
    errors: list[ChainError]

    @property
    def codes(self) -> set[str]:
        return {e.code for e in self.errors}


def _issuers(child: Certificate, by_subject: dict[str, list[Certificate]]) -> list[Certificate]:
    """Candidates whose subject matches child's issuer name (RFC 5280 7.1) and, when both are present, AKI = SKI."""
    return [
        p for p in by_subject.get(child._issuer_key, ()) if child.aki is None or p.ski is None or child.aki == p.ski
    ]


def _index(certs: list[Certificate]) -> dict[str, list[Certificate]]:
    index: dict[str, list[Certificate]] = {}
    for c in certs:
        index.setdefault(c._subject_key, []).append(c)
    return index


def _build_paths(leaf: Certificate, roots: list[Certificate], inters: list[Certificate]):
    """Depth-first candidate paths leaf -> ... -> trust root (bounded length and work, no repeats).

    Returns (complete paths, longest incomplete path)."""
    complete: list[list[Certificate]] = []
    longest = [leaf]
    budget = _SEARCH_BUDGET
    root_index, inter_index = _index(roots), _index(inters)

    def walk(path: list[Certificate]):
        nonlocal budget, longest
        budget -= 1
        cur = path[-1]
        if len(path) > len(longest):
            longest = list(path)
        for root in _issuers(cur, root_index):
            if root not in path:
                complete.append(path + [root])
        if len(path) + 1 >= MAX_PATH:
            return
        for inter in _issuers(cur, inter_index):
            if budget > 0 and inter not in path:
                walk(path + [inter])

    if leaf in roots:
        complete.append([leaf])
    else:
        walk([leaf])
    return complete, longest


def _check_path(path: list[Certificate], at: datetime, required_usage: set[str] | None, anchored: bool) -> list[ChainError]:
    errors: list[ChainError] = []
    n = len(path)
    for i, c in enumerate(path):
        who = c.subject_text
        if at < c.not_before:
            errors.append(ChainError.make("not_yet_valid", who, c.not_before.isoformat()))
        elif at > c.not_after:
            errors.append(ChainError.make("expired", who, c.not_after.isoformat()))
        if not c.is_sm2:
            errors.append(ChainError.make("unsupported_algorithm", who, f"public key {c.key_algorithm}"))
        if c.unknown_critical:
            errors.append(ChainError.make("unsupported_extension", who, ", ".join(c.unknown_critical)))
        if i + 1 < n:  # c is signed by path[i+1]
            if c.signature_algorithm != SM3_WITH_SM2:
                errors.append(ChainError.make("unsupported_algorithm", who, f"signature {c.signature_algorithm}"))
            elif path[i + 1].is_sm2 and not verify_signed_by(c, path[i + 1]):
                errors.append(ChainError.make("bad_signature", who))
        if i > 0:  # c issued path[i-1]
            if not c.is_ca:
                errors.append(ChainError.make("not_ca", who))
            # RFC 5280 6.1.4: a trust anchor's own keyUsage is not processed (ofdrw's root lacks keyCertSign).
            if not (anchored and i == n - 1) and c.has_key_usage and "key_cert_sign" not in c.key_usage:
                errors.append(ChainError.make("key_usage", who, "key_cert_sign"))
            if c.path_length is not None and i - 1 > c.path_length:
                errors.append(ChainError.make("path_length", who, c.path_length))
    leaf = path[0]
    missing = sorted(set(required_usage or ()) - leaf.key_usage) if leaf.has_key_usage else []
    if missing:
        errors.append(ChainError.make("key_usage", leaf.subject_text, ", ".join(missing)))
    return errors


def verify_chain(
    cert: bytes | Certificate,
    trust_roots: Iterable[Certificate | bytes],
    *,
    intermediates: Iterable[Certificate | bytes] = (),
    at: datetime,
    required_usage: set[str] | None = None,
) -> ChainResult:
    """Validate ``cert`` at time ``at`` against ``trust_roots``, using ``intermediates`` as needed.

    Every problem found on the best path is reported (e.g. 'expired' together with 'untrusted').
    ``required_usage`` names asn1crypto keyUsage bits the leaf must carry (a leaf without a
    keyUsage extension is unrestricted, RFC 5280 4.2.1.3). A malformed trust root or an
    unknown usage name raises CertificateError (caller's error); malformed intermediates are
    ignored (they come from untrusted documents).
    """
    at = _utc(at, "at")
    unknown = set(required_usage or ()) - set(ax.KeyUsage._map.values())
    if unknown:
        raise CertificateError(f"unknown key usage names: {sorted(unknown)}", f"未知的密钥用途：{sorted(unknown)}")
    roots = [_as_cert(r) for r in trust_roots]
    try:
        leaf = _as_cert(cert)
    except CertificateError as exc:
        return ChainResult(False, [], [ChainError.make("malformed", "(unparseable certificate)", exc.message_en)])
    inters, seen = [], {r.der for r in roots}
    for raw in intermediates:
        try:
            c = _as_cert(raw)
        except CertificateError:
            continue
        if c.der not in seen:
            seen.add(c.der)
            inters.append(c)

    complete, longest = _build_paths(leaf, roots, inters)
    best: tuple[list[Certificate], list[ChainError]] | None = None
    for path in complete:
        errs = _check_path(path, at, required_usage, anchored=True)
        if not errs:
            return ChainResult(True, path, [])
        if best is None or len(errs) < len(best[1]):
            best = (path, errs)
    if best is None:
        errs = _check_path(longest, at, required_usage, anchored=False)
        errs.append(ChainError.make("untrusted", longest[-1].subject_text))
        best = (longest, errs)
    return ChainResult(False, best[0], best[1])
