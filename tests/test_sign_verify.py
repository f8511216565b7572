"""Sealing our licences and verifying them: every tamper gives `invalid` with the right check."""

from __future__ import annotations

import io
import subprocess
import zipfile
from datetime import datetime, timedelta, timezone

import pytest

from keys import sm2
from keys.config import load_settings
from keys.sm3 import sm3
from keys.store import KeyStore
from keys.x509 import Certificate
from ofd import layout
from ofd.package import Package
from signer import ses
from signer.issue import LicenceIssuer, load_identity
from signer.ofd_sign import SigningIdentity, StampPlacement, sign_package
from verifier.ofd_verify import verify_ofd
from verifier.trust import TrustConfig

from .conftest import gmssl_oracle, make_record

T0 = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=5)  # keys are made at test start


def unzip(data: bytes) -> Package:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return Package({n: zf.read(n) for n in zf.namelist()})


@pytest.fixture(scope="module")
def issuer(dev_store, dev_issuer):
    return LicenceIssuer(dev_store, dev_issuer.code)


@pytest.fixture(scope="module")
def trust(dev_store):
    return TrustConfig(roots=[Certificate.load(dev_store.root().cert_der)], at=T0 + timedelta(days=1))


@pytest.fixture(scope="module")
def signed(issuer, dev_issuer):
    return issuer.issue(make_record(dev_issuer.code, dev_issuer.name), when=T0)


def failing(report) -> set[str]:
    return {c.name for c in report.failed()}


def test_our_licence_verifies(signed, trust):
    r = verify_ofd(signed.data, trust)
    assert r.verdict == "valid", [c.to_dict() for c in r.checks if c.status != "pass"]
    names = {c.name for c in r.checks if c.status == "pass"}
    assert {"package", "references", "coverage", "data_hash", "signature", "seal_signature", "seal_validity",
            "seal_cert_list", "seal_match", "signer_cert_validity", "certificate_chain"} <= names
    assert r.signatures[0].kid == signed.kid


def test_untrusted_root_is_indeterminate(signed):
    r = verify_ofd(signed.data, TrustConfig(at=T0 + timedelta(days=1)))
    assert r.verdict == "indeterminate"
    assert not r.failed()


def test_signed_package_layout(signed):
    pkg = unzip(signed.data)
    assert "Doc_0/Signs/Signatures.xml" in pkg
    assert {"Doc_0/Signs/Sign_0/Signature.xml", "Doc_0/Signs/Sign_0/SignedValue.dat", "Doc_0/Signs/Sign_0/Seal.esl"} <= set(pkg.names())
    sv = ses.parse_signed_value(pkg["Doc_0/Signs/Sign_0/SignedValue.dat"])
    assert sv.version == 4
    assert sv.data_hash == sm3(pkg["Doc_0/Signs/Sign_0/Signature.xml"])
    assert sv.seal_raw == pkg["Doc_0/Signs/Sign_0/Seal.esl"]
    assert sv.property_info == "/Doc_0/Signs/Sign_0/Signature.xml"


