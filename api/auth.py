"""API bearer tokens with scopes, kept hashed in the keystore's database.

A token is ``ect_<id>_<secret>``: ``id`` (8 hex) names the row, ``secret`` is 256 random
bits (base64url). Only SM3 of the whole token is stored: with 256 bits of entropy a
slow hash adds nothing, and a stolen table yields no usable token. Comparison is
``hmac.compare_digest``, and an unknown id is compared against a dummy digest, so
timing tells nothing about which ids exist. The token is shown once, by
``ecert tokens create``, and never logged.

Scopes: ``issue`` (seal licences) and ``admin`` (key and registry operations). They
are separate on purpose: the issuing system cannot rotate keys, the security team's
token cannot issue. A token may be bound to one issuer code.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import Column, LargeBinary, MetaData, String, Table, insert, inspect, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from keys.sm3 import sm3
from keys.store import KeyStoreError, UTCDateTime, make_engine

SCOPES = ("issue", "admin")
PREFIX = "ect_"
_TOKEN_RE = re.compile(r"ect_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
_DOMAIN = b"ecert api token v1\x00"
_DUMMY = sm3(_DOMAIN, b"no such token")
UTC = dt.timezone.utc

metadata = MetaData()
tokens_t = Table(
    "api_tokens",
    metadata,
    Column("id", String(8), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("scopes", String(100), nullable=False),  # space-separated
    Column("issuer_code", String(64)),  # None: any issuer
    Column("token_sm3", LargeBinary(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)


class TokenError(ValueError):
    """A token request (create/revoke) is not acceptable; the message says why."""


@dataclass(frozen=True)
class TokenInfo:
    """Public facts about a token; never the token or its digest."""

    id: str
    name: str
    scopes: tuple[str, ...]
    issuer_code: str | None
    created_at: dt.datetime
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None

    def active(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def to_dict(self) -> dict:
        iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else None  # noqa: E731
        return {"id": self.id, "name": self.name, "scopes": list(self.scopes), "issuer_code": self.issuer_code,
                "created_at": iso(self.created_at), "expires_at": iso(self.expires_at),
                "revoked_at": iso(self.revoked_at)}


def _digest(token: str) -> bytes:
    return sm3(_DOMAIN, token.encode("ascii"))


def _info(row) -> TokenInfo:
    return TokenInfo(row.id, row.name, tuple(row.scopes.split()), row.issuer_code, row.created_at,
                     row.expires_at, row.revoked_at)


class TokenStore:
    """The ``api_tokens`` table in the keystore database (created on first use)."""

    def __init__(self, database_url: str | None = None, *, engine: Engine | None = None,
                 busy_timeout: float | None = None):
        if engine is None:
            engine = make_engine(database_url) if busy_timeout is None else make_engine(database_url, busy_timeout)
        self._engine = engine
        with self._begin() as c:  # an existing table is only read: no write lock needed to check tokens
            present = inspect(c).has_table(tokens_t.name)
        if not present:
            with self._begin(write=True) as c:
                metadata.create_all(c, checkfirst=True)

    def _begin(self, write: bool = False) -> _Tx:
        return _Tx(self._engine, write)

    def close(self) -> None:
        self._engine.dispose()

    def create(self, name: str, scopes: list[str] | tuple[str, ...], *, issuer_code: str | None = None,
               expires_at: dt.datetime | None = None) -> tuple[str, TokenInfo]:
        """A new token and its record; the token itself is returned here and nowhere else."""
        name = (name or "").strip()
        if not name or len(name) > 100:
            raise TokenError("令牌名称须为 1-100 个字符 / the token name must be 1-100 characters")
        scopes = tuple(dict.fromkeys(scopes))
        if not scopes or any(s not in SCOPES for s in scopes):
            raise TokenError(f"权限范围须为 {', '.join(SCOPES)} / scopes must be among {', '.join(SCOPES)}: got {list(scopes)}")
        if expires_at is not None and expires_at.tzinfo is None:
            raise TokenError("过期时间须带时区 / the expiry time needs a time zone")
        now = dt.datetime.now(UTC).replace(microsecond=0)
        with self._begin(write=True) as c:
            while True:
                tid = secrets.token_hex(4)
                if c.scalar(select(tokens_t.c.id).where(tokens_t.c.id == tid)) is None:
                    break
            token = f"{PREFIX}{tid}_{secrets.token_urlsafe(32)}"
            c.execute(insert(tokens_t).values(id=tid, name=name, scopes=" ".join(scopes), issuer_code=issuer_code,
                                              token_sm3=_digest(token), created_at=now, expires_at=expires_at))
        return token, TokenInfo(tid, name, scopes, issuer_code, now, expires_at)

    def list(self) -> list[TokenInfo]:
        with self._begin() as c:
            return [_info(r) for r in c.execute(select(tokens_t).order_by(tokens_t.c.created_at, tokens_t.c.id))]

    def revoke(self, token_id: str) -> TokenInfo:
        now = dt.datetime.now(UTC).replace(microsecond=0)
        with self._begin(write=True) as c:
            row = c.execute(select(tokens_t).where(tokens_t.c.id == token_id)).first()
            if row is None:
                raise TokenError(f"没有编号为 {token_id!r} 的令牌 / no token with id {token_id!r}")
            if row.revoked_at is None:
                c.execute(update(tokens_t).where(tokens_t.c.id == token_id).values(revoked_at=now))
            row = c.execute(select(tokens_t).where(tokens_t.c.id == token_id)).first()
        return _info(row)

    def authenticate(self, token: str) -> TokenInfo | None:
        """The token's record if ``token`` is a current, unrevoked token; else None (in near-constant time)."""
        m = _TOKEN_RE.fullmatch(token or "")
        row = None
        if m:
            with self._begin() as c:
                row = c.execute(select(tokens_t).where(tokens_t.c.id == m.group(1))).first()
        presented = _digest(token) if m else _DUMMY[::-1]
        stored = bytes(row.token_sm3) if row is not None else _DUMMY
        if not hmac.compare_digest(presented, stored) or row is None:
            return None
        info = _info(row)
        return info if info.active(dt.datetime.now(UTC)) else None


class _Tx:
    """``with`` block: one connection, one transaction (the keystore engine begins explicitly);
    database failures come out as `KeyStoreError`, which the API answers with 503."""

    def __init__(self, engine: Engine, write: bool):
        self.engine, self.write = engine, write

    def __enter__(self):
        try:
            self.conn = self.engine.connect()
            if self.write:
                self.conn = self.conn.execution_options(ecert_write=True)
            self._tx = self.conn.begin()
        except SQLAlchemyError as exc:
            raise _db_error(exc) from exc
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._tx.commit()
            else:
                self._tx.rollback()
        except SQLAlchemyError as err:
            raise _db_error(err) from err
        finally:
            self.conn.close()
        if isinstance(exc, SQLAlchemyError):
            raise _db_error(exc) from exc


def _db_error(exc: SQLAlchemyError) -> KeyStoreError:
    detail = getattr(exc, "orig", None) or exc
    return KeyStoreError(f"令牌库数据库错误 / token store database error: {type(detail).__name__}: {detail}")
