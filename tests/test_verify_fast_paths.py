"""The verifier's fast paths give exactly the results of the full, strict paths.

Speed work on verification (issue 4) must not change a single verdict or error: each
fast path is compared here with the full path it short-cuts, on the vendor samples, on
our own signed values and on hostile mutations of them.
"""

from __future__ import annotations

import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from asn1crypto import core, pem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import sm2
from keys.sm3 import sm3
from keys.x509 import Certificate
from ofd.licence.errors import LicenceError
from ofd.licence.model import METADATA_FIELDS, Licence
from ofd.reader import open_ofd
from signer import ses
from verifier import ofd_verify, repeats
from verifier.ofd_verify import verify_ofd
from verifier.trust import TrustConfig

SAMPLES = Path("/work/shared/samples")
pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="reference samples not present")
NOW = datetime(2026, 11, 23, 8, 30, 15, tzinfo=timezone.utc)


def _sample_signed_values() -> list[tuple[str, bytes]]:
    out = []
    for path in sorted(SAMPLES.glob("*.ofd")):
        with zipfile.ZipFile(path) as z:
            out += [(f"{path.name}:{n}", z.read(n)) for n in sorted(z.namelist()) if n.endswith("SignedValue.dat")]
    return out


SAMPLE_SIGNED_VALUES = _sample_signed_values() if SAMPLES.is_dir() else []


