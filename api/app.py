"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI(title="ecert", version="0.1.0", description="Electronic Special Operation Certificates: issue, seal, verify.")


@app.get("/healthz", tags=["ops"])
def healthz() -> dict:
    from keys import sm2

    sign_backend, verify_backend = sm2.backends()
    return {"status": "ok", "sm2": {"sign": sign_backend, "verify": verify_backend}}
