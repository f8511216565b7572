"""Soak: sign and verify together at a fixed share of measured capacity, for minutes, on 127.0.0.1.

    python -m bench.soak --minutes 10 --load 0.8 [--out bench/results/soak.json]

1. A throwaway home, development keys, an ``issue`` token and signed documents to verify
   (`bench.http_load.prepare`); the real service (`ecert serve`, 2 uvicorn workers, one
   signing process each) in its own process group (`bench.http_load.serving`).
2. Capacity, briefly: sign and verify driven together, closed loop, for ``--capacity-seconds``
   (one `bench.loadgen` process per route): the rate each reached while sharing the machine
   with the other. The soak then offers ``load`` times each of those rates.
3. Open loop at those fixed rates for ``--minutes``: a request is sent when it is due,
   whether or not earlier ones were answered, and its latency counts from when it was due
   (no coordinated omission: a stall shows as latency, not as fewer requests). Every record
   is a new person, so each signature also adds a registry row and a log entry.
4. Every 5 s the resident memory (RSS) of every process of the service (supervisor,
   workers, signing processes) is summed. Per minute: requests, errors, p50/p99 per route,
   median RSS; p99 also per 10 s window when the run is shorter than 6 minutes. Summary: errors (any non-2xx, refused or timed-out exchange), RSS growth from
   the first fifth of the run to the last (%), p99 per minute, and whether it all stayed steady.

Bounded: every exchange has a timeout, the run stops at ``--minutes`` and waits at most
``DRAIN_S`` for answers still due; the service's whole process group is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from .http_load import drive, prepare, serving
from .loadgen import _Bodies, _Conn, percentile

ROUTES = {"sign": "/v1/licences", "verify": "/v1/verify"}
SAMPLE_S = 5.0
DRAIN_S = 30.0
TIMEOUT_S = 30.0
IDLE_S = 2.0  # reuse a keep-alive connection only this long: uvicorn closes idle ones after 5 s
CAPACITY_CLIENTS = 8
START = {"sign": 2_000_000, "verify": 0}  # record numbers: past the capacity run (1_000_000), never repeated


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of every live process in process group ``pgid`` (from /proc)."""
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            if int(stat[stat.rindex(")") + 2:].split()[2]) != pgid:
                continue
            total += int(Path(f"/proc/{d}/statm").read_text().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total


def spec_for(name: str, prep: dict, home: Path, port: int, **extra) -> dict:
    return {"host": "127.0.0.1", "port": port, "route": ROUTES[name], "start": START[name],
            "token": prep["token"] if name == "sign" else None,
            "issuer_code": prep["issuer"].code, "issuer_name": prep["issuer"].name,
            "documents": str(home / "docs"), "qr_texts": str(home / "qr_texts.json"), **extra}


def measure_capacity(prep: dict, home: Path, port: int, pgid: int, seconds: float) -> dict[str, float]:
    """Requests per second of sign and verify driven *together*, closed loop (one `bench.loadgen`
    process per route, `CAPACITY_CLIENTS` clients each): the mix the soak then offers a share of."""
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> dict:
        spec = spec_for(name, prep, home, port, clients=CAPACITY_CLIENTS, seconds=seconds, requests=10**7,
                        warmup_s=1.0, server_pgid=pgid)
        spec["start"] = 1_000_000 if name == "sign" else 0  # new holders, none the soak will repeat
        return drive(spec, home / f"capacity-{name}")

    for name in ROUTES:
        (home / f"capacity-{name}").mkdir()
    with ThreadPoolExecutor(len(ROUTES)) as ex:
        results = dict(zip(ROUTES, ex.map(one, ROUTES)))
    for name, r in results.items():
        if r["errors"]:
            raise RuntimeError(f"errors while measuring {name} capacity: {r.get('error_kinds')}")
    return {name: r["req_per_s"] for name, r in results.items()}


class _Route:
    """One route driven open loop at ``rate`` per second; idle keep-alive connections are reused."""

    def __init__(self, name: str, spec: dict, rate: float):
        self.name, self.rate, self.bodies = name, rate, _Bodies(spec)
        auth = f"Authorization: Bearer {spec['token']}\r\n" if spec.get("token") else ""
        self.head = (f"POST {spec['route']} HTTP/1.1\r\nHost: 127.0.0.1:{spec['port']}\r\n{auth}"
                     f"Content-Type: {self.bodies.ctype}\r\nContent-Length: ").encode()
        self.port = spec["port"]
        self.idle: list[tuple[_Conn, float]] = []  # (connection, when it was last answered)
        self.results: list[tuple[float, float, str | None]] = []  # (due, latency s, error kind or None)

    def _conn(self) -> _Conn:
        while self.idle:
            conn, last = self.idle.pop()
            if time.perf_counter() - last < IDLE_S:
                return conn
            conn.close()  # the server may be closing it right now: a client artefact, not an error
        return _Conn("127.0.0.1", self.port, self.head)

    async def one(self, due: float, body: bytes) -> None:
        conn = self._conn()
        error = None
        try:
            status = await asyncio.wait_for(conn.request(body), TIMEOUT_S)
            if not 200 <= status < 300:
                error = f"http_{status}"
        except asyncio.TimeoutError:
            error = "timeout"
        except (OSError, ConnectionError, ValueError, asyncio.IncompleteReadError) as exc:
            error = type(exc).__name__
        latency = time.perf_counter() - due
        if error is None:
            self.idle.append((conn, time.perf_counter()))
        else:
            conn.close()
        self.results.append((due, latency, error))

    async def run(self, t0: float, seconds: float, tasks: set) -> None:
        interval, k = 1.0 / self.rate, 0
        while True:
            due = t0 + k * interval
            if due - t0 >= seconds:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(self.one(due, self.bodies.next()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1


async def _soak(routes: list[_Route], seconds: float, pgid: int, rss: list[tuple[float, int]]) -> float:
    t0 = time.perf_counter() + 0.5
    tasks: set = set()

    async def sampler():
        while True:
            rss.append((time.perf_counter() - t0, group_rss_bytes(pgid)))
            await asyncio.sleep(SAMPLE_S)

    sample = asyncio.ensure_future(sampler())
    await asyncio.gather(*(r.run(t0, seconds, tasks) for r in routes))
    if tasks:
        await asyncio.wait(set(tasks), timeout=DRAIN_S)
    for t in list(tasks):
        t.cancel()
    sample.cancel()
    return t0


def summarise(routes: list[_Route], t0: float, minutes: int, rss: list[tuple[float, int]]) -> dict:
    per_minute = []
    for m in range(minutes):
        row: dict = {"minute": m + 1}
        for r in routes:
            got = [(lat, err) for due, lat, err in r.results if m * 60 <= due - t0 < (m + 1) * 60]
            ok = sorted(lat for lat, err in got if err is None)
            row[r.name] = {"requests": len(got), "errors": sum(err is not None for _, err in got),
                           "p50_ms": round(1000 * percentile(ok, 50), 1), "p99_ms": round(1000 * percentile(ok, 99), 1)}
        samples = [b for t, b in rss if m * 60 <= t < (m + 1) * 60]
        row["rss_mib"] = round(statistics.median(samples) / 2**20, 1) if samples else None
        per_minute.append(row)
    errors: dict[str, int] = {}
    for r in routes:
        for _, _, err in r.results:
            if err is not None:
                errors[f"{r.name}:{err}"] = errors.get(f"{r.name}:{err}", 0) + 1
    # growth: the median of the last fifth of the samples against the first fifth (minute 1 to minute 10
    # for a 10-minute soak; still meaningful for a short proof run)
    span = minutes * 60
    head = [b for t, b in rss if t < span / 5] or [b for _, b in rss[:1]]
    tail = [b for t, b in rss if t >= span * 4 / 5] or [b for _, b in rss[-1:]]
    first, last = statistics.median(head) / 2**20, statistics.median(tail) / 2**20
    growth = 100 * (last - first) / first
    p99 = {r.name: [row[r.name]["p99_ms"] for row in per_minute] for r in routes}
    # steadiness is judged on at least six windows: minutes, or 10 s windows for a short proof run
    window = 60.0 if minutes >= 6 else 10.0
    n_windows = int(minutes * 60 // window)
    p99_windows = {}
    for r in routes:
        per = []
        for w in range(n_windows):
            ok = sorted(lat for due, lat, err in r.results if err is None and w * window <= due - t0 < (w + 1) * window)
            per.append(round(1000 * percentile(ok, 99), 1))
        p99_windows[r.name] = per
    return {
        "minutes": minutes, "requests": sum(len(r.results) for r in routes), "errors": sum(errors.values()),
        "error_kinds": errors, "rss_growth_pct": round(growth, 1),
        "rss_mib_first_last": [round(first, 1), round(last, 1)],
        "p99_ms_per_minute": p99,
        f"p99_ms_per_{int(window)}s": p99_windows,
        # steady: no window's p99 above twice the median window's (a trend, a stall or a queue would show)
        "p99_steady": all(max(v) <= 2 * statistics.median(v) for v in p99_windows.values() if v),
        "per_minute": per_minute,
    }


def run(minutes: int, load: float, capacity_seconds: float = 8.0) -> dict:
    home = Path(tempfile.mkdtemp(prefix="ecert-soak-"))
    try:
        prep = prepare(home, 0.2)
        with serving(home, workers=2, sign_workers=1) as (proc, port):
            capacity = measure_capacity(prep, home, port, proc.pid, capacity_seconds)
            rates = {name: max(load * capacity[name], 0.5) for name in ROUTES}
            routes = [_Route(name, spec_for(name, prep, home, port), rates[name]) for name in ROUTES]
            rss: list[tuple[float, int]] = []
            t0 = asyncio.run(_soak(routes, minutes * 60, proc.pid, rss))
            out = {"load": load, "workers": 2, "capacity_req_per_s": {k: round(v, 1) for k, v in capacity.items()},
                   "offered_req_per_s": {k: round(v, 2) for k, v in rates.items()},
                   **summarise(routes, t0, minutes, rss)}
        return out
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=int, default=10, help="soak length (whole minutes, 1-120)")
    ap.add_argument("--load", type=float, default=0.8, help="share of measured capacity offered (0.05-1.0)")
    ap.add_argument("--capacity-seconds", type=float, default=8.0, help="closed-loop run per route to measure capacity")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "soak.json")
    a = ap.parse_args(argv)
    if not 1 <= a.minutes <= 120 or not 0.05 <= a.load <= 1.0 or not 1 <= a.capacity_seconds <= 60:
        ap.error("--minutes 1-120, --load 0.05-1.0, --capacity-seconds 1-60")
    result = run(a.minutes, a.load, a.capacity_seconds)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    for row in result["per_minute"]:
        print(f"minute {row['minute']:>3}: " + "  ".join(
            f"{n} {row[n]['requests']} req {row[n]['errors']} err p50 {row[n]['p50_ms']} p99 {row[n]['p99_ms']} ms"
            for n in ROUTES) + f"  rss {row['rss_mib']} MiB")
    print(f"capacity {result['capacity_req_per_s']} req/s, offered {result['offered_req_per_s']} req/s; "
          f"errors {result['errors']} {result['error_kinds'] or ''}; RSS growth {result['rss_growth_pct']} %; "
          f"p99 steady: {result['p99_steady']} -> {a.out}")
    return 0 if result["errors"] == 0 and result["rss_growth_pct"] < 10 and result["p99_steady"] else 1


if __name__ == "__main__":
    sys.exit(main())