def _wrap(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + ses._der_len(len(content)) + content


class _Elements(core.SequenceOf):
    _child_spec = core.Any


def _outcome(parse, raw: bytes):
    """The parsed value, or the error code: what a caller can observe."""
    try:
        return parse(raw)
    except ses.SESError as exc:
        return ("SESError", exc.code)


@pytest.fixture(scope="module")
def signed_value() -> bytes:
    """A V4 SES_Signature as ecert writes it (plain shape), with ofdrw's real SM2 test pair."""
    key = sm2.PrivateKey.from_pem((SAMPLES / "keys" / "sign_key.pem").read_bytes())
    _, _, cert = pem.unarmor((SAMPLES / "keys" / "sign_cert.pem").read_bytes())
    seal = ses.build_seal_v4(
        es_id="33010000000001", vid="ecert", seal_type=1, name="某某市应急管理局 特种作业操作证专用章",
        certs=[cert], create_date=NOW, valid_start=NOW, valid_end=NOW + timedelta(days=3 * 365),
        picture_type="PNG", picture=b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, picture_size_mm=(40, 40),
        maker_cert=cert, maker_key=key,
    )
    tbs = ses.build_tbs_sign_v4(seal_der=seal, time_info=NOW, data_hash=sm3(b"Signature.xml"),
                                property_info="/Doc_0/Signs/Sign_0/Signature.xml")
    raw = ses.build_signed_value_v4(tbs_der=tbs, signer_cert=cert, signature=key.sign(tbs))
    ses.parse_signed_value(raw)  # the seal is now known
    return raw


def _rebuild(raw: bytes, *, version=None, time=None, data_hash=None, prop=None, alg=None, signature=None,
             extra=b"", tbs_extra=b"") -> bytes:
    """raw with some fields of the plain V4 shape replaced by encoded TLVs (lengths fixed up)."""
    kids = [k.dump() for k in _Elements.load(raw)]  # toSign, cert, alg, signature
    tbs = [k.dump() for k in _Elements.load(kids[0])]  # version, eseal, time, hash, prop
    for i, new in ((0, version), (2, time), (3, data_hash), (4, prop)):
        if new is not None:
            tbs[i] = new
    kids[0] = _wrap(0x30, b"".join(tbs) + tbs_extra)
    for i, new in ((2, alg), (3, signature)):
        if new is not None:
            kids[i] = new
    return _wrap(0x30, b"".join(kids) + extra)


# --------------------------------------------------------------------------- SignedValue

def test_our_signed_value_takes_the_fast_path_and_equals_the_full_parse(signed_value):
    fast = ses._plain_signed_value(signed_value)
    assert fast is not None
    assert fast == ses._full_signed_value(signed_value) == ses.parse_signed_value(signed_value)
    assert fast.time_info == NOW and fast.version == 4 and fast.tbs_version == 4


@pytest.mark.parametrize("name, raw", SAMPLE_SIGNED_VALUES, ids=[n for n, _ in SAMPLE_SIGNED_VALUES])
def test_vendor_signed_values_parse_the_same_on_first_and_later_reads(name, raw):
    full = _outcome(ses._full_signed_value, raw)
    assert _outcome(ses.parse_signed_value, raw) == full  # first read: seal not known yet
    assert _outcome(ses.parse_signed_value, raw) == full  # later reads: fast path where the shape allows


def test_some_vendor_signed_values_take_the_fast_path():
    """The fast path is not only for our own files (ofdrw / e-invoice V4 without extras)."""
    for _, raw in SAMPLE_SIGNED_VALUES:
        _outcome(ses.parse_signed_value, raw)
    assert sum(ses._plain_signed_value(raw) is not None for _, raw in SAMPLE_SIGNED_VALUES) >= 3


_GT = lambda text: _wrap(0x18, text)  # noqa: E731
_BITS = lambda unused, data: _wrap(0x03, bytes([unused]) + data)  # noqa: E731

VARIANTS = {
    "fractional seconds": dict(time=_GT(b"20261123083015.5Z")),
    "no zone": dict(time=_GT(b"20261123083015")),
    "offset zone": dict(time=_GT(b"20261123083015+0800")),
    "30 February": dict(time=_GT(b"20260230083015Z")),
    "second 60": dict(time=_GT(b"20261123083060Z")),
    "year 0": dict(time=_GT(b"00001123083015Z")),
    "UTCTime": dict(time=_wrap(0x17, b"261123083015Z")),
    "unused bits in dataHash": dict(data_hash=_BITS(1, bytes(32))),
    "empty dataHash": dict(data_hash=_BITS(0, b"")),
    "non-ASCII propertyInfo": dict(prop=_wrap(0x16, "签名".encode())),
    "UTF8String propertyInfo": dict(prop=_wrap(0x0C, b"/Doc_0/Signs/Sign_0/Signature.xml")),
    "unused bits in signature": dict(signature=_BITS(3, bytes(70))),
    "timestamp": dict(extra=_BITS(0, b"\x01\x02\x03")),
    "tagged timestamp": dict(extra=_wrap(0xA0, _BITS(0, b"\x01"))),
    "TBS extDatas": dict(tbs_extra=_wrap(0x30, b"")),
    "trailing garbage element": dict(extra=b"\x05\x00"),
    "non-minimal version INTEGER": dict(version=b"\x02\x02\x00\x04"),
    "version 5 with a V4 seal": dict(version=b"\x02\x01\x05"),
    "OID with a 0x80 padding byte": dict(alg=_wrap(0x06, b"\x2a\x81\x80\x1c\xcf\x55\x01\x83\x75")),
    "OID of SHA-256 with RSA": dict(alg=_wrap(0x06, bytes.fromhex("2a864886f70d01010b"))),
    "non-minimal INTEGER": dict(tbs_extra=b"\x02\x02\x00\x01"),
}


@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
def test_unusual_fields_around_a_known_seal_get_the_full_parse_verdict(signed_value, variant):
    raw = _rebuild(signed_value, **VARIANTS[variant])
    assert _outcome(ses.parse_signed_value, raw) == _outcome(ses._full_signed_value, raw)


def test_trailing_bytes_and_truncation_around_a_known_seal(signed_value):
    for raw in (signed_value + b"\x00", signed_value[:-1], signed_value[:-40], b"\x31" + signed_value[1:]):
        assert _outcome(ses.parse_signed_value, raw) == _outcome(ses._full_signed_value, raw)


_positions = st.one_of(st.integers(0, 60), st.integers(-900, -1), st.integers(0, 1 << 20))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_positions, st.integers(0, 255)), min_size=1, max_size=3), st.one_of(st.none(), _positions))
def test_mutations_get_the_full_parse_verdict(signed_value, edits, cut):
    buf = bytearray(signed_value)
    for pos, val in edits:
        buf[pos % len(buf)] = val
    if cut is not None:
        del buf[cut % len(buf):]
    raw = bytes(buf)
    assert _outcome(ses.parse_signed_value, raw) == _outcome(ses._full_signed_value, raw)


