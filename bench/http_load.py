"""HTTP under load: the real service (`ecert serve`, N uvicorn workers) on 127.0.0.1, driven by
a separate load-generator process (`bench.loadgen`) at 1, 16 and 64 closed-loop clients.

For each of ``POST /v1/licences``, ``POST /v1/verify`` and ``POST /v1/qr/verify`` and each
concurrency: requests/s, p50/p95/p99 latency, errors (non-2xx or failed exchanges), the
generator's CPU and the server's (all its processes, from /proc). The same work the route
hands to its signing process (`api.signing_pool.WorkContext`: issue incl. the registry,
verify, QR verify) is measured in this process first, in the same run, on the same
keystore, so ``http_*_ratio_vs_inproc_x_workers`` = HTTP req/s / (in-process rate × workers).

Both sides share the machine's cores: whatever the generator uses is taken from the
server, so ``*_ratio_vs_inproc_x_free_cores`` divides by the cores the generator left
free instead, the best the server could have done on this machine. Requests per second
are wall-clock figures and suffer from anything else running; the server's CPU per
request (all its processes, over the measured phase) does not, so
``*_cpu_efficiency_vs_inproc`` = in-process CPU per request / server CPU per request is
what the throughput ratio would be on otherwise idle cores.

Each uvicorn worker gets ``--sign-workers`` signing processes (default 1, so two workers
use the two cores; `ecert serve` alone would start one per CPU in every worker).

    python -m bench.http_load [--workers 2] [--sign-workers 1] [--seconds 6] [--clients 1,16,64]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .harness import rate

ROOT = Path(__file__).resolve().parents[1]
ROUTES = {"issue": "/v1/licences", "verify": "/v1/verify", "qr_verify": "/v1/qr/verify"}
DOCS = 16  # distinct signed licences (and their QR texts) cycled by the verify routes
INPROC_START = 5_000_000  # record numbers of the in-process run; the HTTP runs count from 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(home: Path, seconds: float = 0.5) -> dict:
    """Dev keys and an ``issue`` token in ``home``; the in-process rates of the routes' work;
    ``DOCS`` registered licences and their QR texts written for the generator."""
    from api.auth import TokenStore
    from api.signing_pool import WorkContext
    from keys.config import load_settings
    from keys.store import KeyStore
    from ofd.licence.model import validate_record
    from signer.issue import load_identity, portal_url
    from signer.qr_payload import make_qr_text

    from .loadgen import photos_b64, record_json, record_template

    settings = load_settings({"ECERT_HOME": str(home)})
    with KeyStore(settings) as store:
        issuer = store.init_dev().issuer
    ts = TokenStore(settings.database_url)
    try:
        token, _ = ts.create("bench http_load", ["issue"])
    finally:
        ts.close()

    template, photos = record_template(issuer.code, issuer.name), photos_b64()
    ctx = WorkContext(settings)
    try:
        records = [record_json(template, INPROC_START + k, photos) for k in range(DOCS)]
        docs = [ctx.issue(r)["data"] for r in records]
        ident = load_identity(ctx.store, issuer.code)
        texts = [make_qr_text(validate_record(r), ident, portal=portal_url()) for r in records]
        (home / "docs").mkdir()
        for k, data in enumerate(docs):
            (home / "docs" / f"{k:02d}.ofd").write_bytes(data)
        (home / "qr_texts.json").write_text(json.dumps(texts))
        counter = iter(range(INPROC_START + DOCS, INPROC_START + 10**6))
        docs_cycle, texts_cycle = _cycle(docs), _cycle(texts)
        inproc = {
            "issue": rate(lambda: ctx.issue(record_json(template, next(counter), photos)), seconds),
            "verify": rate(lambda: ctx.verify(next(docs_cycle)), seconds),
            "qr_verify": rate(lambda: ctx.verify_qr(next(texts_cycle)), seconds),
        }
        assert all(ctx.verify(d)["verdict"] == "valid" for d in docs[:2])
    finally:
        ctx.close()
    return {"settings": settings, "issuer": issuer, "token": token, "inproc": inproc}


def _cycle(items):
    while True:
        yield from items


SERVE = (sys.executable, "-m", "api.cli", "serve")  # `ecert serve`, as `make run` starts it


@contextlib.contextmanager
def serving(home: Path, workers: int, sign_workers: int, timeout: float = 90, command: tuple[str, ...] = SERVE):
    """``command`` (default `ecert serve`) ``--host 127.0.0.1 --port P --workers N`` in its own
    process group; stopped with the whole group. Another command measures a candidate fix."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ECERT_HOME": str(home), "ECERT_SIGN_WORKERS": str(sign_workers)}
    log = (home / "server.log").open("ab")
    proc = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(proc, port, home, timeout)
        yield proc, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


