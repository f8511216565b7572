"""The HTTP load generator: its own process, closed loop, bounded by request count AND time.

``python -m bench.loadgen SPEC.json`` prints one JSON object (requests, errors, req/s,
p50/p95/p99 in ms, its own CPU seconds). Each of ``clients`` connections sends a request,
waits for the answer, sends the next (closed loop: the offered load follows the
service's speed, as real clients do); a warm-up phase at the same concurrency runs first
and is not counted. Given the server's process group, it also reads the server's CPU time
over the measured phase (CPU per request: a figure that other load on the machine does not
distort, unlike requests per second).

The client is a minimal HTTP/1.1 keep-alive client over asyncio streams rather than
httpx: the generator shares the same two cores as the service, and httpx costs several
times more CPU per request, which would be taken from the server being measured. It
reads ``Content-Length`` bodies only, which is what every route measured here answers;
anything else (other status than 2xx, chunked, closed connection, timeout) is an error.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import sys
import time
from datetime import date, timedelta
from pathlib import Path

PHOTOS = 16  # distinct portraits in the request bodies


def record_template(issuer_code: str, issuer_name: str) -> dict:
    """A valid record as a client sends it (dates ISO), photo and person still to be filled in."""
    from ofd.licence.fake import record

    rec = record(issuer_code, issuer_name)
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in rec.items() if k != "photo"}


def record_json(template: dict, i: int, photos: list[str]) -> dict:
    """Record ``i``: every ``i`` a distinct person (ID number, sex), so the service really
    registers a new licence each time rather than answering "issued before"."""
    from ofd.licence.fake import id_number

    birth = (date(1960, 1, 1) + timedelta(days=i // 1000)).strftime("%Y%m%d")
    female = bool(i % 2)
    return {**template, "id_number": id_number("110105", birth, (i % 1000) // 2, female=female),
            "sex": "女" if female else "男", "photo": photos[i % len(photos)]}


def photos_b64(n: int = PHOTOS) -> list[str]:
    from ofd.licence.fake import portrait

    return [base64.b64encode(portrait(seed=k)).decode("ascii") for k in range(n)]


class _Bodies:
    """The next request body of a route: distinct records, or a cycle over documents / QR texts."""

    def __init__(self, spec: dict):
        self.route, self.i = spec["route"], spec.get("start", 0)
        if self.route == "/v1/licences":
            self.photos = photos_b64()
            self.template = record_template(spec["issuer_code"], spec["issuer_name"])
            self.ctype = "application/json"
        elif self.route == "/v1/verify":
            self.items = [p.read_bytes() for p in sorted(Path(spec["documents"]).glob("*.ofd"))]
            self.ctype = "application/ofd"
        else:
            self.items = [json.dumps({"text": t}).encode() for t in json.loads(Path(spec["qr_texts"]).read_text())]
            self.ctype = "application/json"

    def next(self) -> bytes:
        i, self.i = self.i, self.i + 1
        if self.route == "/v1/licences":
            return json.dumps(record_json(self.template, i, self.photos), ensure_ascii=False).encode()
        return self.items[i % len(self.items)]


class _Conn:
    """One keep-alive HTTP/1.1 connection to the service."""

    def __init__(self, host: str, port: int, head: bytes):
        self.host, self.port, self.head = host, port, head
        self.reader = self.writer = None

    async def request(self, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed by the server")
        status = int(status_line.split(b" ", 2)[1])
        length, close = None, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length is None:
            raise ConnectionError("answer without Content-Length")
        await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def _phase(spec: dict, bodies: _Bodies, seconds: float, max_requests: int, record: bool) -> dict:
    """Run ``clients`` closed loops until ``max_requests`` were sent or ``seconds`` passed."""
    host, port = spec["host"], spec["port"]
    auth = f"Authorization: Bearer {spec['token']}\r\n" if spec.get("token") else ""
    head = (f"POST {spec['route']} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}"
            f"Content-Type: {bodies.ctype}\r\nContent-Length: ").encode()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    deadline = time.perf_counter() + seconds
    timeout = spec.get("timeout_s", 30.0)

    async def client():
        nonlocal sent
        conn = _Conn(host, port, head)
        try:
            while sent < max_requests and time.perf_counter() < deadline:
                sent += 1
                body = bodies.next()
                t0 = time.perf_counter()
                try:
                    status = await asyncio.wait_for(conn.request(body), timeout)
                    kind = None if 200 <= status < 300 else f"HTTP {status}"
                except (OSError, asyncio.TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
                    kind = type(exc).__name__
                    conn.close()
                if record:
                    latencies.append(time.perf_counter() - t0)
                    if kind:
                        errors[kind] = errors.get(kind, 0) + 1
        finally:
            conn.close()

    pgid = spec.get("server_pgid")
    server0 = group_cpu_s(pgid) if pgid else 0.0
    t0, cpu0 = time.perf_counter(), _cpu_s()
    await asyncio.gather(*(client() for _ in range(spec["clients"])))
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    server = group_cpu_s(pgid) - server0 if pgid else float("nan")
    return {"latencies": latencies, "errors": errors, "wall_s": wall, "cpu_s": cpu, "server_cpu_s": server}


def _cpu_s() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) of every live process in process group ``pgid``, from /proc:
    the service's supervisor, its uvicorn workers and their signing processes."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if int(fields[2]) == pgid:  # field 5 of stat: pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


async def run(spec: dict) -> dict:
    bodies = _Bodies(spec)
    if spec.get("warmup_s", 0) > 0:
        await _phase(spec, bodies, spec["warmup_s"], spec.get("warmup_requests", 10**9), record=False)
    r = await _phase(spec, bodies, spec["seconds"], spec["requests"], record=True)
    lat = sorted(r["latencies"])
    n = len(lat)
    return {
        "route": spec["route"], "clients": spec["clients"], "requests": n,
        "errors": sum(r["errors"].values()), "error_kinds": r["errors"],
        "wall_s": r["wall_s"], "req_per_s": n / r["wall_s"] if r["wall_s"] else 0.0,
        "p50_ms": 1000 * percentile(lat, 50), "p95_ms": 1000 * percentile(lat, 95),
        "p99_ms": 1000 * percentile(lat, 99), "max_ms": 1000 * lat[-1] if lat else float("nan"),
        "loadgen_cpu_s": r["cpu_s"], "server_cpu_s": r["server_cpu_s"],
    }


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    print(json.dumps(asyncio.run(run(spec))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
