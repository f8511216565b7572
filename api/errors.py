"""One JSON error shape for every 4xx/5xx, and the request-size limit.

Body: ``{"error": code, "message_zh", "message_en", "errors": [field errors]?}``; field
errors are `ofd.licence.errors.FieldError` dicts (field, code, message_zh, message_en),
so a clerk's form can point at the field. No stack trace ever reaches a client: an
unexpected exception is logged here and answered with a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ofd.licence.errors import FieldError

from .signing_pool import Unavailable

log = logging.getLogger("ecert.api")


class FieldErrorBody(BaseModel):
    field: str
    code: str
    message_zh: str
    message_en: str


class ErrorBody(BaseModel):
    error: str
    message_zh: str
    message_en: str
    errors: list[FieldErrorBody] | None = None


class ApiError(Exception):
    """An error answer: raise it anywhere in a route."""

    def __init__(self, status: int, code: str, zh: str, en: str, *, errors: list[dict] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(en)
        self.status, self.code, self.zh, self.en = status, code, zh, en
        self.errors, self.headers = errors, headers

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.code, "message_zh": self.zh, "message_en": self.en}
        if self.errors is not None:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def invalid_record(errors: list[dict]) -> ApiError:
    return ApiError(422, "invalid_record", "证照数据有误，请按字段修改", "the record is invalid; see errors by field",
                    errors=errors)


def field_problem(field: str, code: str, zh: str, en: str) -> dict:
    return FieldError(field, code, zh, en).as_dict()


def error_responses(*statuses: int) -> dict:
    """OpenAPI ``responses`` entries for the given error statuses (all with `ErrorBody`)."""
    what = {400: "Bad request", 401: "Missing or unknown token", 403: "Token lacks the scope",
            413: "Request body too large", 415: "Unsupported media type", 422: "Invalid input (errors by field)",
            503: "Signing or keystore unavailable"}
    return {s: {"model": ErrorBody, "description": what.get(s, "Error")} for s in statuses}


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int):
        super().__init__(413)
        self.limit = limit


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"请求体超过 {limit} 字节的上限", f"request body exceeds the limit of {limit} bytes")


class BodyLimit:
    """ASGI middleware: refuse bodies over the limit (by Content-Length at once, else while streaming)."""

    def __init__(self, app, *, default: int, per_path: dict[str, int] | None = None):
        self.app, self.default, self.per_path = app, default, per_path or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.per_path.get(scope.get("path", ""), self.default)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    return await too_large(limit).response()(scope, receive, send)
        received = 0
        started = False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await too_large(exc.limit).response()(scope, receive, send)


def _validation_errors(exc: RequestValidationError) -> list[dict]:
    out = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "header")]
        field = ".".join(loc) or "body"
        msg = str(e.get("msg", "invalid"))
        out.append(field_problem(field, str(e.get("type", "invalid")), f"{field}：{msg}", f"{field}: {msg}"))
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return exc.response()

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge):
        return too_large(exc.limit).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        zh = {404: "没有这个地址", 405: "不支持该请求方法"}.get(exc.status_code, "请求有误")
        en = exc.detail if isinstance(exc.detail, str) else "request error"
        return ApiError(exc.status_code, {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error"),
                        zh, en, headers=getattr(exc, "headers", None)).response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        return ApiError(422, "invalid_request", "请求参数有误", "invalid request parameters",
                        errors=_validation_errors(exc)).response()

    @app.exception_handler(Unavailable)
    async def _unavailable(_: Request, exc: Unavailable):
        return ApiError(503, "unavailable", exc.message_zh, exc.message_en, headers={"Retry-After": "5"}).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return ApiError(500, "internal_error", "服务内部错误", "internal server error").response()
