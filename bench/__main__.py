"""`make bench`: every benchmark section in one run, one table, results in bench/results/latest.json."""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import bulk_bench, licence_bench, qr_bench, sm2_bench

RESULTS = Path(__file__).parent / "results" / "latest.json"


def main() -> int:
    console = Console()
    figures: dict[str, float] = {}
    rows = []
    with console.status("SM2 vs openssl speed ..."):
        r = sm2_bench.run()
    figures.update(r)
    rows += sm2_bench.table_rows(r)
    with console.status("licence issue+sign and verify ..."):
        lr = licence_bench.run()
    figures.update(lr)
    rows += licence_bench.table_rows(lr, r)
    with console.status("QR payload verify ..."):
        qr = qr_bench.run()
    figures.update(qr)
    rows += qr_bench.table_rows(qr)
    with console.status("bulk: Dask, 2 workers ..."):
        bk = bulk_bench.run(records=1000)
    figures.update(bk)
    rows += bulk_bench.table_rows(bk)

    table = Table(title=f"ecert benchmarks — one core, one run ({platform.processor() or platform.machine()})")
    for col in ("operation", "ecert", "baseline (same run)", "ratio"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    out = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": sys.version.split()[0]}
    out.update({k: round(v, 3) for k, v in figures.items()})
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    console.print(f"results written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