def _wait_ready(proc: subprocess.Popen, port: int, home: Path, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    tail = (home / "server.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"the service did not become ready within {timeout:.0f} s:\n{tail}")


def drive(spec: dict, home: Path) -> dict:
    """One generator process for ``spec``; its report (`bench.loadgen.run`)."""
    path = home / "loadgen-spec.json"
    path.write_text(json.dumps(spec))
    limit = spec["warmup_s"] + spec["seconds"] + 120  # a hung exchange times out inside; this guards the rest
    out = subprocess.run([sys.executable, "-m", "bench.loadgen", str(path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=limit, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode:
        raise RuntimeError(f"load generator failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def run(workers: int = 2, sign_workers: int = 1, clients: tuple[int, ...] = (1, 16, 64), seconds: float = 6.0,
        requests: int = 50_000, warmup_s: float = 1.0, inproc_seconds: float = 0.5,
        command: tuple[str, ...] = SERVE) -> dict[str, float]:
    cores = os.cpu_count() or 1
    home = Path(tempfile.mkdtemp(prefix="ecert-http-bench-"))
    try:
        prep = prepare(home, inproc_seconds)
        out: dict[str, float] = {"http_workers": float(workers), "http_sign_workers_per_worker": float(sign_workers),
                                 "http_machine_cores": float(cores)}
        for name, per_s in prep["inproc"].items():
            out[f"inproc_{name}_per_s_per_core"] = per_s
        with serving(home, workers, sign_workers, command=command) as (proc, port):
            start = 0
            for name, route in ROUTES.items():
                for c in clients:
                    spec = {"host": "127.0.0.1", "port": port, "route": route, "clients": c, "seconds": seconds,
                            "requests": requests, "warmup_s": warmup_s, "start": start,
                            "token": prep["token"] if name == "issue" else None,
                            "issuer_code": prep["issuer"].code, "issuer_name": prep["issuer"].name,
                            "documents": str(home / "docs"), "qr_texts": str(home / "qr_texts.json"),
                            "server_pgid": proc.pid}
                    r = drive(spec, home)
                    start += 1_000_000  # generously past what one level can send: records never repeat
                    key = f"http_{name}_c{c}"
                    gen_cores = r["loadgen_cpu_s"] / r["wall_s"]
                    ideal = prep["inproc"][name]
                    cpu_ms = 1000 * r["server_cpu_s"] / max(r["requests"], 1)
                    out.update({
                        f"{key}_req_per_s": r["req_per_s"], f"{key}_p50_ms": r["p50_ms"],
                        f"{key}_p95_ms": r["p95_ms"], f"{key}_p99_ms": r["p99_ms"],
                        f"{key}_errors": float(r["errors"]), f"{key}_requests": float(r["requests"]),
                        f"{key}_loadgen_cpu_share": gen_cores / cores,
                        f"{key}_server_cores": r["server_cpu_s"] / r["wall_s"],
                        f"{key}_server_cpu_ms_per_req": cpu_ms,
                        f"{key}_cpu_efficiency_vs_inproc": (1000 / ideal) / cpu_ms if cpu_ms else 0.0,
                        f"{key}_ratio_vs_inproc_x_workers": r["req_per_s"] / (ideal * workers),
                        f"{key}_ratio_vs_inproc_x_free_cores":
                            r["req_per_s"] / (ideal * max(min(workers, cores) - gen_cores, 0.1)),
                    })
                    if r["errors"]:
                        out.setdefault("http_error_kinds", {})[key] = r["error_kinds"]  # kept out of the figures
        out["http_errors_total"] = sum(v for k, v in out.items() if k.endswith("_errors"))
        return out
    finally:
        shutil.rmtree(home, ignore_errors=True)


def figures(r: dict) -> dict[str, float]:
    """The numeric figures only (drops the error-kind detail)."""
    return {k: v for k, v in r.items() if isinstance(v, (int, float))}


def table_rows(r: dict) -> list[tuple[str, str, str, str]]:
    w = int(r["http_workers"])
    rows = []
    for name, route in ROUTES.items():
        clients = sorted({int(k.split("_c")[1].split("_")[0]) for k in r if k.startswith(f"http_{name}_c")})
        per_s = r[f"inproc_{name}_per_s_per_core"]
        rows.append((f"in-process: {route}'s work (same run)", f"{per_s:,.0f}/s ({1000 / per_s:.2f} ms CPU)", "", ""))
        for c in clients:
            k = f"http_{name}_c{c}"
            rows.append((
                f"HTTP {route}, {c} client{'s' if c > 1 else ''}",
                f"{r[f'{k}_req_per_s']:,.0f}/s · p50/95/99 {r[f'{k}_p50_ms']:.0f}/{r[f'{k}_p95_ms']:.0f}/"
                f"{r[f'{k}_p99_ms']:.0f} ms · {int(r[f'{k}_errors'])} err",
                f"in-proc × {w} {per_s * w:,.0f}/s · server {r[f'{k}_server_cpu_ms_per_req']:.1f} ms CPU/req, "
                f"{r[f'{k}_server_cores']:.1f} cores · loadgen {r[f'{k}_loadgen_cpu_share']:.0%}",
                f"{r[f'{k}_ratio_vs_inproc_x_workers']:.2f}× (CPU {r[f'{k}_cpu_efficiency_vs_inproc']:.2f}×)",
            ))
    if "http_error_kinds" in r:
        rows.append(("HTTP errors by kind", json.dumps(r["http_error_kinds"])[:120], "", ""))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--sign-workers", type=int, default=1, help="signing processes per uvicorn worker")
    ap.add_argument("--seconds", type=float, default=6.0, help="measured seconds per route and concurrency")
    ap.add_argument("--clients", default="1,16,64")
    ap.add_argument("--serve-command", help="launch command instead of `ecert serve` (gets --host/--port/--workers)")
    args = ap.parse_args()
    command = tuple(args.serve_command.split()) if args.serve_command else SERVE
    r = run(args.workers, args.sign_workers, tuple(int(c) for c in args.clients.split(",")), args.seconds,
            command=command)
    for row in table_rows(r):
        print(" | ".join(row))
    print(json.dumps(figures(r), indent=2))


if __name__ == "__main__":
    main()
