"""GB/T 35275 (SM2 cryptographic message syntax) SignedData: parse only.

An OFD signature of Type="Sign" may carry, instead of an SES_Signature, a GB/T 35275
ContentInfo{1.2.156.10197.6.1.4.2.2, SignedData} (GM/T 0099 §7.2.2; STANDARDS §4.4).
The layout is PKCS#7/CMS SignedData with SM OIDs, so asn1crypto's `cms.SignedData`
schema reads it; this module only adds strict DER framing (shared with `signer.ses`),
the GB/T 35275 outer OID, and the few values a verifier needs:

  * with signed attributes (e.g. gomain, ofdrw GBT35275PKCS9DSContainer): the signature
    is over DER(SET OF attributes), i.e. the [0] IMPLICIT bytes re-tagged 0x31 (RFC 5652
    §5.4), and messageDigest = SM3(Signature.xml);
  * without (ofdrw GBT35275DSContainer): the signature is over the encapsulated content,
    which is SM3(Signature.xml) itself.

Signing with CMS is out of scope: ecert signs with GB/T 38540 seals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from asn1crypto import cms, x509

from .ses import SESError, check_der, der_children

__all__ = ["CMSError", "CmsSignature", "parse_cms_signed_data", "GBT35275_SIGNED_DATA", "PKCS7_SIGNED_DATA"]

GBT35275_SIGNED_DATA = "1.2.156.10197.6.1.4.2.2"
PKCS7_SIGNED_DATA = "1.2.840.113549.1.7.2"  # same structure; some vendors use the RSA-era OID
_SIGNED_DATA_OIDS = {GBT35275_SIGNED_DATA, PKCS7_SIGNED_DATA}
_OID_DER = {oid: b"\x06" + bytes((len(b),)) + b for oid, b in (
    (o, cms.ContentType(o).contents) for o in _SIGNED_DATA_OIDS)}


class CMSError(SESError):
    """Malformed or unsupported GB/T 35275 message (a SESError, so one except clause catches both)."""


@dataclass(frozen=True)
class CmsSignature:
    """The one signer of a GB/T 35275 SignedData, with what a verifier needs."""

    certificates: list[bytes]
    signer_cert: bytes | None           # the certificate matching the SignerInfo sid, if present
    digest_alg: str                     # dotted OID (SM3: 1.2.156.10197.1.401)
    signature_alg: str                  # dotted OID (SM2-1 1.2.156.10197.1.301.1 or SM3withSM2 .1.501)
    signature: bytes
    signed_attrs_der: bytes | None      # DER SET OF Attribute: the bytes the signature covers
    message_digest: bytes | None
    signing_time: datetime | None       # UTC-aware
    encap_content: bytes | None         # detached when None
    content_type: str = GBT35275_SIGNED_DATA


def _sid_matches(sid, cert: x509.Certificate) -> bool:
    if sid.name == "issuer_and_serial_number":
        ias = sid.chosen
        return ias["serial_number"].native == cert.serial_number and ias["issuer"] == cert.issuer
    return sid.chosen.native == cert.key_identifier


def _single(attrs, name: str):
    values = [a["values"] for a in attrs if a["type"].native == name]
    if not values:
        return None
    if len(values) > 1 or len(values[0]) != 1:
        raise CMSError("bad_structure", f"signed attribute {name} must occur once with one value",
                       f"签名属性 {name} 必须且只能出现一次、只有一个值")
    return values[0][0]


def _extract(buf: bytes, content_type: str, signed_data: bytes) -> CmsSignature:
    sd = cms.SignedData.load(signed_data, strict=True)
    certs = [c.chosen for c in (sd["certificates"] or []) if c.name == "certificate"]
    infos = sd["signer_infos"]
    if len(infos) != 1:
        raise CMSError("unsupported", f"{len(infos)} SignerInfos; OFD signatures carry exactly one",
                       f"含 {len(infos)} 个签名者信息；OFD 签名应只有一个")
    si = infos[0]
    signer = next((c for c in certs if _sid_matches(si["sid"], c)), None)
    attrs = si["signed_attrs"]
    signed_attrs_der = digest = when = None
    if len(attrs):
        signed_attrs_der = b"\x31" + attrs.dump()[1:]  # [0] IMPLICIT -> SET OF (RFC 5652 §5.4)
        md = _single(attrs, "message_digest")
        digest = bytes(md.native) if md is not None else None
        st = _single(attrs, "signing_time")
        if st is not None:
            when = st.native
            if not isinstance(when, datetime) or when.tzinfo is None:
                raise CMSError("bad_time", "signingTime is not a UTC time", "签名时间不是带时区的时间")
            when = when.astimezone(timezone.utc)
    content = sd["encap_content_info"]["content"].native  # OCTET STRING (any eContentType) or absent
    if content is not None and not isinstance(content, bytes):
        raise CMSError("bad_structure", "encapsulated content is not an OCTET STRING", "原文内容不是 OCTET STRING")
    return CmsSignature(
        certificates=[c.dump() for c in certs],
        signer_cert=signer.dump() if signer is not None else None,
        digest_alg=si["digest_algorithm"]["algorithm"].dotted,
        signature_alg=si["signature_algorithm"]["algorithm"].dotted,
        signature=bytes(si["signature"].native),
        signed_attrs_der=signed_attrs_der,
        message_digest=digest,
        signing_time=when,
        encap_content=content,
        content_type=content_type,
    )


def parse_cms_signed_data(der) -> CmsSignature:
    """Parse ContentInfo{GB/T 35275 signedData, [0] SignedData}. Raises CMSError when malformed."""
    try:
        buf = check_der(der, "CMS SignedData")
    except SESError as exc:
        raise CMSError(exc.code, exc.message_en, exc.message_zh) from None
    kids = der_children(buf) if buf[0] == 0x30 else []
    oid = next((o for o, d in _OID_DER.items() if kids and buf[kids[0][1]:kids[0][3]] == d), None)
    if len(kids) != 2 or oid is None or kids[1][0] != 0xA0:
        raise CMSError("not_cms", "not a GB/T 35275 ContentInfo{signedData, [0] SignedData}",
                       "不是 GB/T 35275 签名数据（ContentInfo{signedData, [0] SignedData}）")
    inner = der_children(buf, kids[1][1])
    if len(inner) != 1 or inner[0][0] != 0x30:
        raise CMSError("bad_structure", "[0] content must hold exactly one SignedData SEQUENCE",
                       "[0] 内容必须恰好是一个 SignedData 结构")
    try:
        return _extract(buf, oid, buf[inner[0][1]:inner[0][3]])
    except CMSError:
        raise
    except Exception as exc:  # asn1crypto reports schema mismatches as assorted exceptions
        detail = str(exc).replace("\n", " ")[:200] or type(exc).__name__
        raise CMSError("bad_structure", f"SignedData does not match its ASN.1 schema: {detail}",
                       f"SignedData 不符合 ASN.1 结构定义：{detail}") from None
