"""``POST /v1/verify``: any signed OFD in, the verification report out. Public, no token.

An invalid or unreadable document is a normal answer (200, verdict ``invalid``); only
a request that carries no document at all is a 4xx.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import UploadFile

from .deps import state
from .errors import ApiError, error_responses, field_problem
from .metrics import VERDICTS
from .bodies import media_type, read_form
from .routes_licences import OFD_MEDIA

router = APIRouter(tags=["verify"])


class CheckOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    status: Literal["pass", "fail", "warn", "skip"]
    reason: str
    reason_zh: str
    reason_en: str
    signature: str | None = None


class SignatureOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    type: str


class DocumentOut(BaseModel):
    size: int
    sm3: str


class ReportOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    verdict: Literal["valid", "invalid", "indeterminate"]
    verdict_zh: str
    checks: list[CheckOut]
    signatures: list[SignatureOut]
    licence: dict | None = None
    verified_at: str | None = None
    document: DocumentOut


def _no_document() -> ApiError:
    return ApiError(422, "no_document", "没有上传文件（multipart 字段 file，或请求体本身）",
                    "no document uploaded (multipart field 'file', or the raw body)",
                    errors=[field_problem("file", "missing", "file：缺少文件", "file: missing")])


async def read_document(request: Request) -> bytes:
    if media_type(request) == "multipart/form-data":
        async with read_form(request, state(request).settings.max_upload_bytes) as form:
            part = form.get("file")
            if isinstance(part, UploadFile):
                data = await part.read()
            elif isinstance(part, str):
                data = part.encode("utf-8")  # a text field: certainly not an OFD, but still a document to judge
            else:
                raise _no_document()
    else:
        data = await request.body()
    if not data:
        raise _no_document()
    return data


@router.post(
    "/v1/verify",
    summary="Verify a signed OFD / 验证电子证照",
    response_model=ReportOut,
    responses=error_responses(400, 413, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
        OFD_MEDIA: {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    }}},
)
async def verify(request: Request):
    """Every signature checked (references, digest, SM2, seal, certificate chain, revocation)."""
    report = await state(request).pool.verify(await read_document(request))
    VERDICTS.labels(report["verdict"]).inc()
    return JSONResponse(report)
