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
