"""``POST /v1/qr/verify``: the text of a licence QR in, the verification report out. Public.

The body is ``{"text": "..."}`` or the text itself (``text/plain``): what a phone's scanner
hands to the portal. A bad or forged payload is a normal answer (200, verdict ``invalid``),
as for ``POST /v1/verify``; only a request carrying no text is a 4xx. The check runs where
document verification runs (the signing pool), against a per-process keyring of our keys.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .bodies import is_json, media_type, parse_json, unsupported
from .deps import state
from .errors import ApiError, error_responses, field_problem
from .metrics import VERDICTS
from .routes_verify import ReportOut

router = APIRouter(tags=["verify"])


def _no_text() -> ApiError:
    return ApiError(422, "no_text", "没有二维码内容（JSON 字段 text，或 text/plain 请求体）",
                    "no QR text (JSON field 'text', or a text/plain body)",
                    errors=[field_problem("text", "missing", "text：缺少二维码内容", "text: missing")])


async def read_text(request: Request) -> str:
    media = media_type(request)
    body = await request.body()
    if media == "text/plain":
        text = body.decode("utf-8", "replace")  # mangled bytes make an invalid payload, reported as such
    elif is_json(media):
        data = parse_json(body)
        text = data.get("text") if isinstance(data, dict) else None
        if text is not None and not isinstance(text, str):
            raise ApiError(422, "invalid_request", "text 应为字符串", "text must be a string",
                           errors=[field_problem("text", "string_type", "text：应为字符串", "text: must be a string")])
    else:
        raise unsupported(media, "application/json, text/plain")
    if not text or not text.strip():
        raise _no_text()
    return text


@router.post(
    "/v1/qr/verify",
    summary="Verify a licence QR code / 验证证照二维码",
    response_model=ReportOut,
    responses=error_responses(413, 415, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "required": ["text"], "properties": {
            "text": {"type": "string", "description": "the printed URL (…/v#EC1:…) or the bare EC1: payload"}}}},
        "text/plain": {"schema": {"type": "string"}},
    }}},
)
async def verify_qr(request: Request):
    """Format, key id, SM2 signature, issuer, times, chain, revocation, licence validity: offline-grade checks."""
    report = await state(request).pool.verify_qr(await read_text(request))
    VERDICTS.labels(report["verdict"]).inc()
    return JSONResponse(report)
