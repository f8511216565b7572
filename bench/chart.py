"""docs/bench.png from a results file: each goal as measured / target (1.0 = the goal exactly),
and the HTTP latency percentiles at each concurrency against the 25 ms p99 goal.

    python -m bench.chart [bench/results/latest.json] [docs/bench.png]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .harness import GOALS, goal_met

CHART = Path(__file__).resolve().parents[1] / "docs" / "bench.png"
ROUTES = (("issue", "POST /v1/licences"), ("verify", "POST /v1/verify"), ("qr_verify", "POST /v1/qr/verify"))
P99_GOAL_MS = 25


def goal_fractions(results: dict) -> list[tuple[str, float, bool]]:
    """(label, measured / target for ≥ goals or target / measured for ≤ goals, met) of the
    measured goals; 1.0 is the goal, higher is better either way. Zero-target goals are left out."""
    out = []
    for key, label, op, target in GOALS:
        if key not in results or target == 0:
            continue
        v = results[key]
        frac = v / target if op == ">=" else (target / v if v else float("inf"))
        out.append((label, frac, goal_met(v, op, target)))
    return out


def draw(results: dict, path: Path = CHART) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    goals = goal_fractions(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 6.5), gridspec_kw={"width_ratios": [1.25, 1]})
    labels = [g[0] for g in goals]
    fracs = [min(g[1], 3.0) for g in goals]  # a 20x win would flatten the rest; clipped, value printed
    ax1.barh(labels, fracs, color=["#2e7d32" if g[2] else "#c62828" for g in goals])
    ax1.axvline(1.0, color="black", linestyle="--", linewidth=1)
    for i, g in enumerate(goals):
        ax1.text(min(g[1], 3.0) + 0.03, i, f"{g[1]:.3g}", va="center", fontsize=8)
    ax1.invert_yaxis()
    ax1.set_xlim(0, 3.4)
    ax1.set_xlabel("measured / goal (≤ goals: goal / measured); 1 = goal, clipped at 3")
    ax1.set_title("Goals of issue #8, one run")
    ax1.tick_params(axis="y", labelsize=8)

    width = 0.27
    levels = sorted({int(k.split("_c")[1].split("_")[0]) for k in results if k.startswith("http_issue_c")
                     and k.endswith("_p99_ms")})
    for j, (name, route) in enumerate(ROUTES):
        xs = [i + (j - 1) * width for i in range(len(levels))]
        for pct, alpha in (("p99", 0.35), ("p95", 0.6), ("p50", 1.0)):
            ys = [results.get(f"http_{name}_c{c}_{pct}_ms", 0) for c in levels]
            ax2.bar(xs, ys, width, color=f"C{j}", alpha=alpha, label=f"{route} {pct}" if pct != "p95" else None)
    ax2.axhline(P99_GOAL_MS, color="black", linestyle="--", linewidth=1, label=f"p99 goal {P99_GOAL_MS} ms")
    ax2.set_xticks(range(len(levels)), [f"{c} client{'s' if c > 1 else ''}" for c in levels])
    ax2.set_yscale("log")
    ax2.set_ylabel("latency, ms (log); bars: p50 solid, p95, p99 light")
    ax2.set_title(f"HTTP latency, {int(results.get('http_workers', 0))} uvicorn workers, closed loop")
    ax2.legend(fontsize=7)
    fig.suptitle(f"ecert make bench — {results.get('measured_at', '')}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv else Path(__file__).parent / "results" / "latest.json"
    dst = Path(argv[1]) if len(argv) > 1 else CHART
    print(draw(json.loads(src.read_text()), dst))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
