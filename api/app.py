"""The FastAPI application: ``create_app(settings)``, and ``app`` for ``uvicorn api.app:app``.

Routes live in ``api/routes_*.py`` by area; this module only assembles them with the
error handlers, the request-size limit and the metrics middleware. Nothing heavy
happens at import: the keystore opens on first use, the signing processes start on the
first licence or verification, and both are closed at shutdown (lifespan).
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import routes_jobs, routes_licences, routes_ops, routes_portal, routes_qr, routes_registry, routes_trust, routes_verify
from .deps import AppState
from .errors import BodyLimit, install_error_handlers
from .metrics import RequestMetrics
from .settings import ApiSettings, load_api_settings
from .signing_pool import settle_heap

DESCRIPTION = """Electronic Special Operation Certificates (特种作业操作证, C 0210-2021):
issue and seal (SM2/SM3, GB/T 38540) as OFD (GB/T 33190), verify any signed OFD.

Issuing needs a bearer token with the `issue` scope (`ecert tokens create --scope issue`);
verification is public. Errors are JSON: `error`, `message_zh`, `message_en` and, for
records, `errors` by field."""


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """A new app; ``settings`` default to the environment. Opens nothing until the first request."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.ecert.pool.warm()
        settle_heap()  # this worker's imports and app: out of the collector's way (see there)
        yield
        app.state.ecert.close()

    settings = settings or load_api_settings()
    app = FastAPI(title="ecert", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.ecert = AppState.from_settings(settings)
    install_error_handlers(app)
    # routes_jobs before routes_portal: it serves /portal/jobs.* ahead of the portal's /portal/{name}
    for module in (routes_licences, routes_jobs, routes_registry, routes_verify, routes_qr, routes_trust, routes_ops,
                   routes_portal):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, default=settings.max_upload_bytes,
                       per_path={"/v1/licences:batch": settings.max_batch_bytes,
                                 "/v1/jobs": settings.max_job_bytes})
    app.add_middleware(RequestMetrics)
    return app


app = create_app()
