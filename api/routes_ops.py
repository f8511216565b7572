"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from keys.config import KeyStoreError

from .deps import bearer, require_scope, state
from .errors import error_responses
from .metrics import exposition

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Liveness")
def healthz() -> dict:
    from keys import sm2

    sign_backend, verify_backend = sm2.backends()
    return {"status": "ok", "sm2": {"sign": sign_backend, "verify": verify_backend}}


@router.get("/readyz", summary="Readiness: the keystore opens and holds a root",
            responses={503: {"description": "keystore unavailable"}})
async def readyz(request: Request):
    def probe() -> dict:
        store = state(request).pool.local.store
        store.root()  # NoActiveKey (a KeyStoreError) on an uninitialised keystore
        return {"status": "ok", "keystore": "ok", "issuers": [i.code for i in store.issuers()]}

    try:
        return await run_in_threadpool(probe)
    except KeyStoreError:
        return JSONResponse({"status": "unavailable", "keystore": "unavailable"}, status_code=503)


_admin = require_scope("admin")


async def _metrics_guard(request: Request) -> None:
    """Public by default (a scraper on the private network); an admin token when ECERT_METRICS_PUBLIC=0.
    The header is read here, not declared, so the public default is what the OpenAPI shows."""
    if not state(request).settings.metrics_public:
        await _admin(request, await bearer(request))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, dependencies=[Depends(_metrics_guard)],
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
                       **error_responses(401, 403, 503)})
async def metrics():
    body, content_type = exposition()
    return Response(body, media_type=content_type)