def test_known_seal_still_counts_towards_the_element_and_depth_caps(signed_value):
    """A known seal is not walked again, but its size and depth are still charged: over the
    caps, the fast path steps aside and the full walk gives its error."""
    kids = ses.der_children(signed_value)
    _, at, _, e = ses.der_children(signed_value, kids[0][1])[1]
    raw = signed_value[at:e]
    seal, elements, deepest = ses._KNOWN_SEALS.get(raw)
    top = ses._top(signed_value, "SignedValue")
    assert ses._walk(signed_value, *top, "x")[0] == elements + 9  # what the fast path charges
    assert ses._walk(signed_value, *top, "x")[1] == deepest + 2
    try:
        for fake in ((seal, ses.MAX_ELEMENTS - 8, deepest), (seal, elements, ses.MAX_DEPTH - 2)):
            ses._KNOWN_SEALS._seals[raw] = fake
            assert ses._plain_signed_value(signed_value) is None
        ses._KNOWN_SEALS._seals[raw] = (seal, ses.MAX_ELEMENTS - 9, ses.MAX_DEPTH - 3)
        assert ses._plain_signed_value(signed_value) is not None
    finally:
        ses._KNOWN_SEALS._seals[raw] = (seal, elements, deepest)


# --------------------------------------------------------------------------- verifier memos

def test_prefix_resumed_sm2_verification_equals_plain_verification():
    """Any split point gives the same e = SM3(Z || M); a changed prefix, tail or key fails."""
    key = sm2.PrivateKey.generate()
    other = sm2.PrivateKey.generate().public_key
    msg = bytes(range(256)) * 40 + b"tail: time, dataHash, propertyInfo"
    sig = key.sign(msg)
    pub = key.public_key
    for cut in (0, 100, 4096, 6000, len(msg) - 1, len(msg)):
        assert repeats.sm2_verify_with_prefix(pub, msg, cut, sig) is True
        assert repeats.sm2_verify_with_prefix(pub, msg, cut, sig) is True  # resumed from the kept state
    tampered_tail = msg[:-1] + b"X"
    tampered_prefix = b"\xff" + msg[1:]
    for cut in (4096, 6000):
        assert repeats.sm2_verify_with_prefix(pub, tampered_tail, cut, sig) is pub.verify(tampered_tail, sig) is False
        assert repeats.sm2_verify_with_prefix(pub, tampered_prefix, cut, sig) is pub.verify(tampered_prefix, sig) is False
        assert repeats.sm2_verify_with_prefix(other, msg, cut, sig) is False
        assert repeats.sm2_verify_with_prefix(pub, msg, cut, b"\x30\x00") is False


def test_remembered_digests_and_signatures_equal_fresh_ones():
    key = sm2.PrivateKey.generate()
    data = b"seal bytes " * 1000
    assert repeats.seal_file_sm3(data) == repeats.seal_file_sm3(bytes(data)) == sm3(data)
    assert repeats.seal_file_sm3(data + b"!") == sm3(data + b"!") != sm3(data)
    big = bytes(repeats.MAX_KEPT_BYTES + 1)
    assert repeats.seal_file_sm3(big) == sm3(big)


@pytest.mark.parametrize("when", [
    datetime(2026, 11, 23, 8, 30, 15, tzinfo=timezone.utc),
    datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=timezone(timedelta(hours=8))),
    datetime(999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
    datetime(1, 1, 1, 0, 0, 0, tzinfo=timezone(timedelta(hours=-5))),
])
def test_report_time_format_is_the_strftime_one(when):
    assert ofd_verify._fmt_time(when) == when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def licence(dev_store, dev_issuer):
    from signer.issue import LicenceIssuer
    from tests.conftest import make_record

    issued = LicenceIssuer(dev_store, dev_issuer.code).issue(make_record(dev_issuer.code, dev_issuer.name, seq=7),
                                                              when=datetime.now(timezone.utc))
    trust = TrustConfig(roots=[Certificate.load(dev_store.root().cert_der)])
    return issued.data, trust


