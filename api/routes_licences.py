"""``POST /v1/licences`` (one record -> one sealed OFD) and ``POST /v1/licences:batch``
(many records -> a streamed ZIP of sealed OFDs and a manifest line per record)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import zipfile
from collections import deque
from typing import Any, AsyncIterator, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from ofd.licence.model import LicenceRecord

from .auth import TokenInfo
from .bodies import is_json, media_type, parse_json, read_form, unsupported
from .deps import require_scope, state
from .errors import ApiError, error_responses, field_problem, invalid_record
from .metrics import ISSUE_REJECTED, SIGNATURES
from .signing_pool import Unavailable

log = logging.getLogger("ecert.api")
router = APIRouter(tags=["licences"])

OFD_MEDIA = "application/ofd"
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/jsonlines")
MANIFEST = "manifest.jsonl"

_RECORD_SCHEMA = LicenceRecord.model_json_schema(ref_template="#/components/schemas/{model}")
assert "$defs" not in _RECORD_SCHEMA, "LicenceRecord grew nested models: register them in components"


class IssuedOut(BaseModel):
    identifier: str
    sm3: str
    kid: str
    issuer_code: str
    signed_at: str
    development: bool
    size: int
    licence: dict[str, str]
    ofd_base64: str


async def read_record(request: Request) -> dict:
    """One record from JSON, or multipart (``record`` JSON part or one part per field; ``photo`` a file)."""
    media = media_type(request)
    if media == "multipart/form-data":
        async with read_form(request, state(request).settings.max_upload_bytes) as form:
            if "record" in form:
                raw = form["record"]
                raw = await raw.read() if isinstance(raw, UploadFile) else raw.encode("utf-8")
                record = parse_json(raw, "record")
            else:
                record = {k: v for k, v in form.items() if k != "photo"}
            if not isinstance(record, dict):
                raise invalid_record([_not_object("record")])
            photo = form.get("photo")
            if isinstance(photo, UploadFile):
                record["photo"] = await photo.read()
            elif isinstance(photo, str):
                record["photo"] = photo
        return record
    if not is_json(media):
        raise unsupported(media, "application/json, multipart/form-data")
    record = parse_json(await request.body())
    if not isinstance(record, dict):
        raise invalid_record([_not_object("record")])
    return record


def shallow(record: dict) -> dict:
    """The record with nested containers emptied: a record's items are single values, so they are
    type errors either way (still reported by field), and deep nesting never reaches the pool's pickler."""
    return {k: (type(v)() if isinstance(v, (list, dict)) else v) for k, v in record.items()}


def _not_object(field: str) -> dict:
    return field_problem(field, "not_object", f"{field}：应为 JSON 对象", f"{field}: must be a JSON object")


def _issuer_refusal(token: TokenInfo, record: dict) -> dict | None:
    """A field error when the token is bound to another issuer than the record names."""
    if token.issuer_code is None or record.get("issuer_code") == token.issuer_code:
        return None
    return field_problem("issuer_code", "issuer_not_allowed", f"发证机关统一社会信用代码：该令牌只能为 {token.issuer_code} 签发",
                         f"issuer_code: this token may only issue for {token.issuer_code}")


def _record_body() -> dict:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": _RECORD_SCHEMA},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "record": {"type": "string", "description": "the record as JSON (photo may be left out)"},
            "photo": {"type": "string", "format": "binary", "description": "照片 JPEG/PNG"},
        }}},
    }}}


