"""SM2 X.509 certificates (keys/x509.py): build, parse, chain checks, interop with OpenSSL and gmssl."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from asn1crypto import x509 as ax
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import sm2
from keys.oids import SM3_WITH_SM2
from keys.x509 import (
    Certificate,
    CertificateError,
    ChainResult,
    build_root,
    check_uscc,
    issue_certificate,
    key_id,
    verify_chain,
    verify_signed_by,
)

SAMPLES = Path("/work/shared/samples/keys")
UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
T_ROOT_END = datetime(2044, 1, 1, tzinfo=UTC)
T_LEAF_END = datetime(2027, 1, 1, tzinfo=UTC)
NOW = datetime(2025, 6, 1, tzinfo=UTC)
USCC = "11100000000013338W"  # 住房和城乡建设部, published in STANDARDS.md; valid GB 32100 check char

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")


@pytest.fixture(scope="module")
def pki():
    """root CA -> intermediate CA -> signing / seal-maker leaves, all ours."""
    root_key, inter_key, leaf_key, maker_key = (sm2.PrivateKey.generate() for _ in range(4))
    root = build_root(root_key, "ecert 测试根 CA", organization="应急管理部", uscc=USCC, not_before=T0, not_after=T_ROOT_END)
    inter = issue_certificate(
        root, root_key, inter_key.public_key, common_name="发证机关 CA", organization="某省应急管理厅",
        not_before=T0, not_after=T_ROOT_END - timedelta(days=1), usage="ca",
    )
    leaf = issue_certificate(
        inter, inter_key, leaf_key.public_key, common_name="特种作业操作证签章", organization="某省应急管理厅",
        uscc=USCC, not_before=T0, not_after=T_LEAF_END,
    )
    maker = issue_certificate(
        inter, inter_key, maker_key.public_key, common_name="制章者", not_before=T0, not_after=T_LEAF_END, usage="seal_maker",
    )
    return dict(
        root=Certificate.load(root), inter=Certificate.load(inter), leaf=Certificate.load(leaf), maker=Certificate.load(maker),
        root_key=root_key, inter_key=inter_key, leaf_key=leaf_key, maker_key=maker_key,
    )


def openssl(*args: str, cwd: Path, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], cwd=cwd, input=input, capture_output=True, timeout=30)


def reissue(base: Certificate, signer: sm2.PrivateKey, *, sig_oid: str = SM3_WITH_SM2, **tbs_changes) -> bytes:
    """Test-only forger: copy ``base``'s TBS, change fields, sign with ``signer`` (bypasses the builder's checks)."""
    old = base.asn1["tbs_certificate"]
    fields = {name: old[name] for name in ("version", "serial_number", "issuer", "validity", "subject",
                                             "subject_public_key_info", "extensions")}
    fields.update(tbs_changes)
    fields["signature"] = {"algorithm": sig_oid}
    tbs = ax.TbsCertificate(fields)
    sig = signer.sign(tbs.dump())
    return ax.Certificate({"tbs_certificate": tbs, "signature_algorithm": {"algorithm": sig_oid}, "signature_value": sig}).dump()


def ca_extensions(path_length: int | None = None) -> list[ax.Extension]:
    """CA extensions without key identifiers, so forged certificates link by name only."""
    return [
        ax.Extension({"extn_id": "basic_constraints", "critical": True,
                      "extn_value": {"ca": True, "path_len_constraint": path_length}}),
        ax.Extension({"extn_id": "key_usage", "critical": True, "extn_value": {"key_cert_sign"}}),
    ]


def codes(result: ChainResult) -> set[str]:
    return {e.code for e in result.errors}


# --------------------------------------------------------------------------- building and parsing

def test_fields_of_built_certificates(pki):
    root, inter, leaf, maker = pki["root"], pki["inter"], pki["leaf"], pki["maker"]
    assert root.subject_cn == "ecert 测试根 CA" and root.subject_org == "应急管理部" and root.subject_uscc == USCC
    assert root.subject_der == root.issuer_der and root.is_ca and root.key_usage == {"key_cert_sign", "crl_sign"}
    assert root.aki is None and len(root.ski) == 20
    assert inter.is_ca and inter.path_length == 0 and inter.aki == root.ski and inter.issuer_der == root.subject_der
    assert leaf.issuer_cn == "发证机关 CA" and leaf.subject_uscc == USCC and not leaf.is_ca
    assert leaf.key_usage == {"digital_signature", "non_repudiation"} and leaf.aki == inter.ski
    assert maker.key_usage == {"digital_signature"} and maker.subject_org is None and maker.subject_uscc is None
    assert leaf.public_key == pki["leaf_key"].public_key
    assert leaf.signature_algorithm == SM3_WITH_SM2 and leaf.version == 3
    assert leaf.not_before == T0 and leaf.not_after == T_LEAF_END and leaf.not_after.tzinfo is not None
    assert leaf.valid_at(T_LEAF_END) and not leaf.valid_at(T_LEAF_END + timedelta(seconds=1))
    assert 2**127 <= leaf.serial < 2**128 and leaf.serial != maker.serial
    # Chinese names are UTF8String, the country PrintableString.
    kinds = {atv["type"].native: atv["value"].name for rdn in leaf.asn1.subject.chosen for atv in rdn}
    assert kinds == {"country_name": "printable_string", "organization_name": "utf8_string",
                     "organization_identifier": "utf8_string", "common_name": "utf8_string"}


def test_kid_pem_roundtrip_and_gmssl_sm3(pki):
    from gmssl import func
    from gmssl import sm3 as gsm3

    leaf = pki["leaf"]
    assert leaf.kid == gsm3.sm3_hash(func.bytes_to_list(leaf.der))[:16]  # independent SM3
    assert key_id(leaf.der) == key_id(leaf.to_pem()) == leaf.kid
    again = Certificate.load(leaf.to_pem())
    assert again == leaf and hash(again) == hash(leaf) and again.der == leaf.der
    bundle = pki["root"].to_pem() + b"\n" + pki["inter"].to_pem() + leaf.to_pem()
    assert [c.kid for c in Certificate.load_all(bundle)] == [pki["root"].kid, pki["inter"].kid, leaf.kid]
    with pytest.raises(Exception):
        leaf.serial = 1  # immutable


def test_explicit_serial_and_generalized_time():
    key = sm2.PrivateKey.generate()
    der = build_root(key, "far future", serial=42, not_before=datetime(2049, 1, 1), not_after=datetime(2060, 1, 1))
    c = Certificate.load(der)
    assert c.serial == 42 and c.not_after == datetime(2060, 1, 1, tzinfo=UTC)  # naive input is taken as UTC
    assert c.asn1["tbs_certificate"]["validity"]["not_after"].name == "general_time"
    assert c.asn1["tbs_certificate"]["validity"]["not_before"].name == "utc_time"


def test_builder_rejects_bad_requests(pki):
    key = sm2.PrivateKey.generate()
    root, root_key, leaf = pki["root"], pki["root_key"], pki["leaf"]
    cases = [
        lambda: build_root(key, "x", uscc="11100000000013338X", not_before=T0, not_after=T_LEAF_END),  # check char
        lambda: build_root(key, "x", uscc="1110000000001333", not_before=T0, not_after=T_LEAF_END),  # length
        lambda: build_root(key, "", not_before=T0, not_after=T_LEAF_END),
        lambda: build_root(key, "x" * 65, not_before=T0, not_after=T_LEAF_END),
        lambda: build_root(key, "x", not_before=T_LEAF_END, not_after=T0),
        lambda: build_root(key, "x", not_before="2024-01-01", not_after=T0),
        lambda: build_root(key, "x", serial=0, not_before=T0, not_after=T_LEAF_END),
        lambda: issue_certificate(root, key, key.public_key, common_name="x", not_before=T0, not_after=T_LEAF_END),  # key mismatch
        lambda: issue_certificate(leaf, pki["leaf_key"], key.public_key, common_name="x", not_before=T0, not_after=T_LEAF_END),  # not CA
        lambda: issue_certificate(root, root_key, key.public_key, common_name="x", not_before=T0,
                                  not_after=T_ROOT_END + timedelta(days=1)),  # outlives issuer
        lambda: issue_certificate(root, root_key, key.public_key, common_name="x", not_before=T0, not_after=T_LEAF_END,
                                  usage="tls"),
    ]
    for case in cases:
        with pytest.raises(CertificateError) as info:
            case()
        assert info.value.message_en and info.value.message_zh
    assert check_uscc(USCC) == USCC


def test_garbage_and_truncated_input_is_a_typed_error(pki):
    der = pki["leaf"].der
    for bad in (b"", b"garbage bytes", der[:-1], der[: len(der) // 2], der + b"\x00", b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"):
        with pytest.raises(CertificateError):
            Certificate.load(bad)
        assert not verify_signed_by(bad, pki["inter"])
        result = verify_chain(bad, [pki["root"]], at=NOW)
        assert not result.ok and codes(result) == {"malformed"} and result.errors[0].message_zh
    with pytest.raises(CertificateError):
        Certificate.load(pki["leaf_key"].to_pem())  # a PEM of the wrong type
    with pytest.raises(CertificateError):
        Certificate.load("not bytes")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=0, max_value=10_000), byte=st.integers(min_value=0, max_value=255))
def test_corrupted_certificate_never_crashes(pki, pos, byte):
    der = bytearray(pki["leaf"].der)
    der[pos % len(der)] = byte
    try:
        c = Certificate.load(bytes(der))
    except CertificateError:
        return
    result = verify_chain(c, [pki["root"]], intermediates=[pki["inter"]], at=NOW)
    assert result.ok == (bytes(der) == pki["leaf"].der)


# --------------------------------------------------------------------------- chains

def test_chain_ok_through_intermediate(pki):
    root, inter, leaf = pki["root"], pki["inter"], pki["leaf"]
    result = verify_chain(leaf, [root], intermediates=[inter], at=NOW, required_usage={"non_repudiation"})
    assert result.ok and result.errors == [] and result.chain == [leaf, inter, root]
    assert verify_chain(root, [root], at=NOW).chain == [root]  # a trust root validates itself
    assert verify_chain(leaf.der, [root.to_pem()], intermediates=[inter.der, b"junk"], at=NOW).ok  # bytes accepted


def test_untrusted_without_intermediate_or_root(pki):
    root, inter, leaf = pki["root"], pki["inter"], pki["leaf"]
    result = verify_chain(leaf, [root], at=NOW)
    assert codes(result) == {"untrusted"} and result.chain == [leaf]
    assert codes(verify_chain(leaf, [], intermediates=[inter], at=NOW)) == {"untrusted"}
    other = Certificate.load(build_root(sm2.PrivateKey.generate(), "other root", not_before=T0, not_after=T_ROOT_END))
    assert codes(verify_chain(leaf, [other], intermediates=[inter], at=NOW)) == {"untrusted"}


def test_validity_errors(pki):
    root, inter, leaf = pki["root"], pki["inter"], pki["leaf"]
    late = verify_chain(leaf, [root], intermediates=[inter], at=T_LEAF_END + timedelta(days=1))
    assert codes(late) == {"expired"} and late.errors[0].subject == leaf.subject_text and "过期" in late.errors[0].message_zh
    early = verify_chain(leaf, [root], intermediates=[inter], at=T0 - timedelta(seconds=1))
    assert codes(early) == {"not_yet_valid"} and len(early.errors) == 3  # all three not yet valid


def test_key_usage_requirements(pki):
    root, inter, maker = pki["root"], pki["inter"], pki["maker"]
    assert verify_chain(maker, [root], intermediates=[inter], at=NOW, required_usage={"digital_signature"}).ok
    result = verify_chain(maker, [root], intermediates=[inter], at=NOW, required_usage={"non_repudiation"})
    assert codes(result) == {"key_usage"} and "non_repudiation" in result.errors[0].message_en
    with pytest.raises(CertificateError):
        verify_chain(maker, [root], intermediates=[inter], at=NOW, required_usage={"digitalSignature"})  # typo


def test_flipped_bits_give_bad_signature(pki):
    root, inter, leaf = pki["root"], pki["inter"], pki["leaf"]
    der = leaf.der
    serial_at = der.index(leaf.serial.to_bytes(17, "big")) + 5  # inside the serial number (part of TBS)
    tampered_tbs = der[:serial_at] + bytes([der[serial_at] ^ 0x01]) + der[serial_at + 1:]
    sig_at = len(der) - 10  # inside s of the signature value
    tampered_sig = der[:sig_at] + bytes([der[sig_at] ^ 0x01]) + der[sig_at + 1:]
    for bad in (tampered_tbs, tampered_sig):
        c = Certificate.load(bad)
        assert not verify_signed_by(c, inter)
        result = verify_chain(c, [root], intermediates=[inter], at=NOW)
        assert codes(result) == {"bad_signature"} and result.chain == [c, inter, root]


def test_wrong_issuer(pki):
    root, inter, leaf = pki["root"], pki["inter"], pki["leaf"]
    assert verify_signed_by(leaf, inter) and not verify_signed_by(leaf, root) and not verify_signed_by(inter, leaf)
    # An impostor CA with the same subject name but another key (and no SKI): linkage by name, signature fails.
    impostor_key = sm2.PrivateKey.generate()
    impostor = Certificate.load(reissue(inter, pki["root_key"], subject_public_key_info=ax.PublicKeyInfo.load(
        impostor_key.public_key.to_der()), extensions=[e for e in inter.asn1["tbs_certificate"]["extensions"]
                                                       if e["extn_id"].native != "key_identifier"]))
    assert verify_signed_by(impostor, root)  # a genuine CA certificate for another key, same name
    result = verify_chain(leaf, [root], intermediates=[impostor], at=NOW)
    assert codes(result) == {"bad_signature"}


def test_issuer_without_ca_flag(pki):
    root, inter, leaf, leaf_key = pki["root"], pki["inter"], pki["leaf"], pki["leaf_key"]
    victim_key = sm2.PrivateKey.generate()
    # leaf (CA:FALSE) "issues" a certificate for victim_key.
    forged = reissue(leaf, leaf_key, issuer=leaf.asn1.subject, subject=ax.Name.build({"common_name": "victim"}),
                     subject_public_key_info=ax.PublicKeyInfo.load(victim_key.public_key.to_der()), extensions=[])
    assert verify_signed_by(forged, leaf)
    result = verify_chain(forged, [root], intermediates=[inter, leaf], at=NOW)
    assert "not_ca" in codes(result) and "key_usage" in codes(result)  # no CA flag, no keyCertSign
    assert next(e for e in result.errors if e.code == "not_ca").subject == leaf.subject_text


def test_path_length_and_unsupported(pki):
    root, inter, inter_key = pki["root"], pki["inter"], pki["inter_key"]
    # inter has pathLen 0: a CA below it may not issue.
    sub_key = sm2.PrivateKey.generate()
    sub = reissue(inter, inter_key, issuer=inter.asn1.subject, subject=ax.Name.build({"common_name": "sub CA"}),
                  subject_public_key_info=ax.PublicKeyInfo.load(sub_key.public_key.to_der()), extensions=ca_extensions())
    sub_c = Certificate.load(sub)
    below = reissue(pki["leaf"], sub_key, issuer=sub_c.asn1.subject, extensions=[])
    assert codes(verify_chain(below, [root], intermediates=[inter, sub], at=NOW)) == {"path_length"}
    # Same key and TBS but an ECDSA-with-SHA256 label: not ours to verify.
    relabelled = reissue(pki["leaf"], inter_key, sig_oid="1.2.840.10045.4.3.2")
    result = verify_chain(relabelled, [root], intermediates=[inter], at=NOW)
    assert codes(result) == {"unsupported_algorithm"} and not verify_signed_by(relabelled, inter)
    # An unknown critical extension must not be ignored.
    ext = ax.Extension({"extn_id": "1.2.3.4.5", "critical": True, "extn_value": b"\x05\x00"})
    exts = list(pki["leaf"].asn1["tbs_certificate"]["extensions"]) + [ext]
    crit = reissue(pki["leaf"], inter_key, extensions=exts)
    assert codes(verify_chain(crit, [root], intermediates=[inter], at=NOW)) == {"unsupported_extension"}


def test_cross_signed_loop_terminates(pki):
    a_key, b_key = sm2.PrivateKey.generate(), sm2.PrivateKey.generate()
    a = Certificate.load(build_root(a_key, "CA A", not_before=T0, not_after=T_ROOT_END))
    b = Certificate.load(build_root(b_key, "CA B", not_before=T0, not_after=T_ROOT_END))
    a_by_b = reissue(a, b_key, issuer=b.asn1.subject, extensions=ca_extensions())
    b_by_a = reissue(b, a_key, issuer=a.asn1.subject, extensions=ca_extensions())
    leaf = reissue(pki["leaf"], a_key, issuer=a.asn1.subject, extensions=[])
    result = verify_chain(leaf, [pki["root"]], intermediates=[a_by_b, b_by_a] * 20, at=NOW)
    assert codes(result) == {"untrusted"} and len(result.chain) <= 8


# --------------------------------------------------------------------------- sample certificates (ofdrw)

def test_ofdrw_sample_certificates():
    certs = {p.stem: Certificate.load(p.read_bytes()) for p in SAMPLES.glob("*.pem") if p.stem != "sign_key"}
    assert set(certs) >= {"ofdrw-root", "ofdrw-user", "ofdrw-sealbuilder", "sign_cert"}
    root, user, maker = certs["ofdrw-root"], certs["ofdrw-user"], certs["ofdrw-sealbuilder"]
    assert root.is_ca and user.subject_cn == "Test Certificate" and user.issuer_cn == root.subject_cn
    assert user.not_after == datetime(2022, 4, 21, 14, 39, 8, tzinfo=UTC)
    for c in (user, maker, certs["sign_cert"]):
        assert verify_signed_by(c, root) and not verify_signed_by(c, c)
    assert verify_signed_by(root, root)
    assert codes(verify_chain(user, [root], at=datetime(2023, 1, 1, tzinfo=UTC))) == {"expired"}
    ok = verify_chain(user, [root], at=datetime(2021, 1, 1, tzinfo=UTC))
    assert ok.ok and ok.chain == [user, root]  # the root lacks keyCertSign: trust anchors' keyUsage is not processed
    assert "untrusted" in codes(verify_chain(user, [], at=datetime(2021, 1, 1, tzinfo=UTC)))
    assert codes(verify_chain(user, [], at=datetime(2021, 1, 1, tzinfo=UTC))) == {"untrusted"}


# --------------------------------------------------------------------------- interop

def test_gmssl_oracle_verifies_our_signature(pki):
    from gmssl import sm2 as gsm2

    leaf, inter = pki["leaf"], pki["inter"]
    r, s = sm2.decode_signature(leaf.signature)
    oracle = gsm2.CryptSM2(private_key="", public_key="")
    oracle.public_key = inter.public_key.point[1:].hex()  # set directly: the constructor's lstrip("04") can eat X
    assert oracle.verify_with_sm3(f"{r:064x}{s:064x}", leaf.tbs_der)  # computes Z_A with ID 1234567812345678 itself
    assert not oracle.verify_with_sm3(f"{r:064x}{s:064x}", leaf.tbs_der + b"x")


@needs_openssl
def test_openssl_parses_and_verifies_ours(pki, tmp_path):
    root, inter, leaf = pki["root"], pki["inter"], pki["leaf"]
    for c, expect in ((root, ["Certificate Sign, CRL Sign", "CA:TRUE"]),
                      (leaf, ["Digital Signature, Non Repudiation", "CA:FALSE", "organizationIdentifier=" + USCC,
                              "CN=特种作业操作证签章"])):
        (tmp_path / "c.pem").write_bytes(c.to_pem())
        out = openssl("x509", "-in", "c.pem", "-noout", "-text", "-nameopt", "utf8", cwd=tmp_path)
        text = out.stdout.decode()
        assert out.returncode == 0, out.stderr
        assert "Signature Algorithm: SM2-with-SM3" in text and "ASN1 OID: SM2" in text
        for e in expect:
            assert e in text
    (tmp_path / "tbs.der").write_bytes(leaf.tbs_der)
    (tmp_path / "sig.der").write_bytes(leaf.signature)
    (tmp_path / "issuer_pub.pem").write_bytes(inter.public_key.to_pem())
    args = ["pkeyutl", "-verify", "-pubin", "-inkey", "issuer_pub.pem", "-rawin", "-digest", "sm3",
            "-in", "tbs.der", "-sigfile", "sig.der", "-pkeyopt", "distid:1234567812345678"]
    out = openssl(*args, cwd=tmp_path)
    assert out.returncode == 0 and b"Signature Verified Successfully" in out.stdout, out.stderr
    (tmp_path / "tbs.der").write_bytes(leaf.tbs_der[:-1] + bytes([leaf.tbs_der[-1] ^ 1]))
    assert openssl(*args, cwd=tmp_path).returncode != 0


@needs_openssl
def test_openssl_made_certificates_verify_in_ours(pki, tmp_path):
    distid = "distid:1234567812345678"
    steps = [
        ["genpkey", "-algorithm", "SM2", "-out", "ca.key"],
        ["req", "-x509", "-new", "-key", "ca.key", "-sm3", "-sigopt", distid, "-subj", "/C=CN/O=OpenSSL/CN=OpenSSL SM2 CA",
         "-days", "30", "-out", "ca.pem"],
        ["genpkey", "-algorithm", "SM2", "-out", "leaf.key"],
        ["req", "-new", "-key", "leaf.key", "-sm3", "-sigopt", distid, "-subj", "/C=CN/CN=OpenSSL leaf", "-out", "leaf.csr"],
        ["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-sm3", "-sigopt", distid,
         "-vfyopt", distid, "-days", "10", "-out", "leaf.pem"],
    ]
    for step in steps:
        out = openssl(*step, cwd=tmp_path)
        assert out.returncode == 0, (step, out.stderr)
    ca = Certificate.load((tmp_path / "ca.pem").read_bytes())
    leaf = Certificate.load((tmp_path / "leaf.pem").read_bytes())
    assert ca.subject_org == "OpenSSL" and ca.is_ca and ca.signature_algorithm == SM3_WITH_SM2
    assert verify_signed_by(ca, ca) and verify_signed_by(leaf, ca) and not verify_signed_by(leaf, pki["root"])
    assert ca.public_key == sm2.PrivateKey.from_pem((tmp_path / "ca.key").read_bytes()).public_key
    now = datetime.now(UTC)
    result = verify_chain(leaf, [ca], at=now)
    assert result.ok and result.chain == [leaf, ca] and leaf.version == 1
    # And our builder can issue from an OpenSSL CA certificate and key.
    ca_key = sm2.PrivateKey.from_pem((tmp_path / "ca.key").read_bytes())
    ours = issue_certificate(ca, ca_key, pki["leaf_key"].public_key, common_name="ours under OpenSSL",
                             not_before=now - timedelta(minutes=1), not_after=now + timedelta(days=1))
    assert verify_chain(ours, [ca], at=now).ok
    (tmp_path / "ours.pem").write_bytes(Certificate.load(ours).to_pem())
    out = openssl("x509", "-in", "ours.pem", "-noout", "-issuer", cwd=tmp_path)
    assert b"OpenSSL SM2 CA" in out.stdout


def test_issuer_name_linkage_is_rfc5280_normalised(pki):
    key = sm2.PrivateKey.generate()
    root = Certificate.load(build_root(key, "Upper  CA", not_before=T0, not_after=T_ROOT_END))
    # Issuer re-encoded as PrintableString, other case and spacing, no AKI: still the same name.
    issuer = ax.Name.build({"country_name": "CN", "common_name": "upper ca"}, use_printable=True)
    assert issuer.dump() != root.subject_der
    child = reissue(pki["leaf"], key, issuer=issuer, extensions=[])
    assert verify_chain(child, [root], at=NOW).ok
    other = reissue(pki["leaf"], key, issuer=ax.Name.build({"country_name": "CN", "common_name": "upper ca 2"}), extensions=[])
    assert codes(verify_chain(other, [root], at=NOW)) == {"untrusted"}


def test_malformed_non_critical_extension_is_skipped_not_fatal():
    """iOFD's signer certificate has a subjectAltName that is not valid DER for GeneralNames;
    it is non-critical, so the certificate still loads (the verifier must reach the real checks)."""
    import zipfile

    from signer import ses

    from .conftest import SAMPLES

    with zipfile.ZipFile(SAMPLES / "iofd_v1_nonstandard_digest.ofd") as z:
        name = next(n for n in z.namelist() if n.endswith("SignedValue.dat"))
        sv = ses.parse_signed_value(z.read(name))
    cert = Certificate.load(sv.signer_cert)
    assert cert.ignored_extensions == ("subject_alt_name",)
    assert cert.public_key is not None
