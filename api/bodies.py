"""Reading request bodies: media type, multipart forms (bounded), JSON with a 422 naming the problem."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import ApiError, field_problem


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    return media in ("application/json", "") or media.endswith("+json")


@asynccontextmanager
async def read_form(request: Request, max_part: int) -> AsyncIterator[FormData]:
    """The multipart form, its spooled files closed on leaving; malformed input is a 400."""
    try:
        form = await request.form(max_files=4, max_fields=64, max_part_size=max_part)
    except StarletteHTTPException:  # includes BodyTooLarge (413)
        raise
    except Exception:  # python-multipart on hostile input
        raise ApiError(400, "malformed_multipart", "multipart 请求体格式错误", "malformed multipart body") from None
    try:
        yield form
    finally:
        await form.close()


def unsupported(media: str, accepted: str) -> ApiError:
    return ApiError(415, "unsupported_media_type", f"不支持的内容类型 {media!r}，应为 {accepted}",
                    f"unsupported content type {media!r}; send {accepted}")


def parse_json(body: bytes, field: str = "body") -> Any:
    """JSON from a request body, or a 422 naming what is wrong."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, huge ints, deep nesting
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ApiError(422, "malformed_json", "请求体不是有效的 JSON", f"the body is not valid JSON{where}",
                       errors=[field_problem(field, "json_invalid", f"{field}：不是有效的 JSON",
                                             f"{field}: not valid JSON{where}")]) from None