def _mutations(pkg: Package):
    for name, data in pkg.files.items():
        for pos in sorted({0, len(data) // 3, len(data) // 2, len(data) - 1}):
            m = pkg.copy()
            b = bytearray(data)
            b[pos] ^= 0x01
            m[name] = bytes(b)
            yield name, pos, m


def test_every_single_byte_change_is_invalid(signed, trust):
    pkg = unzip(signed.data)
    seen = 0
    for name, pos, m in _mutations(pkg):
        r = verify_ofd(m.to_bytes(), trust)
        if name.endswith("Signatures.xml") and r.verdict == "valid":
            # Signatures.xml is deliberately not covered (so a second signature can be added);
            # a flipped byte that still lists the same signature (e.g. inside the ID) must change nothing else.
            assert b"Sign_0/Signature.xml" in m[name] and b"Seal" in m[name]
            continue
        seen += 1
        assert r.verdict == "invalid", (name, pos, [c.to_dict() for c in r.checks])
        f = failing(r)
        if name.endswith("Signature.xml"):
            assert f & {"data_hash", "signature_xml", "package"}, (name, pos, f)
        elif name.endswith("SignedValue.dat"):
            assert f & {"signed_value", "signature", "data_hash", "seal_match", "signer_cert"}, (name, pos, f)
        elif not name.endswith("Signatures.xml"):
            # a structural XML file that no longer parses stops at the package check
            assert f & {"references", "package"}, (name, pos, f)
    assert seen >= 4 * (len(pkg.names()) - 1)


def test_added_file_is_invalid(signed, trust):
    pkg = unzip(signed.data)
    pkg["Doc_0/Pages/Page_1/Content.xml"] = pkg["Doc_0/Pages/Page_0/Content.xml"]
    r = verify_ofd(pkg.to_bytes(), trust)
    assert r.verdict == "invalid" and "coverage" in failing(r)


def test_removed_file_is_invalid(signed, trust):
    pkg = unzip(signed.data)
    victim = next(n for n in pkg.names() if n.startswith("Doc_0/Res/") or n.endswith("PublicRes.xml"))
    del pkg.files[victim]
    r = verify_ofd(pkg.to_bytes(), trust)
    assert r.verdict == "invalid" and "references" in failing(r)


def test_swapped_signed_value_is_invalid(issuer, dev_issuer, signed, trust):
    other = issuer.issue(make_record(dev_issuer.code, dev_issuer.name, seq=7, name="李另一"), when=T0)
    pkg, opkg = unzip(signed.data), unzip(other.data)
    pkg["Doc_0/Signs/Sign_0/SignedValue.dat"] = opkg["Doc_0/Signs/Sign_0/SignedValue.dat"]
    r = verify_ofd(pkg.to_bytes(), trust)
    assert r.verdict == "invalid" and "data_hash" in failing(r)


@pytest.fixture(scope="module")
def second_issuer(dev_store):
    dev_store.add_issuer("91110000600037341L", "另一测试应急管理局")
    dev_store.create_key("91110000600037341L", "signing")
    return LicenceIssuer(dev_store, "91110000600037341L")


def test_seal_of_another_issuer_is_invalid(dev_store, dev_issuer, issuer, second_issuer, trust):
    mine, theirs = issuer.identity(), second_issuer.identity()
    forged = SigningIdentity(key=mine.key, cert_der=mine.cert_der, seal_der=theirs.seal_der, kid=mine.kid)
    from ofd.licence.model import validate_record

    lic = validate_record(make_record(dev_issuer.code, dev_issuer.name, seq=3))
    pkg = layout.build_licence_package(lic, qr_text="x", created=T0)
    out = sign_package(pkg, forged, when=T0, stamps=[StampPlacement(layout.PAGE_ID, layout.SEAL_BOX_MM)])
    r = verify_ofd(out.to_bytes(), trust)
    assert r.verdict == "invalid" and "seal_cert_list" in failing(r)
    # and replacing only Seal.esl of a good licence
    good = unzip(issuer.issue(make_record(dev_issuer.code, dev_issuer.name, seq=4), when=T0).data)
    good["Doc_0/Signs/Sign_0/Seal.esl"] = theirs.seal_der
    r = verify_ofd(good.to_bytes(), trust)
    assert r.verdict == "invalid" and {"seal_match", "references"} <= failing(r)


@pytest.mark.parametrize("when,label", [(timedelta(days=365 * 40), "expired"), (timedelta(days=-365 * 10), "not yet valid")])
def test_certificate_outside_validity_is_invalid(issuer, dev_issuer, dev_store, when, label):
    t = T0 + when
    rec = issuer.issue(make_record(dev_issuer.code, dev_issuer.name, seq=5), when=t)
    r = verify_ofd(rec.data, TrustConfig(roots=[Certificate.load(dev_store.root().cert_der)], at=t + timedelta(days=1)))
    assert r.verdict == "invalid"
    check = next(c for c in r.checks if c.name == "signer_cert_validity")
    assert check.status == "fail" and label in check.reason_en


def test_second_signature_keeps_first_valid(signed, second_issuer, trust):
    pkg = unzip(signed.data)
    out = sign_package(pkg, second_issuer.identity(), when=T0 + timedelta(hours=1),
                       stamps=[StampPlacement(layout.PAGE_ID, (10, 10, 30, 30))])
    assert "Doc_0/Signs/Sign_1/Signature.xml" in out
    r = verify_ofd(out.to_bytes(), trust)
    assert r.verdict == "valid", [c.to_dict() for c in r.checks if c.status != "pass"]
    assert len(r.signatures) == 2


def test_issuer_path_is_deterministic_apart_from_the_signature(issuer, dev_issuer):
    rec = make_record(dev_issuer.code, dev_issuer.name, seq=9)
    # The signed QR payload carries a (randomised) SM2 signature too, so fix the QR text here.
    a = unzip(issuer.issue(rec, when=T0, qr_text="https://portal.example/v#fixed").data)
    b = unzip(issuer.issue(rec, when=T0, qr_text="https://portal.example/v#fixed").data)
    assert a.names() == b.names()
    for n in a.names():
        if not n.endswith("SignedValue.dat"):
            assert a[n] == b[n], n


def test_openssl_cli_and_gmssl_recheck_our_signed_value(signed, tmp_path):
    pkg = unzip(signed.data)
    sv = ses.parse_signed_value(pkg["Doc_0/Signs/Sign_0/SignedValue.dat"])
    cert = Certificate.load(sv.signer_cert)
    (tmp_path / "tbs.der").write_bytes(sv.tbs_der)
    (tmp_path / "sig.der").write_bytes(sv.signature)
    (tmp_path / "pub.pem").write_bytes(cert.public_key.to_pem())
    res = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), "-rawin", "-digest", "sm3",
         "-in", str(tmp_path / "tbs.der"), "-sigfile", str(tmp_path / "sig.der"), "-pkeyopt", "distid:1234567812345678"],
        capture_output=True)
    assert res.returncode == 0, res.stderr
    oracle = gmssl_oracle(cert.public_key.point)
    assert oracle.verify_with_sm3(sm2.to_raw(sv.signature).hex(), sv.tbs_der)
    assert not oracle.verify_with_sm3(sm2.to_raw(sv.signature).hex(), sv.tbs_der + b"\x00")


