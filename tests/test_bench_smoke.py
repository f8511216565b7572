"""A quick smoke pass of the benchmark harness so it never rots (timings are not asserted)."""

from bench import sm2_bench
from bench.harness import rate


def test_harness_and_sm2_section_run():
    assert rate(lambda: None, seconds=0.01, rounds=1) > 0
    r = sm2_bench.ours(seconds=0.02)
    assert set(r) == {"sm2_keygen_per_s", "sm2_sign_per_s", "sm2_verify_per_s"}
    sign, verify = sm2_bench.openssl_speed(seconds=1)
    assert sign > 0 and verify > 0
