"""The trust list for third parties (``GET /v1/trust-list``, ``.sig``, ``/root.pem``; public) and
key administration (``POST /v1/keys/rotate``, ``POST /v1/keys/{kid}/revoke``; scope ``admin``).

The list is `keys.trustlist.build_trust_list`: canonical JSON signed by the root. One built
list is kept per process and served with its ETag until the keys change (a rotation or
revocation, by this process or another) or it is half its ``max_age`` old, so a client
revalidating with ``If-None-Match`` mostly gets a 304 and never a list older than the
caching it was promised. Key operations are the CLI's (`keys.rotation`, the seal made at
once); a token bound to an issuer may act only on that issuer's keys, never the platform's.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from keys.config import KeyStoreError
from keys.kek import KekError
from keys.store import PLATFORM, KeyIntegrityError, KeyRecord, KeyStore, UnknownIssuer, UnknownKey
from keys.trustlist import DEFAULT_MAX_AGE, SignedTrustList, TrustListError, build_trust_list

from .auth import TokenInfo
from .deps import require_scope, state
from .errors import ApiError, error_responses, field_problem
from .signing_pool import Unavailable, keys_fingerprint

log = logging.getLogger("ecert.api")
router = APIRouter(tags=["trust"])

TRUST_LIST = "/v1/trust-list"
SIGNATURE_HEADER = "X-Ecert-Signature"
ROOT_MAX_AGE = 86400  # the root changes only by a ceremony; a day of caching costs nothing


# ---------------------------------------------------------------- the cached list


class TrustListCache:
    """One signed list per process; rebuilt when the keys changed or at half its max-age."""

    def __init__(self, max_age: int = DEFAULT_MAX_AGE):
        self.max_age = max_age
        self._built: tuple[tuple, SignedTrustList] | None = None
        self._lock = threading.Lock()

    def get(self, store: KeyStore, now: dt.datetime | None = None) -> SignedTrustList:
        now = now or dt.datetime.now(dt.timezone.utc)
        mark = keys_fingerprint(store.list_keys())
        with self._lock:  # one build at a time: concurrent requests wait for it rather than sign again
            built = self._built
            if built is None or built[0] != mark or now - built[1].issued_at >= dt.timedelta(seconds=self.max_age / 2):
                built = self._built = (mark, build_trust_list(store, now=now, max_age=self.max_age))
            return built[1]


_CACHE_LOCK = threading.Lock()


def _cache(request: Request) -> TrustListCache:
    with _CACHE_LOCK:
        cache = getattr(request.app.state, "trust_list_cache", None)
        if cache is None:
            cache = request.app.state.trust_list_cache = TrustListCache()
        return cache


def _unavailable(what_zh: str, what_en: str, exc: Exception) -> Unavailable:
    log.error("%s unavailable: %s", what_en, exc)
    return Unavailable(f"{what_zh}暂不可用", f"the {what_en} is unavailable (see the server log)")


async def _signed_list(request: Request) -> SignedTrustList:
    ctx = state(request).pool.local
    try:
        return await run_in_threadpool(lambda: _cache(request).get(ctx.store))
    except (KeyStoreError, TrustListError) as exc:  # no root yet, or the database is down
        raise _unavailable("信任列表", "trust list", exc) from None


def _matches(request: Request, etag: str) -> bool:
    """RFC 9110 §13.1.2 weak comparison against If-None-Match (``*``, lists, ``W/``)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = {t.strip().removeprefix("W/").strip('"') for t in header.split(",")}
    return "*" in tags or etag in tags


def _cache_headers(signed: SignedTrustList) -> dict[str, str]:
    """ETag, and Cache-Control for the time left until the list's own next_update."""
    left = signed.issued_at + dt.timedelta(seconds=signed.max_age) - dt.datetime.now(dt.timezone.utc)
    return {**signed.http_headers(), "Cache-Control": f"public, max-age={max(0, int(left.total_seconds()))}"}


