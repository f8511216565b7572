"""The verification portal: ``/`` (drop an OFD or paste a QR text), ``/v`` (where a licence's
QR lands: the payload rides in the URL fragment ``#EC1:...``, which browsers never send, so the
page reads it and posts it to ``/v1/qr/verify``), its static files, and ``POST /v1/render``
(page 1 of an uploaded OFD as PNG, for the picture next to the verdict).

Every portal answer carries a strict Content-Security-Policy: scripts and styles only from
this server, no inline script, no plugins, no framing. The page itself writes data with
``textContent`` only; the CSP is the second wall should that ever slip.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ofd.errors import OFDError

from .errors import ApiError, error_responses
from .routes_licences import OFD_MEDIA
from .routes_verify import read_document

router = APIRouter(tags=["portal"])

STATIC = Path(__file__).resolve().parent / "portal"
_FILES = {  # the only files served: no path from the request ever reaches the file system
    "index.html": "text/html; charset=utf-8",
    "portal.js": "text/javascript; charset=utf-8",
    "portal.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a licence page must not leak to other sites
    "X-Frame-Options": "DENY",
}
RENDER_DPI = 110  # readable on a screen, ~1 MB at most for an A4 page
RENDER_MAX_BYTES = 10 * 1024 * 1024  # a licence is ~40 KB; rendering is costlier than verifying
_RENDERS = threading.BoundedSemaphore(2)  # CPU-bound: never let renders crowd out verification


@lru_cache(maxsize=None)
def _static(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def _page(name: str) -> Response:
    return Response(_static(name), media_type=_FILES[name],
                    headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


@router.get("/", include_in_schema=False)
async def portal_home() -> Response:
    return _page("index.html")


@router.get("/v", include_in_schema=False)
async def portal_qr_landing() -> Response:
    """Same page: the script sees ``#EC1:...`` in ``location.hash`` and verifies it at once."""
    return _page("index.html")


@router.get("/portal/{name}", include_in_schema=False)
async def portal_static(name: str) -> Response:
    if name not in _FILES or name == "index.html":
        raise ApiError(404, "not_found", "没有该文件", "no such file")
    return _page(name)


def _render(data: bytes) -> bytes:
    from ofd.render import render_png

    with _RENDERS:
        return render_png(data, page=0, dpi=RENDER_DPI)


@router.post(
    "/v1/render",
    summary="Render page 1 of an OFD as PNG / 显示证照页面",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **error_responses(400, 413, 422)},
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
        OFD_MEDIA: {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    }}},
)
async def render(request: Request) -> Response:
    """What the document shows, seals included: a picture only, it proves nothing (see /v1/verify)."""
    data = await read_document(request)
    if len(data) > RENDER_MAX_BYTES:
        raise ApiError(413, "too_large", f"文件超过 {RENDER_MAX_BYTES // 1048576} MiB，无法显示",
                       f"the document exceeds {RENDER_MAX_BYTES // 1048576} MiB and is not rendered")
    try:
        png = await run_in_threadpool(_render, data)
    except OFDError as exc:
        raise ApiError(422, "unrenderable", f"无法显示该文件：{exc.message_zh}",
                       f"the document cannot be shown: {exc.message_en}") from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
