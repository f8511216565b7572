"""Prometheus metrics: requests, latencies, signatures made, verification verdicts.

With several uvicorn workers each process counts on its own; set
``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, before the workers start: see
`prepare_multiprocess`) and ``GET /metrics`` sums every worker's files. Labels are
route *templates* and fixed words, never identifiers or tokens, so cardinality stays
bounded and nothing personal is exported.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("ecert_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("ecert_http_request_duration_seconds", "Time to answer an HTTP request", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
SIGNATURES = Counter("ecert_signatures_total", "Licences sealed (SM2 signatures made)", ["issuer"])
ISSUE_REJECTED = Counter("ecert_issue_rejected_total", "Records refused when issuing", ["reason"])
VERDICTS = Counter("ecert_verifications_total", "Documents verified, by verdict", ["verdict"])


def prepare_multiprocess(directory: str | Path) -> Path:
    """Empty ``directory`` and point ``PROMETHEUS_MULTIPROC_DIR`` at it; call once before starting workers."""
    path = Path(directory)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, mode=0o700)
    os.environ[ENV_DIR] = str(path)
    return path


def exposition() -> tuple[bytes, str]:
    """The metrics text: this process's, or every worker's in multiprocess mode."""
    if os.environ.get(ENV_DIR):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class RequestMetrics:
    """ASGI middleware counting every request by method, route template and status."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def tracked_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "<unmatched>"
            REQUESTS.labels(scope["method"], label, str(status)).inc()
            LATENCY.labels(scope["method"], label).observe(time.perf_counter() - start)