def _conditional(request: Request, signed: SignedTrustList, body: bytes, media: str, extra: dict | None = None):
    headers = {**_cache_headers(signed), **(extra or {})}
    if _matches(request, signed.etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media, headers=headers)


_CACHED = {"ETag": {"schema": {"type": "string"}, "description": "SM3 of the list's bytes"},
           "Cache-Control": {"schema": {"type": "string"}}}


@router.get(
    TRUST_LIST,
    summary="Root-signed trust list / 信任列表",
    response_class=Response,
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}},
                     "description": "The canonical JSON the root signed (verify the exact bytes)",
                     "headers": {**_CACHED, SIGNATURE_HEADER: {"schema": {"type": "string"},
                                                               "description": "base64 of the DER SM2 signature"}}},
               304: {"description": "Not modified (If-None-Match matched)"}, **error_responses(503)},
)
async def trust_list(request: Request):
    """Every certificate of ours with kid, status and validity; check it with ``ecert trust verify``."""
    signed = await _signed_list(request)
    return _conditional(request, signed, signed.json_bytes, "application/json",
                        {SIGNATURE_HEADER: base64.b64encode(signed.signature).decode("ascii")})


@router.get(
    TRUST_LIST + ".sig",
    summary="Detached signature of the trust list / 信任列表签名",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                     "description": "DER SEQUENCE{r, s} by the root over the list with the same ETag",
                     "headers": _CACHED},
               304: {"description": "Not modified"}, **error_responses(503)},
)
async def trust_list_signature(request: Request):
    signed = await _signed_list(request)
    return _conditional(request, signed, signed.signature, "application/octet-stream")


@router.get(
    TRUST_LIST + "/root.pem",
    summary="The root certificate to pin / 根证书",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {"schema": {"type": "string"}}},
                     "description": "PEM; fetch once and pin out of band"}, **error_responses(503)},
)
async def root_certificate(request: Request):
    from keys.x509 import Certificate

    ctx = state(request).pool.local
    try:
        der = await run_in_threadpool(lambda: ctx.store.root().cert_der)
    except KeyStoreError as exc:
        raise _unavailable("根证书", "root certificate", exc) from None
    cert = Certificate.load(der)
    return Response(cert.to_pem(), media_type="application/x-pem-file",
                    headers={"ETag": f'"{cert.kid}"', "Cache-Control": f"public, max-age={ROOT_MAX_AGE}",
                             "Content-Disposition": 'inline; filename="ecert-root.pem"'})


# ---------------------------------------------------------------- key administration


def _in_utc(t: dt.datetime) -> dt.datetime:
    try:
        return t.astimezone(dt.timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise ValueError("time out of range once converted to UTC") from None


UtcTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]
"""An ISO 8601 time with its zone, as UTC (one that exists in UTC: no 422-worthy input reaches a 500)."""


class RotateIn(BaseModel):
    issuer_code: str = Field(min_length=1, max_length=64, description="发证机关统一社会信用代码")
    validity_days: int | None = Field(None, ge=1, le=3660, description="new certificate's validity (default 3 years)")


class RotateOut(BaseModel):
    issuer_code: str
    old_kid: str | None
    old_status: str | None
    new_kid: str
    not_after: str
    resumed: bool


class KeyRevokeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$",
                        description="printable text, e.g. keyCompromise, superseded")
    at: UtcTime | None = Field(None, description="cut-off, ISO 8601 with zone (default now)")
    rotate: bool = Field(True, description="replace an active signing key in the same step")


class KeyRevokeOut(BaseModel):
    kid: str
    issuer_code: str
    role: str
    status: str
    revoked_at: str
    reason: str | None
    new_kid: str | None = None
    warning_zh: str | None = None
    warning_en: str | None = None


def _utc(t: dt.datetime | None) -> str | None:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if t else None


def _split(exc: Exception) -> tuple[str, str]:
    """The keystore writes "中文 / English"."""
    zh, _, en = str(exc).partition(" / ")
    return zh, en or zh