def test_garbage_is_a_verdict_not_an_exception(trust):
    for data in (b"", b"not a zip", b"PK\x03\x04" + b"\x00" * 100):
        r = verify_ofd(data, trust)
        assert r.verdict == "invalid" and "package" in failing(r)


SCHEMAS = __import__("tests.conftest", fromlist=["SHARED"]).SHARED / "schemas" / "ofd"


def _schema(name):
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(SCHEMAS / name)))


def test_signature_files_validate_against_annex_a_except_check_method(signed, second_issuer):
    from lxml import etree

    pkg = unzip(sign_package(unzip(signed.data), second_issuer.identity(), when=T0,
                             stamps=[StampPlacement(layout.PAGE_ID, (1, 1, 20, 20))]).to_bytes())
    sigs = _schema("Signatures.xsd")
    assert sigs.validate(etree.fromstring(pkg["Doc_0/Signs/Signatures.xml"])), sigs.error_log
    sig_schema = _schema("Signature.xsd")
    for n in ("Doc_0/Signs/Sign_0/Signature.xml", "Doc_0/Signs/Sign_1/Signature.xml"):
        doc = etree.fromstring(pkg[n])
        assert not sig_schema.validate(doc)
        errors = [e.message for e in sig_schema.error_log]
        assert len(errors) == 1 and "CheckMethod" in errors[0] and "1.2.156.10197.1.401" in errors[0], errors
        # ... and it is the only deviation: with a 2016-enumerated value the file is valid
        doc.find("{http://www.ofdspec.org/2016}SignedInfo/{http://www.ofdspec.org/2016}References").set("CheckMethod", "SHA1")
        assert sig_schema.validate(doc), sig_schema.error_log
    ofd_schema = _schema("OFD.xsd")
    assert ofd_schema.validate(etree.fromstring(pkg["OFD.xml"])), ofd_schema.error_log
