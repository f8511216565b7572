"""pytest-benchmark micro benchmarks of the primitives: `pytest bench/ --benchmark-only`."""

from keys import sm2
from keys.sm3 import sm3

MSG = b"x" * 200
SIGNED_OFD_BYTES = 36_000  # about one signed licence: what the registry digest hashes


def test_keygen(benchmark):
    benchmark(sm2.generate)


def test_sign(benchmark):
    key = sm2.generate()
    sig = benchmark(key.sign, MSG)
    assert key.public_key.verify(MSG, sig)


def test_verify(benchmark):
    key = sm2.generate()
    sig = key.sign(MSG)
    assert benchmark(key.public_key.verify, MSG, sig)


def test_sm3_of_a_signed_licence(benchmark):
    data = bytes(range(256)) * (SIGNED_OFD_BYTES // 256)
    assert benchmark(sm3, data) == sm3(data)  # deterministic, 32 bytes
    assert len(sm3(data)) == 32
