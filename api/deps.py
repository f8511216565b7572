"""Per-app state (settings, signing pool, token store) and the FastAPI dependencies using it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from keys.config import KeyStoreError
from signer import log_redact

from .auth import TokenInfo, TokenStore
from .errors import ApiError
from .settings import ApiSettings
from .signing_pool import SigningPool, Unavailable


@dataclass
class AppState:
    settings: ApiSettings
    pool: SigningPool
    _tokens: TokenStore | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> AppState:
        log_redact.install()  # ID numbers masked in every log record of this server process
        return cls(settings, SigningPool(settings.keystore, settings.sign_workers))

    @property
    def tokens(self) -> TokenStore:
        with self._lock:
            if self._tokens is None:
                try:
                    ks = self.settings.keystore
                    self._tokens = TokenStore(ks.database_url, busy_timeout=ks.busy_timeout)
                except KeyStoreError:
                    raise Unavailable("令牌库暂不可用", "the token store is unavailable") from None
            return self._tokens

    def close(self) -> None:
        self.pool.close()
        if self._tokens is not None:
            self._tokens.close()


def state(request: Request) -> AppState:
    return request.app.state.ecert


bearer = HTTPBearer(auto_error=False, description="API token from `ecert tokens create --scope issue|admin`")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require_scope(scope: str):
    """Dependency: a current token holding ``scope``, else 401 (no/unknown token) or 403 (scope)."""

    async def check(request: Request, cred: HTTPAuthorizationCredentials | None = Security(bearer)) -> TokenInfo:
        if cred is None:
            raise ApiError(401, "unauthorized", "需要令牌（Authorization: Bearer ...）",
                           "a bearer token is required (Authorization: Bearer ...)", headers=_CHALLENGE)
        try:
            info = await run_in_threadpool(state(request).tokens.authenticate, cred.credentials)
        except KeyStoreError:
            raise Unavailable("令牌库暂不可用", "the token store is unavailable") from None
        if info is None:
            raise ApiError(401, "invalid_token", "令牌无效、已过期或已吊销", "the token is unknown, expired or revoked",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if scope not in info.scopes:
            raise ApiError(403, "insufficient_scope", f"令牌没有“{scope}”权限", f"the token lacks the {scope!r} scope",
                           headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'})
        request.state.token = info
        return info

    check.scope = scope  # read by tests/test_security_review.py: every mutating route names its scope
    return check
