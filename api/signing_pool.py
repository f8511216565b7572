"""Where the CPU-bound work (sealing a licence, verifying a document) runs.

SM2 signing, OFD writing and verification are pure Python/C work that holds the GIL,
so running them on the event loop, or in its thread pool, would let one large batch
slow every other request of that worker. They run instead in a pool of *processes*
(``ECERT_SIGN_WORKERS``, spawned, each with its own keystore connection: SQLite WAL or
PostgreSQL share the state), and the async endpoints only await the results. With
``sign_workers=0`` the same functions run in the thread pool (tests, tiny setups).

Results cross the process boundary as plain dicts, never as exceptions: a record's
field errors are a normal answer, and the keystore's problems become a
``{"unavailable": ...}`` the API turns into 503.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool

from keys.config import Settings
from keys.store import KeyStore, KeyStoreError, UnknownIssuer
from signer.issuers import IssuerPool
from signer.registry_db import RegistryError
from ofd.licence.errors import ConfigError, LicenceError, field_error

log = logging.getLogger("ecert.api")


class Unavailable(Exception):
    """Signing cannot run right now (keystore or pool problem); the API answers 503."""

    def __init__(self, message_zh: str, message_en: str):
        super().__init__(message_zh, message_en)
        self.message_zh, self.message_en = message_zh, message_en


_UNAVAILABLE_SIGNING = {"unavailable": ["签章服务暂不可用（数据库繁忙或不可用），请稍后重试",
                                         "signing is unavailable (database busy or down); please retry"]}


class WorkContext(IssuerPool):
    """One process's keystore, registry and issuers (`signer.issuers.IssuerPool`), plus the
    request-shaped work the service hands to its pool processes."""

    def issue(self, record: dict) -> dict:
        """Validate and seal one record: {"identifier", "data", ...} or {"errors": [...]}."""
        from ofd.licence.model import validate_record

        try:
            lic = validate_record(record)
            out = self.registry.issue_file(self.issuer(lic.issuer_code), lic)
            issued = out.issued
        except LicenceError as exc:
            return {"errors": exc.as_dicts()}
        except RegistryError as exc:  # a transition the rules refuse (re-issuing a revoked licence unchanged, ...)
            if exc.code == "database":  # locked, full or gone: retry later, not the record's fault
                log.error("registry unavailable: %s", exc)
                return _UNAVAILABLE_SIGNING
            return {"errors": [{"field": "record", "code": exc.code, "message_zh": exc.message_zh,
                                "message_en": exc.message_en}]}
        except UnknownIssuer:
            err = field_error("issuer_code", "unknown_issuer", "本服务没有该发证机关的签章密钥",
                              "this service holds no signing key for that issuer")
            return {"errors": [err.as_dict()]}
        except (KeyStoreError, ConfigError) as exc:
            log.error("signing unavailable: %s", exc)
            return _UNAVAILABLE_SIGNING
        lic = issued.licence
        return {
            "identifier": issued.identifier,
            "data": issued.data,
            "sm3": issued.sm3_hex,
            "kid": issued.kid,
            "issuer_code": lic.issuer_code,
            "signed_at": issued.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "development": lic.is_development,
            "licence": lic.public_view(),
            "registered": out.created,  # False: the same record was issued before (same identifier)
        }

    def verify(self, data: bytes) -> dict:
        """The verification report of ``data`` against our roots and keys' revocation state."""
        from keys.sm3 import sm3
        from verifier.ofd_verify import verify_ofd
        from verifier.trust import trust_from_store

        try:
            trust = trust_from_store(self.store, registry=self.registry)
        except (KeyStoreError, RegistryError) as exc:
            log.error("keystore unavailable for verification: %s", exc)
            return {"unavailable": ["验证服务暂不可用", "verification is unavailable (see the server log)"]}
        report = verify_ofd(data, trust).to_dict()
        report["document"] = {"size": len(data), "sm3": sm3(data).hex()}
        return report

    def verify_qr(self, text: str) -> dict:
        """The report of a licence QR text against this process's `Keyring` (same shape as `verify`)."""
        from keys.sm3 import sm3
        from verifier.qr_verify import verify_qr

        try:
            keyring = self.keyring()
        except KeyStoreError as exc:
            log.error("keystore unavailable for QR verification: %s", exc)
            return {"unavailable": ["验证服务暂不可用", "verification is unavailable (see the server log)"]}
        report = verify_qr(text, keyring).to_dict()
        raw = text.encode("utf-8", "replace")
        report["document"] = {"size": len(raw), "sm3": sm3(raw).hex()}
        return report

    def keyring(self):
        """One `verifier.qr_verify.Keyring` per process, made again only when the keystore's keys
        changed (a key added, rotated or revoked; see `KeyStore.cached_keys`): its
        per-key caches are what makes QR checks fast."""
        from verifier.qr_verify import keyring_from_store

        store = self.store
        mark = keys_fingerprint(store.cached_keys())
        with self._lock:
            cached = getattr(self, "_keyring", None)
        if cached is None or cached[0] != mark:
            cached = (mark, keyring_from_store(store))
            with self._lock:
                self._keyring = cached
        return cached[1]

    def rotate_key(self, issuer_code: str, validity_days: int | None = None):
        """`ecert keys rotate --issuer`: new active key (`keys.rotation.rotate`), its seal made at once."""
        from keys import rotation
        from signer.issue import make_seal

        done = rotation.rotate(self.store, issuer_code, validity_days=validity_days)
        make_seal(self.store, done.issuer_code)
        return done

    def revoke_key(self, kid: str, reason: str, at=None, replace: bool = True):
        """`ecert keys revoke`: (the revoked key's record, the `Rotation` that replaced it or None)."""
        from keys import rotation
        from signer.issue import make_seal

        rec, done = rotation.revoke_key(self.store, kid, reason=reason, at=at, replace=replace)
        if done is not None:
            make_seal(self.store, done.issuer_code)
        return rec, done