def _replace(data: bytes, name: str, new: bytes) -> bytes:
    from ofd.reader import open_ofd
    from ofd.package import Package

    files = dict(open_ofd(data).package.files)
    files[name] = new
    return Package(files).to_bytes()


def test_warm_caches_change_no_report(licence):
    data, trust = licence
    first = verify_ofd(data, trust).to_dict()
    again = verify_ofd(data, trust).to_dict()
    first.pop("verified_at"), again.pop("verified_at")
    assert first == again and first["verdict"] == "valid" and first["licence"]["name"] == "王测试"


def test_tampered_seal_and_signed_value_fail_with_warm_caches(licence):
    data, trust = licence
    verify_ofd(data, trust)  # every cache now holds this issuer's seal
    pkg = open_ofd(data).package.files
    seal, value = pkg["Doc_0/Signs/Sign_0/Seal.esl"], pkg["Doc_0/Signs/Sign_0/SignedValue.dat"]
    at = value.find(seal)
    bad_seal = seal[:-5] + bytes([seal[-5] ^ 1]) + seal[-4:]  # the maker's signature, last bytes
    r = verify_ofd(_replace(data, "Doc_0/Signs/Sign_0/Seal.esl", bad_seal), trust)
    assert {"references", "seal_match"} <= {c.name for c in r.failed()}
    bad_value = value[:at] + bad_seal + value[at + len(seal):]  # same seal swapped inside TBS_Sign
    r = verify_ofd(_replace(data, "Doc_0/Signs/Sign_0/SignedValue.dat", bad_value), trust)
    assert {"signature", "seal_signature", "seal_match"} <= {c.name for c in r.failed()}
    late = value[:-3] + bytes([value[-3] ^ 1]) + value[-2:]  # signer's signature, tail of the file
    r = verify_ofd(_replace(data, "Doc_0/Signs/Sign_0/SignedValue.dat", late), trust)
    assert "signature" in {c.name for c in r.failed()} and r.verdict == "invalid"


# --------------------------------------------------------------------------- licence read-back

def test_licence_read_back_is_unchanged_by_the_issuer_text_caches(licence):
    data, _ = licence
    md = dict(open_ofd(data).custom_datas)
    lic = Licence.from_metadata(md)
    assert Licence.from_metadata(md) == lic
    view = lic.public_view()
    assert view == {attr: lic.mask(lic.metadata()[key]) for key, _, attr in METADATA_FIELDS
                    if key in lic.metadata() and not key.startswith("KZ_ZP")}
    assert lic.id_number not in "".join(view.values())
    for key, bad in (("ZZBFJG", "发证\u202e机关"), ("ZZBFJGDM", "91350100M000100Y4X"), ("KZ_CZXM", "低压<b>电工")):
        with pytest.raises(LicenceError) as first:
            Licence.from_metadata({**md, key: bad})
        with pytest.raises(LicenceError) as again:  # failures are never remembered
            Licence.from_metadata({**md, key: bad})
        assert [e.code for e in first.value.errors] == [e.code for e in again.value.errors] != []


def test_seal_end_in_tbs_sign_matches_the_der_structure(signed_value):
    """Where the repeated TBS_Sign prefix ends: right after the embedded seal, in every sample."""
    values = [signed_value] + [raw for _, raw in SAMPLE_SIGNED_VALUES]
    checked = 0
    for raw in values:
        try:
            sv = ses.parse_signed_value(raw)
        except ses.SESError:
            continue
        assert ofd_verify._seal_end(sv.tbs_der, sv.seal_raw) == ses.der_children(sv.tbs_der)[1][3]
        checked += 1
    assert checked >= 5
    assert ofd_verify._seal_end(b"\x30\x03\x02\x01\x04", b"\x30\x80" * 10) == 0
