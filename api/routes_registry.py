"""A licence's status (``GET /v1/licences/{identifier}/status``, public) and its 撤销 / 注销
(``POST /v1/licences/{identifier}/revoke|cancel``, scope ``admin``).

Why ``admin`` and not ``issue``: revoking or cancelling is an administrative decision of the
issuing authority (Order 30 §§30-31), not something the system that prints licences should
be able to do with its token; a token bound to an issuer acts only on that issuer's licences.

Privacy: the public status says only what the identifier already says (issuer, licence
number, version) plus the registry's own facts -- status, reason, dates, key id and the log
sequence of each change. No holder hash, record digest, file digest or free-text note.
"""

from __future__ import annotations

import datetime as dt
from datetime import date
from typing import Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field, TypeAdapter, field_validator
from starlette.concurrency import run_in_threadpool

from signer.registry import LicenceStatus, Registry, RegistryError, TransitionError, UnknownLicence

from .auth import TokenInfo
from .deps import require_scope, state
from .errors import ApiError, error_responses, field_problem
from .routes_trust import UtcTime
from .signing_pool import Unavailable

router = APIRouter(tags=["registry"])

_UTC_TIME = TypeAdapter(UtcTime)
Identifier = Path(min_length=1, max_length=128, description="证照标识 (GB/T 36904)")


class HistoryOut(BaseModel):
    seq: int
    type: str
    at: str
    reason: str | None = None


class StatusOut(BaseModel):
    identifier: str
    status: Literal["valid", "revoked", "cancelled", "superseded"]
    status_zh: str
    status_en: str
    summary_zh: str
    summary_en: str
    reason: str | None = None
    reason_zh: str | None = None
    reason_en: str | None = None
    reason_article: str | None = None
    status_at: str | None = None
    issuer_code: str
    version: int
    issued_at: str
    kid: str
    current: str
    superseded_by: str | None = None
    history: list[HistoryOut]


class ChangedOut(StatusOut):
    note: str | None = None


class ChangeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=64, description="撤销/注销原因 code (`ecert licences reasons`)")
    at: str | None = Field(None, max_length=40, examples=["2026-11-23", "2026-11-23T09:30:00+08:00"],
                           description="decision date YYYY-MM-DD or ISO 8601 time with zone (default now)")
    note: str | None = Field(None, max_length=500, description="备注, e.g. the decision's document number")

    @field_validator("at")
    @classmethod
    def _when(cls, v: str | None) -> date | dt.datetime | None:
        """A decision date (recorded as that day) or an exact time with its zone; one error message for both."""
        if v is None:
            return None
        try:
            return date.fromisoformat(v) if len(v.strip()) == 10 else _UTC_TIME.validate_python(v.strip())
        except ValueError:
            raise ValueError("not a date YYYY-MM-DD or an ISO 8601 time with zone (e.g. 2026-11-23T09:30:00+08:00)") from None


def public_status(st: LicenceStatus) -> dict:
    """The status without holder data (see the module doc)."""
    e = st.entry.to_dict()
    zh, en = st.describe()
    keep = ("identifier", "status", "status_zh", "status_en", "reason", "reason_zh", "reason_en", "reason_article",
            "status_at", "issuer_code", "version", "issued_at", "kid", "superseded_by")
    return {**{k: e.get(k) for k in keep}, "summary_zh": zh, "summary_en": en, "current": st.current,
            "history": [{"seq": h.seq, "type": h.kind, "at": h.at, "reason": h.payload.get("reason")}
                        for h in st.history]}


def registry_error(exc: RegistryError) -> Exception:
    """Unknown licence 404, a transition the rules forbid 409, database 503, bad input 422 by field."""
    zh, en = exc.message_zh, exc.message_en
    if isinstance(exc, UnknownLicence):
        return ApiError(404, "unknown_licence", zh, en)
    if isinstance(exc, TransitionError):
        return ApiError(409, exc.code, zh, en)
    if exc.code == "database":
        return Unavailable("登记簿暂不可用", "the licence registry is unavailable")
    field = exc.code if exc.code in ("reason", "note") else "at"
    return ApiError(422, f"invalid_{field}", zh, en, errors=[field_problem(field, exc.code, zh, en)])


async def _registry(request: Request) -> Registry:
    from keys.config import KeyStoreError

    ctx = state(request).pool.local
    try:
        return await run_in_threadpool(lambda: ctx.registry)
    except (KeyStoreError, RegistryError):
        raise Unavailable("登记簿暂不可用", "the licence registry is unavailable") from None


@router.get("/v1/licences/{identifier}/status", summary="A licence's status / 证照状态", response_model=StatusOut,
            responses=error_responses(404, 422, 503))
async def licence_status(request: Request, identifier: str = Identifier):
    """有效 / 已撤销 / 已注销 / 已换发, with reason, date and the log entries that made it so."""
    reg = await _registry(request)
    try:
        return public_status(await run_in_threadpool(reg.status, identifier.strip()))
    except RegistryError as exc:
        raise registry_error(exc) from None


async def _change(request: Request, kind: str, identifier: str, body: ChangeIn, token: TokenInfo) -> dict:
    reg = await _registry(request)
    identifier = identifier.strip()

    def run() -> dict:
        issuer = reg.get(identifier).issuer_code
        if token.issuer_code is not None and issuer != token.issuer_code:
            raise ApiError(403, "issuer_not_allowed", f"该令牌只能处理 {token.issuer_code} 颁发的证照",
                           f"this token may only act on licences issued by {token.issuer_code}")
        entry = getattr(reg, kind)(identifier, body.reason, at=body.at, note=body.note)
        return {**public_status(reg.status(identifier)), "note": entry.note}

    try:
        return await run_in_threadpool(run)
    except RegistryError as exc:
        raise registry_error(exc) from None


_CHANGE_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 422, 503)


@router.post("/v1/licences/{identifier}/revoke", summary="Revoke (撤销) a licence", response_model=ChangedOut,
             responses=_CHANGE_ERRORS)
async def revoke_licence(request: Request, body: ChangeIn, identifier: str = Identifier,
                         token: TokenInfo = Depends(require_scope("admin"))):
    """撤销 on one of the grounds of Order 30 §30 (expired_without_review, unfit, accident, false_information, fraud)."""
    return await _change(request, "revoke", identifier, body, token)


@router.post("/v1/licences/{identifier}/cancel", summary="Cancel (注销) a licence", response_model=ChangedOut,
             responses=_CHANGE_ERRORS)
async def cancel_licence(request: Request, body: ChangeIn, identifier: str = Identifier,
                         token: TokenInfo = Depends(require_scope("admin"))):
    """注销 on one of the grounds of Order 30 §31 (death, own_request, after_revocation)."""
    return await _change(request, "cancel", identifier, body, token)