def keys_fingerprint(records) -> tuple:
    """What a cache built from the keystore's keys depends on: each key's id, status and revocation."""
    return tuple((r.kid, r.status, r.revoked_at, r.revocation_reason) for r in records)


# ---------------------------------------------------------------- pool processes

_CHILD: WorkContext | None = None


def settle_heap() -> None:
    """Move everything alive now (modules, caches, the keystore) out of the garbage collector's
    reach. A full collection walks every tracked object: ~110,000 in a warmed-up signing or
    server process, 75 ms here, and it comes at a moment CPython chooses, with requests queued
    behind it; the soak test's p99 spikes came at such moments. After `gc.freeze` a full
    collection only walks what was made since (`gc.freeze` is meant for exactly this)."""
    import gc

    gc.collect()
    gc.freeze()


def _child_init(settings: Settings) -> None:
    global _CHILD
    import signal

    from signer import issue, log_redact  # noqa: F401 (imported for its side effect: loaded before settle_heap)
    from verifier import ofd_verify, qr_verify, trust  # noqa: F401

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops us
    log_redact.install()  # a spawned process starts with the default record factory
    _CHILD = WorkContext(settings)
    settle_heap()


def _child_ready() -> bool:
    return _CHILD is not None


def _child_issue(record: dict) -> dict:
    return _CHILD.issue(record)


def _child_verify(data: bytes) -> dict:
    return _CHILD.verify(data)


class SigningPool:
    """Runs `WorkContext.issue` / `.verify` in worker processes (or threads when ``processes=0``);
    `.verify_qr` always in this process's threads (see there)."""

    def __init__(self, settings: Settings, processes: int):
        self.settings = settings
        self.processes = processes
        self.local = WorkContext(settings)  # used by this process (tokens, thread mode)
        self._executor: Executor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> Executor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_child_init,
                    initargs=(self.settings,),
                )
            return self._executor

    def warm(self) -> None:
        """Start the worker processes now (at server start) rather than on the first request."""
        if self.processes:
            pool = self._pool()
            for _ in range(self.processes):
                pool.submit(_child_ready)

    async def _run(self, child_fn: Callable | None, local_fn: Callable, arg) -> dict:
        if self.processes == 0 or child_fn is None:
            result = await run_in_threadpool(local_fn, arg)
        else:
            pool = self._pool()
            try:
                result = await asyncio.wrap_future(pool.submit(child_fn, arg))
            except BrokenProcessPool:
                log.error("a signing process died; the pool is restarted")
                with self._lock:
                    if self._executor is pool:
                        self._executor = None
                pool.shutdown(wait=False, cancel_futures=True)
                raise Unavailable("签章进程异常退出，请重试", "a signing process died; please retry") from None
        if "unavailable" in result:
            raise Unavailable(*result["unavailable"])
        return result

    async def issue(self, record: dict) -> dict:
        return await self._run(_child_issue, self.local.issue, record)

    async def verify(self, data: bytes) -> dict:
        return await self._run(_child_verify, self.local.verify, data)

    async def verify_qr(self, text: str) -> dict:
        """In this process's thread pool, not the process pool: a QR check is ~0.9 ms of CPU, and
        the hop to a pool process (pickling, pipes, two wake-ups) cost more than the check itself
        (HTTP QR verify measured at 3.1-3.6 ms of server CPU per request that way)."""
        return await self._run(None, self.local.verify_qr, text)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self.local.close()
