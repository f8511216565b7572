"""One process's keystore, licence registry and one `LicenceIssuer` per issuer code.

Shared by the HTTP service's worker processes and the bulk engine's Dask workers: each
process opens its own keystore (the key never travels), lazily, once."""

from __future__ import annotations

import threading

from keys.config import Settings
from keys.store import KeyStore

from .issue import LicenceIssuer
from .registry import Registry


class IssuerPool:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._store: KeyStore | None = None
        self._registry: Registry | None = None
        self._issuers: dict[str, LicenceIssuer] = {}
        self._lock = threading.Lock()

    @property
    def store(self) -> KeyStore:
        with self._lock:
            if self._store is None:
                self._store = KeyStore(self.settings)
            return self._store

    @property
    def registry(self) -> Registry:
        """The licence registry and issuance log (same database as the keystore)."""
        store = self.store
        with self._lock:
            if self._registry is None:
                self._registry = Registry(store)
            return self._registry

    def issuer(self, code: str) -> LicenceIssuer:
        """The issuer's `LicenceIssuer`, made afresh when its active key changed (rotation or
        revocation by another process): checked on every call, so a long-lived worker never
        signs with a retired or revoked key even inside LicenceIssuer's own short cache.
        Raises UnknownIssuer / NoActiveKey for a code this service cannot sign for."""
        store = self.store
        active = store.active_key(code).kid
        with self._lock:
            cached = self._issuers.get(code)
            if cached is None or cached.identity().kid != active:
                cached = self._issuers[code] = LicenceIssuer(store, code)
            return cached

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
        if self._store is not None:
            self._store.close()
