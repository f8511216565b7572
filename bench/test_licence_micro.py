"""pytest-benchmark micro benchmarks of the licence path: record validation, OFD build, QR payload
make and verify, the naive baseline's SM2 sign (`pytest bench/ --benchmark-only`)."""

from datetime import datetime, timezone

import pytest

from bench.licence_bench import _setup


@pytest.fixture(scope="module")
def world():
    from ofd.licence.model import validate_record
    from signer.issue import portal_url
    from signer.qr_payload import make_qr_text
    from verifier.qr_verify import keyring_from_store

    li, record, trust = _setup()
    when = datetime.now(timezone.utc)  # after the dev key was made: a signature may not precede its key
    lic = validate_record(record)
    text = make_qr_text(lic, li.identity(), portal=portal_url(), when=when)
    return {"li": li, "record": record, "lic": lic, "text": text, "when": when,
            "keyring": keyring_from_store(li.store)}


def test_validate_record(benchmark, world):
    from ofd.licence.model import validate_record

    lic = benchmark(validate_record, world["record"])
    assert lic.id_number == world["record"]["id_number"]


def test_build_unsigned_ofd(benchmark, world):
    from ofd import layout

    data = benchmark(layout.licence_ofd_bytes, world["lic"], qr_text=world["text"], created=world["when"])
    assert data[:2] == b"PK"


def test_qr_payload_make(benchmark, world):
    from signer.issue import portal_url
    from signer.qr_payload import make_qr_text

    text = benchmark(make_qr_text, world["lic"], world["li"].identity(), portal=portal_url(), when=world["when"])
    assert "#EC1:" in text


def test_qr_payload_verify(benchmark, world):
    from verifier.qr_verify import verify_qr

    report = benchmark(verify_qr, world["text"], world["keyring"])
    assert report.verdict == "valid", report.to_dict()


def test_issue_sign(benchmark, world):
    issued = benchmark(world["li"].issue, world["lic"], when=world["when"])
    assert issued.data[:2] == b"PK"


def test_naive_gmssl_sign(benchmark, world):
    from bench.naive_baseline import GmsslKey

    key = GmsslKey(world["li"].identity().key)
    sig = benchmark.pedantic(key.sign, args=(b"x" * 200,), rounds=5, iterations=1)
    assert world["li"].identity().key.public_key.verify(b"x" * 200, sig)