def key_error(exc: KeyStoreError) -> Exception:
    """The HTTP answer for a keystore refusal: unknown 404/422, database 503, else a 409 conflict."""
    zh, en = _split(exc)
    if isinstance(exc, UnknownKey):
        return ApiError(404, "unknown_key", zh, en)
    if isinstance(exc, UnknownIssuer):
        return ApiError(422, "unknown_issuer", "没有该发证机关", "no such issuer in the keystore",
                        errors=[field_problem("issuer_code", "unknown_issuer", "issuer_code：没有该发证机关",
                                              "issuer_code: no such issuer")])
    if isinstance(exc, (KekError, KeyIntegrityError)) or isinstance(exc.__cause__, SQLAlchemyError):
        return _unavailable("密钥库", "keystore", exc)
    return ApiError(409, "key_operation_refused", zh, en)


def _may_act_on(token: TokenInfo, issuer_code: str) -> None:
    if token.issuer_code is not None and issuer_code != token.issuer_code:
        who = "平台密钥" if issuer_code == PLATFORM else f"发证机关 {issuer_code} 的密钥"
        raise ApiError(403, "issuer_not_allowed", f"该令牌只能管理 {token.issuer_code} 的密钥，不能操作{who}",
                       f"this token may only manage the keys of {token.issuer_code}")


@router.post("/v1/keys/rotate", summary="Rotate an issuer's signing key / 轮换签名密钥", response_model=RotateOut,
             responses=error_responses(400, 401, 403, 409, 413, 422, 503), tags=["keys"])
async def rotate_key(request: Request, body: RotateIn, token: TokenInfo = Depends(require_scope("admin"))):
    """New key and certificate, switched atomically; the old key is retired (verifies, never signs again)."""
    _may_act_on(token, body.issuer_code)
    ctx = state(request).pool.local
    try:
        done = await run_in_threadpool(ctx.rotate_key, body.issuer_code, body.validity_days)
    except KeyStoreError as exc:
        raise key_error(exc) from None
    return RotateOut(issuer_code=done.issuer_code, old_kid=done.old.kid if done.old else None,
                     old_status=done.old.status if done.old else None, new_kid=done.new.kid,
                     not_after=_utc(done.new.not_after), resumed=done.resumed)


@router.post("/v1/keys/{kid}/revoke", summary="Revoke a key from a cut-off / 吊销密钥", response_model=KeyRevokeOut,
             responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503), tags=["keys"])
async def revoke_key(request: Request, body: KeyRevokeIn, kid: str = Path(max_length=128),
                     token: TokenInfo = Depends(require_scope("admin"))):
    """Signatures before the cut-off stay valid (with a warning), later ones are invalid."""
    ctx = state(request).pool.local

    def run() -> tuple[KeyRecord, object, bool]:
        _may_act_on(token, ctx.store.get_key(kid).issuer_code)
        rec, done = ctx.revoke_key(kid, body.reason, body.at, body.rotate)
        return rec, done, ctx.store.active_kid(rec.issuer_code, max_age=0) is None

    try:
        rec, done, none_active = await run_in_threadpool(run)
    except KeyStoreError as exc:
        raise key_error(exc) from None
    out = KeyRevokeOut(kid=rec.kid, issuer_code=rec.issuer_code, role=rec.role, status=rec.status,
                       revoked_at=_utc(rec.revoked_at), reason=rec.revocation_reason,
                       new_kid=done.new.kid if done else None)
    if rec.role != "signing":
        out.warning_zh = "吊销根证书或印章制作者密钥会使其担保的一切失效：请新建并重新签发"
        out.warning_en = f"a revoked {rec.role} key invalidates what it vouches for; create a new one and re-issue"
    elif none_active:
        out.warning_zh = f"{rec.issuer_code} 已无在用签名密钥，请轮换"
        out.warning_en = f"{rec.issuer_code} has no active signing key until it is rotated"
    return out
