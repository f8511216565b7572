"""Bulk issuing on Dask (2 worker processes) next to the same work in one process, same run.

The single-process figure runs the engine's own task function (`signer.bulk.sign_chunk`)
in this process, so the ratio isolates what Dask, chunking and the coordinator cost:
goal >= 0.85 of 2 x single-core. Peak RSS is each worker's ``ru_maxrss`` after the run
(flat means it does not grow with N: compare ``--records 2000`` with ``--records 100000``).
Every record is distinct (ID number and birth date vary), so no figure is flattered by
the registry answering "already issued".

    python -m bench.bulk_bench [--records 100000] [--chunk-size 500]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

PHOTOS = 48  # distinct portrait files, referenced by path from the records


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _cpu_s() -> float:
    """CPU seconds of this process so far: on a shared machine, the figure that load does not distort."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _write_records(path: Path, issuer, start: int, n: int) -> Path:
    """``n`` distinct valid records as JSONL; photos are files beside it (read in by the coordinator)."""
    from ofd.licence.fake import id_number as _id_number, portrait as _portrait, record as make_record

    for k in range(PHOTOS):
        p = path.parent / f"p{k}.jpg"
        if not p.exists():
            p.write_bytes(_portrait(seed=k))
    with path.open("w", encoding="utf-8") as f:
        for i in range(start, start + n):
            birth = (date(1960, 1, 1) + timedelta(days=i // 400)).strftime("%Y%m%d")
            rec = make_record(issuer.code, issuer.name, seq=i, id_number=_id_number("110105", birth, i % 400, False),
                              photo=f"p{i % PHOTOS}.jpg")
            f.write(json.dumps({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in rec.items()},
                               ensure_ascii=False) + "\n")
    return path


def _single_process_rate(spec, tmp: Path, issuer, start: int, n: int) -> float:
    from signer.bulk import sign_chunk
    from signer.bulk_io import read_chunks

    src = _write_records(tmp / "single.jsonl", issuer, start, n + 8)
    out = tmp / "single-out"
    out.mkdir()
    chunks = list(read_chunks(src, n))
    sign_chunk(spec, str(out), "warm", chunks[1], False)  # open keystore, registry, issuer caches
    t0, c0 = time.perf_counter(), _cpu_s()
    _, ok, bad = sign_chunk(spec, str(out), "single", chunks[0], False)
    seconds, cpu = time.perf_counter() - t0, _cpu_s() - c0
    if bad:
        raise RuntimeError(f"{bad} of {n} single-process bench records failed")
    return ok / seconds, cpu / ok


def run(records: int = 2000, chunk_size: int = 100, workers: int = 2, single: int = 200) -> dict[str, float]:
    from distributed import Client, LocalCluster

    from keys.config import load_settings
    from keys.store import DEV_ISSUER_CODE, KeyStore
    from signer.bulk import keystore_location, run_bulk

    tmp = Path(tempfile.mkdtemp(prefix="ecert-bulk-bench-"))
    try:
        settings = load_settings({"ECERT_HOME": str(tmp / "home")})
        with KeyStore(settings) as store:
            store.init_dev()
            issuer = store.issuer(DEV_ISSUER_CODE)
        single_rate, single_cpu = _single_process_rate(keystore_location(settings), tmp, issuer, 200_000, single)
        src = _write_records(tmp / "in.jsonl", issuer, 1, records)
        warm = _write_records(tmp / "warm.jsonl", issuer, 300_000, 4 * workers)
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            run_bulk(warm, tmp / "warm-out", store_settings=settings, chunk_size=4, client=client)
            cpu0, coord0 = client.run(_cpu_s), _cpu_s()
            r = run_bulk(src, tmp / "out", store_settings=settings, chunk_size=chunk_size, client=client)
            rss, cpu1, coord_cpu = client.run(_peak_rss_mb), client.run(_cpu_s), _cpu_s() - coord0
        worker_cpu = sum(cpu1[w] - cpu0[w] for w in cpu1) / records
        if r.done != records:
            raise RuntimeError(f"{r.failed} of {records} bench records failed; see {r.manifest}")
        return {
            "bulk_records": float(records),
            "bulk_workers": float(workers),
            "bulk_dask_per_s": r.rate,
            "bulk_single_process_per_s": single_rate,
            "bulk_efficiency_vs_2x_single": r.rate / (workers * single_rate),
            "bulk_single_cpu_ms_per_record": 1000 * single_cpu,
            "bulk_worker_cpu_ms_per_record": 1000 * worker_cpu,
            "bulk_coordinator_cpu_ms_per_record": 1000 * coord_cpu / records,
            "bulk_cpu_efficiency": single_cpu / worker_cpu,  # what the rate ratio would be on idle cores
            "bulk_worker_peak_rss_mb": max(rss.values()),
            "bulk_coordinator_peak_rss_mb": _peak_rss_mb(),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def table_rows(r: dict[str, float]) -> list[tuple[str, str, str, str]]:
    w = int(r["bulk_workers"])
    return [
        (f"bulk issue+sign, Dask {w} workers ({int(r['bulk_records']):,} records)", f"{r['bulk_dask_per_s']:,.0f}/s",
         f"{w} × single process {w * r['bulk_single_process_per_s']:,.0f}/s",
         f"{r['bulk_efficiency_vs_2x_single']:.2f}×"),
        ("bulk CPU per record: workers / coordinator", f"{r['bulk_worker_cpu_ms_per_record']:.1f} ms / "
         f"{r['bulk_coordinator_cpu_ms_per_record']:.2f} ms", f"single process {r['bulk_single_cpu_ms_per_record']:.1f} ms",
         f"{r['bulk_cpu_efficiency']:.2f}×"),
        ("bulk peak RSS per worker / coordinator", f"{r['bulk_worker_peak_rss_mb']:,.0f} MB",
         f"coordinator {r['bulk_coordinator_peak_rss_mb']:,.0f} MB", ""),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=2000, help="records in the Dask run (100000 for the full figure)")
    ap.add_argument("--chunk-size", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    r = run(args.records, args.chunk_size, args.workers)
    for row in table_rows(r):
        print(" | ".join(row))
    print(json.dumps({k: round(v, 3) for k, v in r.items()}, indent=2))


if __name__ == "__main__":
    main()
