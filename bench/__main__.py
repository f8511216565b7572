"""`make bench`: every benchmark section in one run, one table, results in bench/results/latest.json
and the chart docs/bench.png.

    python -m bench                      # everything (~5 min on 2 cores)
    python -m bench --only http,qr       # some sections; written to bench/results/only-http-qr.json
    python -m bench --scale 0.3          # shorter measuring windows and fewer bulk records
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .harness import GOALS, goal_rows

RESULTS_DIR = Path(__file__).parent / "results"
RESULTS = RESULTS_DIR / "latest.json"
SECTIONS = ("sm2", "licence", "qr", "http", "bulk")


def _sections(only: str | None) -> tuple[str, ...]:
    if not only:
        return SECTIONS
    chosen = tuple(s.strip() for s in only.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return chosen


def measure(sections: tuple[str, ...], scale: float, console: Console) -> tuple[dict[str, float], list[tuple]]:
    """Run the chosen sections in order; (flat figures, table rows)."""
    from . import bulk_bench, http_load, licence_bench, qr_bench, sm2_bench

    figures: dict[str, float] = {}
    rows: list[tuple] = []
    if "sm2" in sections:
        with console.status("SM2 vs openssl speed ..."):
            r = sm2_bench.run()
        figures.update(r)
        rows += sm2_bench.table_rows(r)
    if "licence" in sections:
        with console.status("licence issue+sign, the naive baseline, verify ..."):
            lr = licence_bench.run(seconds=max(0.2, scale))
        figures.update(lr)
        rows += licence_bench.table_rows(lr, figures)
    if "qr" in sections:
        with console.status("QR payload verify ..."):
            qr = qr_bench.run(seconds=max(0.05, 0.15 * scale))
        figures.update(qr)
        rows += qr_bench.table_rows(qr)
    if "http" in sections:
        with console.status("HTTP under load: ecert serve, 1 / 16 / 64 clients ..."):
            hr = http_load.run(seconds=max(1.0, 6.0 * scale), inproc_seconds=max(0.2, 0.5 * scale))
        figures.update(http_load.figures(hr))
        rows += http_load.table_rows(hr)
    if "bulk" in sections:
        with console.status("bulk: Dask, 2 workers ..."):
            bk = bulk_bench.run(records=max(100, int(1000 * scale)))
        figures.update(bk)
        rows += bulk_bench.table_rows(bk)
    return figures, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description="ecert benchmarks: one run, one table")
    ap.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply measuring windows and bulk records")
    ap.add_argument("--no-chart", action="store_true", help="do not redraw docs/bench.png")
    args = ap.parse_args(argv)
    sections = _sections(args.only)
    console = Console(width=None if sys.stdout.isatty() else 160)
    figures, rows = measure(sections, args.scale, console)

    table = Table(title=f"ecert benchmarks — one run ({platform.processor() or platform.machine()}, "
                        f"{', '.join(sections)})")
    for col in ("operation", "ecert", "baseline (same run)", "ratio"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    goals = goal_rows(figures)
    if goals:
        table.add_section()
        for row in goals:
            table.add_row(*row)
    console.print(table)

    out = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": sys.version.split()[0],
           "scale": args.scale}
    out.update({k: round(v, 3) for k, v in figures.items()})
    path = RESULTS if sections == SECTIONS else RESULTS_DIR / f"only-{'-'.join(sections)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    console.print(f"results written to {path}")
    if path == RESULTS and not args.no_chart:
        from .chart import CHART, draw

        draw(out, CHART)
        console.print(f"chart written to {CHART}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
