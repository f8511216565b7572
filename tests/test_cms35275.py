"""signer/cms35275.py: the real yunnan GB/T 35275 signatures, ofdrw-style messages built here, hostile DER."""

from __future__ import annotations

import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from asn1crypto import cms, core, pem, x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import sm2
from keys.oids import SM3, SM3_WITH_SM2
from keys.sm3 import sm3
from signer import ses
from signer.cms35275 import GBT35275_SIGNED_DATA, PKCS7_SIGNED_DATA, CMSError, parse_cms_signed_data

SAMPLES = Path("/work/shared/samples")
YUNNAN = SAMPLES / "yunnan_gbt35275_cms_two_signs.ofd"
pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="reference samples not present")
GBT35275_DATA = "1.2.156.10197.6.1.4.2.1"


def cert_key(cert_der: bytes) -> sm2.PublicKey:
    spki = x509.Certificate.load(cert_der)["tbs_certificate"]["subject_public_key_info"]
    return sm2.PublicKey.from_bytes(bytes(spki["public_key"]))


def wrap(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + ses._der_len(len(content)) + content


def yunnan(i: int) -> tuple[bytes, bytes]:
    with zipfile.ZipFile(YUNNAN) as z:
        return z.read(f"Doc_0/Signs/Sign_{i}/SignedValue.dat"), z.read(f"Doc_0/Signs/Sign_{i}/Signature.xml")


@pytest.fixture(scope="module")
def pair():
    key = sm2.PrivateKey.from_pem((SAMPLES / "keys" / "sign_key.pem").read_bytes())
    _, _, cert = pem.unarmor((SAMPLES / "keys" / "sign_cert.pem").read_bytes())
    return key, cert


def signer_info(key, cert: bytes, message: bytes, serial_delta: int = 0) -> dict:
    c = x509.Certificate.load(cert)
    return {
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number",
                                    value={"issuer": c.issuer, "serial_number": c.serial_number + serial_delta}),
        "digest_algorithm": {"algorithm": SM3},
        "signature_algorithm": {"algorithm": SM3_WITH_SM2},
        "signature": key.sign(message),
    }


def content_info(signed_data: cms.SignedData, oid: str = GBT35275_SIGNED_DATA) -> bytes:
    return wrap(0x30, core.ObjectIdentifier(oid).dump() + wrap(0xA0, signed_data.dump()))


def ofdrw_style(key, cert: bytes, digest: bytes, infos=None) -> cms.SignedData:
    """ofdrw GBT35275DSContainer: no signed attributes; the content is SM3(Signature.xml), signed as the message."""
    return cms.SignedData({
        "version": "v1",
        "digest_algorithms": [{"algorithm": SM3}],
        "encap_content_info": cms.ContentInfo.load(  # asn1crypto cannot tag content of an unknown type
            wrap(0x30, core.ObjectIdentifier(GBT35275_DATA).dump() + wrap(0xA0, core.OctetString(digest).dump()))),
        "certificates": [x509.Certificate.load(cert)],
        "signer_infos": infos or [signer_info(key, cert, digest)],
    })


@pytest.mark.parametrize("i", [0, 1])
def test_yunnan_signatures_verify(i):
    raw, signature_xml = yunnan(i)
    sig = parse_cms_signed_data(raw)
    assert sig.content_type == GBT35275_SIGNED_DATA
    assert sig.digest_alg == SM3 and sig.signature_alg == "1.2.156.10197.1.301.1"
    assert sig.message_digest == sm3(signature_xml)
    assert sig.signing_time == datetime(2022, 9, 3, 5, 41, 27, tzinfo=timezone.utc)
    assert sig.encap_content is None  # detached
    assert sig.signer_cert is not None and sig.certificates == [sig.signer_cert]
    # the [0] IMPLICIT attributes as they sit in the file, re-tagged as SET OF
    assert sig.signed_attrs_der[0] == 0x31 and b"\xa0" + sig.signed_attrs_der[1:] in raw
    assert cert_key(sig.signer_cert).verify(sig.signed_attrs_der, sig.signature)
    assert not cert_key(sig.signer_cert).verify(b"\xa0" + sig.signed_attrs_der[1:], sig.signature)


def test_ofdrw_style_without_signed_attributes(pair):
    key, cert = pair
    digest = sm3(b"<ofd:Signature/>")
    sig = parse_cms_signed_data(content_info(ofdrw_style(key, cert, digest)))
    assert sig.signed_attrs_der is None and sig.message_digest is None and sig.signing_time is None
    assert sig.encap_content == digest and sig.signer_cert == cert and sig.signature_alg == SM3_WITH_SM2
    assert cert_key(sig.signer_cert).verify(sig.encap_content, sig.signature)


