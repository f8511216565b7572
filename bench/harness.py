"""Tiny measuring helpers shared by every benchmark section.

Figures are throughput (ops per CPU-second on one core) measured side by side in one
run; the machines are shared and noisy, so time is this process's CPU time (as
`openssl speed` counts by default), each figure is the best of a few short rounds, and
comparisons are reported as ratios taken in the same run.
"""

from __future__ import annotations

import time
from typing import Callable


def rate(fn: Callable[[], object], seconds: float = 0.5, rounds: int = 3) -> float:
    """Best-of-``rounds`` calls per second of ``fn``, each round lasting ~``seconds``."""
    fn()  # warm caches (Z_A, libcrypto key objects)
    best = 0.0
    for _ in range(rounds):
        n, start = 0, time.process_time()
        deadline = start + seconds
        while True:
            for _ in range(16):
                fn()
            n += 16
            now = time.process_time()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best


# The goals of issue #8 (and the bulk and SM2 goals before it): (figure, label, ">=" or "<=", target).
GOALS: tuple[tuple[str, str, str, float], ...] = (
    ("sm2_sign_ratio_vs_openssl", "SM2 sign vs openssl speed", ">=", 1.0),
    ("sm2_verify_ratio_vs_openssl", "SM2 verify vs openssl speed", ">=", 0.9),
    ("issue_sign_per_s_per_core", "issue+sign per core, /s", ">=", 1000),
    ("issue_sign_ratio_vs_naive", "issue+sign vs naive baseline", ">=", 15),
    ("verify_per_s_per_core", "verify per core, /s", ">=", 1500),
    ("qr_verify_per_s", "QR verify per core, /s", ">=", 2500),
    ("http_issue_c64_ratio_vs_inproc_x_workers", "HTTP issue, 64 clients, of in-process × workers", ">=", 0.70),
    ("http_verify_c64_ratio_vs_inproc_x_workers", "HTTP verify, 64 clients, of in-process × workers", ">=", 0.70),
    ("http_qr_verify_c64_ratio_vs_inproc_x_workers", "HTTP QR verify, 64 clients, of in-process × workers", ">=", 0.70),
    ("http_issue_c64_p99_ms", "HTTP issue p99 at 64 clients, ms", "<=", 25),
    ("http_verify_c64_p99_ms", "HTTP verify p99 at 64 clients, ms", "<=", 25),
    ("http_qr_verify_c64_p99_ms", "HTTP QR verify p99 at 64 clients, ms", "<=", 25),
    ("http_errors_total", "HTTP errors, all routes and levels", "<=", 0),
    ("bulk_ratio_vs_2x_single", "bulk Dask vs 2 × single process", ">=", 0.85),
)


def goal_met(value: float, op: str, target: float) -> bool:
    return value >= target if op == ">=" else value <= target


def goal_rows(figures: dict[str, float]) -> list[tuple[str, str, str, str]]:
    """(goal, measured, target, ✓/✗) for every goal whose figure was measured."""
    rows = []
    for key, label, op, target in GOALS:
        if key in figures:
            v = figures[key]
            shown = f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
            rows.append((f"goal: {label}", shown, f"{'≥' if op == '>=' else '≤'} {target:g}",
                         "✓" if goal_met(v, op, target) else "✗"))
    return rows