@router.post(
    "/v1/licences",
    summary="Issue and seal one licence / 签发一张电子证照",
    response_model=IssuedOut,
    responses={200: {"content": {OFD_MEDIA: {"schema": {"type": "string", "format": "binary"}}},
                     "description": "The sealed OFD (default), or JSON with ?format=json",
                     "headers": {"X-Ecert-Identifier": {"schema": {"type": "string"}, "description": "证照标识"}}},
               **error_responses(400, 401, 403, 413, 415, 422, 503)},
    openapi_extra=_record_body(),
)
async def issue_licence(
    request: Request,
    fmt: Literal["ofd", "json"] = Query("ofd", alias="format", description="ofd: the file; json: base64 and a summary"),
    token: TokenInfo = Depends(require_scope("issue")),
):
    """Validate the record (every field problem at once, 422), seal it with the issuer's active key."""
    record = await read_record(request)
    refusal = _issuer_refusal(token, record)
    if refusal:
        raise ApiError(403, "issuer_not_allowed", refusal["message_zh"], refusal["message_en"], errors=[refusal])
    result = await state(request).pool.issue(shallow(record))
    if "errors" in result:
        ISSUE_REJECTED.labels("invalid_record").inc()
        raise invalid_record(result["errors"])
    SIGNATURES.labels(result["issuer_code"]).inc()
    data = result.pop("data")
    headers = {"X-Ecert-Identifier": result["identifier"], "X-Ecert-SM3": result["sm3"], "X-Ecert-Kid": result["kid"]}
    if fmt == "json":
        return JSONResponse({**result, "size": len(data), "ofd_base64": base64.b64encode(data).decode("ascii")},
                            headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{result["identifier"]}.ofd"'
    return Response(data, media_type=OFD_MEDIA, headers=headers)


# ---------------------------------------------------------------- batch


def _batch_records(body: bytes, media: str, limit: int) -> list[tuple[int, Any]]:
    """(position, record or error dict) for a JSON array or NDJSON body."""
    if media in NDJSON_TYPES:
        items = []
        for lineno, line in enumerate(body.split(b"\n"), 1):
            if line.strip():
                try:
                    items.append((lineno, json.loads(line)))
                except (ValueError, RecursionError):
                    items.append((lineno, {"__error__": field_problem(
                        "record", "json_invalid", f"第 {lineno} 行不是有效的 JSON", f"line {lineno} is not valid JSON")}))
    elif is_json(media):
        data = parse_json(body)
        if not isinstance(data, list):
            raise ApiError(422, "not_array", "请求体应为记录数组", "the body must be a JSON array of records",
                           errors=[field_problem("records", "not_array", "records：应为数组", "records: must be an array")])
        items = list(enumerate(data, 1))
    else:
        raise unsupported(media, "application/json (array), application/x-ndjson")
    if not items:
        raise ApiError(422, "empty_batch", "批次中没有记录", "the batch holds no records",
                       errors=[field_problem("records", "empty", "records：没有记录", "records: no records")])
    if len(items) > limit:
        raise ApiError(422, "too_many_records", f"批次记录数超过上限 {limit}", f"more than {limit} records in one batch",
                       errors=[field_problem("records", "too_many", f"records：超过 {limit} 条", f"records: more than {limit}")])
    return items


class _Chunks:
    """A write-only file for `zipfile` whose bytes are taken out as they are produced (streaming)."""

    def __init__(self):
        self._buf = bytearray()

    def write(self, b) -> int:
        self._buf += b
        return len(b)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = bytes(self._buf)
        self._buf.clear()
        return out


async def _outcome(pending, token: TokenInfo, pos: int, record: Any) -> dict:
    """One record's manifest line (and ``data`` when sealed); never raises for one bad record."""
    if isinstance(record, dict) and "__error__" in record:
        return {"record": pos, "errors": [record["__error__"]]}
    if not isinstance(record, dict):
        return {"record": pos, "errors": [_not_object("record")]}
    refusal = _issuer_refusal(token, record)
    if refusal:
        return {"record": pos, "errors": [refusal]}
    try:
        result = await pending
    except Unavailable as exc:
        return {"record": pos, "error": "unavailable", "message_zh": exc.message_zh, "message_en": exc.message_en}
    except Exception:
        log.exception("batch record %d failed unexpectedly", pos)
        return {"record": pos, "error": "internal_error", "message_zh": "服务内部错误", "message_en": "internal error"}
    if "errors" in result:
        return {"record": pos, "errors": result["errors"]}
    return {"record": pos, **result}


async def _zip_stream(request: Request, items: list[tuple[int, Any]], token: TokenInfo) -> AsyncIterator[bytes]:
    pool = state(request).pool
    window = max(2, 2 * pool.processes)
    out = _Chunks()
    zf = zipfile.ZipFile(out, "w")
    seen: set[str] = set()
    manifest: list[str] = []
    queue: deque = deque()
    it = iter(items)

    def submit() -> bool:
        for pos, rec in it:
            ok = isinstance(rec, dict) and "__error__" not in rec and _issuer_refusal(token, rec) is None
            task = asyncio.ensure_future(pool.issue(shallow(rec))) if ok else None  # refused: _outcome says why
            queue.append((pos, rec, task))
            return True
        return False

    try:
        while len(queue) < window and submit():
            pass
        while queue:
            pos, rec, task = queue.popleft()
            submit()
            line = await _outcome(task, token, pos, rec)
            data = line.pop("data", None)
            if data is not None and line["identifier"] in seen:
                line = {"record": pos, "errors": [field_problem(
                    "identifier", "duplicate", "证照标识：与本批次中前面的记录重复",
                    "identifier: same as an earlier record of this batch")]}
                data = None
            if data is not None:
                seen.add(line["identifier"])
                line["file"] = f"{line['identifier']}.ofd"
                info = zipfile.ZipInfo(line["file"], date_time=time.gmtime()[:6])
                info.compress_type = zipfile.ZIP_STORED  # an OFD is already deflated
                zf.writestr(info, data)
                SIGNATURES.labels(line["issuer_code"]).inc()
                line.pop("licence", None)  # the manifest carries identifiers, not personal data
            else:
                ISSUE_REJECTED.labels("invalid_record" if "errors" in line else line.get("error", "error")).inc()
            manifest.append(json.dumps(line, ensure_ascii=False))
            chunk = out.take()
            if chunk:
                yield chunk
        zf.writestr(zipfile.ZipInfo(MANIFEST, date_time=time.gmtime()[:6]), "\n".join(manifest) + "\n",
                    compress_type=zipfile.ZIP_DEFLATED)
        zf.close()
        yield out.take()
    finally:
        for _, _, task in queue:
            if task is not None:
                task.cancel()


@router.post(
    "/v1/licences:batch",
    summary="Issue many licences: streamed ZIP of OFDs and a manifest / 批量签发",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
                     "description": f"ZIP: <identifier>.ofd per sealed record and {MANIFEST}, one JSON line per "
                                    "record (identifier and file, or errors by field)"},
               **error_responses(401, 403, 413, 415, 422, 503)},
    openapi_extra={"requestBody": {"required": True, "content": {
        # items are checked one by one (a bad one gets its manifest line), so the array takes anything
        "application/json": {"schema": {"type": "array", "minItems": 1, "items": {
            "description": "a record as for POST /v1/licences"}}},
        "application/x-ndjson": {"schema": {"type": "string", "format": "binary",
                                            "description": "one record as JSON per line"}},
    }}},
)
async def issue_batch(request: Request, token: TokenInfo = Depends(require_scope("issue"))):
    """A bad record gets its manifest line and never spoils the others; sealing runs in the signing pool."""
    settings = state(request).settings
    items = _batch_records(await request.body(), media_type(request), settings.max_batch_records)
    return StreamingResponse(_zip_stream(request, items, token), media_type="application/zip",
                             headers={"Content-Disposition": 'attachment; filename="licences.zip"',
                                      "X-Ecert-Records": str(len(items))})