def test_pkcs7_signed_data_oid_is_accepted(pair):
    key, cert = pair
    sig = parse_cms_signed_data(content_info(ofdrw_style(key, cert, b"d"), PKCS7_SIGNED_DATA))
    assert sig.content_type == PKCS7_SIGNED_DATA and sig.encap_content == b"d"


def test_unmatched_signer_identifier_gives_no_signer_cert(pair):
    key, cert = pair
    sig = parse_cms_signed_data(content_info(ofdrw_style(key, cert, b"d", [signer_info(key, cert, b"d", 1)])))
    assert sig.signer_cert is None and sig.certificates == [cert]


def test_two_signers_are_refused(pair):
    key, cert = pair
    infos = [signer_info(key, cert, b"d"), signer_info(key, cert, b"d")]
    with pytest.raises(CMSError) as err:
        parse_cms_signed_data(content_info(ofdrw_style(key, cert, b"d", infos)))
    assert err.value.code == "unsupported" and err.value.message_zh


def with_signed_attrs(key, cert: bytes, attrs: list) -> bytes:
    """GB/T 35275 with PKCS#9 signed attributes (ofdrw GBT35275PKCS9DSContainer, gomain): detached content."""
    signed_attrs = cms.CMSAttributes(attrs)
    info = signer_info(key, cert, signed_attrs.dump())  # asn1crypto dumps a bare CMSAttributes as SET OF
    info["signed_attrs"] = signed_attrs
    sd = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [{"algorithm": SM3}],
        "encap_content_info": {"content_type": GBT35275_DATA},
        "certificates": [x509.Certificate.load(cert)],
        "signer_infos": [info],
    })
    return content_info(sd)


def attr(kind: str, value) -> dict:
    return {"type": kind, "values": [value]}


def test_our_own_signed_attributes_round_trip(pair):
    key, cert = pair
    digest = sm3(b"<ofd:Signature/>")
    when = datetime(2026, 11, 23, 8, 0, 0, tzinfo=timezone.utc)
    raw = with_signed_attrs(key, cert, [attr("content_type", GBT35275_DATA), attr("message_digest", digest),
                                        attr("signing_time", cms.Time(name="utc_time", value=when))])
    sig = parse_cms_signed_data(raw)
    assert sig.message_digest == digest and sig.signing_time == when and sig.encap_content is None
    assert sig.signed_attrs_der[0] == 0x31 and cert_key(sig.signer_cert).verify(sig.signed_attrs_der, sig.signature)


def test_duplicate_message_digest_is_refused(pair):
    key, cert = pair
    md = attr("message_digest", sm3(b"x"))
    with pytest.raises(CMSError) as err:
        parse_cms_signed_data(with_signed_attrs(key, cert, [attr("content_type", GBT35275_DATA), md, md]))
    assert err.value.code == "bad_structure" and "message_digest" in err.value.message_en


@pytest.mark.parametrize("der, code", [
    (b"\x30\x06\x02\x01\x01\x02\x01\x02", "not_cms"),       # a bare SM2 signature
    (b"\x30\x09\x06\x03\x2a\x03\x04\xa0\x02\x30\x00", "not_cms"),  # another content type
    (b"", "empty"),
    (b"\x30\x80\x00\x00", "indefinite_length"),
])
def test_not_cms(der, code):
    with pytest.raises(CMSError) as err:
        parse_cms_signed_data(der)
    assert err.value.code == code
    assert isinstance(err.value, ses.SESError)


def test_ses_signed_value_is_not_cms():
    with zipfile.ZipFile(SAMPLES / "ofdrw_v4_riding_seal.ofd") as z:
        raw = z.read("Doc_0/Signs/Sign_0/SignedValue.dat")
    with pytest.raises(CMSError, match="not_cms"):
        parse_cms_signed_data(raw)


def test_every_truncation_fails_cleanly():
    raw, _ = yunnan(0)
    body = core.Asn1Value.load(raw).contents
    for n in range(len(raw)):
        with pytest.raises(CMSError):
            parse_cms_signed_data(raw[:n])
    for n in range(len(body)):  # re-wrapped so the error must come from inside
        with pytest.raises(CMSError):
            parse_cms_signed_data(wrap(0x30, body[:n]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 1601), st.integers(0, 255)), min_size=1, max_size=4),
       st.one_of(st.none(), st.integers(0, 1601)))
def test_mutated_cms_raises_only_cms_error(edits, cut):
    raw, _ = yunnan(0)
    buf = bytearray(raw)
    for pos, val in edits:
        buf[pos % len(buf)] = val
    if cut is not None:
        del buf[cut:]
    try:
        parse_cms_signed_data(bytes(buf))
    except CMSError as exc:
        assert exc.code and exc.message_en and exc.message_zh
