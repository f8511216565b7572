"""Bulk issuing on Dask (2 worker processes) next to the same engine in one process, same run.

The single-process figure is the engine itself with ``n_workers=0`` (`signer.bulk.run_bulk`
in this process: read, sign, register, write, manifest -- the same job minus Dask), on its
own distinct records, measured once before and once after the Dask run (the mean is used,
so load that changes during a long run hits both sides). Goal: Dask rate >= 0.85 x (2 x
single). Peak RSS per worker is sampled every 0.5 s over the whole run (psutil), next to
the peak over its first 10 %: flat means the two are close however large N.

Every record is distinct (ID number and birth date vary), so no figure is flattered by the
registry answering "already issued". The input is generated streamed (photos are 48 files
referenced by path). 100,000 licences need ~4 GB of free disk under $TMPDIR.

    python -m bench.bulk_bench [--records 100000] [--chunk-size N] [--single 2000]

Figures go to stdout and to bench/results/bulk_<records>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

PHOTOS = 48  # distinct portrait files, referenced by path from the records
RESULTS = Path(__file__).parent / "results"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _cpu_s() -> float:
    """CPU seconds of this process so far (all threads): the figure that load does not distort."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def write_records(path: Path, issuer, start: int, n: int) -> Path:
    """``n`` distinct valid records as JSONL, written line by line; photos are files beside it."""
    from ofd.licence.fake import id_number, portrait, record

    for k in range(PHOTOS):
        p = path.parent / f"p{k}.jpg"
        if not p.exists():
            p.write_bytes(portrait(seed=k))
    template = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
                for k, v in record(issuer.code, issuer.name, photo="").items()}
    with path.open("w", encoding="utf-8") as f:
        for i in range(start, start + n):
            birth = (date(1960, 1, 1) + timedelta(days=i // 400)).strftime("%Y%m%d")
            rec = {**template, "id_number": id_number("110105", birth, i % 400, False), "photo": f"p{i % PHOTOS}.jpg"}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


class RssSampler:
    """Peak RSS of some processes, sampled every ``every`` seconds in a thread."""

    def __init__(self, pids: list[int], every: float = 0.5):
        import psutil

        self.procs = [psutil.Process(p) for p in pids]
        self.samples: list[tuple[float, float]] = []  # (seconds since start, max RSS MB over the processes)
        self._stop, self._every, self._t0 = threading.Event(), every, time.perf_counter()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                rss = max(p.memory_info().rss for p in self.procs) / 2**20
            except Exception:  # a worker gone: keep what we have
                return
            self.samples.append((time.perf_counter() - self._t0, rss))
            self._stop.wait(self._every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, until_fraction: float = 1.0) -> float:
        if not self.samples:
            return 0.0
        end = self.samples[-1][0] * until_fraction
        return max(r for t, r in self.samples if t <= end or t == self.samples[0][0])


def _single(settings, tmp: Path, issuer, name: str, start: int, n: int, chunk_size: int) -> tuple[float, float]:
    """(records/s, CPU s per record) of the engine in this process on ``n`` fresh records."""
    from signer.bulk import run_bulk

    src = write_records(tmp / f"{name}.jsonl", issuer, start, n)
    c0 = _cpu_s()
    r = run_bulk(src, tmp / f"{name}-out", store_settings=settings, chunk_size=chunk_size, n_workers=0)
    cpu = _cpu_s() - c0
    if r.failed:
        raise RuntimeError(f"{r.failed} of {n} single-process bench records failed; see {r.manifest}")
    shutil.rmtree(tmp / f"{name}-out", ignore_errors=True)
    return r.rate, cpu / n


def default_chunk(records: int) -> int:
    """~20 chunks or more, 50..500 records each: small runs are not dominated by the last chunk
    running alone (the tail), large ones pay one registry transaction per 500 licences."""
    return max(50, min(records // 20, 500))


def run(records: int = 2000, chunk_size: int | None = None, workers: int = 2, single: int | None = None) -> dict[str, float]:
    from distributed import Client

    from keys.config import load_settings
    from keys.store import DEV_ISSUER_CODE, KeyStore
    from signer.bulk import local_cluster, run_bulk

    single = single or max(200, min(records // 2, 2000))
    chunk_size = chunk_size or default_chunk(records)
    tmp = Path(tempfile.mkdtemp(prefix="ecert-bulk-bench-"))
    try:
        settings = load_settings({"ECERT_HOME": str(tmp / "home")})
        with KeyStore(settings) as store:
            store.init_dev()
            issuer = store.issuer(DEV_ISSUER_CODE)
        _single(settings, tmp, issuer, "warm-single", 900_000, 20, chunk_size)  # open keystore, caches
        rate_a, cpu_a = _single(settings, tmp, issuer, "single-a", 500_000, single, chunk_size)
        src = write_records(tmp / "in.jsonl", issuer, 1, records)
        warm = write_records(tmp / "warm.jsonl", issuer, 800_000, 4 * workers)
        with local_cluster(workers, settings) as cluster, Client(cluster) as client:
            run_bulk(warm, tmp / "warm-out", store_settings=settings, chunk_size=4, client=client)
            pids = list(client.run(os.getpid).values())
            cpu0, coord0 = client.run(_cpu_s), _cpu_s()
            with RssSampler(pids) as rss:
                r = run_bulk(src, tmp / "out", store_settings=settings, chunk_size=chunk_size, client=client)
            cpu1, coord_cpu = client.run(_cpu_s), _cpu_s() - coord0
            maxrss = max(client.run(_peak_rss_mb).values())
        shutil.rmtree(tmp / "out", ignore_errors=True)
        rate_b, cpu_b = _single(settings, tmp, issuer, "single-b", 600_000, single, chunk_size)
        if r.done != records:
            raise RuntimeError(f"{r.failed} of {records} bench records failed; see {r.manifest}")
        single_rate, single_cpu = (rate_a + rate_b) / 2, (cpu_a + cpu_b) / 2
        worker_cpu = sum(cpu1[w] - cpu0[w] for w in cpu1) / records
        return {
            "bulk_records": float(records),
            "bulk_workers": float(workers),
            "bulk_chunk_records": float(chunk_size),
            "bulk_records_per_s": r.rate,
            "bulk_single_process_records_per_s": single_rate,
            "bulk_single_process_before_records_per_s": rate_a,
            "bulk_single_process_after_records_per_s": rate_b,
            "bulk_ratio_vs_2x_single": r.rate / (workers * single_rate),
            "bulk_single_cpu_ms_per_record": 1000 * single_cpu,
            "bulk_worker_cpu_ms_per_record": 1000 * worker_cpu,
            "bulk_coordinator_cpu_ms_per_record": 1000 * coord_cpu / records,
            # what the rate ratio would be on otherwise idle cores: single CPU / all CPU Dask spent per record
            "bulk_cpu_ratio_vs_single": single_cpu / (worker_cpu + coord_cpu / records),
            "bulk_peak_rss_mb_per_worker": max(rss.peak(), maxrss),
            "bulk_peak_rss_mb_per_worker_first_10pct": rss.peak(0.1),
            "bulk_coordinator_peak_rss_mb": _peak_rss_mb(),
            "bulk_seconds": r.seconds,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def table_rows(r: dict[str, float]) -> list[tuple[str, str, str, str]]:
    w = int(r["bulk_workers"])
    return [
        (f"bulk issue+sign, Dask {w} workers ({int(r['bulk_records']):,} records)", f"{r['bulk_records_per_s']:,.0f}/s",
         f"{w} × single process {w * r['bulk_single_process_records_per_s']:,.0f}/s",
         f"{r['bulk_ratio_vs_2x_single']:.2f}×"),
        ("bulk CPU per record: workers + coordinator", f"{r['bulk_worker_cpu_ms_per_record']:.2f} + "
         f"{r['bulk_coordinator_cpu_ms_per_record']:.2f} ms", f"single process {r['bulk_single_cpu_ms_per_record']:.2f} ms",
         f"{r['bulk_cpu_ratio_vs_single']:.2f}×"),
        ("bulk peak RSS per worker (first 10 % of the run)", f"{r['bulk_peak_rss_mb_per_worker']:,.0f} MB "
         f"({r['bulk_peak_rss_mb_per_worker_first_10pct']:,.0f} MB)", f"coordinator {r['bulk_coordinator_peak_rss_mb']:,.0f} MB",
         ""),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=2000, help="records in the Dask run (100000 for the full figure)")
    ap.add_argument("--chunk-size", type=int, default=None, help="records per task (default: records/20, 50..500)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--single", type=int, default=None, help="records per single-process measurement (before, after)")
    args = ap.parse_args()
    r = run(args.records, args.chunk_size, args.workers, args.single)
    for row in table_rows(r):
        print(" | ".join(row))
    out = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **{k: round(v, 3) for k, v in r.items()}}
    print(json.dumps(out, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"bulk_{args.records}.json"
    target.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {target}")


if __name__ == "__main__":
    main()
