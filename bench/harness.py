"""Tiny measuring helpers shared by every benchmark section.

Figures are throughput (ops/s on one core) measured side by side in one run; the
machines are shared and noisy, so each figure is the best of a few short rounds
and comparisons are reported as ratios taken in the same run.
"""

from __future__ import annotations

import time
from typing import Callable


def rate(fn: Callable[[], object], seconds: float = 0.5, rounds: int = 3) -> float:
    """Best-of-``rounds`` calls per second of ``fn``, each round lasting ~``seconds``."""
    fn()  # warm caches (Z_A, libcrypto key objects)
    best = 0.0
    for _ in range(rounds):
        n, start = 0, time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(16):
                fn()
            n += 16
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best
