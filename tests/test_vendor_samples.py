"""Other vendors' signed OFDs give exactly the verdicts of shared/samples/README.md."""

from __future__ import annotations

import pytest

from keys.x509 import Certificate
from verifier.ofd_verify import verify_ofd
from verifier.trust import TrustConfig

from .conftest import SAMPLES

OFDRW_ROOT = SAMPLES / "keys" / "ofdrw-root.pem"
OFDRW_USER = SAMPLES / "keys" / "ofdrw-user.pem"

# file: (default trust, with the ofdrw root, check that must fail when invalid)
EXPECTED = {
    "ofdrw_raw_sm2_sign.ofd": ("indeterminate", "indeterminate", None),
    "ofdrw_v4_seal_expired_cert.ofd": ("invalid", "invalid", "signer_cert_validity"),
    "ofdrw_v4_whole_protected.ofd": ("indeterminate", "valid", None),
    "ofdrw_v4_riding_seal.ofd": ("indeterminate", "valid", None),
    "einvoice_jiangsu_gomain.ofd": ("indeterminate", "indeterminate", None),
    "einvoice_chongqing_gomain.ofd": ("indeterminate", "indeterminate", None),
    "einvoice_chongqing_kinggrid.ofd": ("indeterminate", "indeterminate", None),
    "yunnan_gbt35275_cms_two_signs.ofd": ("indeterminate", "indeterminate", None),
    "iofd_v1_nonstandard_digest.ofd": ("invalid", "invalid", "data_hash"),
    "einvoice_guizhou_gomain.ofd": ("indeterminate", "indeterminate", None),
}


def _report(name, roots=(), signer_certs=()):
    trust = TrustConfig(roots=[Certificate.load(p.read_bytes()) for p in roots],
                        signer_certs=[Certificate.load(p.read_bytes()) for p in signer_certs])
    return verify_ofd((SAMPLES / name).read_bytes(), trust)


def _explain(r):
    return [c.to_dict() for c in r.checks if c.status != "pass"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_default_trust(name):
    verdict, _, must_fail = EXPECTED[name]
    r = _report(name)
    assert r.verdict == verdict, _explain(r)
    if must_fail:
        assert must_fail in {c.name for c in r.failed()}, _explain(r)
    else:
        assert not r.failed(), _explain(r)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_with_ofdrw_root(name):
    _, verdict, must_fail = EXPECTED[name]
    r = _report(name, roots=[OFDRW_ROOT])
    assert r.verdict == verdict, _explain(r)
    if must_fail:
        assert must_fail in {c.name for c in r.failed()}, _explain(r)


def test_expired_certificate_is_the_named_reason():
    r = _report("ofdrw_v4_seal_expired_cert.ofd", roots=[OFDRW_ROOT])
    failed = {c.name: c for c in r.failed()}
    assert "expired" in failed["signer_cert_validity"].reason_en
    assert "signature" not in failed and "data_hash" not in failed and "references" not in failed


def test_raw_sm2_signature_with_out_of_band_certificate():
    assert _report("ofdrw_raw_sm2_sign.ofd", signer_certs=[OFDRW_USER]).verdict == "indeterminate"
    r = _report("ofdrw_raw_sm2_sign.ofd", roots=[OFDRW_ROOT], signer_certs=[OFDRW_USER])
    assert r.verdict == "valid", _explain(r)
    wrong = _report("ofdrw_raw_sm2_sign.ofd", roots=[OFDRW_ROOT], signer_certs=[SAMPLES / "keys" / "sign_cert.pem"])
    assert wrong.verdict == "invalid" and "signature" in {c.name for c in wrong.failed()}


def test_iofd_names_the_unsupported_digest_and_the_failures():
    r = _report("iofd_v1_nonstandard_digest.ofd")
    by_name = {}
    for c in r.checks:
        by_name.setdefault(c.name, []).append(c)
    assert any("1.2.156.10197.1.401.2" in c.reason_en for c in by_name["references"])
    assert by_name["seal_signature"][0].status == "pass"
    assert by_name["signature"][0].status == "fail"


def test_kinggrid_uncovered_ofd_xml_is_only_a_warning():
    r = _report("einvoice_chongqing_kinggrid.ofd")
    cov = next(c for c in r.checks if c.name == "coverage")
    assert cov.status in ("pass", "warn")
