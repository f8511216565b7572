"""A quick smoke pass of every benchmark section so the harness never rots (timings are not asserted):
tiny counts, but the real code paths — a real `ecert serve` with two workers and a separate
load-generator process for HTTP, a real Dask cluster for bulk."""

import json

import pytest

from bench import http_load, licence_bench, qr_bench, sm2_bench
from bench.harness import goal_rows, rate


def test_harness_and_sm2_section_run():
    assert rate(lambda: None, seconds=0.01, rounds=1) > 0
    r = sm2_bench.ours(seconds=0.02)
    assert set(r) == {"sm2_keygen_per_s", "sm2_sign_per_s", "sm2_verify_per_s"}
    sign, verify = sm2_bench.openssl_speed(seconds=1)
    assert sign > 0 and verify > 0


def test_naive_baseline_output_verifies_with_our_verifier():
    """A baseline that produced garbage would be no baseline: its OFD and its QR must verify,
    and the QR image in it must be segno's, its signatures gmssl's (checked by our SM2)."""
    from bench.naive_baseline import naive_issuer, segno_png
    from ofd.safezip import read_package
    from signer.qr_payload import from_text, signed_message
    from verifier.ofd_verify import verify_ofd
    from verifier.qr_verify import keyring_from_store, verify_qr

    li, record, trust = licence_bench._setup()
    data, text = naive_issuer(li).issue(record)
    assert verify_ofd(data, trust).verdict == "valid"
    assert verify_qr(text, keyring_from_store(li.store)).verdict == "valid"
    pkg = read_package(data)
    qr_file = [n for n in pkg.files if "/Res/image_" in n][-1]
    assert pkg[qr_file] == segno_png(text)
    body, sig = from_text(text)
    assert li.identity().key.public_key.verify(signed_message(body), sig)


def test_licence_and_qr_sections_run():
    r = licence_bench.run(seconds=0.02, with_naive=False)
    assert r["issue_sign_per_s_per_core"] > 0 and r["verify_per_s_per_core"] > 0
    assert all(k in r for k, _ in licence_bench.STAGES)
    assert licence_bench.table_rows(r, {})
    q = qr_bench.run(seconds=0.01, rounds=1)
    assert q["qr_verify_per_s"] > 0 and q["qr_long_version_m"] >= 1
    assert qr_bench.table_rows(q)


@pytest.fixture(scope="module")
def http_figures():
    return http_load.run(workers=2, clients=(1, 4), seconds=0.5, requests=8, warmup_s=0.1, inproc_seconds=0.02)


def test_http_section_runs_against_a_real_server_without_errors(http_figures):
    r = http_figures
    assert r["http_errors_total"] == 0, r.get("http_error_kinds")
    for name in http_load.ROUTES:
        assert r[f"inproc_{name}_per_s_per_core"] > 0
        for c in (1, 4):
            k = f"http_{name}_c{c}"
            assert 1 <= r[f"{k}_requests"] <= 8
            assert 0 < r[f"{k}_p50_ms"] <= r[f"{k}_p95_ms"] <= r[f"{k}_p99_ms"]
            assert r[f"{k}_server_cpu_ms_per_req"] > 0  # the server's processes were found and did the work
    assert len(http_load.table_rows(r)) == 3 * 3


def test_results_chart_and_goal_rows(http_figures, tmp_path):
    from bench.chart import draw, goal_fractions

    figures = {**http_load.figures(http_figures), "issue_sign_per_s_per_core": 500.0, "issue_sign_ratio_vs_naive": 30.0}
    json.dumps(figures)  # one flat object of numbers
    rows = goal_rows(figures)
    assert ("goal: issue+sign per core, /s", "500", "≥ 1000", "✗") in rows
    assert ("goal: issue+sign vs naive baseline", "30.00", "≥ 15", "✓") in rows
    assert "goal: HTTP errors, all routes and levels" in {row[0] for row in rows}
    assert dict((g[0], g[1]) for g in goal_fractions(figures))["issue+sign per core, /s"] == 0.5
    png = draw(figures, tmp_path / "bench.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loadgen_percentile_is_nearest_rank():
    from bench.loadgen import percentile

    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert percentile([7.0], 99) == 7.0


def test_bench_rejects_an_unknown_section():
    from bench.__main__ import main

    with pytest.raises(SystemExit, match="unknown section"):
        main(["--only", "sm2,nope"])


def test_bulk_section_runs_on_a_tiny_cluster():
    from bench import bulk_bench

    r = bulk_bench.run(records=24, chunk_size=6, single=8)
    assert r["bulk_records"] == 24 and r["bulk_records_per_s"] > 0
    assert bulk_bench.table_rows(r)
