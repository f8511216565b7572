"""What a verification run trusts: root certificates, out-of-band signer certificates,
our own keys' revocation state, and the time of verification."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Protocol

from keys.x509 import Certificate


@dataclass(frozen=True)
class Revocation:
    status: str  # 'active' | 'retired' | 'revoked'
    revoked_at: datetime | None = None
    reason: str | None = None


class RevocationSource(Protocol):
    def __call__(self, kid: str) -> Revocation | None: ...


@dataclass
class TrustConfig:
    roots: list[Certificate] = field(default_factory=list)
    signer_certs: list[Certificate] = field(default_factory=list)  # for raw SM2 signatures carrying none
    revocation: Callable[[str], Revocation | None] | None = None  # our issuers' keys by kid
    at: datetime | None = None  # verify as of this time (default: now)
    # identifier -> (status, reason_zh, reason_en, at) from our licence registry, None if unknown
    licence_status: Callable[[str], tuple | None] | None = None

    def now(self) -> datetime:
        return self.at or datetime.now(timezone.utc)


def trust_from_store(store, *, registry=None, **kw) -> TrustConfig:
    """Our roots, our keys' revocation state and our licences' status, from the keystore
    (``keys.store.KeyStore``). A long-lived caller passes its ``signer.registry.Registry`` so
    that every verification reuses it; otherwise one is opened on first use. Key state comes
    from `KeyStore.cached_keys` (a revocation by another process is seen within its bound)."""
    from keys.store import UnknownKey

    keys = store.cached_keys()
    roots = [Certificate.load(r.cert_der) for r in keys if r.role == "root" and r.status != "revoked"]
    by_kid = {r.kid: r for r in keys}

    def revocation(kid: str) -> Revocation | None:
        rec = by_kid.get(kid)
        if rec is None:  # made after the cached list (or unknown): ask the store
            try:
                rec = store.get_key(kid)
            except UnknownKey:
                return None
        return Revocation(rec.status, rec.revoked_at, rec.revocation_reason)

    from signer.registry import status_source

    extra_roots = kw.pop("roots", [])
    status = registry.status_for if registry is not None else status_source(store)
    return TrustConfig(roots=roots + list(extra_roots), revocation=revocation, licence_status=status, **kw)
