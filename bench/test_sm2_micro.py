"""pytest-benchmark micro benchmarks: `pytest bench/ --benchmark-only`."""

from keys import sm2

MSG = b"x" * 200


def test_keygen(benchmark):
    benchmark(sm2.generate)


def test_sign(benchmark):
    key = sm2.generate()
    benchmark(key.sign, MSG)


def test_verify(benchmark):
    key = sm2.generate()
    sig = key.sign(MSG)
    assert benchmark(key.public_key.verify, MSG, sig)
